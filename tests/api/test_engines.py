"""Every operation end to end over HTTP against a real server, checking what comes out.

Expected values never come from Docmill itself: they are read from the inputs with
pypdfium2, pypdf and Pillow in this process (the same libraries, so renders compare pixel
for pixel, but computed here, not trusted from the server).
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops, ImageStat

pytestmark = pytest.mark.fast  # the app in-process (tests/inprocess.py)

TERMINAL = {"SUCCESS", "ERROR"}


# --- helpers ---------------------------------------------------------------------------------

def finish(client, job: dict, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        response = client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        assert response.status_code == 200, response.text
        job = response.json()
    return job


def submit(client, paths, operation: str, params: dict | None = None, *, wait: float = 30):
    """Multipart submission of one or more files (name, bytes) or paths."""
    files = []
    for item in paths if isinstance(paths, list) else [paths]:
        name, content = (item.name, item.read_bytes()) if isinstance(item, Path) else item
        files.append(("file", (name, content)))
    return client.post("/v1/jobs", params={"wait": wait} if wait else None,
                       data={"operation": operation, "params": json.dumps(params or {})},
                       files=files)


def run(client, paths, operation: str, params: dict | None = None) -> dict:
    response = submit(client, paths, operation, params)
    assert response.status_code in (200, 202), response.text
    return finish(client, response.json())


def succeeded(client, paths, operation: str, params: dict | None = None) -> dict:
    job = run(client, paths, operation, params)
    assert job["status"] == "SUCCESS", job["error"]
    assert job["progress"] == 100
    return job


def download(client, file: dict) -> bytes:
    response = client.get(file["url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(file["content_type"].split(";")[0])
    assert len(response.content) == file["size"]
    return response.content


def pdfium_text(doc: pdfium.PdfDocument, index: int) -> str:
    """PDFium's own text of a page (get_text_range, the default of pypdfium2's extract-text),
    with CRLF as LF and PDFium's U+FFFE joined-hyphen marker written as the hyphen and line
    break that are printed on the page."""
    textpage = doc[index].get_textpage()
    try:
        return textpage.get_text_range().replace("\r\n", "\n").replace("\ufffe", "-\n")
    finally:
        textpage.close()


def pdf_texts(data: bytes | Path, password: str | None = None) -> list[str]:
    doc = pdfium.PdfDocument(data if isinstance(data, Path) else io.BytesIO(data),
                             password=password)
    try:
        return [pdfium_text(doc, i) for i in range(len(doc))]
    finally:
        doc.close()


def expected_size(page: pdfium.PdfPage, scale: float) -> tuple[int, int]:
    width, height = page.get_size()
    return round(width * scale), round(height * scale)


def pdfium_render(path: Path, index: int, scale: float) -> Image.Image:
    doc = pdfium.PdfDocument(path)
    try:
        page = doc[index]
        image = page.render(scale=scale).to_pil()
        return image.crop((0, 0, *expected_size(page, scale)))
    finally:
        doc.close()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


# --- pdf.to-image ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt", "dpi"), [
    ("habibi-rotated.pdf", "png", 100),       # pages rotated 90/180/270
    ("pdflatex-4-pages.pdf", "png", 37),
    ("google-doc-document.pdf", "jpeg", 150),  # 842 pt tall: 1754.17 px, PDFium makes 1755
    ("multicolumn.pdf", "jpeg", 72),
])
def test_to_image_size_and_pixels(acme, data, name, fmt, dpi):
    path = data / "pdf" / name
    job = succeeded(acme, path, "pdf.to-image", {"format": fmt, "dpi": dpi})
    doc = pdfium.PdfDocument(path)
    count = len(doc)
    assert len(job["files"]) == count
    assert [p["page"] for p in job["result"]["pages"]] == list(range(1, count + 1))
    for index, (file, info) in enumerate(zip(job["files"], job["result"]["pages"], strict=True)):
        width_pt, height_pt = doc[index].get_size()
        want = (round(width_pt * dpi / 72), round(height_pt * dpi / 72))
        image = Image.open(io.BytesIO(download(acme, file)))
        assert image.format == {"png": "PNG", "jpeg": "JPEG"}[fmt]
        assert file["content_type"] == f"image/{fmt}"
        assert image.size == want, f"page {index + 1}"
        assert (info["width"], info["height"]) == want
        reference = pdfium_render(path, index, dpi / 72)
        if fmt == "png":  # lossless: the very pixels PDFium renders
            difference = ImageChops.difference(image.convert("RGB"), reference.convert("RGB"))
            assert difference.getbbox() is None
        else:
            assert mean_difference(image, reference) < 3
    doc.close()


def test_to_image_page_range(acme, data):
    path = data / "pdf" / "pdflatex-4-pages.pdf"
    job = succeeded(acme, path, "pdf.to-image", {"pages": "2-3", "dpi": 40})
    assert [p["page"] for p in job["result"]["pages"]] == [2, 3]
    assert len(job["files"]) == 2
    first = pdfium_render(path, 0, 40 / 72)
    for file, index in zip(job["files"], (1, 2), strict=True):
        image = Image.open(io.BytesIO(download(acme, file)))
        reference = pdfium_render(path, index, 40 / 72)
        rgb = image.convert("RGB")
        assert ImageChops.difference(rgb, reference.convert("RGB")).getbbox() is None
        assert ImageChops.difference(rgb, first.convert("RGB")).getbbox() is not None

    job = succeeded(acme, path, "pdf.to-image", {"pages": "4,1", "dpi": 20})
    assert [p["page"] for p in job["result"]["pages"]] == [4, 1]

    job = run(acme, path, "pdf.to-image", {"pages": "5"})
    assert job["status"] == "ERROR" and job["error"]["code"] == "invalid_input"
    assert "4-page" in job["error"]["message"]


def test_to_image_scale_overrides_dpi(acme, data):
    path = data / "pdf" / "crazyones-pdfa.pdf"
    job = succeeded(acme, path, "pdf.to-image", {"scale": 0.5, "dpi": 300, "format": "webp"})
    image = Image.open(io.BytesIO(download(acme, job["files"][0])))
    assert image.format == "WEBP"
    assert image.size == expected_size(pdfium.PdfDocument(path)[0], 0.5)


# --- pdf.to-text -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "pdf/multicolumn.pdf", "pdf/google-doc-document.pdf", "pdf/habibi-rotated.pdf",
    "pdf/minimal-document.pdf", "pdf/crazyones-pdfa.pdf", "invoices/NetpresseInvoice.pdf",
])
def test_to_text_matches_pdfium(acme, data, name):
    path = data / name
    expected = pdf_texts(path)
    job = succeeded(acme, path, "pdf.to-text")
    assert [p["page"] for p in job["result"]["pages"]] == list(range(1, len(expected) + 1))
    assert [p["text"] for p in job["result"]["pages"]] == expected
    text = download(acme, job["files"][0]).decode("utf-8")
    assert text.split("\f") == expected
    # A text file holds text: no control characters, no non-characters.
    assert not [c for c in text if (ord(c) < 32 and c not in "\n\t\f") or c in "\ufffe\uffff"]


def test_to_text_keeps_numbers_apart(acme, data):
    """pypdf, reading the same page independently, sees the table's numbers as separate
    tokens; the engine must not glue one row's last number to the next row's first."""
    path = data / "pdf" / "google-doc-document.pdf"
    job = succeeded(acme, path, "pdf.to-text")
    ours = set(job["result"]["pages"][0]["text"].split())
    numbers = {t for t in pypdf.PdfReader(path).pages[0].extract_text().split()
               if any(c.isdigit() for c in t) and all(c.isdigit() or c in ",." for c in t)}
    assert len(numbers) >= 5
    assert numbers <= ours, numbers - ours


def test_to_text_page_ranges(acme, data):
    path = data / "pdf" / "multicolumn.pdf"
    expected = pdf_texts(path)
    job = succeeded(acme, path, "pdf.to-text", {"pages": "2-3"})
    assert [(p["page"], p["text"]) for p in job["result"]["pages"]] == [(2, expected[1]),
                                                                        (3, expected[2])]
    job = succeeded(acme, path, "pdf.to-text", {"pages": "3,1"})
    assert [(p["page"], p["text"]) for p in job["result"]["pages"]] == [(3, expected[2]),
                                                                        (1, expected[0])]
    job = succeeded(acme, path, "pdf.to-text", {"pages": "2-"})
    assert [p["page"] for p in job["result"]["pages"]] == [2, 3]


# --- pdf.merge / pdf.split -------------------------------------------------------------------

@pytest.mark.parametrize("names", [
    ["pdflatex-4-pages.pdf", "minimal-document.pdf"],
    ["multicolumn.pdf", "habibi-rotated.pdf", "google-doc-document.pdf"],
])
def test_merge(acme, data, names):
    paths = [data / "pdf" / n for n in names]
    sources = [pdf_texts(p) for p in paths]
    job = succeeded(acme, paths, "pdf.merge")
    assert len(job["files"]) == 1 and job["files"][0]["content_type"] == "application/pdf"
    merged = download(acme, job["files"][0])
    assert len(pypdf.PdfReader(io.BytesIO(merged)).pages) == sum(len(s) for s in sources)
    assert job["result"]["pages"] == sum(len(s) for s in sources)
    assert pdf_texts(merged) == [text for source in sources for text in source]


def test_merge_needs_two_inputs(acme, data):
    response = submit(acme, data / "pdf" / "minimal-document.pdf", "pdf.merge")
    assert response.status_code == 400
    assert "input" in response.json()["error"]["message"]


def _parts(client, job) -> list[list[str]]:
    return [pdf_texts(download(client, f)) for f in job["files"]]


def test_split_by_ranges(acme, data):
    path = data / "pdf" / "pdflatex-outline.pdf"
    source = pdf_texts(path)
    assert len(source) == 4
    job = succeeded(acme, path, "pdf.split", {"ranges": "1-2,3,4"})
    assert [p["pages"] for p in job["result"]["parts"]] == [[1, 2], [3], [4]]
    assert _parts(acme, job) == [source[0:2], source[2:3], source[3:4]]


def test_split_every(acme, data):
    path = data / "pdf" / "multicolumn.pdf"
    source = pdf_texts(path)
    job = succeeded(acme, path, "pdf.split", {"every": 2})
    assert _parts(acme, job) == [source[0:2], source[2:3]]
    job = succeeded(acme, data / "pdf" / "pdflatex-4-pages.pdf", "pdf.split")
    assert [len(part) for part in _parts(acme, job)] == [1, 1, 1, 1]


# --- image.to-pdf / image.convert ------------------------------------------------------------

def test_image_to_pdf(acme, data):
    paths = [data / "receipts" / "sroie_002.jpg", data / "receipts" / "sroie_009.jpg",
             data / "forms" / "funsd_82092117.png"]
    job = succeeded(acme, paths, "image.to-pdf")
    pdf = pypdf.PdfReader(io.BytesIO(download(acme, job["files"][0])))
    assert len(pdf.pages) == len(paths) == job["result"]["pages"]
    for page, path in zip(pdf.pages, paths, strict=True):
        source = Image.open(path)
        ratio = float(page.mediabox.width) / float(page.mediabox.height)
        assert ratio == pytest.approx(source.width / source.height, rel=1e-3)
        (xobject,) = [o.get_object() for o in page["/Resources"]["/XObject"].values()]
        if source.format == "JPEG":  # passed through: the very bytes of the file
            assert xobject["/Filter"] == "/DCTDecode"
            assert xobject.get_data() == path.read_bytes()
        else:  # PNG re-packed losslessly: the same pixels
            embedded = page.images[0].image
            assert embedded.size == source.size
            difference = ImageChops.difference(embedded.convert("RGB"), source.convert("RGB"))
            assert difference.getbbox() is None


def test_image_to_pdf_fixed_page_size(acme, data):
    path = data / "receipts" / "sroie_005.jpg"
    job = succeeded(acme, path, "image.to-pdf", {"page_size": "a4"})
    page = pypdf.PdfReader(io.BytesIO(download(acme, job["files"][0]))).pages[0]
    size = (float(page.mediabox.width), float(page.mediabox.height))
    assert size == pytest.approx((595.28, 841.89), abs=0.1)


def test_convert_png_to_jpeg(acme, data):
    path = data / "forms" / "funsd_82200067_0069.png"
    job = succeeded(acme, path, "image.convert", {"format": "jpeg", "quality": 95})
    (file,) = job["files"]
    assert file["content_type"] == "image/jpeg" and file["name"].endswith(".jpg")
    image = Image.open(io.BytesIO(download(acme, file)))
    source = Image.open(path)
    assert image.format == "JPEG" and image.size == source.size
    assert mean_difference(image, source) < 3


def test_convert_jpeg_to_webp(acme, data):
    path = data / "receipts" / "sroie_007.jpg"
    job = succeeded(acme, path, "image.convert", {"format": "webp"})
    image = Image.open(io.BytesIO(download(acme, job["files"][0])))
    source = Image.open(path)
    assert image.format == "WEBP" and image.size == source.size
    assert mean_difference(image, source) < 4


def test_convert_multiframe_tiff(acme):
    frames = [Image.new("RGB", (120 + 40 * i, 90 + 10 * i), color)
              for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)])]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    job = succeeded(acme, [("scan.tiff", buffer.getvalue())], "image.convert", {"format": "png"})
    assert len(job["files"]) == len(frames)
    for file, frame in zip(job["files"], frames, strict=True):
        image = Image.open(io.BytesIO(download(acme, file)))
        assert image.format == "PNG" and image.size == frame.size
        assert ImageChops.difference(image.convert("RGB"), frame).getbbox() is None

    job = succeeded(acme, [("scan.tiff", buffer.getvalue())], "image.convert",
                    {"format": "png", "all_frames": False})
    assert len(job["files"]) == 1
    assert Image.open(io.BytesIO(download(acme, job["files"][0]))).size == frames[0].size

    job = succeeded(acme, [("scan.tiff", buffer.getvalue())], "image.to-pdf")
    pdf = pypdf.PdfReader(io.BytesIO(download(acme, job["files"][0])))
    assert len(pdf.pages) == 3
    for page, frame in zip(pdf.pages, frames, strict=True):
        ratio = float(page.mediabox.width) / float(page.mediabox.height)
        assert ratio == pytest.approx(frame.width / frame.height, rel=1e-3)


# --- encrypted PDFs --------------------------------------------------------------------------

def test_password_protected_pdf(acme, data):
    path = data / "malformed" / "libreoffice-writer-password.pdf"
    job = run(acme, path, "pdf.to-text")
    assert job["status"] == "ERROR"
    assert job["error"]["code"] == "password_required"
    assert "password" in job["error"]["message"] and "Traceback" not in job["error"]["message"]

    job = run(acme, path, "pdf.to-text", {"password": "not-it"})
    assert job["error"]["code"] == "password_required" and "wrong" in job["error"]["message"]

    job = succeeded(acme, path, "pdf.to-text", {"password": "openpassword"})
    expected = pdf_texts(path, password="openpassword")
    assert any(t.strip() for t in expected)
    assert [p["text"] for p in job["result"]["pages"]] == expected

    job = succeeded(acme, path, "pdf.split", {"password": "openpassword"})
    assert _parts(acme, job) == [[t] for t in expected]  # the parts are readable without it

    job = succeeded(acme, path, "pdf.to-image", {"password": "openpassword", "dpi": 30})
    assert len(job["files"]) == len(expected)


# --- JSON submission -------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "data:application/pdf;base64,"])
def test_json_base64_submission(acme, data, prefix):
    path = data / "pdf" / "pdflatex-4-pages.pdf"
    body = {"operation": "pdf.to-text", "params": {"pages": "1-2"},
            "inputs": [{"base64": prefix + base64.b64encode(path.read_bytes()).decode(),
                        "filename": "paper.pdf"}]}
    response = acme.post("/v1/jobs", params={"wait": 30}, json=body)
    assert response.status_code in (200, 202), response.text
    job = finish(acme, response.json())
    assert job["status"] == "SUCCESS", job["error"]
    assert job["inputs"] == [{"name": "paper.pdf", "size": path.stat().st_size,
                              "content_type": "application/pdf"}]
    assert [p["text"] for p in job["result"]["pages"]] == pdf_texts(path)[:2]


def test_json_base64_merge_keeps_order(acme, data):
    paths = [data / "pdf" / "minimal-document.pdf", data / "pdf" / "crazyones-pdfa.pdf"]
    body = {"operation": "pdf.merge",
            "inputs": [{"base64": base64.b64encode(p.read_bytes()).decode(), "filename": p.name}
                       for p in reversed(paths)]}
    response = acme.post("/v1/jobs", params={"wait": 30}, json=body)
    job = finish(acme, response.json())
    assert job["status"] == "SUCCESS", job["error"]
    merged = download(acme, job["files"][0])
    assert pdf_texts(merged) == pdf_texts(paths[1]) + pdf_texts(paths[0])


# --- progress --------------------------------------------------------------------------------

def test_progress_events_are_monotonic(acme, data):
    path = data / "pdf" / "pdflatex-4-pages.pdf"
    response = submit(acme, path, "pdf.to-image", {"dpi": 200}, wait=0)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    events = []
    with acme.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events, "no events"
    assert all(e["id"] == job_id for e in events)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    assert all(0 <= p <= 100 for p in progress)
    statuses = [e["status"] for e in events]
    order = ["ENQUEUED", "PROCESSING", "SUCCESS"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    assert events[-1]["status"] == "SUCCESS" and events[-1]["progress"] == 100
    assert statuses.count("SUCCESS") == 1
    assert len(events[-1]["files"]) == 4
