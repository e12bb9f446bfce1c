"""The office engine called directly, with a real LibreOffice: every corpus document to PDF
with its text checked against the source read by python-docx / odfpy / openpyxl, conversions
between formats read back, page ranges, PDF/A, passwords, damaged input, and the supervision
of the soffice process (killed between and during jobs, hung, recycled, orphaned)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from docmill.core.inputs import sniff
from docmill.engines.base import EngineInput
from docmill.engines.office.bridge import _props, load_uno
from docmill.engines.office.engine import OfficeEngine
from docmill.engines.office.formats import ConvertParams, ToPdfParams
from docmill.engines.office.process import PROFILE_PREFIX
from docmill.errors import InvalidInput, PasswordRequired, Timeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from doctext import (
    coverage,
    docx_text,
    odf_text,
    pdf_pages_text,
    pptx_text,
    source_text,
    xlsx_text,
)
from server import DATA

OFFICE = DATA / "office"
CORPUS = sorted(p for p in OFFICE.iterdir() if p.is_file())


def as_input(path: Path, name: str | None = None) -> EngineInput:
    name = name or path.name
    return EngineInput(path, name, sniff(path.read_bytes()[:262144], name))


@pytest.fixture(scope="module")
def engine():
    instance = OfficeEngine()
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def run(engine, tmp_path):
    def run(operation, path, params, name=None, progress=None):
        seen = []

        def record(percent, message):
            seen.append((percent, message))
            if progress:
                progress(percent, message)

        result = engine.run(operation, [as_input(path, name)], params, tmp_path, record)
        result.progress = seen
        return result

    return run


def soffice_pid(engine) -> int:
    return engine.get_converter().office.pid


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_to_pdf_keeps_the_text(run, path):
    result = run("office.to-pdf", path, ToPdfParams())
    output = result.outputs[0]
    assert output.content_type == "application/pdf"
    pages = pdf_pages_text(output.path)
    assert len(pages) == result.pages == result.data["pages"] >= 1
    assert coverage(source_text(path), "\n".join(pages)) >= 0.9
    messages = [m for _, m in result.progress]
    assert any(m.startswith("loading") for m in messages)
    assert any(m.startswith("converting") for m in messages)
    assert any(m.startswith("exporting") for m in messages)
    assert [p for p, _ in result.progress] == sorted(p for p, _ in result.progress)


def test_page_range_selects_those_pages(run):
    path = OFFICE / "Electra.odt"
    full = pdf_pages_text(run("office.to-pdf", path, ToPdfParams()).outputs[0].path)
    part = pdf_pages_text(run("office.to-pdf", path, ToPdfParams(pages="2-3,5")).outputs[0].path)
    assert len(full) > 5 and len(part) == 3
    assert part == [full[1], full[2], full[4]]


def test_page_range_past_the_end_is_invalid(run):
    with pytest.raises(InvalidInput, match="selects no page"):
        run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams(pages="40-"))
    with pytest.raises(InvalidInput, match="invalid page range"):
        run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams(pages="3-1"))


def test_pdfa_output_declares_conformance(run):
    result = run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams(pdf_format="pdfa-2b"))
    raw = result.outputs[0].path.read_bytes()
    assert b"pdfaid:part" in raw
    assert b'pdfaid:part="2"' in raw or b"<pdfaid:part>2</pdfaid:part>" in raw


@pytest.mark.parametrize("name,target,reader,back", [
    ("par-known-paragraphs.docx", "odt", odf_text, docx_text),
    ("headerfooter.odt", "docx", docx_text, odf_text),
    ("inventory-table.xlsx", "ods", None, xlsx_text),
    ("chinese_spreadsheet.ods", "xlsx", xlsx_text, None),
    ("test.pptx", "odp", odf_text, pptx_text),
])
def test_convert_between_formats(run, name, target, reader, back):
    source = OFFICE / name
    result = run("office.convert", source, ConvertParams(format=target))
    out = result.outputs[0].path
    assert out.suffix == f".{target}"
    if reader is not None:
        assert coverage(source_text(source), reader(out)) >= 0.9
    if back is not None:  # and back again, read by the source format's own library
        again = run("office.convert", out, ConvertParams(format=source.suffix[1:]))
        assert coverage(source_text(source), back(again.outputs[0].path)) >= 0.9


def test_legacy_formats_round_trip(run, tmp_path):
    docx = OFFICE / "par-known-paragraphs.docx"
    doc = run("office.convert", docx, ConvertParams(format="doc")).outputs[0].path
    assert doc.read_bytes()[:4] == b"\xd0\xcf\x11\xe0"
    back = run("office.convert", doc, ConvertParams(format="docx")).outputs[0].path
    assert docx_text(back).split() == docx_text(docx).split()

    xlsx = OFFICE / "inventory-table.xlsx"
    xls = run("office.convert", xlsx, ConvertParams(format="xls")).outputs[0].path
    back = run("office.convert", xls, ConvertParams(format="xlsx")).outputs[0].path
    assert xlsx_text(back) == xlsx_text(xlsx)

    pptx = OFFICE / "txt-font-typeface.pptx"
    ppt = run("office.convert", pptx, ConvertParams(format="ppt")).outputs[0].path
    back = run("office.convert", ppt, ConvertParams(format="pptx")).outputs[0].path
    assert coverage(pptx_text(pptx), pptx_text(back)) >= 0.9
    pdf = run("office.to-pdf", ppt, ToPdfParams()).outputs[0].path
    assert coverage(pptx_text(pptx), "\n".join(pdf_pages_text(pdf))) >= 0.9


def test_text_and_csv_inputs(run, tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("Première ligne\nSecond paragraph with ünïcödé\n", encoding="utf-8")
    pages = pdf_pages_text(run("office.to-pdf", txt, ToPdfParams()).outputs[0].path)
    assert "Première ligne" in pages[0] and "ünïcödé" in pages[0]
    csv = tmp_path / "table.csv"
    csv.write_text("name,amount\nÅsa,12.5\nBob,7\n", encoding="utf-8")
    result = run("office.to-pdf", csv, ToPdfParams())
    assert result.data["family"] == "calc"
    text = pdf_pages_text(result.outputs[0].path)[0]
    assert "Åsa" in text and "12.5" in text
    xlsx = run("office.convert", csv, ConvertParams(format="xlsx")).outputs[0].path
    import openpyxl

    rows = list(openpyxl.load_workbook(xlsx).active.iter_rows(values_only=True))
    assert rows == [("name", "amount"), ("Åsa", 12.5), ("Bob", 7)]


def test_cross_family_conversion_is_refused(run):
    with pytest.raises(InvalidInput, match="calc document"):
        run("office.convert", OFFICE / "inventory-table.xlsx", ConvertParams(format="docx"))


# --- passwords and damage -----------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted(engine, tmp_path_factory):
    """An ODF document encrypted by LibreOffice, and an OOXML one by msoffcrypto."""
    folder = tmp_path_factory.mktemp("encrypted")
    converter = engine.get_converter()
    converter.ensure_ready(lambda *_: None)
    uno = load_uno()
    source = OFFICE / "par-known-paragraphs.docx"
    doc = converter.office.desktop.loadComponentFromURL(source.as_uri(), "_blank", 0,
                                                        _props(uno, Hidden=True))
    odt = folder / "secret.odt"
    doc.storeToURL(odt.as_uri(), _props(uno, FilterName="writer8", Password="s3cret"))
    doc.close(True)
    from msoffcrypto.format.ooxml import OOXMLFile

    docx = folder / "secret.docx"
    with open(source, "rb") as plain, open(docx, "wb") as out:
        OOXMLFile(plain).encrypt("s3cret", out)
    return {"odt": odt, "docx": docx, "text": source_text(source)}


@pytest.mark.parametrize("kind", ["odt", "docx"])
def test_encrypted_input(run, encrypted, kind):
    path = encrypted[kind]
    with pytest.raises(PasswordRequired, match="give its password"):
        run("office.to-pdf", path, ToPdfParams())
    with pytest.raises(PasswordRequired, match="wrong"):
        run("office.to-pdf", path, ToPdfParams(password="nope"))
    result = run("office.to-pdf", path, ToPdfParams(password="s3cret"))
    assert coverage(encrypted["text"], "\n".join(pdf_pages_text(result.outputs[0].path))) >= 0.9


def test_damaged_inputs_are_classified(run, tmp_path):
    good = (OFFICE / "footnotes.docx").read_bytes()
    truncated = tmp_path / "truncated.docx"
    truncated.write_bytes(good[: len(good) // 3])
    with pytest.raises(InvalidInput, match="could not open"):
        run("office.to-pdf", truncated, ToPdfParams())
    noise = tmp_path / "noise.xlsx"
    noise.write_bytes(os.urandom(4000))
    with pytest.raises(InvalidInput, match="not a valid xlsx"):
        run("office.to-pdf", noise, ToPdfParams())
    empty_zip = tmp_path / "empty.pptx"
    with zipfile.ZipFile(empty_zip, "w") as package:
        package.writestr("hello.txt", "not a presentation")
    with pytest.raises(InvalidInput):
        run("office.to-pdf", empty_zip, ToPdfParams())
    # one flipped byte inside a member: LibreOffice offers to repair the package
    flipped = bytearray(good)
    flipped[flipped.find(b"word/document.xml") + 60] ^= 0xFF
    damaged = tmp_path / "crc.docx"
    damaged.write_bytes(bytes(flipped))
    result = run("office.to-pdf", damaged, ToPdfParams())
    assert any("repaired" in w for w in result.warnings)
    # and the instance is still the healthy one
    assert run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams()).pages == 1


# --- supervision --------------------------------------------------------------------------


def test_killed_between_jobs_is_replaced(engine, run):
    run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
    before = soffice_pid(engine)
    os.kill(before, signal.SIGKILL)
    time.sleep(0.2)
    started = time.monotonic()
    result = run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
    assert result.pages == 1
    assert soffice_pid(engine) != before
    assert time.monotonic() - started < 30  # a restart, not a hang


def test_killed_during_a_job_is_replaced_and_the_job_retried(engine, run):
    run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
    victim = soffice_pid(engine)

    def kill_on_load(percent, message):
        if message.startswith("loading") and soffice_pid(engine) == victim:
            os.kill(victim, signal.SIGKILL)

    result = run("office.to-pdf", OFFICE / "Electra.odt", ToPdfParams(), progress=kill_on_load)
    assert result.pages > 5
    assert any("crashed" in w for w in result.warnings)
    assert soffice_pid(engine) != victim


def test_hung_instance_times_out_and_is_replaced(engine, run):
    converter = engine.get_converter()
    run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
    victim = soffice_pid(engine)
    converter.document_timeout_s = 3
    try:
        def freeze_on_load(percent, message):
            if message.startswith("loading"):
                os.kill(victim, signal.SIGSTOP)

        started = time.monotonic()
        with pytest.raises(Timeout, match="longer than 3 s"):
            run("office.to-pdf", OFFICE / "Electra.odt", ToPdfParams(), progress=freeze_on_load)
        assert time.monotonic() - started < 15
    finally:
        converter.document_timeout_s = 300
    assert not Path(f"/proc/{victim}").exists() or _zombie(victim)
    assert run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams()).pages == 1
    assert soffice_pid(engine) != victim


def test_frozen_between_jobs_is_detected_by_the_ping(engine, run):
    run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
    victim = soffice_pid(engine)
    os.kill(victim, signal.SIGSTOP)
    started = time.monotonic()
    assert run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams()).pages == 1
    assert soffice_pid(engine) != victim
    assert time.monotonic() - started < 30


def test_recycled_after_n_conversions_and_past_memory_limit(engine, run):
    converter = engine.get_converter()
    converter.max_conversions = 2
    try:
        run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
        pids = []
        for _ in range(4):
            result = run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
            assert result.pages == 1 and not result.warnings
            pids.append(soffice_pid(engine) or 0)
        # recycling happens after the job: the instance is gone every second document
        assert converter.office.proc is None
    finally:
        converter.max_conversions = 200
    converter.max_memory = 1  # any instance is "too big": recycled after every job
    try:
        result = run("office.to-pdf", OFFICE / "footnotes.docx", ToPdfParams())
        assert result.pages == 1
        assert converter.office.proc is None
    finally:
        converter.max_memory = 1024 * 1024 * 1024


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_soffice_dies_with_its_worker(tmp_path):
    """A worker SIGKILLed (as the runner's job timeout does) takes its soffice along."""
    script = textwrap.dedent("""
        import sys, time
        from docmill.engines.office.process import OfficeProcess
        office = OfficeProcess()
        office.start()
        print(office.pid, office.profile, flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().split()
    soffice, profile = int(line[0]), Path(line[1])
    assert Path(f"/proc/{soffice}").exists()
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while (time.monotonic() < deadline and Path(f"/proc/{soffice}").exists()
           and not _zombie(soffice)):
        time.sleep(0.1)
    assert not Path(f"/proc/{soffice}").exists() or _zombie(soffice)
    # the next instance started in any process sweeps the dead worker's profile
    assert profile.exists() and profile.name.startswith(PROFILE_PREFIX)
    from docmill.engines.office.process import sweep_stale_profiles

    sweep_stale_profiles(profile.parent)
    assert not profile.exists()


def test_linked_content_is_not_fetched(run, tmp_path):
    """A document linking an image over HTTP and a section to a local file: LibreOffice
    must fetch neither (links are never updated, HTTP goes to a dead proxy)."""
    from local_http import Recorder

    recorder = Recorder()
    try:
        ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
              'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
              'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
              'xmlns:xlink="http://www.w3.org/1999/xlink" '
              'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"')
        content = (
            f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} '
            'office:version="1.2"><office:body><office:text><text:p>Linked image:'
            '<draw:frame draw:name="i1" svg:width="2cm" svg:height="2cm"><draw:image '
            f'xlink:href="{recorder.base}/linked.png" xlink:type="simple" xlink:show="embed" '
            'xlink:actuate="onLoad"/></draw:frame></text:p><text:section text:name="s1">'
            '<text:section-source xlink:href="file:///etc/passwd" xlink:type="simple"/>'
            '<text:p>placeholder</text:p></text:section></office:text></office:body>'
            '</office:document-content>')
        manifest = (
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
            '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
            '<manifest:file-entry manifest:full-path="/" manifest:media-type='
            '"application/vnd.oasis.opendocument.text"/><manifest:file-entry '
            'manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            '</manifest:manifest>')
        odt = tmp_path / "linked.odt"
        with zipfile.ZipFile(odt, "w") as package:
            package.writestr(zipfile.ZipInfo("mimetype"),
                             "application/vnd.oasis.opendocument.text")
            package.writestr("content.xml", content)
            package.writestr("META-INF/manifest.xml", manifest)
        result = run("office.to-pdf", odt, ToPdfParams())
        text = pdf_pages_text(result.outputs[0].path)[0]
        assert "Linked image" in text and "placeholder" in text and "root:" not in text
        time.sleep(0.5)
        assert recorder.requests == []
    finally:
        recorder.shutdown()
        recorder.server_close()


def test_loading_uno_keeps_pythons_import_errors():
    """Office and OCR jobs share worker processes: after uno is loaded, a missing optional
    module must still raise ModuleNotFoundError (tqdm, used by RapidOCR, relies on it)."""
    script = textwrap.dedent("""
        from docmill.engines.office.bridge import load_uno
        load_uno()
        try:
            import docmill_no_such_module
        except ModuleNotFoundError:
            print("ModuleNotFoundError")
        import tqdm
        print("tqdm", tqdm.__version__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "ModuleNotFoundError"
    assert result.stdout.splitlines()[1].startswith("tqdm ")
