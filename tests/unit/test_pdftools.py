"""The PDF tools engine called directly on real documents. What comes out is read back with
pypdf, pypdfium2 and pikepdf and compared with the same libraries reading the inputs."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import img2pdf
import numpy
import pikepdf
import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import ImageStat
from pydantic import ValidationError

from docmill.engines.base import EngineInput
from docmill.engines.pdf.params import (
    CompressParams,
    DeletePagesParams,
    ExtractParams,
    MetadataParams,
    ProtectParams,
    RotateParams,
    ToPdfaParams,
    UnprotectParams,
    WatermarkParams,
)
from docmill.engines.pdf.tools import PdfToolsEngine
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server import DATA

PDF = DATA / "pdf"
FOUR_PAGES = PDF / "pdflatex-4-pages.pdf"
ROTATED = PDF / "habibi-rotated.pdf"  # pages at /Rotate 90, 180, 270, 0
ENCRYPTED = DATA / "malformed" / "libreoffice-writer-password.pdf"
USER_PASSWORD, OWNER_PASSWORD = "openpassword", "permissionpassword"
DAMAGED = DATA / "malformed" / "qpdf-bad1.pdf"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, percent: float, message: str) -> None:
        self.calls.append((percent, message))

    def check(self) -> None:
        values = [p for p, _ in self.calls]
        assert values, "no progress reported"
        assert values == sorted(values) and values[0] >= 0 and values[-1] == pytest.approx(100)
        assert all(isinstance(m, str) and m for _, m in self.calls)


@pytest.fixture(scope="module")
def engine() -> PdfToolsEngine:
    instance = PdfToolsEngine()
    instance.start()
    yield instance
    instance.stop()


def run(engine: PdfToolsEngine, operation: str, path: Path, params, workdir: Path):
    progress = Recorder()
    workdir.mkdir(parents=True, exist_ok=True)
    result = engine.run(operation, [EngineInput(path, path.name, "application/pdf")], params,
                        workdir, progress)
    progress.check()
    assert len(result.outputs) == 1 and result.outputs[0].content_type == "application/pdf"
    assert result.outputs[0].path.parent == workdir
    return result, result.outputs[0].path


def texts(source: Path, password: str | None = None) -> list[str]:
    doc = pdfium.PdfDocument(source, password=password)
    try:
        found = []
        for index in range(len(doc)):
            textpage = doc[index].get_textpage()
            found.append(textpage.get_text_range())
            textpage.close()
        return found
    finally:
        doc.close()


def rotations(path: Path, password: str | None = None) -> list[int]:
    reader = pypdf.PdfReader(path)
    if password:
        reader.decrypt(password)
    return [page.rotation % 360 for page in reader.pages]


def sizes(path: Path, password: str | None = None) -> list[float]:
    """Displayed width, height, width, height... of the pages."""
    doc = pdfium.PdfDocument(path, password=password)
    try:
        return [v for i in range(len(doc)) for v in doc[i].get_size()]
    finally:
        doc.close()


# --- rotate ----------------------------------------------------------------------------------

def test_rotate_some_pages(engine, tmp_path):
    before_rot, before_size = rotations(ROTATED), sizes(ROTATED)
    assert before_rot == [90, 180, 270, 0]
    result, out = run(engine, "pdf.rotate", ROTATED, RotateParams(angle=90, pages="1,3-4"),
                      tmp_path)
    assert rotations(out) == [180, 180, 0, 90]
    after_size = sizes(out)
    for index in (0, 2, 3):  # a quarter turn swaps the displayed width and height
        assert after_size[2 * index:2 * index + 2] == \
            pytest.approx(before_size[2 * index:2 * index + 2][::-1])
    assert after_size[2:4] == pytest.approx(before_size[2:4])
    # PDFium orders mixed Arabic and Latin text by the page's rotation: same characters.
    assert [sorted(t) for t in texts(out)] == [sorted(t) for t in texts(ROTATED)]
    assert result.data["rotated"] == [1, 3, 4] and result.data["rotation"] == [180, 180, 0, 90]
    assert result.pages == 3


@pytest.mark.parametrize(("angle", "relative", "expected"), [
    (180, True, [0, 180, 180, 0]), (-90, True, [270, 270, 270, 270]),
    (270, False, [270, 270, 270, 270]),
])
def test_rotate_angles(engine, tmp_path, angle, relative, expected):
    _, out = run(engine, "pdf.rotate", FOUR_PAGES,
                 RotateParams(angle=angle, relative=relative,
                              pages=None if angle != 180 else "2-3"), tmp_path)
    assert rotations(out) == expected
    width, height = sizes(FOUR_PAGES)[:2]
    got = sizes(out)
    for index, rotation in enumerate(expected):
        assert got[2 * index:2 * index + 2] == pytest.approx(
            [height, width] if rotation in (90, 270) else [width, height])


def test_rotate_encrypted_keeps_encryption(engine, tmp_path):
    _, out = run(engine, "pdf.rotate", ENCRYPTED, RotateParams(password=USER_PASSWORD),
                 tmp_path)
    assert pypdf.PdfReader(out).is_encrypted
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(out)
    assert rotations(out, USER_PASSWORD) == [90]
    assert sorted(texts(out, USER_PASSWORD)[0]) == sorted(texts(ENCRYPTED, USER_PASSWORD)[0])


def test_rotate_params():
    with pytest.raises(ValidationError):
        RotateParams(angle=45)
    with pytest.raises(ValidationError):
        RotateParams(angel=90)


# --- compress --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scans_pdf(tmp_path_factory) -> Path:
    """Receipt photos on A4 pages (about 150 dpi as placed), the JPEGs passed through."""
    images = sorted((DATA / "receipts").glob("*.jpg"))[:4]
    a4 = img2pdf.get_layout_fun((img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)))
    path = tmp_path_factory.mktemp("scans") / "receipts.pdf"
    path.write_bytes(img2pdf.convert([str(p) for p in images], layout_fun=a4))
    return path


def image_sizes(path: Path) -> list[tuple[int, int]]:
    with pikepdf.open(path) as pdf:
        return [(int(img.Width), int(img.Height)) for page in pdf.pages
                for img in page.get_images().values()]


def test_compress_makes_images_smaller(engine, tmp_path, scans_pdf):
    result, out = run(engine, "pdf.compress", scans_pdf, CompressParams(dpi=72, quality=60),
                      tmp_path)
    before, after = scans_pdf.stat().st_size, out.stat().st_size
    assert after < before * 0.5
    assert result.data["size_before"] == before and result.data["size_after"] == after
    assert result.data["saved_bytes"] == before - after and not result.data["unchanged"]
    images = result.data["images"]
    assert images["found"] == 4 and images["downsampled"] >= 1
    assert images["downsampled"] + images["recompressed"] + images["kept"] == 4
    old, new = image_sizes(scans_pdf), image_sizes(out)
    assert all(n[0] <= o[0] and n[1] <= o[1] for o, n in zip(old, new, strict=True))
    assert any(n[0] < o[0] for o, n in zip(old, new, strict=True))
    # Every page still renders the receipt: same page size, far from blank, close to the
    # original rendering.
    assert sizes(out) == pytest.approx(sizes(scans_pdf))
    doc, source = pdfium.PdfDocument(out), pdfium.PdfDocument(scans_pdf)
    for index in range(len(doc)):
        image = doc[index].render(scale=0.25).to_pil().convert("L")
        reference = source[index].render(scale=0.25).to_pil().convert("L")
        assert ImageStat.Stat(image).stddev[0] > 10  # not a blank page
        assert abs(ImageStat.Stat(image).mean[0] - ImageStat.Stat(reference).mean[0]) < 8


def test_compress_lossless_keeps_images(engine, tmp_path, scans_pdf):
    result, out = run(engine, "pdf.compress", scans_pdf, CompressParams(lossless=True),
                      tmp_path)
    assert out.stat().st_size <= scans_pdf.stat().st_size
    with pikepdf.open(scans_pdf) as a, pikepdf.open(out) as b:
        old = [img.read_raw_bytes() for p in a.pages for img in p.get_images().values()]
        new = [img.read_raw_bytes() for p in b.pages for img in p.get_images().values()]
    assert old == new
    assert result.data["images"]["found"] == 0


def test_compress_text_document(engine, tmp_path):
    _, out = run(engine, "pdf.compress", FOUR_PAGES, CompressParams(), tmp_path)
    assert out.stat().st_size <= FOUR_PAGES.stat().st_size
    assert texts(out) == texts(FOUR_PAGES)


# --- protect / unprotect ---------------------------------------------------------------------

def test_protect_passwords_and_permissions(engine, tmp_path):
    params = ProtectParams(user_password="reader", owner_password="boss", allow_copy=False,
                           allow_modify=False, allow_print_high_res=False)
    result, out = run(engine, "pdf.protect", FOUR_PAGES, params, tmp_path)
    reader = pypdf.PdfReader(out)
    assert reader.is_encrypted
    assert reader.decrypt("nope") == pypdf.PasswordType.NOT_DECRYPTED
    reader = pypdf.PdfReader(out)
    assert reader.decrypt("reader") == pypdf.PasswordType.USER_PASSWORD
    reader = pypdf.PdfReader(out)
    assert reader.decrypt("boss") == pypdf.PasswordType.OWNER_PASSWORD
    flags = reader.user_access_permissions
    P = pypdf.constants.UserAccessPermissions
    assert flags & P.PRINT and flags & P.ADD_OR_MODIFY  # printing, annotating
    assert not flags & P.EXTRACT and not flags & P.MODIFY
    assert not flags & P.PRINT_TO_REPRESENTATION  # high-resolution printing
    assert flags & P.ASSEMBLE_DOC and flags & P.FILL_FORM_FIELDS
    with pikepdf.open(out, password="reader") as pdf:
        assert pdf.encryption.R == 6 and pdf.encryption.V == 5  # AES-256
        assert pdf.allow.print_lowres and not pdf.allow.extract and not pdf.allow.modify_other
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(out)
    assert texts(out, "reader") == texts(FOUR_PAGES)
    assert result.data["permissions"]["copy"] is False and result.data["encryption"] == "AES-256"
    assert result.warnings == []


def test_protect_owner_only_and_random_owner(engine, tmp_path):
    _, out = run(engine, "pdf.protect", FOUR_PAGES, ProtectParams(owner_password="boss",
                                                                  allow_print=False), tmp_path)
    reader = pypdf.PdfReader(out)
    assert reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.USER_PASSWORD
    assert not reader.user_access_permissions & pypdf.constants.UserAccessPermissions.PRINT
    assert texts(out) == texts(FOUR_PAGES)  # opens without a password

    result, out = run(engine, "pdf.protect", FOUR_PAGES, ProtectParams(user_password="u"),
                      tmp_path / "random")
    assert any("random" in w for w in result.warnings)
    assert result.data["owner_password"] == "random"
    assert pypdf.PdfReader(out).decrypt("u") == pypdf.PasswordType.USER_PASSWORD


def test_protect_needs_a_password():
    with pytest.raises(ValidationError, match="user_password"):
        ProtectParams()
    with pytest.raises(ValidationError):
        ProtectParams(user_password="x" * 128)


def test_protect_encrypted_input_replaces_its_passwords(engine, tmp_path):
    with pytest.raises(PasswordRequired):
        run(engine, "pdf.protect", ENCRYPTED, ProtectParams(user_password="new"), tmp_path)
    _, out = run(engine, "pdf.protect", ENCRYPTED,
                 ProtectParams(password=USER_PASSWORD, user_password="new"), tmp_path)
    assert pypdf.PdfReader(out).decrypt(USER_PASSWORD) == pypdf.PasswordType.NOT_DECRYPTED
    assert texts(out, "new") == texts(ENCRYPTED, USER_PASSWORD)


@pytest.mark.parametrize("password", [USER_PASSWORD, OWNER_PASSWORD])
def test_unprotect(engine, tmp_path, password):
    result, out = run(engine, "pdf.unprotect", ENCRYPTED, UnprotectParams(password=password),
                      tmp_path)
    assert not pypdf.PdfReader(out).is_encrypted
    assert texts(out) == texts(ENCRYPTED, USER_PASSWORD)
    assert any(t.strip() for t in texts(out))
    assert result.data["was_encrypted"] is True
    assert result.data["password_matched"] == ("user" if password == USER_PASSWORD else "owner")


@pytest.mark.parametrize(("password", "says"), [(None, "give its password"),
                                                ("wrong", "wrong")])
def test_unprotect_without_the_password(engine, tmp_path, password, says):
    with pytest.raises(PasswordRequired, match=says):
        run(engine, "pdf.unprotect", ENCRYPTED, UnprotectParams(password=password), tmp_path)


def test_unprotect_owner_restricted_needs_the_owner_password(engine, tmp_path):
    """A PDF that opens without a password but restricts what may be done with it."""
    _, restricted = run(engine, "pdf.protect", FOUR_PAGES,
                        ProtectParams(owner_password="boss", allow_copy=False), tmp_path)
    with pytest.raises(PasswordRequired):
        run(engine, "pdf.unprotect", restricted, UnprotectParams(), tmp_path / "a")
    with pytest.raises(PasswordRequired):
        run(engine, "pdf.unprotect", restricted, UnprotectParams(password="guess"),
            tmp_path / "b")
    _, out = run(engine, "pdf.unprotect", restricted, UnprotectParams(password="boss"),
                 tmp_path / "c")
    assert not pypdf.PdfReader(out).is_encrypted


def test_unprotect_plain_pdf_warns(engine, tmp_path):
    result, out = run(engine, "pdf.unprotect", FOUR_PAGES, UnprotectParams(), tmp_path)
    assert result.warnings == ["the PDF was not encrypted"]
    assert texts(out) == texts(FOUR_PAGES)


# --- watermark -------------------------------------------------------------------------------

def stamp_geometry(path: Path, index: int, text: str) -> tuple[float, tuple[float, float]]:
    """(angle of the text as displayed, degrees counter-clockwise; centre of its first
    character as a fraction of the displayed page, y from the top)."""
    doc = pdfium.PdfDocument(path)
    try:
        page = doc[index]
        textpage = page.get_textpage()
        found = textpage.search(text).get_next()
        assert found, f"{text!r} not on page {index + 1}"
        first, count = found
        width, height = page.get_size()

        def device(char: int) -> tuple[float, float]:
            left, bottom, right, top = textpage.get_charbox(char)
            x, y = ctypes_int(), ctypes_int()
            pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, round(width), round(height), 0,
                                       (left + right) / 2, (bottom + top) / 2, x, y)
            return x.value, y.value

        (x1, y1), (x2, y2) = device(first), device(first + count - 1)
        angle = math.degrees(math.atan2(-(y2 - y1), x2 - x1))
        return angle, (x1 / width, y1 / height)
    finally:
        doc.close()


def ctypes_int():
    import ctypes

    return ctypes.c_int()


def test_watermark_on_chosen_pages(engine, tmp_path):
    result, out = run(engine, "pdf.watermark", FOUR_PAGES,
                      WatermarkParams(text="CONFIDENTIAL", pages="2-3"), tmp_path)
    before, after = texts(FOUR_PAGES), texts(out)
    assert len(after) == 4
    for index in range(4):
        if index in (1, 2):
            assert "CONFIDENTIAL" in after[index]
            assert after[index].startswith(before[index])  # the page's own text is intact
        else:
            assert "CONFIDENTIAL" not in after[index] and after[index] == before[index]
    assert result.data["stamped"] == [2, 3] and result.data["font"] == "Helvetica-Bold"
    assert result.pages == 2
    angle, _ = stamp_geometry(out, 1, "CONFIDENTIAL")
    assert angle == pytest.approx(45, abs=3)
    # Drawn at the requested opacity, as text (not an image).
    with pikepdf.open(out) as pdf:
        page = pdf.pages[1]
        forms = [x for x in page.Resources.XObject.values() if x.Subtype == "/Form"]
        alphas = [float(gs.get("/ca", 1)) for f in forms
                  for gs in f.Resources.get("/ExtGState", {}).values()]
        assert min(alphas) == pytest.approx(0.3, abs=0.01)


def test_watermark_upright_on_rotated_pages(engine, tmp_path):
    _, out = run(engine, "pdf.watermark", ROTATED,
                 WatermarkParams(text="ZQXJ", angle=30, position="bottom-left", font_size=24,
                                 opacity=1, color="#ff0000"), tmp_path)
    for index in range(4):  # /Rotate 90, 180, 270, 0: the stamp looks the same on each
        angle, (x, y) = stamp_geometry(out, index, "ZQXJ")
        assert angle == pytest.approx(30, abs=3), index
        assert x < 0.25 and y > 0.75, (index, x, y)
    # The red text is really drawn: the bottom-left corner of the render has red pixels.
    doc = pdfium.PdfDocument(out)
    for index in range(4):
        image = doc[index].render(scale=0.5).to_pil().convert("RGB")
        corner = image.crop((0, image.height * 3 // 4, image.width // 3, image.height))
        pixels = numpy.asarray(corner).reshape(-1, 3)
        red = ((pixels[:, 0] > 200) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80)).sum()
        assert red > 50, index


def test_watermark_positions(engine, tmp_path):
    for position in ("top-right", "center"):
        _, out = run(engine, "pdf.watermark", FOUR_PAGES,
                     WatermarkParams(text="Draft", position=position, angle=0, pages="1"),
                     tmp_path / position)
        _, (x, y) = stamp_geometry(out, 0, "Draft")
        if position == "top-right":
            assert x > 0.5 and y < 0.2
        else:
            assert 0.1 < x < 0.5 and 0.4 < y < 0.6


def test_watermark_unicode_text(engine, tmp_path):
    result, out = run(engine, "pdf.watermark", FOUR_PAGES,
                      WatermarkParams(text="Черновик ΑΒΓ", pages="4"), tmp_path)
    assert "Черновик ΑΒΓ" in texts(out)[3]
    assert result.data["font"].startswith("DejaVuSans")


def test_watermark_params():
    with pytest.raises(ValidationError):
        WatermarkParams(text="")
    with pytest.raises(ValidationError):
        WatermarkParams(text="x", color="red")
    with pytest.raises(ValidationError):
        WatermarkParams(text="x", opacity=0)
    with pytest.raises(ValidationError):
        WatermarkParams(text="a\x00b")
    assert WatermarkParams(text="  two   words ", color="FF0000").color == "#ff0000"


# --- PDF/A -----------------------------------------------------------------------------------

def xmp_pdfa(path: Path) -> tuple[str | None, str | None]:
    with pikepdf.open(path) as pdf:
        meta = pdf.open_metadata()
        assert "/OutputIntents" in pdf.Root and len(pdf.Root.OutputIntents) >= 1
        assert not pdf.is_encrypted
        return meta.get("pdfaid:part"), meta.get("pdfaid:conformance")


needs_gs = pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript not installed")


@needs_gs
@pytest.mark.parametrize(("pdf_format", "part"), [("pdfa-2b", "2"), ("pdfa-1b", "1")])
def test_to_pdfa_ghostscript(engine, tmp_path, pdf_format, part):
    result, out = run(engine, "pdf.to-pdfa", FOUR_PAGES, ToPdfaParams(pdf_format=pdf_format),
                      tmp_path)
    assert xmp_pdfa(out) == (part, "B")
    assert result.data["engine"] == "ghostscript"
    assert result.data["pdfaid"] == {"part": part, "conformance": "B"}
    assert texts(out) == texts(FOUR_PAGES)
    assert sizes(out) == pytest.approx(sizes(FOUR_PAGES), abs=0.5)


@needs_gs
def test_to_pdfa_encrypted_input_and_links(engine, tmp_path):
    with pytest.raises(PasswordRequired):
        run(engine, "pdf.to-pdfa", ENCRYPTED, ToPdfaParams(), tmp_path)
    _, out = run(engine, "pdf.to-pdfa", ENCRYPTED, ToPdfaParams(password=USER_PASSWORD),
                 tmp_path)
    assert xmp_pdfa(out) == ("2", "B")
    assert texts(out) == texts(ENCRYPTED, USER_PASSWORD)
    outlined = PDF / "pdflatex-outline.pdf"
    result, out = run(engine, "pdf.to-pdfa", outlined, ToPdfaParams(), tmp_path / "links")
    with pikepdf.open(outlined) as a, pikepdf.open(out) as b:
        links = [len(p.obj.get("/Annots", [])) for p in a.pages]
        assert [len(p.obj.get("/Annots", [])) for p in b.pages] == links and sum(links) > 0
        assert len(b.open_outline().root) == len(a.open_outline().root) > 0
    assert result.warnings == []


def test_to_pdfa_libreoffice_fallback(engine, tmp_path, monkeypatch):
    """Without Ghostscript, `auto` converts through the worker's LibreOffice."""
    from docmill.engines import registry
    from docmill.engines.pdf import pdfa

    real_which = shutil.which
    monkeypatch.setattr(pdfa.shutil, "which",
                        lambda name, *a, **k: None if name == "gs" else real_which(name))
    with pytest.raises(EngineFailed, match="Ghostscript"):
        run(engine, "pdf.to-pdfa", FOUR_PAGES, ToPdfaParams(engine="ghostscript"), tmp_path)
    try:
        result, out = run(engine, "pdf.to-pdfa", FOUR_PAGES, ToPdfaParams(), tmp_path)
    finally:
        registry.stop_all()
    assert result.data["engine"] == "libreoffice"
    assert xmp_pdfa(out) == ("2", "B")
    before, after = texts(FOUR_PAGES), texts(out)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):  # LibreOffice re-flows the lines
        assert len(set(old.split()) & set(new.split())) >= 0.9 * len(set(old.split()))


# --- extract / delete-pages ------------------------------------------------------------------

@pytest.mark.parametrize(("pages", "expected"), [("2-3", [1, 2]), ("4,1", [3, 0]),
                                                 ("2,2", [1, 1]), ("3-", [2, 3])])
def test_extract(engine, tmp_path, pages, expected):
    result, out = run(engine, "pdf.extract", FOUR_PAGES, ExtractParams(pages=pages), tmp_path)
    source = texts(FOUR_PAGES)
    assert texts(out) == [source[i] for i in expected]
    assert len(pypdf.PdfReader(out).pages) == len(expected)
    assert result.data["source_pages"] == [i + 1 for i in expected]


@pytest.mark.parametrize(("pages", "expected"), [("2", [0, 2, 3]), ("1,3-4", [1]),
                                                 ("4,1", [1, 2])])
def test_delete_pages(engine, tmp_path, pages, expected):
    _, out = run(engine, "pdf.delete-pages", FOUR_PAGES, DeletePagesParams(pages=pages),
                 tmp_path)
    source = texts(FOUR_PAGES)
    assert texts(out) == [source[i] for i in expected]
    assert len(pypdf.PdfReader(out).pages) == len(expected)


def page_objects(path: Path) -> int:
    with pikepdf.open(path) as pdf:
        return sum(1 for obj in pdf.objects
                   if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") == "/Page")


@pytest.mark.parametrize(("operation", "params"), [
    ("pdf.delete-pages", DeletePagesParams(pages="4")),
    ("pdf.extract", ExtractParams(pages="3,1,2")),
])
def test_removed_pages_leave_the_file(engine, tmp_path, operation, params):
    """Links and outline entries point at page 4: the page must not stay in the file
    through them, while the outline entries to kept pages still work."""
    path = PDF / "pdflatex-outline.pdf"
    assert page_objects(path) == 4
    _, out = run(engine, operation, path, params, tmp_path)
    assert page_objects(out) == 3
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 3
    targets = [reader.get_destination_page_number(item) for item in reader.outline
               if not isinstance(item, list)]
    assert targets and all(t is None or 0 <= t < 3 for t in targets)
    assert any(t is not None for t in targets)


@pytest.mark.parametrize(("operation", "params", "says"), [
    ("pdf.delete-pages", DeletePagesParams(pages="1-4"), "every page"),
    ("pdf.delete-pages", DeletePagesParams(pages="9"), "past the end"),
    ("pdf.extract", ExtractParams(pages="5"), "past the end"),
    ("pdf.extract", ExtractParams(pages="x"), "invalid page range"),
])
def test_page_selection_errors(engine, tmp_path, operation, params, says):
    with pytest.raises(InvalidInput, match=says):
        run(engine, operation, FOUR_PAGES, params, tmp_path)


# --- metadata --------------------------------------------------------------------------------

def test_metadata_set_and_read_back(engine, tmp_path):
    params = MetadataParams(title="Quarterly report — Ü", author="Ada Lovelace",
                            subject="Numbers", keywords="finance, q3")
    result, out = run(engine, "pdf.metadata", FOUR_PAGES, params, tmp_path)
    meta = pypdf.PdfReader(out).metadata
    assert (meta.title, meta.author, meta.subject, meta["/Keywords"]) == (
        "Quarterly report — Ü", "Ada Lovelace", "Numbers", "finance, q3")
    with pikepdf.open(out) as pdf:
        xmp = pdf.open_metadata()
        assert xmp["dc:title"] == "Quarterly report — Ü"
        assert xmp["dc:creator"] == ["Ada Lovelace"]
        assert xmp["pdf:Keywords"] == "finance, q3"
    assert texts(out) == texts(FOUR_PAGES)
    assert result.data["metadata"]["author"] == "Ada Lovelace"


def test_metadata_keeps_pdfa_and_removes_fields(engine, tmp_path):
    path = PDF / "crazyones-pdfa.pdf"
    with pikepdf.open(path) as pdf:
        part = pdf.open_metadata().get("pdfaid:part")
    assert part
    _, out = run(engine, "pdf.metadata", path, MetadataParams(title="New", author=""),
                 tmp_path)
    with pikepdf.open(out) as pdf:
        xmp = pdf.open_metadata()
        assert xmp["dc:title"] == "New" and xmp.get("pdfaid:part") == part
        assert "dc:creator" not in xmp
        assert "/Author" not in pdf.docinfo and str(pdf.docinfo["/Title"]) == "New"


def test_metadata_needs_a_field():
    with pytest.raises(ValidationError):
        MetadataParams()


# --- bad input, for every operation ----------------------------------------------------------

ALL = [("pdf.rotate", RotateParams()), ("pdf.compress", CompressParams()),
       ("pdf.protect", ProtectParams(user_password="x")), ("pdf.unprotect", UnprotectParams()),
       ("pdf.watermark", WatermarkParams(text="X")), ("pdf.to-pdfa", ToPdfaParams()),
       ("pdf.extract", ExtractParams(pages="1")),
       ("pdf.delete-pages", DeletePagesParams(pages="1")),
       ("pdf.metadata", MetadataParams(title="x"))]


@pytest.mark.parametrize(("operation", "params"), ALL, ids=[o for o, _ in ALL])
def test_damaged_input(engine, tmp_path, operation, params):
    with pytest.raises(InvalidInput, match="damaged") as caught:
        run(engine, operation, DAMAGED, params, tmp_path)
    assert not isinstance(caught.value, PasswordRequired)


@pytest.mark.parametrize(("operation", "params"), ALL, ids=[o for o, _ in ALL])
def test_encrypted_without_password(engine, tmp_path, operation, params):
    with pytest.raises(PasswordRequired):
        run(engine, operation, ENCRYPTED, params, tmp_path)
    with pytest.raises(PasswordRequired, match="wrong"):
        run(engine, operation, ENCRYPTED, params.model_copy(update={"password": "nope"}),
            tmp_path)


def test_repaired_input_is_reported(engine, tmp_path):
    result, out = run(engine, "pdf.rotate", DATA / "malformed" / "qpdf-broken-lzw.pdf",
                      RotateParams(), tmp_path)
    assert rotations(out) == [90]
    assert any("repaired" in w for w in result.warnings)


def test_registered():
    from docmill.engines.registry import operations

    ops = operations()
    for name, _ in ALL:
        assert ops[name].engine == "pdftools" and ops[name].accepts == {"application/pdf"}
        assert ops[name].describe()["params_schema"]["properties"]["password"]
