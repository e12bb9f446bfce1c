"""The DocRaptor face driven by the official `docraptor` client (3.1.0) against a real server.

Each test is one item of the conformance checklist in shared/specs/docraptor.md section 13
(the number is in its name), checking what came back (PDF text and page count with
pypdfium2, spreadsheet cells with openpyxl/xlrd, PDF structure with pikepdf), not only the
status. The lifecycle items run on every backend (`server`); the option and fault items run
once, on a private SQLite server whose SSRF allow-list admits 127.0.0.2, where the test's
own local sites (callback receiver, asset server) listen.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docraptor
import httpx
import openpyxl
import pikepdf
import pytest
from doctext import pdf_pages_text
from local_http import FILE_ATTACKS, Recorder
from server import DocmillServer

D = {"test": True, "document_type": "pdf", "document_content": "<p>Hello</p>", "name": "a.pdf"}
POLL_S = 0.25


# --- helpers -------------------------------------------------------------------------------


def doc_api(url: str, key: str | None, password: str | None = None) -> docraptor.DocApi:
    api = docraptor.DocApi()
    api.api_client.configuration.host = url
    if key is not None:
        api.api_client.configuration.username = key
    if password is not None:
        api.api_client.configuration.password = password
    return api


def wait_status(api: docraptor.DocApi, status_id: str, timeout: float = 60,
                seen: list[str] | None = None) -> docraptor.DocStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = api.get_async_doc_status(status_id)
        if seen is not None and (not seen or seen[-1] != status.status):
            seen.append(status.status)
        if status.status in ("completed", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(POLL_S)


def api_error(call, *args) -> docraptor.rest.ApiException:
    with pytest.raises(docraptor.rest.ApiException) as info:
        call(*args)
    return info.value


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages_text(data))


def page_count(data: bytes) -> int:
    return len(pdf_pages_text(data))


def assert_valid_pdf(data: bytes) -> None:
    assert isinstance(data, bytes) and data.startswith(b"%PDF-"), data[:40]
    with pikepdf.open(io.BytesIO(data)) as pdf:  # libqpdf: the `qpdf --check` of the spec
        assert pdf.check_pdf_syntax() == []


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


def table(rows: int, cols: int = 2) -> str:
    body = "".join("<tr>" + "".join(f"<td>{r * 10 + c}</td>" for c in range(cols)) + "</tr>"
                   for r in range(1, rows + 1))
    return f"<table>{body}</table>"


class Site(ThreadingHTTPServer):
    """A local web site for the server to reach: records every request, serves `routes`,
    can hold a response back (`delays`)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.delays: dict[str, float] = {}
        self.fail_first: set[str] = set()  # paths that answer 500 the first time
        self.posted = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                site.requests.append((method, self.path, headers, body))
                if method == "POST":
                    site.posted.set()
                time.sleep(site.delays.get(self.path, 0))
                status, ctype, content = site.routes.get(self.path, (
                    200 if method == "POST" else 404, "text/plain", b"ok"))
                if self.path in site.fail_first:
                    site.fail_first.discard(self.path)
                    status = 500
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass

            def do_GET(self) -> None:  # noqa: N802
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def log_message(self, *args: object) -> None:
                pass

        super().__init__((host, 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def paths(self, method: str = "GET") -> list[str]:
        return [path for m, path, _, _ in self.requests if m == method]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d8f4d6"
                      "0000000049454e44ae426082")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def api(server: DocmillServer) -> docraptor.DocApi:
    return doc_api(server.url, server.keys["acme"])


@pytest.fixture(scope="module")
def special():
    """A private SQLite server that may reach 127.0.0.2 (the tests' local sites)."""
    srv = DocmillServer(Path(tempfile.mkdtemp(prefix="docmill-docraptor-")), backend="sqlite",
                        extra_env={"DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]',
                                   "DOCMILL_WEBHOOK_BACKOFF_BASE_S": "0.5"})
    srv.cli("migrate")
    srv.create_key("acme", admin=True)
    srv.create_key("globex")
    srv.start()
    yield srv
    srv.destroy()


@pytest.fixture(scope="module")
def sapi(special: DocmillServer) -> docraptor.DocApi:
    return doc_api(special.url, special.keys["acme"])


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


def org_hex(srv: DocmillServer, org: str = "acme") -> str:
    with srv.client(org) as client:
        return client.get("/v1/organization").json()["id"].replace("-", "")


# --- 1-6: creating documents, auth ---------------------------------------------------------


def test_01_create_doc_returns_a_valid_pdf(api):
    data = api.create_doc(D)
    assert_valid_pdf(data)
    assert "Hello" in pdf_text(data) and page_count(data) == 1


def test_02_doc_model_with_its_default_fields(sapi):
    doc = docraptor.Doc(name="m.pdf", document_type="pdf",
                        document_content="<h1>Model</h1><p>sent by the Doc model</p>",
                        prince_options=docraptor.PrinceOptions(media="print"))
    data = sapi.create_doc(doc)
    assert_valid_pdf(data)
    assert "sent by the Doc model" in pdf_text(data)


def test_03_xlsx(api):
    data = api.create_doc({**D, "document_type": "xlsx",
                           "document_content": "<table><tr><td>Hello</td><td>42</td></tr></table>"})
    assert data.startswith(b"PK\x03\x04")
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet["A1"].value == "Hello" and sheet["B1"].value == 42


def test_04_xls(sapi):
    import xlrd

    html = ("<table><caption>People</caption><tr><th>Name</th><th>Score</th></tr>"
            "<tr><td>Hello</td><td>7.5</td></tr></table>")
    data = sapi.create_doc({**D, "document_type": "xls", "document_content": html})
    assert data.startswith(b"\xD0\xCF\x11\xE0")
    book = xlrd.open_workbook(file_contents=data)
    sheet = book.sheet_by_index(0)
    assert book.sheet_names() == ["People"]
    assert sheet.cell_value(1, 0) == "Hello" and sheet.cell_value(1, 1) == 7.5


def test_05_missing_or_wrong_key_is_401(server):
    with pytest.raises(docraptor.exceptions.UnauthorizedException) as info:
        doc_api(server.url, None).create_doc(D)
    assert info.value.status == 401 and "<errors>" in info.value.body
    with pytest.raises(docraptor.exceptions.UnauthorizedException):
        doc_api(server.url, "dm_nope_nothing").create_doc(D)
    with pytest.raises(docraptor.exceptions.UnauthorizedException):
        doc_api(server.url, None).get_async_doc_status("0" * 32)


def test_06_password_is_ignored(server):
    data = doc_api(server.url, server.keys["acme"], password="anything").create_doc(D)
    assert_valid_pdf(data)


# --- 7-10: validation ----------------------------------------------------------------------


def test_07_long_name_is_422_with_xml(sapi):
    error = api_error(sapi.create_doc, {**D, "name": "n" * 201})
    assert error.status == 422
    assert "<errors>" in error.body and "Name is too long (maximum is 200 characters)" in error.body
    assert error.headers["Content-Type"].startswith("application/xml")


def test_08_async_validation_errors_surface_as_failed(api):
    created = api.create_async_doc({**D, "name": "n" * 201})
    assert created.status_id
    status = wait_status(api, created.status_id)
    assert status.status == "failed"
    assert "Name is too long (maximum is 200 characters)" in status.validation_errors


def test_09_long_tag(sapi):
    error = api_error(sapi.create_doc, {**D, "tag": "t" * 201})
    assert error.status == 422 and "Tag is too long (maximum is 200 characters)" in error.body
    status = wait_status(sapi, sapi.create_async_doc({**D, "tag": "t" * 201}).status_id)
    assert status.status == "failed" and "Tag is too long" in status.validation_errors


def test_10_document_type_blank_or_unknown(sapi):
    blank = {k: v for k, v in D.items() if k != "document_type"}
    error = api_error(sapi.create_doc, blank)
    assert error.status == 422 and "Document type can&#x27;t be blank" not in error.body
    assert "Document type can't be blank" in error.body
    error = api_error(sapi.create_doc, {**D, "document_type": "docx"})
    assert error.status == 422 and "Document type is not included in the list" in error.body
    status = wait_status(sapi, sapi.create_async_doc({**D, "document_type": "docx"}).status_id)
    assert status.status == "failed"
    assert status.validation_errors == "Document type is not included in the list"


# --- 11-17: async lifecycle and downloads --------------------------------------------------


def test_11_to_13_async_lifecycle_download_and_public_url(api):
    seen: list[str] = []
    created = api.create_async_doc({**D, "document_content": "<p>Async hello</p>"
                                    + "<p style='page-break-before: always'>two</p>"})
    assert created.status_id and created.status_id.isalnum()
    status = wait_status(api, created.status_id, seen=seen)
    assert status.status == "completed", status
    assert set(seen) <= {"queued", "working", "completed"} and seen[-1] == "completed"
    assert status.download_id and status.download_url.endswith(f"/download/{status.download_id}")
    assert isinstance(status.number_of_pages, int) and status.number_of_pages == 2
    assert status.message.startswith("Completed at ")
    data = api.get_async_doc(status.download_id)  # 12
    assert_valid_pdf(data)
    assert "Async hello" in pdf_text(data) and page_count(data) == 2
    assert fetch(status.download_url) == data  # 13: no credentials


def test_14_the_101st_download_fails(api):
    status = wait_status(api, api.create_async_doc(D).status_id)
    assert status.status == "completed"
    for _ in range(100):
        assert fetch(status.download_url).startswith(b"%PDF-")
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(status.download_url)
    assert info.value.code == 400 and b"Download Key Error" in info.value.read()
    assert api_error(api.get_async_doc, status.download_id).status == 400


def test_15_unknown_download_id(sapi):
    error = api_error(sapi.get_async_doc, "nonexistent")
    assert error.status == 400 and "Download Key Error" in error.body
    error = api_error(sapi.get_async_doc, "0" * 64)
    assert error.status == 400 and "Download Key Error" in error.body


def test_16_status_of_unknown_or_foreign_doc_is_403(server, api):
    with pytest.raises(docraptor.exceptions.ForbiddenException):
        api.get_async_doc_status("nonexistent")
    status_id = api.create_async_doc(D).status_id
    other = doc_api(server.url, server.keys["globex"])
    with pytest.raises(docraptor.exceptions.ForbiddenException) as info:
        other.get_async_doc_status(status_id)
    assert "permission" in info.value.body
    status = wait_status(api, status_id)
    with pytest.raises(docraptor.exceptions.ForbiddenException):
        other.expire(status.download_id)
    assert api.get_async_doc(status.download_id).startswith(b"%PDF-")


def test_17_download_before_completion_is_400(special, sapi, site):
    site.routes["/slow.png"] = (200, "image/png", PIXEL)
    site.delays["/slow.png"] = 3
    html = f'<p>Slow</p><img src="{site.base}/slow.png">'
    status_id = sapi.create_async_doc({**D, "document_content": html}).status_id
    download_id = status_id + org_hex(special)
    error = api_error(sapi.get_async_doc, download_id)
    assert error.status == 400 and "Download Key Error" in error.body
    status = wait_status(sapi, status_id)
    assert status.status == "completed" and status.download_id == download_id
    assert sapi.get_async_doc(download_id).startswith(b"%PDF-")


# --- 18-21: hosted documents ---------------------------------------------------------------


def test_18_19_hosted_doc_then_expire(api):
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S%z")
    assert "+" not in tomorrow  # a naive time, as the vendor's own tests send
    status = api.create_hosted_doc({**D, "document_content": "<p>Hosted hello</p>",
                                    "hosted_expires_at": tomorrow})
    assert status.status == "completed" and status.download_id and status.number_of_pages == 1
    assert status.download_url.endswith(f"/download/{status.download_id}")
    data = fetch(status.download_url)
    assert_valid_pdf(data)
    assert "Hosted hello" in pdf_text(data)
    assert api.expire(status.download_id) is None  # 19
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(status.download_url)
    assert info.value.code >= 400
    assert api_error(api.get_async_doc, status.download_id).status == 400


def test_20_hosted_async_doc(api):
    status = wait_status(api, api.create_hosted_async_doc(
        {**D, "document_content": "<p>Hosted async</p>"}).status_id)
    assert status.status == "completed"
    data = fetch(status.download_url)
    assert "Hosted async" in pdf_text(data)
    assert api.get_async_doc(status.download_id) == data


def test_21_hosted_download_limit_and_past_expiry(sapi):
    status = sapi.create_hosted_doc({**D, "hosted_download_limit": 2})
    fetch(status.download_url)
    assert sapi.get_async_doc(status.download_id).startswith(b"%PDF-")
    with pytest.raises(urllib.error.HTTPError):
        fetch(status.download_url)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    status = sapi.create_hosted_doc({**D, "hosted_expires_at": past})
    assert status.status == "completed"
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(status.download_url)
    assert info.value.code == 400
    status = sapi.create_hosted_doc({**D, "hosted_expires_at": "2030-01-01T00:00:00+02:00"})
    assert fetch(status.download_url).startswith(b"%PDF-")
    error = api_error(sapi.create_hosted_doc, {**D, "hosted_expires_at": "next tuesday"})
    assert error.status == 422 and "Hosted expires at" in error.body


# --- 22: callback_url ----------------------------------------------------------------------


def test_22_callback_once_on_success_never_on_failure(sapi, site):
    good = sapi.create_async_doc({**D, "callback_url": f"{site.base}/done?doc=1"})
    bad = sapi.create_async_doc({**D, "name": "n" * 201, "callback_url": f"{site.base}/bad"})
    broken = sapi.create_async_doc({**D, "callback_url": f"{site.base}/broken",
                                    "ignore_resource_errors": False,
                                    "document_content": f'<img src="{site.base}/404.png">'})
    status = wait_status(sapi, good.status_id)
    assert status.status == "completed"
    assert site.posted.wait(20), "no callback"
    assert wait_status(sapi, bad.status_id).status == "failed"
    assert wait_status(sapi, broken.status_id).status == "failed"
    time.sleep(3)  # the deliverer runs every second: room for a wrong or repeated POST
    posts = [(path, headers, body) for m, path, headers, body in site.requests if m == "POST"]
    assert [p for p, _, _ in posts] == ["/done?doc=1"], posts
    form = dict(urllib.parse.parse_qsl(posts[0][2].decode()))
    assert posts[0][1]["content-type"] == "application/x-www-form-urlencoded"
    assert form["download_id"] == status.download_id
    assert form["download_url"] == status.download_url
    assert form["status_id"] == good.status_id and form["status"] == "completed"
    assert form["number_of_pages"] == "1"
    assert fetch(form["download_url"]).startswith(b"%PDF-")


def test_22_callback_is_retried_until_it_is_taken(sapi, site):
    site.fail_first.add("/flaky")
    status = wait_status(sapi, sapi.create_async_doc(
        {**D, "callback_url": f"{site.base}/flaky"}).status_id)
    assert status.status == "completed"
    deadline = time.monotonic() + 20
    while len(site.paths("POST")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    assert site.paths("POST") == ["/flaky", "/flaky"]  # a 500, then one retry that took it
    assert sapi.get_async_doc_status(status.download_id[:32]).status == "completed"


def test_22_callback_to_a_refused_address_fails_the_doc(sapi):
    created = sapi.create_async_doc({**D, "callback_url": "http://169.254.169.254/hook"})
    status = wait_status(sapi, created.status_id)
    assert status.status == "failed" and "Callback url is not allowed" in status.validation_errors


# --- 23-29: rendering options --------------------------------------------------------------


def test_23_media_screen(sapi):
    html = ("<style>@media print { .s { display: none } } @media screen { .p { display: none } }"
            "</style><p class='s'>SCREENONLY</p><p class='p'>PRINTONLY</p>")
    text = pdf_text(sapi.create_doc({**D, "document_content": html,
                                     "prince_options": {"media": "screen"}}))
    assert "SCREENONLY" in text and "PRINTONLY" not in text
    text = pdf_text(sapi.create_doc({**D, "document_content": html}))
    assert "SCREENONLY" not in text and "PRINTONLY" in text


def test_24_baseurl_resolves_relative_resources(sapi, site):
    site.routes["/img/dot.png"] = (200, "image/png", PIXEL)
    site.routes["/css/site.css"] = (200, "text/css", b"p { color: red }")
    html = '<link rel="stylesheet" href="css/site.css"><p>Based</p><img src="img/dot.png">'
    data = sapi.create_doc({**D, "document_content": html,
                            "prince_options": {"baseurl": f"{site.base}/"}})
    assert "Based" in pdf_text(data)
    assert {"/img/dot.png", "/css/site.css"} <= set(site.paths())


def test_25_ignore_resource_errors(sapi, site):
    html = f'<p>Missing image</p><img src="{site.base}/missing.png">'
    error = api_error(sapi.create_doc, {**D, "document_content": html,
                                        "ignore_resource_errors": False})
    assert error.status == 422 and "missing.png" in error.body
    assert "Missing image" in pdf_text(sapi.create_doc({**D, "document_content": html}))


def test_26_javascript(sapi):
    html = ("<p id='x'>static</p><script>document.getElementById('x').textContent='JSRAN'"
            "</script>")
    # javascript: true renders in headless Chromium (tests/api/test_chromium.py has more)
    text = pdf_text(sapi.create_doc({**D, "document_content": html, "javascript": True}))
    assert "JSRAN" in text and "static" not in text
    text = pdf_text(sapi.create_doc({**D, "document_content": html, "javascript": False}))
    assert "JSRAN" not in text and "static" in text


def test_27_iframes(sapi, site):
    """Loaded by default, as the vendor does, through the SSRF guard: the allowed site's
    frame (and its image, resolved against the frame's own URL), srcdoc and data: frames,
    nested frames; never a local file or a private host; `iframes: false` fetches none."""
    site.routes["/frames/frame.html"] = (200, "text/html; charset=utf-8", (
        b"<html><head><style>p { display: none }</style></head><body><p>FRAMETEXT "
        b"\xc3\xa9t\xc3\xa9</p><img src='pixel.png'>"
        b"<iframe src='/frames/inner.html' width=200 height=60></iframe></body></html>"))
    site.routes["/frames/inner.html"] = (200, "text/html", b"<p>INNERTEXT</p>")
    site.routes["/frames/pixel.png"] = (200, "image/png", PIXEL)
    private = Recorder()  # a live server on 127.0.0.1, which the guard does not allow
    private.routes["/private.html"] = (200, {"Content-Type": "text/html"}, b"<p>PRIVATETEXT</p>")
    html = (f'<p>Outer</p><iframe src="{site.base}/frames/frame.html" width="400" '
            'height="200"></iframe><iframe srcdoc="&lt;p&gt;SRCDOCTEXT&lt;/p&gt;"></iframe>'
            '<iframe src="data:text/html,%3Cp%3EDATATEXT%3C/p%3E"></iframe>'
            '<iframe src="file:///etc/passwd"></iframe>'
            f'<iframe src="{private.base}/private.html"></iframe><p>After</p>')
    text = " ".join(pdf_text(sapi.create_doc({**D, "document_content": html})).split())
    for word in ("Outer", "FRAMETEXT été", "INNERTEXT", "SRCDOCTEXT", "DATATEXT", "After"):
        assert word in text, (word, text)
    assert "root:" not in text  # /etc/passwd stayed unread
    assert "PRIVATETEXT" not in text and private.requests == []  # never reached
    assert site.paths().count("/frames/frame.html") == 1
    assert "/frames/inner.html" in site.paths() and "/frames/pixel.png" in site.paths()
    before = len(site.requests)
    text = pdf_text(sapi.create_doc({**D, "document_content": html,
                                     "prince_options": {"iframes": False}}))
    assert "Outer" in text and "FRAMETEXT" not in text and "SRCDOCTEXT" not in text
    assert len(site.requests) == before  # nothing fetched
    # a frame the guard refuses fails the document when resource errors count
    error = api_error(sapi.create_doc, {**D, "ignore_resource_errors": False,
                                        "document_content": f'<iframe src="{private.base}/x">'
                                                            '</iframe><p>x</p>'})
    assert error.status == 422 and "127.0.0.1" in error.body
    assert private.requests == []
    private.shutdown()


def test_insecure_is_accepted_and_ignored_with_a_warning(sapi, special):
    created = sapi.create_async_doc({**D, "prince_options": {"insecure": True}})
    status = wait_status(sapi, created.status_id)
    assert status.status == "completed"
    assert_valid_pdf(fetch(status.download_url))
    with special.client() as http:
        result = http.get(f"/v1/jobs/{created.status_id}/result")
    assert result.status_code == 200, result.text
    assert any("insecure is ignored" in w for w in result.json()["result"]["warnings"])


def test_28_encryption_and_permissions(sapi):
    data = sapi.create_doc({**D, "prince_options": {"encrypt": True, "user_password": "u",
                                                    "disallow_print": True}})
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(data))
    with pikepdf.open(io.BytesIO(data), password="u") as pdf:
        assert pdf.is_encrypted
        assert not pdf.allow.print_highres and not pdf.allow.print_lowres
        assert pdf.allow.extract
    data = sapi.create_doc({**D, "prince_options": {"encrypt": True, "key_bits": 40,
                                                    "disallow_copy": True}})
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert pdf.is_encrypted and pdf.encryption.bits == 40 and not pdf.allow.extract


def test_29_title_and_profile(sapi):
    data = sapi.create_doc({**D, "prince_options": {"pdf_title": "T"}})
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert str(pdf.docinfo["/Title"]) == "T"
    data = sapi.create_doc({**D, "test": False, "prince_options": {"profile": "PDF/A-3b"}})
    with pikepdf.open(io.BytesIO(data)) as pdf:
        meta = pdf.open_metadata()
        assert meta.pdfa_status == "3B"
    error = api_error(sapi.create_doc, {**D, "prince_options": {"profile": "PDF/A-9z"}})
    assert error.status == 422 and "profile PDF/A-9z is not supported" in error.body


def test_page_margin_and_unsupported_prince_options(sapi):
    html = "<body style='margin:0'><p style='margin:0'>Margins</p></body>"
    narrow = sapi.create_doc({**D, "test": False, "document_content": html,
                              "prince_options": {"page_margin": "0.5in"}})
    wide = sapi.create_doc({**D, "test": False, "document_content": html,
                            "prince_options": {"page_margin": "3in"}})
    import pypdfium2 as pdfium

    def left(data: bytes) -> float:
        page = pdfium.PdfDocument(data)[0]
        return page.get_textpage().get_charbox(0)[0]

    assert left(narrow) == pytest.approx(36, abs=3) and left(wide) == pytest.approx(216, abs=3)
    error = api_error(sapi.create_doc, {**D, "prince_options": {
        "http_proxy": "http://proxy:3128", "insecure": True, "no_author_style": True}})
    assert error.status == 422 and "insecure" not in error.body  # insecure: a no-op
    for option in ("http_proxy", "no_author_style"):
        assert f"Prince option {option} is not supported" in error.body


# --- 30-33: test mode, raw REST, trailing slash, fuzz ---------------------------------------


def test_30_test_documents_are_marked(sapi):
    html = "".join(f"<p>Line {i}</p>" for i in range(80))
    marked = sapi.create_doc({**D, "document_content": html})
    pages = pdf_pages_text(marked)
    assert len(pages) >= 2 and all("TEST DOCUMENT" in " ".join(p.split()) for p in pages)
    clean = sapi.create_doc({**D, "test": False, "document_content": html})
    assert "TEST DOCUMENT" not in pdf_text(clean) and "Line 79" in pdf_text(clean)
    sheet = openpyxl.load_workbook(io.BytesIO(sapi.create_doc(
        {**D, "document_type": "xlsx", "document_content": table(30)}))).active
    assert sheet.max_row == 20 and sheet["A20"].value == 200
    sheet = openpyxl.load_workbook(io.BytesIO(sapi.create_doc(
        {**D, "test": False, "document_type": "xlsx", "document_content": table(30)}))).active
    assert sheet.max_row == 30


def test_31_raw_rest_encodings(special):
    server = special
    key = server.keys["acme"]
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as http:
        response = http.post("/docs", params={"user_credentials": key},
                             json={"type": "pdf", "document_content": "<p>Typed</p>"})
        assert response.status_code == 200 and response.content.startswith(b"%PDF-")
        assert response.headers["content-type"] == "application/pdf"
        response = http.post("/docs", params={"user_credentials": key},
                             content="doc[document_type]=pdf&doc[document_content]=<p>Form</p>"
                                     "&doc[prince_options][media]=screen",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200 and "Form" in pdf_text(response.content)
        response = http.post("/docs", auth=(key, "x"), data={
            "doc[document_type]": "pdf", "doc[document_content]": "<p>Multipart</p>"},
            files={"ignored": ("x.txt", b"x")})
        assert response.status_code == 200 and "Multipart" in pdf_text(response.content)
        response = http.post("/docs", auth=(key, ""),
                             json={"doc": {"document_type": "pdf", "document_content": "<p>W</p>",
                                           "async": True}})
        assert response.status_code == 200, response.text
        status_id = response.json()["status_id"]
        response = http.get(f"/status/{status_id}.json", auth=(key, ""))
        assert response.status_code == 200 and response.json()["status"] in (
            "queued", "working", "completed")
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        response = http.post("/docs", auth=(key, ""), content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and b"<errors>" in response.content
        # an API key in the URL's user info, as curl sends it
        response = httpx.post(server.url.replace("://", f"://{key}@") + "/docs",
                              json={"document_type": "pdf", "document_content": "<p>U</p>"},
                              timeout=60, trust_env=False)
        assert response.status_code == 200


def test_32_trailing_slash_host(special):
    server = special
    api = doc_api(server.url + "/", server.keys["acme"])
    assert api.create_doc(D).startswith(b"%PDF-")
    status = wait_status(api, api.create_async_doc(D).status_id)
    assert status.status == "completed"
    assert api.get_async_doc(status.download_id).startswith(b"%PDF-")
    hosted = api.create_hosted_doc(D)
    assert hosted.status == "completed"
    hosted_async = wait_status(api, api.create_hosted_async_doc(D).status_id)
    assert hosted_async.status == "completed"
    assert api.expire(hosted.download_id) is None
    assert api_error(api.get_async_doc, hosted.download_id).status == 400


FUZZ = [
    {},
    {"document_type": 5, "document_content": "<p>x</p>"},
    {"document_type": "pdf"},
    {"document_type": "pdf", "document_content": ""},
    {"document_type": "pdf", "document_content": "<p>x</p>", "prince_options": "screen"},
    {"document_type": "pdf", "document_content": "<p>x</p>", "prince_options": {
        "media": "<script>", "page_margin": "1cm; } body { color: red", "key_bits": "x",
        "http_timeout": -1, "profile": "PDF/Q"}},
    {"document_type": "pdf", "document_url": "file:///etc/passwd"},
    {"document_type": "pdf", "document_url": "http://169.254.169.254/latest/meta-data/"},
    {"document_type": "pdf", "document_content": "<p>x</p>", "name": ["a"] * 300},
    {"document_type": "pdf", "document_content": "<p>\udcff\u0000\x07 é ✓</p>",
     "name": "é" * 201},
    {"document_type": "pdf", "document_content": "<p>x</p>", "hosted_download_limit": "many"},
    {"document_type": "pdf", "document_content": "<p>x</p>", "strict": "xhtml"},
    {"document_type": "xlsx", "document_content": "<p>no table here</p>"},
]


def test_33_bad_input_always_comes_back_as_api_exception(sapi, special):
    failures = 0
    for body in FUZZ:  # tolerant parsing may accept some; what fails must fail cleanly
        try:
            data = sapi.create_doc(body)
        except docraptor.rest.ApiException as exc:
            assert exc.status in (400, 422), (body, exc.status, exc.body)
            assert "<errors>" in exc.body, body
            failures += 1
        else:
            assert data.startswith((b"%PDF-", b"PK")), body
    assert failures >= len(FUZZ) - 2
    for bad_id in ("a/b c", "%ff%fe", "é" * 10, "0" * 500):
        assert api_error(sapi.get_async_doc, bad_id).status == 400
        assert api_error(sapi.get_async_doc_status, bad_id).status == 403
        assert api_error(sapi.expire, bad_id).status == 403
    with httpx.Client(base_url=special.url, timeout=60, trust_env=False) as http:
        key = special.keys["acme"]
        for raw in (b"\xff\xfe\x00garbage", b"[1, 2]", b'{"doc": "x"}', b"\x00" * 100):
            response = http.post("/docs", auth=(key, ""), content=raw,
                                 headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 422), raw
            assert response.content.decode("utf-8").startswith("<?xml")


# --- 34: time limits -----------------------------------------------------------------------


def test_34_sync_limit_and_async_limit(make_server, site):
    server = make_server("sqlite", DOCMILL_SSRF_ALLOW_HOSTS='["127.0.0.2"]',
                         DOCMILL_WORKERS="1", DOCMILL_DOCRAPTOR_SYNC_TIMEOUT_S="3",
                         DOCMILL_DOCRAPTOR_ASYNC_TIMEOUT_S="5",
                         DOCMILL_HTML_RESOURCE_TIMEOUT_S="60").start()
    api = doc_api(server.url, server.keys["acme"])
    with server.client() as native:  # warm the worker up (no DocRaptor time limit)
        warm = native.post("/v1/jobs", params={"wait": 60}, data={"operation": "html.to-pdf"},
                           files={"file": ("warm.html", b"<p>warm</p>")})
        assert warm.json()["status"] == "SUCCESS", warm.text
    site.routes["/slow.css"] = (200, "text/css", b"p { color: blue }")
    site.delays["/slow.css"] = 30
    html = f'<link rel="stylesheet" href="{site.base}/slow.css"><p>Slow</p>'
    started = time.monotonic()
    error = api_error(api.create_doc, {**D, "document_content": html})
    assert 400 <= error.status < 500 and "timed out" in error.body
    assert time.monotonic() - started < 15
    status = wait_status(api, api.create_async_doc({**D, "document_content": html}).status_id)
    assert status.status == "failed" and "timed out" in status.validation_errors
    with server.client() as native:  # the worker came back
        again = native.post("/v1/jobs", params={"wait": 60}, data={"operation": "html.to-pdf"},
                            files={"file": ("again.html", b"<p>again</p>")})
        assert again.json()["status"] == "SUCCESS", again.text


# --- retention, SSRF, hostile documents ----------------------------------------------------


def test_retention_expiry_and_short_retention(make_server):
    server = make_server("sqlite", DOCMILL_DOCRAPTOR_RETENTION_S="12",
                         DOCMILL_DOCRAPTOR_SHORT_RETENTION="true", DOCMILL_WORKERS="1",
                         DOCMILL_DOCRAPTOR_PREFIX="/docraptor").start()
    with server.client() as native:  # a warm worker: a cold start must not eat the retention
        warm = native.post("/v1/jobs", params={"wait": 60}, data={"operation": "html.to-pdf"},
                           files={"file": ("warm.html", b"<p>warm</p>")})
        assert warm.json()["status"] == "SUCCESS", warm.text
    api = doc_api(server.url + "/docraptor", server.keys["acme"])  # mounted under a prefix
    created = time.monotonic()
    kept = wait_status(api, api.create_async_doc(D).status_id, timeout=10)
    once = wait_status(api, api.create_async_doc(D).status_id, timeout=10)
    assert kept.status == once.status == "completed"
    assert once.download_url.startswith(f"{server.url}/docraptor/download/")
    assert fetch(once.download_url).startswith(b"%PDF-")
    assert api_error(api.get_async_doc, once.download_id).status == 400  # one download only
    time.sleep(max(0.0, created + 13 - time.monotonic()))  # past the retention period
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(kept.download_url)
    assert info.value.code == 400


def test_rendering_never_reaches_local_files_or_private_addresses(api):
    recorder = Recorder()
    try:
        html = FILE_ATTACKS.format(base=recorder.base, port=recorder.server_address[1])
        html += '<img src="http://127.0.0.1:1/x.png"><link rel=stylesheet href="/etc/passwd">'
        data = api.create_doc({**D, "test": False, "document_content": html})
        text = pdf_text(data)
        assert "Rendered without them" in text and "end of document" in text
        assert "root:" not in text
        assert recorder.requests == []
        status = wait_status(api, api.create_async_doc(
            {**D, "document_content": html, "prince_options": {"baseurl": recorder.base}})
            .status_id)
        assert status.status == "completed"
        assert recorder.requests == []
        error = api_error(api.create_doc, {**D, "document_content": None,
                                           "document_url": f"{recorder.base}/doc.html"})
        assert error.status == 422 and "Refused" in error.body
        assert recorder.requests == []
    finally:
        recorder.shutdown()
        recorder.server_close()


def test_document_url(sapi, site):
    site.routes["/page.html"] = (200, "text/html", b"<h1>Fetched page</h1><img src='dot.png'>")
    site.routes["/dot.png"] = (200, "image/png", PIXEL)
    site.routes["/table.html"] = (200, "text/html", table(3).encode())
    data = sapi.create_doc({"document_type": "pdf", "document_url": f"{site.base}/page.html",
                            "referrer": "http://example.com/from"})
    assert "Fetched page" in pdf_text(data)
    assert "/dot.png" in site.paths()  # relative to the document's own URL
    page_request = next(h for m, p, h, _ in site.requests if p == "/page.html")
    assert page_request.get("referer") == "http://example.com/from"
    image_request = next(h for m, p, h, _ in site.requests if p == "/dot.png")
    assert image_request.get("referer") == "http://example.com/from"  # resources carry it too
    data = sapi.create_doc({"document_type": "xlsx", "document_url": f"{site.base}/table.html"})
    assert openpyxl.load_workbook(io.BytesIO(data)).active["B3"].value == 31
    error = api_error(sapi.create_doc, {"document_type": "pdf",
                                        "document_url": f"{site.base}/nothing.html"})
    assert error.status == 422 and "Error downloading document content" in error.body
    status = wait_status(sapi, sapi.create_async_doc(
        {"document_type": "pdf", "document_url": f"{site.base}/nothing.html"}).status_id)
    assert status.status == "failed" and "HTTP 404" in status.validation_errors


def test_hostile_documents_fail_and_the_worker_stays_up(sapi):
    deep = "<div>" * 5000 + "deep" + "</div>" * 5000
    huge = "<table>" + "<tr><td>1</td><td>2</td><td>3</td></tr>" * 120_000 + "</table>"
    for html, expected in ((deep, "nested more than"), (huge, "more than 300000 elements")):
        started = time.monotonic()
        status = wait_status(sapi, sapi.create_async_doc(
            {**D, "document_content": html}).status_id, timeout=60)
        assert status.status == "failed" and expected in status.validation_errors, status
        assert time.monotonic() - started < 30
    error = api_error(sapi.create_doc, {**D, "document_content": deep})
    assert error.status == 422 and "Document Malformed" in error.body
    assert "Hello" in pdf_text(sapi.create_doc(D))


def test_strict_html(sapi):
    broken = "<!DOCTYPE html><p>Unclosed <b>bold</p></i>"
    assert "Unclosed" in pdf_text(sapi.create_doc({**D, "document_content": broken}))
    error = api_error(sapi.create_doc, {**D, "document_content": broken, "strict": "html"})
    assert error.status == 422 and "Document Malformed" in error.body
    clean = "<!DOCTYPE html><html><head><title>t</title></head><body><p>ok</p></body></html>"
    assert "ok" in pdf_text(sapi.create_doc({**D, "document_content": clean, "strict": "html"}))


def test_status_json_and_doc_log_fields_on_failure(sapi):
    created = sapi.create_async_doc({**D, "document_type": "", "name": "n" * 300})
    status = wait_status(sapi, created.status_id)
    assert status.status == "failed"
    assert status.validation_errors.split("\n") == [
        "Document type can't be blank", "Name is too long (maximum is 200 characters)"]
    assert status.download_url is None and status.download_id is None
    assert json.loads(json.dumps(status.to_dict()))["status"] == "failed"
