"""OCR and layout operations over HTTP against a real server.

Expected words come from pypdfium2 in this process, quality from the corpus ground truth
(tests/ocr_quality.py). The OCR-heavy tests run on the SQLite server only: the database
backend plays no part in what an engine reads, and OCR time is the suite's largest cost.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import img2pdf
import pypdf
import pypdfium2 as pdfium
import pytest

from docmill.engines.pdf.render import page_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ocr_quality import funsd_words, line_cer, norm, score_words, sroie_lines

TERMINAL = {"SUCCESS", "ERROR"}


def submit(client, path: Path | tuple[str, bytes], operation: str, params=None, wait=0):
    name, content = (path.name, path.read_bytes()) if isinstance(path, Path) else path
    return client.post("/v1/jobs", params={"wait": wait} if wait else None,
                       data={"operation": operation, "params": json.dumps(params or {})},
                       files={"file": (name, content)})


def finish(client, job: dict, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        job = client.get(f"/v1/jobs/{job['id']}", params={"wait": 10}).json()
    return job


def run(client, path, operation: str, params=None) -> dict:
    response = submit(client, path, operation, params)
    assert response.status_code in (200, 202), response.text
    job = finish(client, response.json())
    assert job["status"] == "SUCCESS", job.get("error")
    return job


def output(client, job: dict, suffix: str) -> bytes:
    url = next(f["url"] for f in job["files"] if f["name"].endswith(suffix))
    response = client.get(url)
    assert response.status_code == 200
    return response.content


def page_words(document: dict) -> list[list[tuple[str, tuple]]]:
    """Per page, (text, pixel box) of every word in reading order."""
    pages = []
    for page in document["pages"]:
        factor = (page["dpi"] or 72) / 72
        words = []
        for block in page["blocks"]:
            groups = ([c["lines"] for c in block["table"]["cells"]] if "table" in block
                      else [block["lines"]])
            for group in groups:
                for line in group:
                    words += [(w["text"], tuple(v * factor for v in w["bbox"]))
                              for w in line["words"]]
        pages.append(words)
    return pages


@pytest.fixture
def sqlite_only(server):
    if server.backend != "sqlite":
        pytest.skip("OCR quality does not depend on the database backend")


def scanned_pdf(source: Path, pages: list[int], dpi: int) -> bytes:
    doc = pdfium.PdfDocument(source)
    images = []
    for index in pages:
        buffer = io.BytesIO()
        doc[index].render(scale=dpi / 72).to_pil().convert("L").save(buffer, "PNG")
        images.append(buffer.getvalue())
    return img2pdf.convert(images, layout_fun=img2pdf.get_fixed_dpi_layout_fun((dpi, dpi)))


def test_digital_pdf_is_read_from_its_text_layer(acme, data):
    path = data / "pdf" / "pdflatex-4-pages.pdf"
    job = run(acme, path, "ocr.read")
    assert job["progress"] == 100
    pages = job["result"]["pages"]
    assert [p["source"] for p in pages] == ["text-layer"] * 4
    assert all(p["engine"] is None for p in pages)
    document = json.loads(output(acme, job, ".json"))
    doc = pdfium.PdfDocument(path)
    for index, words in enumerate(page_words(document)):
        assert Counter(t for t, _ in words) == Counter(page_text(doc[index].get_textpage()).split())
    text = output(acme, job, ".txt").decode()
    assert text.count("\f") == 3


def test_thirty_page_digital_pdf_progress(acme, data, tmp_path):
    writer = pypdf.PdfWriter()
    while len(writer.pages) < 30:
        writer.append(pypdf.PdfReader(data / "pdf" / "pdflatex-4-pages.pdf"))
    path = tmp_path / "thirty.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    job = submit(acme, path, "layout.analyze").json()
    seen = []
    with acme.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append((event["progress"], event["status"]))
    progress = [p for p, _ in seen]
    assert progress == sorted(progress)
    assert all(p < 100 for p, status in seen if status != "SUCCESS")
    assert seen[-1] == (100, "SUCCESS")
    job = acme.get(f"/v1/jobs/{job['id']}").json()
    assert len(job["result"]["layout"]) == 32 and job["result"]["page_count"] == 32


def test_scanned_pdf_progress_and_ocr(acme, data, sqlite_only):
    source = data / "pdf" / "pdflatex-4-pages.pdf"
    content = scanned_pdf(source, [0, 1, 2, 3], dpi=100)
    job = submit(acme, ("scan.pdf", content), "ocr.read", {"engine": "tesseract"}).json()
    seen = []
    with acme.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append((event["progress"], event["status"], event.get("message")))
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress)
    assert any(0 < p < 100 for p in progress), seen  # real intermediate percentages
    assert all(p < 100 for p, status, _ in seen if status != "SUCCESS")
    assert seen[-1][:2] == (100, "SUCCESS")
    job = acme.get(f"/v1/jobs/{job['id']}").json()
    assert [p["source"] for p in job["result"]["pages"]] == ["ocr"] * 4
    assert {p["engine"] for p in job["result"]["pages"]} == {"tesseract"}
    doc = pdfium.PdfDocument(source)
    for index, text in enumerate(job["result"]["text"]):
        expected = Counter(norm(w) for w in page_text(doc[index].get_textpage()).split() if norm(w))
        found = Counter(norm(w) for w in text.split() if norm(w))
        assert sum((expected & found).values()) >= 0.8 * sum(expected.values())


def test_receipt_photos_default_to_rapidocr(acme, data, sqlite_only):
    errors = chars = 0
    for path in sorted((data / "receipts").glob("sroie_*.jpg"))[:2]:
        job = run(acme, path, "ocr.read")
        assert job["result"]["pages"][0]["engine"] == "rapidocr"
        document = json.loads(output(acme, job, ".json"))
        e, c = line_cer(page_words(document)[0], sroie_lines(path.with_suffix(".boxes.csv")))
        errors, chars = errors + e, chars + c
    assert errors / chars <= 0.05, errors / chars


def test_form_scans_default_to_tesseract(acme, data, sqlite_only):
    total = None
    for path in sorted((data / "forms").glob("funsd_*.png"))[:3]:
        job = run(acme, path, "ocr.read")
        assert job["result"]["pages"][0]["engine"] == "tesseract"
        document = json.loads(output(acme, job, ".json"))
        score = score_words(page_words(document)[0], funsd_words(path.with_suffix(".json")))
        total = score if total is None else total + score
    assert total.f1 >= 0.62, (total.precision, total.recall, total.f1)


def test_searchable_pdf_over_http(acme, data, sqlite_only):
    source = data / "pdf" / "pdflatex-4-pages.pdf"
    content = scanned_pdf(source, [0], dpi=150)
    job = run(acme, ("scan.pdf", content), "ocr.searchable-pdf")
    assert job["result"]["pages"][0]["source"] == "ocr"
    made = output(acme, job, ".pdf")
    layer = page_text(pdfium.PdfDocument(made)[0].get_textpage()).split()
    read = run(acme, ("scan.pdf", content), "ocr.read")
    ocr_words = read["result"]["text"][0].split()
    found = Counter(layer)
    assert sum((Counter(ocr_words) & found).values()) >= 0.98 * len(ocr_words)


def test_layout_and_hocr_over_http(acme, data):
    job = run(acme, data / "invoices" / "AmazonWebServices.pdf", "layout.analyze")
    blocks = job["result"]["layout"][0]["blocks"]
    assert {"title", "text", "table"} <= {b["type"] for b in blocks}
    table = next(b for b in blocks if b["type"] == "table")
    assert table["rows"] >= 2 and table["columns"] >= 2
    job = run(acme, data / "pdf" / "minimal-document.pdf", "ocr.hocr")
    hocr = output(acme, job, ".hocr").decode()
    assert 'class="ocr_page"' in hocr and 'class="ocrx_word"' in hocr


def test_ocr_params_are_checked(acme, data, sqlite_only):
    path = data / "forms" / "funsd_82092117.png"
    response = submit(acme, path, "ocr.read", {"engine": "nonsense"}, wait=30)
    if response.status_code < 300:
        job = finish(acme, response.json())
        assert job["status"] == "ERROR" and job["error"]["code"] == "invalid_input"
    else:
        assert response.status_code in (400, 422)
    job = finish(acme, submit(acme, path, "ocr.read", {"engine": "tesseract",
                                                       "languages": ["xyz"]}).json())
    assert job["status"] == "ERROR" and job["error"]["code"] == "invalid_input"
    assert "not installed" in job["error"]["message"]
