"""Bad input gets a clear, documented error, and the server (and its workers) keep serving.

Errors are the native face's `{"error": {"code", "message"}}` at submission (4xx) or a job
that ends ERROR with a code and a readable message; never a 500, never a stack trace.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib

import magic
import pypdfium2 as pdfium
import pytest
from PIL import Image

pytestmark = pytest.mark.fast

TERMINAL = {"SUCCESS", "ERROR"}


def finish(client, job: dict, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        job = client.get(f"/v1/jobs/{job['id']}", params={"wait": 10}).json()
    return job


def submit(client, name: str, content: bytes, operation: str, params: dict | None = None):
    return client.post("/v1/jobs", params={"wait": 30},
                       data={"operation": operation, "params": json.dumps(params or {})},
                       files={"file": (name, content)})


def submit_json(client, body):
    return client.post("/v1/jobs", params={"wait": 30}, json=body)


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def assert_readable(message: str) -> None:
    assert isinstance(message, str) and len(message.strip()) >= 10, message
    assert "Traceback" not in message and 'File "' not in message, message


def assert_error(response, status: int, code: str, *mentions: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == code, error
    assert_readable(error["message"])
    for word in mentions:
        assert word.lower() in error["message"].lower(), (word, error["message"])
    return error["message"]


def good_job_succeeds(client, data) -> None:
    path = data / "pdf" / "minimal-document.pdf"
    response = submit(client, path.name, path.read_bytes(), "pdf.to-text")
    assert response.status_code in (200, 202), response.text
    job = finish(client, response.json())
    assert job["status"] == "SUCCESS", job


def worker_pids(server) -> list[int]:
    """The processes that run engines: the local pool's workers, or with the distributed
    backend each `docmill worker` and its Celery pool children."""
    import psutil

    if not getattr(server, "workers", None):
        return server.worker_pids()
    pids = []
    for worker in server.workers:
        try:
            pids += [worker.pid] + [c.pid for c in psutil.Process(worker.pid).children()]
        except psutil.NoSuchProcess:
            continue
    return pids


def live_workers(server, client, data) -> list[int]:
    good_job_succeeds(client, data)  # the pool starts its workers lazily
    pids = worker_pids(server)
    assert pids, "no worker processes found"
    return pids


def assert_workers_alive(server, before: list[int]) -> None:
    """The pool starts workers lazily, so new ones may appear; none of the earlier ones may
    have gone (a worker killed by a bad document would be replaced under a new pid)."""
    after = set(worker_pids(server))
    assert set(before) <= after, f"worker(s) {set(before) - after} died"


def pdf_ok(data) -> bytes:
    return (data / "pdf" / "minimal-document.pdf").read_bytes()


# --- damaged PDFs ----------------------------------------------------------------------------

# What each qpdf test file gets. The reasons come from libraries reading the file in this
# process (asserted below): libmagic decides 415 versus a job, PDFium whether text comes out.
MALFORMED = {
    "qpdf-bad1.pdf": 415,                 # no %PDF header: libmagic sees text
    "qpdf-bad-direct-root.pdf": 415,      # libmagic sees data
    "qpdf-fuzz-16214.pdf": 415,           # fuzzer output, libmagic sees data
    "qpdf-bad-jpeg.pdf": "SUCCESS",       # recoverable damage
    "qpdf-bad-token-startxref.pdf": "SUCCESS",
    "qpdf-broken-lzw.pdf": "SUCCESS",
    "qpdf-damaged-stream.pdf": "SUCCESS",
    "qpdf-eof-reading-token.pdf": "SUCCESS",
}


def test_malformed_list_is_the_corpus(data):
    assert set(MALFORMED) == {p.name for p in (data / "malformed").glob("qpdf-*.pdf")}


def _pdfium_texts(content: bytes) -> list[str] | None:
    try:
        doc = pdfium.PdfDocument(content)
    except pdfium.PdfiumError:
        return None
    try:
        texts = []
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n").replace("\ufffe", "-\n"))
        return texts
    finally:
        doc.close()


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pdf(acme, server, data, name):
    content = (data / "malformed" / name).read_bytes()
    sniffed = magic.from_buffer(content[:256 * 1024], mime=True)
    workers = live_workers(server, acme, data)
    for operation, params in (("pdf.to-text", {}), ("pdf.to-image", {"dpi": 30}),
                              ("pdf.split", {})):
        response = submit(acme, name, content, operation, params)
        if MALFORMED[name] == 415:
            assert sniffed != "application/pdf"
            assert_error(response, 415, "unsupported_format", sniffed)
            continue
        assert sniffed == "application/pdf"
        assert response.status_code in (200, 202), response.text
        job = finish(acme, response.json())
        assert job["status"] == MALFORMED[name], job["error"]
        if job["status"] == "SUCCESS" and operation == "pdf.to-text":
            assert [p["text"] for p in job["result"]["pages"]] == _pdfium_texts(content)
        if job["status"] == "ERROR":
            assert_readable(job["error"]["message"])
    good_job_succeeds(acme, data)
    assert_workers_alive(server, workers)


def test_pdf_that_cannot_be_opened_fails_cleanly(acme, server, data):
    """Looks like a PDF to libmagic, but nothing after the header: the job fails with a
    classified error and a readable message, for both PDF libraries the engine uses."""
    content = b"%PDF-1.7\n" + bytes(range(256)) * 40
    assert magic.from_buffer(content, mime=True) == "application/pdf"
    assert _pdfium_texts(content) is None
    workers = live_workers(server, acme, data)
    for operation in ("pdf.to-text", "pdf.to-image", "pdf.split"):
        response = submit(acme, "broken.pdf", content, operation)
        assert response.status_code in (200, 202), response.text
        job = finish(acme, response.json())
        assert job["status"] == "ERROR"
        assert job["error"]["code"] == "invalid_input"
        assert_readable(job["error"]["message"])
        assert "damaged" in job["error"]["message"]
    response = submit_json(acme, {"operation": "pdf.merge", "inputs": [
        {"base64": b64(pdf_ok(data)), "filename": "ok.pdf"},
        {"base64": b64(content), "filename": "broken.pdf"}]})
    job = finish(acme, response.json())
    assert job["status"] == "ERROR" and job["error"]["code"] == "invalid_input"
    good_job_succeeds(acme, data)
    assert_workers_alive(server, workers)


# --- wrong or missing files ------------------------------------------------------------------

def test_text_named_pdf_is_unsupported(acme, data):
    response = submit(acme, "x.pdf", b"just some words and not a PDF\n" * 20, "pdf.to-text")
    assert_error(response, 415, "unsupported_format", "text/plain", "application/pdf")


def test_image_for_pdf_operation_is_unsupported(acme, data):
    path = data / "receipts" / "sroie_002.jpg"
    response = submit(acme, "receipt.pdf", path.read_bytes(), "pdf.to-text")
    assert_error(response, 415, "unsupported_format", "image/jpeg")


def test_empty_file(acme, data):
    assert_error(submit(acme, "empty.pdf", b"", "pdf.to-text"), 400, "invalid_input", "empty")
    response = submit_json(acme, {"operation": "pdf.to-text",
                                  "inputs": [{"base64": "", "filename": "e.pdf"}]})
    assert_error(response, 400, "invalid_input", "empty")
    good_job_succeeds(acme, data)


def test_multipart_without_file(acme):
    boundary = "docmill-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"operation\"\r\n\r\n"
            f"pdf.to-text\r\n--{boundary}--\r\n").encode()
    response = acme.post("/v1/jobs", content=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 400, "invalid_input", "file")
    # A file under another field name is not 'file' either.
    response = acme.post("/v1/jobs", data={"operation": "pdf.to-text"},
                         files={"document": ("a.pdf", b"%PDF-1.4\n")})
    assert_error(response, 400, "invalid_input", "file")


def test_unsupported_content_type(acme, data):
    response = acme.post("/v1/jobs", content=pdf_ok(data),
                         headers={"Content-Type": "application/pdf"})
    assert_error(response, 415, "unsupported_format", "multipart/form-data", "application/json")
    response = acme.post("/v1/jobs", content=b"operation=pdf.to-text",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(response, 415, "unsupported_format")


# --- size limits -----------------------------------------------------------------------------

def test_oversize_upload(make_server, data):
    server = make_server(DOCMILL_MAX_UPLOAD_BYTES="100000").start()
    content = pdf_ok(data) + b"%" + b"x" * (300_000 - len(pdf_ok(data)))  # still a PDF
    with server.client("acme") as client:
        response = submit(client, "big.pdf", content, "pdf.to-text")
        assert_error(response, 413, "too_large", "100000")
        response = submit_json(client, {"operation": "pdf.to-text",
                                        "inputs": [{"base64": b64(content), "filename": "b.pdf"}]})
        assert_error(response, 413, "too_large")
        response = submit_json(client, {"operation": "pdf.to-text", "inputs": [
            {"base64": "data:application/pdf;base64," + b64(content)}]})
        assert_error(response, 413, "too_large")
        # Past the request-body cap itself (a declared Content-Length, then a stream).
        huge = content * 8
        assert_error(submit(client, "huge.pdf", huge, "pdf.to-text"), 413, "too_large")
        response = client.post("/v1/jobs", content=iter([huge[i:i + 65536]
                                                         for i in range(0, len(huge), 65536)]),
                               headers={"Content-Type": "application/json"})
        assert_error(response, 413, "too_large")
        # Nothing was stored for the refused submissions, and a file under the limit works.
        assert client.get("/v1/jobs").json()["jobs"] == []
        good_job_succeeds(client, data)


# --- malformed requests ----------------------------------------------------------------------

def test_malformed_json(acme):
    response = acme.post("/v1/jobs", content=b'{"operation": "pdf.to-text", "inputs": [',
                         headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_input", "JSON")
    response = acme.post("/v1/jobs", content=b"", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_input", "empty")
    response = acme.post("/v1/jobs", content=b"[1, 2]",
                         headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_input")


def test_json_missing_operation(acme, data):
    message = assert_error(submit_json(acme, {"inputs": [{"base64": b64(pdf_ok(data))}]}),
                           400, "invalid_input", "operation")
    assert "required" in message.lower()


def test_json_unknown_operation(acme, data):
    response = submit_json(acme, {"operation": "pdf.frobnicate",
                                  "inputs": [{"base64": b64(pdf_ok(data))}]})
    assert_error(response, 400, "invalid_input", "pdf.frobnicate", "pdf.to-text")
    response = submit(acme, "a.pdf", pdf_ok(data), "pdf.frobnicate")
    assert_error(response, 400, "invalid_input", "pdf.frobnicate")


def test_json_unknown_param(acme, data):
    response = submit_json(acme, {"operation": "pdf.to-image", "params": {"colour": "red"},
                                  "inputs": [{"base64": b64(pdf_ok(data))}]})
    assert_error(response, 400, "invalid_input", "colour")
    response = submit(acme, "a.pdf", pdf_ok(data), "pdf.to-image", {"colour": "red"})
    assert_error(response, 400, "invalid_input", "colour")


@pytest.mark.parametrize(("operation", "params", "named"), [
    ("pdf.to-image", {"dpi": "lots"}, "dpi"),
    ("pdf.to-image", {"dpi": 5}, "dpi"),
    ("pdf.to-image", {"format": "gif"}, "format"),
    ("pdf.split", {"every": "two"}, "every"),
    ("pdf.split", {"every": 2, "ranges": "1"}, "ranges or every"),
    ("image.convert", {}, "format"),
])
def test_json_bad_param_value(acme, data, operation, params, named):
    response = submit_json(acme, {"operation": operation, "params": params,
                                  "inputs": [{"base64": b64(pdf_ok(data))}]})
    assert_error(response, 400, "invalid_input", named)


def test_json_bad_request_shape(acme, data):
    assert_error(submit_json(acme, {"operation": "pdf.to-text", "inputs": []}),
                 400, "invalid_input", "inputs")
    assert_error(submit_json(acme, {"operation": "pdf.to-text", "params": [1],
                                    "inputs": [{"base64": b64(pdf_ok(data))}]}),
                 400, "invalid_input", "params")
    assert_error(submit_json(acme, {"operation": "pdf.to-text", "inputs": [
        {"base64": b64(pdf_ok(data)), "url": "https://example.com/a.pdf"}]}),
                 400, "invalid_input", "exactly one")
    assert_error(submit_json(acme, {"operation": "pdf.to-text", "surprise": 1,
                                    "inputs": [{"base64": b64(pdf_ok(data))}]}),
                 400, "invalid_input", "surprise")


@pytest.mark.parametrize("text", ["a", "abcde", "Zm9vY"])
def test_bad_base64(acme, text):
    response = submit_json(acme, {"operation": "pdf.to-text", "inputs": [{"base64": text}]})
    assert_error(response, 400, "invalid_input", "base64")


@pytest.mark.parametrize("text", ["this is not base64 at all!!", "not*base64*at*all", "!!!!",
                                  "%PDF-1.4 raw bytes pasted instead of base64"])
def test_bad_base64_lenient_fallback(acme, text):
    response = submit_json(acme, {"operation": "pdf.to-text", "inputs": [{"base64": text}]})
    assert_error(response, 400, "invalid_input", "base64")


def test_data_uri_must_be_base64(acme):
    response = submit_json(acme, {"operation": "pdf.to-text",
                                  "inputs": [{"base64": "data:application/pdf,%25PDF-1.4"}]})
    assert_error(response, 400, "invalid_input", "base64")


def test_multipart_bad_timeout(acme, data):
    response = acme.post("/v1/jobs", data={"operation": "pdf.to-text", "timeout_s": "abc"},
                         files={"file": ("a.pdf", pdf_ok(data))})
    assert_error(response, 400, "invalid_input", "timeout")


def test_multipart_negative_timeout(acme, data):
    response = acme.post("/v1/jobs", data={"operation": "pdf.to-text", "timeout_s": "-5"},
                         files={"file": ("a.pdf", pdf_ok(data))})
    assert_error(response, 400, "invalid_input", "timeout")


# --- URLs the server must not fetch ----------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/healthz",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/doc.pdf",
    "http://localhost/doc.pdf",
    "http://10.0.0.1/doc.pdf",
    "file:///etc/passwd",
])
def test_unsafe_input_url(acme, server, url):
    url = url.format(port=server.port)
    response = submit_json(acme, {"operation": "pdf.to-text", "inputs": [{"url": url}]})
    assert_error(response, 400, "unsafe_url")
    assert acme.get("/v1/jobs", params={"limit": 1}).status_code == 200


def test_unsafe_webhook_url(acme, data):
    response = submit_json(acme, {"operation": "pdf.to-text",
                                  "webhook_url": "http://169.254.169.254/hook",
                                  "inputs": [{"base64": b64(pdf_ok(data))}]})
    assert_error(response, 400, "unsafe_url")


# --- authentication --------------------------------------------------------------------------

def test_missing_and_wrong_key(server, data):
    with server.anonymous() as anonymous:
        for headers in ({}, {"Authorization": "Bearer not-a-real-key"},
                        {"X-API-Key": "not-a-real-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
            response = anonymous.post("/v1/jobs", headers=headers,
                                      data={"operation": "pdf.to-text"},
                                      files={"file": ("a.pdf", pdf_ok(data))})
            assert_error(response, 401, "unauthorized")
            assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
        assert anonymous.get("/v1/jobs").status_code == 401


# --- images that must not be decoded ---------------------------------------------------------

def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: ~110 KB on disk, 900 megapixels
    (2.7 GB as RGB) once decoded."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    compressor = zlib.compressobj(9)
    rows = (b"\x00" * (1 + (width + 7) // 8)) * 1000  # filter byte + packed pixels
    idat = b"".join(compressor.compress(rows) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_decompression_bomb(acme, server, data):
    bomb = png_bomb()
    assert len(bomb) < 200_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    workers = live_workers(server, acme, data)
    for operation, params in (("image.convert", {"format": "jpeg"}), ("image.to-pdf", {})):
        response = submit(acme, "bomb.png", bomb, operation, params)
        assert response.status_code in (200, 202), response.text
        job = finish(acme, response.json())
        assert job["status"] == "ERROR"
        assert job["error"]["code"] == "invalid_input"
        assert_readable(job["error"]["message"])
        assert "too large" in job["error"]["message"] or "bomb" in job["error"]["message"]
    good_job_succeeds(acme, data)
    assert_workers_alive(server, workers)


def test_truncated_image(acme, data):
    content = (data / "receipts" / "sroie_005.jpg").read_bytes()
    header_only = content[:600]
    response = submit(acme, "cut.jpg", header_only, "image.convert", {"format": "png"})
    assert response.status_code in (200, 202), response.text
    job = finish(acme, response.json())
    assert job["status"] == "ERROR" and job["error"]["code"] == "invalid_input"
    assert_readable(job["error"]["message"])
    good_job_succeeds(acme, data)
