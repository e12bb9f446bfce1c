"""The PDF tools over HTTP against a real server: one job per operation on real documents,
the output downloaded and read back with pypdf, pypdfium2 and pikepdf here; damaged and
encrypted inputs fail with their classified errors and leave the worker serving."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import img2pdf
import pikepdf
import pypdf
import pypdfium2 as pdfium
import pytest

pytestmark = pytest.mark.fast  # the app in-process (tests/inprocess.py)

TERMINAL = {"SUCCESS", "ERROR"}
USER_PASSWORD = "openpassword"


def finish(client, job: dict, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        response = client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        assert response.status_code == 200, response.text
        job = response.json()
    return job


def submit(client, source: Path | tuple[str, bytes], operation: str, params: dict | None = None):
    name, content = (source.name, source.read_bytes()) if isinstance(source, Path) else source
    return client.post("/v1/jobs", params={"wait": 30},
                       data={"operation": operation, "params": json.dumps(params or {})},
                       files=[("file", (name, content))])


def run(client, source, operation: str, params: dict | None = None) -> dict:
    response = submit(client, source, operation, params)
    assert response.status_code in (200, 202), response.text
    return finish(client, response.json())


def succeeded(client, source, operation: str, params: dict | None = None) -> tuple[dict, bytes]:
    """The finished job and its one output PDF."""
    job = run(client, source, operation, params)
    assert job["status"] == "SUCCESS", job["error"]
    assert job["progress"] == 100
    assert len(job["files"]) == 1 and job["files"][0]["content_type"] == "application/pdf"
    response = client.get(job["files"][0]["url"])
    assert response.status_code == 200, response.text
    assert len(response.content) == job["files"][0]["size"]
    return job, response.content


def failed(client, source, operation: str, params: dict | None, code: str) -> str:
    job = run(client, source, operation, params)
    assert job["status"] == "ERROR", job
    assert job["error"]["code"] == code, job["error"]
    assert "Traceback" not in job["error"]["message"]
    return job["error"]["message"]


def texts(data: bytes | Path, password: str | None = None) -> list[str]:
    doc = pdfium.PdfDocument(data if isinstance(data, Path) else io.BytesIO(data),
                             password=password)
    try:
        found = []
        for index in range(len(doc)):
            textpage = doc[index].get_textpage()
            found.append(textpage.get_text_range())
            textpage.close()
        return found
    finally:
        doc.close()


@pytest.fixture(scope="module")
def four_pages(data) -> Path:
    return data / "pdf" / "pdflatex-4-pages.pdf"


@pytest.fixture(scope="module")
def encrypted(data) -> Path:
    return data / "malformed" / "libreoffice-writer-password.pdf"


def test_operations_are_listed(acme):
    ops = {op["name"]: op for op in acme.get("/v1/operations").json()["operations"]}
    for name in ("pdf.rotate", "pdf.compress", "pdf.protect", "pdf.unprotect", "pdf.watermark",
                 "pdf.to-pdfa", "pdf.extract", "pdf.delete-pages", "pdf.metadata"):
        assert ops[name]["accepts"] == ["application/pdf"] and ops[name]["produces"] == ["pdf"]
        assert "password" in ops[name]["params_schema"]["properties"]
    assert set(ops["pdf.watermark"]["params_schema"]["properties"]) >= {
        "text", "font_size", "opacity", "angle", "position", "pages"}


def test_rotate(acme, four_pages):
    job, out = succeeded(acme, four_pages, "pdf.rotate", {"angle": 90, "pages": "1,3"})
    assert [p.rotation for p in pypdf.PdfReader(io.BytesIO(out)).pages] == [90, 0, 90, 0]
    assert job["result"]["rotated"] == [1, 3]
    source = pdfium.PdfDocument(four_pages)
    rotated = pdfium.PdfDocument(io.BytesIO(out))
    assert rotated[0].get_size() == pytest.approx(source[0].get_size()[::-1])
    assert rotated[1].get_size() == pytest.approx(source[1].get_size())


def test_compress(acme, data):
    images = sorted((data / "receipts").glob("*.jpg"))[:3]
    a4 = img2pdf.get_layout_fun((img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)))
    scans = img2pdf.convert([str(p) for p in images], layout_fun=a4)
    job, out = succeeded(acme, ("scans.pdf", scans), "pdf.compress", {"dpi": 72, "quality": 60})
    assert len(out) < len(scans) / 2
    assert job["result"]["size_before"] == len(scans) and job["result"]["size_after"] == len(out)
    doc = pdfium.PdfDocument(io.BytesIO(out))
    assert len(doc) == 3
    assert doc[0].render(scale=0.2).to_pil().convert("L").getextrema()[0] < 100  # not blank


def test_protect_then_unprotect(acme, four_pages):
    job, protected = succeeded(acme, four_pages, "pdf.protect",
                               {"user_password": "reader", "owner_password": "boss",
                                "allow_copy": False})
    reader = pypdf.PdfReader(io.BytesIO(protected))
    assert reader.is_encrypted and reader.decrypt("reader") == pypdf.PasswordType.USER_PASSWORD
    assert not reader.user_access_permissions & pypdf.constants.UserAccessPermissions.EXTRACT
    assert job["result"]["encryption"] == "AES-256"

    message = failed(acme, ("protected.pdf", protected), "pdf.unprotect", {},
                     "password_required")
    assert "password" in message
    _, clear = succeeded(acme, ("protected.pdf", protected), "pdf.unprotect",
                         {"password": "boss"})
    assert not pypdf.PdfReader(io.BytesIO(clear)).is_encrypted
    assert texts(clear) == texts(four_pages)


def test_unprotect_corpus_file(acme, encrypted):
    job, out = succeeded(acme, encrypted, "pdf.unprotect", {"password": USER_PASSWORD})
    assert not pypdf.PdfReader(io.BytesIO(out)).is_encrypted
    assert texts(out) == texts(encrypted, USER_PASSWORD)
    assert job["result"]["password_matched"] == "user"


def test_watermark(acme, four_pages):
    job, out = succeeded(acme, four_pages, "pdf.watermark",
                         {"text": "CONFIDENTIAL", "pages": "2", "opacity": 0.5, "angle": 30})
    stamped = texts(out)
    assert ["CONFIDENTIAL" in t for t in stamped] == [False, True, False, False]
    assert stamped[0] == texts(four_pages)[0]
    assert job["result"]["stamped"] == [2]


def test_to_pdfa(acme, four_pages):
    job, out = succeeded(acme, four_pages, "pdf.to-pdfa")
    with pikepdf.open(io.BytesIO(out)) as pdf:
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "2" and meta["pdfaid:conformance"] == "B"
        assert len(pdf.Root.OutputIntents) == 1
    assert texts(out) == texts(four_pages)
    assert job["result"]["pdfaid"] == {"part": "2", "conformance": "B"}


def test_extract_and_delete_pages(acme, four_pages):
    source = texts(four_pages)
    _, out = succeeded(acme, four_pages, "pdf.extract", {"pages": "4,2"})
    assert texts(out) == [source[3], source[1]]
    job, out = succeeded(acme, four_pages, "pdf.delete-pages", {"pages": "1-2"})
    assert texts(out) == source[2:]
    assert job["result"]["deleted"] == [1, 2]


def test_metadata(acme, four_pages):
    _, out = succeeded(acme, four_pages, "pdf.metadata",
                       {"title": "Rapport annuel", "author": "Zoë", "keywords": "a, b"})
    meta = pypdf.PdfReader(io.BytesIO(out)).metadata
    assert (meta.title, meta.author, meta["/Keywords"]) == ("Rapport annuel", "Zoë", "a, b")


# --- bad input -------------------------------------------------------------------------------

BROKEN = b"%PDF-1.7\n" + bytes(range(256)) * 40  # a PDF to libmagic, unreadable after that


def test_damaged_pdf(acme, four_pages):
    for operation, params in (("pdf.rotate", {}), ("pdf.watermark", {"text": "X"})):
        message = failed(acme, ("broken.pdf", BROKEN), operation, params, "invalid_input")
        assert "damaged" in message
    succeeded(acme, four_pages, "pdf.extract", {"pages": "1"})  # the worker still serves


def test_repairable_pdf_succeeds_with_a_warning(acme, data):
    path = data / "malformed" / "qpdf-broken-lzw.pdf"
    job, out = succeeded(acme, path, "pdf.rotate")
    assert [p.rotation for p in pypdf.PdfReader(io.BytesIO(out)).pages] == [90]
    assert any("repaired" in w for w in job["result"]["warnings"])


def test_encrypted_without_the_right_password(acme, encrypted):
    message = failed(acme, encrypted, "pdf.unprotect", {"password": "not-it"},
                     "password_required")
    assert "wrong" in message
    message = failed(acme, encrypted, "pdf.compress", {}, "password_required")
    assert "password" in message and "wrong" not in message


def test_invalid_params_are_refused_at_submit(acme, four_pages):
    for operation, params, mentions in [("pdf.rotate", {"angle": 45}, "angle"),
                                        ("pdf.protect", {}, "user_password"),
                                        ("pdf.watermark", {"text": "x", "color": "red"},
                                         "color"),
                                        ("pdf.delete-pages", {}, "pages")]:
        response = submit(acme, four_pages, operation, params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and mentions in json.dumps(error), error
