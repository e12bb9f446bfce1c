"""The ConvertAPI face against real servers: the official `convertapi` client (2.0.1) for sync
calls, raw HTTP (httpx) for what the client does not do (async, semi-async, webhooks, other
request encodings). Numbers in the test names are the items of the conformance checklist in
shared/specs/convertapi.md section 8.

Content is checked, not only status codes: PDF text and page counts (pypdfium2, pypdf), image
sizes (Pillow), archive members, split counts. `convertapi.ApiError` is a BaseException, so
failures are caught with `pytest.raises(convertapi.ApiError)` explicitly.
"""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import convertapi
import docx
import httpx
import pypdf
import pypdfium2 as pdfium
import pytest
import requests
from PIL import Image
from server import DocmillServer

DOCX_PARAGRAPHS = ["Docmill converts this quarterly report", "Revenue grew in every region",
                   "The second page starts here"]
SYNC_TIMEOUT = 120


# --- documents --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def docs(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """test.docx (2 pages, known text) and test.pdf (3 pages, from the corpus)."""
    folder = tmp_path_factory.mktemp("convertapi-docs")
    document = docx.Document()
    document.add_heading(DOCX_PARAGRAPHS[0], level=1)
    document.add_paragraph(DOCX_PARAGRAPHS[1])
    document.add_page_break()
    document.add_paragraph(DOCX_PARAGRAPHS[2])
    document.save(folder / "test.docx")
    reader = pypdf.PdfReader(data / "pdf" / "pdflatex-4-pages.pdf")
    writer = pypdf.PdfWriter()
    for page in reader.pages[:3]:
        writer.add_page(page)
    with open(folder / "test.pdf", "wb") as handle:
        writer.write(handle)
    return folder


def pdf_texts(content: bytes) -> list[str]:
    doc = pdfium.PdfDocument(io.BytesIO(content))
    try:
        texts = []
        for page in doc:
            textpage = page.get_textpage()
            texts.append(" ".join(textpage.get_text_range().split()))
            textpage.close()
            page.close()
        return texts
    finally:
        doc.close()


@pytest.fixture(scope="session")
def pdf_page_texts(docs: Path) -> list[str]:
    return pdf_texts((docs / "test.pdf").read_bytes())


# --- the official client, pointed at a server -------------------------------------------------

@pytest.fixture
def capi(server: DocmillServer):
    """The `convertapi` module configured for the session's server (restored afterwards)."""
    saved = (convertapi.base_uri, convertapi.api_credentials, convertapi.max_parallel_uploads)
    convertapi.base_uri = server.url + "/"
    convertapi.api_credentials = server.keys["acme"]
    yield convertapi
    convertapi.base_uri, convertapi.api_credentials, convertapi.max_parallel_uploads = saved


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[requests.PreparedRequest]:
    """Every HTTP request the official client sends, in order."""
    sent: list[requests.PreparedRequest] = []
    original = requests.Session.send

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(request)
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return sent


def calls(sent: list[requests.PreparedRequest]) -> list[tuple[str, str]]:
    return [(r.method or "", urlsplit(r.url or "").path) for r in sent]


def form_of(request: requests.PreparedRequest) -> dict[str, list[str]]:
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    return parse_qs(body, keep_blank_values=True)


def vendor_client(srv: DocmillServer) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=SYNC_TIMEOUT, trust_env=False,
                        headers={"Authorization": f"Bearer {srv.keys['acme']}"})


@pytest.fixture
def raw(server: DocmillServer):
    with vendor_client(server) as client:
        yield client


def assert_vendor_error(response: httpx.Response, status: int, code: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and body["Code"] == code, body
    assert isinstance(body["Message"], str) and body["Message"].strip(), body
    assert "Traceback" not in body["Message"]
    return body


# --- 1-3: account and credentials -------------------------------------------------------------

def test_01_user(capi):
    info = capi.user()
    assert info["Active"] is True
    assert isinstance(info["ConversionsTotal"], int)
    assert isinstance(info["ConversionsConsumed"], int)


def test_02_unknown_credentials(capi, server, docs):
    capi.api_credentials = "TEST"
    with pytest.raises(convertapi.ApiError) as exc:
        capi.user()
    assert exc.value.code in (4010, 4011)
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("pdf", {"Url": "https://example.com/"})
    assert exc.value.code in (4010, 4011)
    response = httpx.get(f"{server.url}/user", headers={"Authorization": "Bearer TEST"})
    assert_vendor_error(response, 401, 4011)
    assert_vendor_error(httpx.get(f"{server.url}/user", params={"Secret": "TEST"}), 401, 4010)


def test_03_missing_credentials_and_query_secret(server):
    assert_vendor_error(httpx.get(f"{server.url}/user"), 401, 4013)
    assert_vendor_error(httpx.post(f"{server.url}/convert/docx/to/pdf"), 401, 4013)
    for name in ("Secret", "secret", "Token", "auth"):
        response = httpx.get(f"{server.url}/user", params={name: server.keys["acme"]})
        assert response.status_code == 200 and response.json()["Active"] is True


# --- 4-8: files in, PDFs out ------------------------------------------------------------------

def test_04_docx_to_pdf(capi, wire, docs, tmp_path):
    result = capi.convert("pdf", {"File": str(docs / "test.docx")})
    assert calls(wire)[:2] == [("POST", "/upload"), ("POST", "/convert/docx/to/pdf")]
    assert len(wire) == 2
    assert form_of(wire[1])["StoreFile"] == ["True"]
    assert result.conversion_cost >= 1
    assert result.file.filename == "test.pdf"
    saved = Path(result.file.save(str(tmp_path)))
    assert saved == tmp_path / "test.pdf"
    content = saved.read_bytes()
    assert content.startswith(b"%PDF-")
    assert len(pypdf.PdfReader(io.BytesIO(content)).pages) == 2
    texts = pdf_texts(content)
    assert DOCX_PARAGRAPHS[0] in texts[0] and DOCX_PARAGRAPHS[1] in texts[0]
    assert DOCX_PARAGRAPHS[2] in texts[1]
    assert result.conversion_cost == 2  # pages processed
    assert result.file.size == len(content)


def test_05_from_format_without_extension(capi, wire, docs, tmp_path):
    plain = tmp_path / "test"
    plain.write_bytes((docs / "test.docx").read_bytes())
    result = capi.convert("pdf", {"File": str(plain)}, from_format="docx")
    assert ("POST", "/convert/docx/to/pdf") in calls(wire)
    assert result.file.filename == "test.pdf"
    assert DOCX_PARAGRAPHS[0] in pdf_texts(result.file.io.getvalue())[0]


def test_06_unknown_file_id_on_empty_from(capi, wire):
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("pdf", {"File": "abc"})
    assert calls(wire) == [("POST", "/convert//to/pdf")]
    assert exc.value.code == 5009


def test_06_empty_from_resolved_from_the_file(raw, docs):
    uploaded = raw.post("/upload", content=(docs / "test.docx").read_bytes(),
                        headers={"Content-Disposition": "attachment; filename=report.docx"})
    response = raw.post("/convert//to/pdf", data={"File": uploaded.json()["FileId"]})
    assert response.status_code == 200, response.text
    assert response.json()["Files"][0]["FileName"] == "report.pdf"


def test_07_unicode_file_name(capi, wire, docs, tmp_path):
    odd = tmp_path / "my file é.docx"
    odd.write_bytes((docs / "test.docx").read_bytes())
    result = capi.convert("pdf", {"File": str(odd)})
    assert wire[0].headers["Content-Disposition"] == \
        "attachment; filename*=UTF-8''my%20file%20%C3%A9.docx"
    assert result.file.filename == "my file é.pdf"
    saved = Path(result.file.save(str(tmp_path)))
    assert saved.name == "my file é.pdf" and saved.read_bytes().startswith(b"%PDF-")


def test_08_upload_io_text(capi, wire):
    upload = convertapi.UploadIO(io.BytesIO(b"hello from a text file"), "note.txt")
    result = capi.convert("pdf", {"File": upload})
    assert upload.file_ext == "txt"
    assert calls(wire)[:2] == [("POST", "/upload"), ("POST", "/convert/txt/to/pdf")]
    content = result.file.io.getvalue()
    assert content[:5] == b"%PDF-"
    assert "hello from a text file" in pdf_texts(content)[0]
    assert result.file.filename == "note.pdf"


# --- 11-18: images, archives, PDF tools --------------------------------------------------------

def test_11_pdf_to_jpg(capi, server, docs, tmp_path):
    result = capi.convert("jpg", {"File": str(docs / "test.pdf")})
    assert [f.filename for f in result.files] == ["test.jpg", "test-2.jpg", "test-3.jpg"]
    assert result.conversion_cost == 3
    source = pdfium.PdfDocument(docs / "test.pdf")
    for index, item in enumerate(result.files):
        assert item.url.startswith(server.url + "/d/")
        saved = Path(item.save(str(tmp_path)))
        with Image.open(saved) as image:
            assert image.format == "JPEG"
            width, height = source[index].get_size()  # points; 150 dpi by default
            assert image.size == (round(width * 150 / 72), round(height * 150 / 72))
    # ImageResolution and PageRange are translated to the engine's dpi and pages
    small = capi.convert("jpg", {"File": str(docs / "test.pdf"), "ImageResolution": 36,
                                 "PageRange": "2-3"})
    assert len(small.files) == 2
    with Image.open(small.files[0].io) as image:
        width, height = source[1].get_size()
        assert image.size == (round(width / 2), round(height / 2))


def test_12_zip_of_results(capi, wire, server, docs):
    images = capi.convert("jpg", {"File": str(docs / "test.pdf"), "ImageResolution": 36})
    wire.clear()
    archive = capi.convert("zip", {"Files": images.files})
    assert calls(wire) == [("POST", "/convert/any/to/zip")]
    form = form_of(wire[0])
    assert [form[f"Files[{i}]"][0] for i in range(3)] == [f.url for f in images.files]
    assert all(form[f"Files[{i}]"][0].startswith(server.url + "/d/") for i in range(3))
    with zipfile.ZipFile(archive.file.io) as zipped:
        assert zipped.namelist() == ["test.jpg", "test-2.jpg", "test-3.jpg"]
        assert zipped.read("test-2.jpg") == images.files[1].io.getvalue()
    assert archive.file.filename == "test.zip"


def test_13_chained_docx_pdf_zip_name(capi, docs):
    pdf = capi.convert("pdf", {"File": str(docs / "test.docx")})
    assert capi.convert("zip", {"Files": pdf.files}).file.filename == "test.zip"


def test_14_split_then_merge(capi, docs, pdf_page_texts):
    parts = capi.convert("split", {"File": str(docs / "test.pdf")})
    assert len(parts.files) == 3
    for index, part in enumerate(parts.files):
        content = part.io.getvalue()
        assert len(pypdf.PdfReader(io.BytesIO(content)).pages) == 1
        assert pdf_texts(content) == [pdf_page_texts[index]]
    merged = capi.convert("merge", {"Files": [parts.files[0], parts.files[-1]]})
    content = merged.file.io.getvalue()
    assert pdf_texts(content) == [pdf_page_texts[0], pdf_page_texts[2]]
    assert merged.conversion_cost == 2


@pytest.mark.parametrize("parallel", [10, 1])
def test_15_merge_the_same_file_three_times(capi, wire, docs, pdf_page_texts, parallel):
    capi.max_parallel_uploads = parallel
    merged = capi.convert("merge", {"Files": [str(docs / "test.pdf")] * 3})
    assert calls(wire).count(("POST", "/upload")) == 3
    assert pdf_texts(merged.file.io.getvalue()) == pdf_page_texts * 3


def supported(server: DocmillServer, source: str, target: str) -> bool:
    """Whether the generated converter list has the pair (the PDF tools engine may be absent:
    then the face must answer the vendor's error)."""
    return httpx.get(f"{server.url}/info/canconvert/{source}/to/{target}").status_code == 200


def assert_unsupported(capi, target: str, params: dict) -> None:
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert(target, params)
    assert exc.value.code == 4000 and target in exc.value.message


def test_16_extract_then_scaled_jpg(capi, server, docs, pdf_page_texts):
    params = {"File": str(docs / "test.pdf"), "PageRange": 1}
    if not supported(server, "pdf", "extract"):
        assert_unsupported(capi, "extract", params)
        return
    extracted = capi.convert("extract", params)
    assert extracted.file.filename == "test.pdf"
    assert pdf_texts(extracted.file.io.getvalue()) == [pdf_page_texts[0]]
    image = capi.convert("jpg", {"File": extracted, "ScaleImage": True, "ScaleProportions": True,
                                 "ImageHeight": 300, "ImageWidth": 300})
    assert len(image.files) == 1
    with Image.open(image.file.io) as picture:
        assert picture.format == "JPEG"
        size = picture.size
    assert max(size) == 300 and min(size) < 300  # fitted into the box, proportions kept


def test_17_protect_unprotect(capi, server, docs, pdf_page_texts):
    if not supported(server, "pdf", "protect"):
        assert_unsupported(capi, "protect", {"File": str(docs / "test.pdf"),
                                             "UserPassword": "s3"})
        return
    locked = capi.convert("protect", {"File": str(docs / "test.pdf"), "UserPassword": "s3"})
    reader = pypdf.PdfReader(io.BytesIO(locked.file.io.getvalue()))
    assert reader.is_encrypted and reader.decrypt("s3")
    assert len(reader.pages) == 3
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("unprotect", {"File": locked, "Password": "wrong"})
    assert exc.value.code in (5006, 5003)
    opened = capi.convert("unprotect", {"File": locked, "Password": "s3"})
    content = opened.file.io.getvalue()
    assert not pypdf.PdfReader(io.BytesIO(content)).is_encrypted
    assert pdf_texts(content) == pdf_page_texts


def test_rotate_with_vendor_parameter_names(capi, server, docs):
    params = {"File": str(docs / "test.pdf"), "RotatePage": 180, "PageRange": "2"}
    if not supported(server, "pdf", "rotate"):
        assert_unsupported(capi, "rotate", params)
        return
    rotated = capi.convert("rotate", params)
    reader = pypdf.PdfReader(io.BytesIO(rotated.file.io.getvalue()))
    assert [page.rotation % 360 for page in reader.pages] == [0, 180, 0]


def test_17_password_protected_pdf(capi, data):
    locked = data / "malformed" / "libreoffice-writer-password.pdf"
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("jpg", {"File": str(locked)})
    assert exc.value.code == 5003
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("jpg", {"File": str(locked), "Password": "wrong"})
    assert exc.value.code == 5006
    opened = capi.convert("jpg", {"File": str(locked), "Password": "openpassword"})
    with Image.open(opened.file.io) as image:
        assert image.format == "JPEG"


def test_18_bad_page_range(capi, raw, docs):
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("pdf", {"File": str(docs / "test.docx"), "PageRange": "x-y"})
    assert exc.value.code == 4000 and "PageRange" in exc.value.invalid_parameters
    response = raw.post("/convert/docx/to/pdf", data={"PageRange": "x-y"},
                        files={"File": ("test.docx", (docs / "test.docx").read_bytes())})
    assert_vendor_error(response, 400, 4000)


def test_18_page_range_applied(capi, docs):
    result = capi.convert("pdf", {"File": str(docs / "test.docx"), "PageRange": "2"})
    texts = pdf_texts(result.file.io.getvalue())
    assert len(texts) == 1 and DOCX_PARAGRAPHS[2] in texts[0]


def test_19_compare_is_a_json_error(capi, wire, docs):
    with pytest.raises(convertapi.ApiError) as exc:
        capi.convert("compare", {"File": str(docs / "test.docx"),
                                 "CompareFile": str(docs / "test.docx")})
    assert calls(wire) == [("POST", "/upload"), ("POST", "/upload"),
                           ("POST", "/convert/docx/to/compare")]
    assert exc.value.code == 4000


def test_20_unknown_target(capi, raw, docs):
    with pytest.raises(convertapi.ApiError):
        capi.convert("mp3", {"File": str(docs / "test.pdf")})
    assert_vendor_error(raw.post("/convert/pdf/to/mp3", data={"File": "x"}), 404, 4000)


# --- 21-24: the file server and other request encodings ----------------------------------------

def test_21_delete_stored_file(capi, server, docs):
    result = capi.convert("pdf", {"File": str(docs / "test.docx")})
    url, file_id = result.file.url, result.response["Files"][0]["FileId"]
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-type"] == "application/pdf"
    assert int(head.headers["content-length"]) == result.file.size
    assert httpx.delete(f"{server.url}/d/{file_id}").status_code == 200
    assert_vendor_error(httpx.get(url), 404, 4040)
    assert httpx.head(url).status_code == 404
    assert httpx.delete(f"{server.url}/d/{file_id}").status_code == 404


def test_22_raw_uploads(raw, server, docs):
    content = (docs / "test.pdf").read_bytes()
    multipart = raw.post("/upload", files={"file": ("a.pdf", content)})
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["FileName"] == "a.pdf" and multipart.json()["FileSize"] == len(content)
    octet = raw.post("/upload", params={"filename": "x.pdf"}, content=content,
                     headers={"Content-Type": "application/octet-stream"})
    body = octet.json()
    assert (body["FileName"], body["FileExt"], body["FileSize"]) == ("x.pdf", "pdf", len(content))
    assert body["Url"] == f"{server.url}/d/{body['FileId']}"
    assert httpx.get(body["Url"]).content == content
    plain = raw.post("/upload", params={"filename": "y.pdf"}, content=content,
                     headers={"Accept": "text/plain"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{server.url}/d/{plain.text}/y.pdf").content == content
    nameless = raw.post("/upload", content=content)
    assert_vendor_error(nameless, 400, 4001)


def test_23_inline_file_data(raw, docs):
    response = raw.post("/convert/docx/to/pdf", data={"StoreFile": "false"},
                        files={"File": ("test.docx", (docs / "test.docx").read_bytes())})
    assert response.status_code == 200, response.text
    item = response.json()["Files"][0]
    assert "Url" not in item and "FileId" not in item
    content = base64.b64decode(item["FileData"])
    assert content.startswith(b"%PDF-") and item["FileSize"] == len(content)
    assert DOCX_PARAGRAPHS[0] in pdf_texts(content)[0]


def test_24_json_parameters(raw, docs):
    data = base64.b64encode((docs / "test.docx").read_bytes()).decode()
    response = raw.post("/convert/docx/to/pdf", json={"Parameters": [
        {"Name": "File", "FileValue": {"Name": "a.docx", "Data": data}},
        {"Name": "StoreFile", "Value": True}]})
    assert response.status_code == 200, response.text
    item = response.json()["Files"][0]
    assert item["FileName"] == "a.pdf"
    assert DOCX_PARAGRAPHS[0] in pdf_texts(raw.get(item["Url"]).content)[0]


def test_24_json_file_values_by_id_and_own_url(raw, docs, pdf_page_texts):
    uploaded = raw.post("/upload", params={"filename": "test.pdf"},
                        content=(docs / "test.pdf").read_bytes()).json()
    response = raw.post("/convert/pdf/to/merge", json={"Parameters": [
        {"Name": "Files", "FileValues": [{"Id": uploaded["FileId"]}, {"Url": uploaded["Url"]}]},
        {"Name": "storefile", "Value": "true"}]})
    assert response.status_code == 200, response.text
    merged = raw.get(response.json()["Files"][0]["Url"]).content
    assert pdf_texts(merged) == pdf_page_texts * 2


def test_encodings_octet_stream_query_string_and_case(raw, docs):
    content = (docs / "test.docx").read_bytes()
    octet = raw.post("/convert/DOCX/to/PDF", params={"storefile": "TRUE", "filename": "out"},
                     content=content,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Disposition": 'attachment; filename="in.docx"'})
    assert octet.status_code == 200, octet.text
    assert octet.json()["Files"][0]["FileName"] == "out.pdf"
    uploaded = raw.post("/upload", params={"filename": "q.docx"}, content=content).json()
    query = raw.get("/convert/docx/to/pdf", params={"file": uploaded["FileId"],
                                                    "StoreFile": "true"})
    assert query.status_code == 200, query.text
    assert raw.get(query.json()["Files"][0]["Url"]).content.startswith(b"%PDF-")
    indexed = raw.post("/convert/pdf/to/merge", data={"StoreFile": "true"}, files=[
        ("Files[1]", ("b.pdf", (docs / "test.pdf").read_bytes())),
        ("Files[0]", ("a.pdf", (docs / "test.pdf").read_bytes()))])
    assert indexed.status_code == 200, indexed.text
    assert indexed.json()["Files"][0]["FileName"] == "a.pdf"  # Files[0] comes first


def test_download_parameter_answers_the_bytes(raw, docs):
    response = raw.post("/convert/docx/to/pdf", params={"download": "attachment"},
                        files={"File": ("test.docx", (docs / "test.docx").read_bytes())})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="test.pdf"' in response.headers["content-disposition"]
    assert response.content.startswith(b"%PDF-")


def test_converter_list_is_generated_from_the_engines(raw, server):
    listed = httpx.get(f"{server.url}/info/converters").json()["Converters"]
    pairs = {(c["SourceFormat"], c["DestinationFormat"]): c for c in listed}
    operations = {op["name"] for op in raw.get("/v1/operations").json()["operations"]}
    assert {c["Operation"] for c in listed} <= operations
    for pair, operation in [(("docx", "pdf"), "office.to-pdf"), (("pdf", "jpg"), "pdf.to-image"),
                            (("pdf", "split"), "pdf.split"), (("pdf", "merge"), "pdf.merge"),
                            (("any", "zip"), "archive.zip"), (("web", "pdf"), "html.to-pdf"),
                            (("png", "jpg"), "image.convert"), (("images", "pdf"), "image.to-pdf"),
                            (("pdf", "ocr"), "ocr.searchable-pdf"),
                            (("pdf", "txt"), "pdf.to-text")]:
        assert pairs[pair]["Operation"] == operation
    assert ("docx", "compare") not in pairs
    names = {p["Name"] for p in pairs[("pdf", "jpg")]["Parameters"]}
    assert {"PageRange", "ImageResolution", "ImageQuality", "Password"} <= names
    assert httpx.get(f"{server.url}/info/canconvert/docx/to/pdf").status_code == 200
    assert_vendor_error(httpx.get(f"{server.url}/info/canconvert/docx/to/compare"), 404, 4000)


# --- bad input through this face ----------------------------------------------------------------

def test_bad_input_answers_vendor_errors(raw, docs):
    corrupt = raw.post("/convert/docx/to/pdf",
                       files={"File": ("bad.docx", b"PK\x03\x04" + b"x" * 4000)})
    assert_vendor_error(corrupt, 500, 5002)
    truncated = raw.post("/convert/docx/to/pdf", files={
        "File": ("cut.docx", (docs / "test.docx").read_bytes()[:3000])})
    assert_vendor_error(truncated, 500, 5002)
    wrong_from = raw.post("/convert/xlsx/to/pdf", files={
        "File": ("test.pdf", (docs / "test.pdf").read_bytes())})
    assert_vendor_error(wrong_from, 415, 4000)
    assert_vendor_error(raw.post("/convert/docx/to/nothing", data={"File": "x"}), 404, 4000)
    assert_vendor_error(raw.post("/convert/None/to/pdf"), 400, 4000)
    assert_vendor_error(raw.post("/convert/docx/to/pdf", data={"Timeout": "soon", "File": "x"}),
                        400, 4000)
    assert_vendor_error(raw.post("/convert/docx/to/pdf", data={"JobId": "not-a-uuid",
                                                               "File": "x"}), 400, 4000)
    assert_vendor_error(raw.post("/convert/docx/to/pdf", content=b"{nope",
                                 headers={"Content-Type": "application/json"}), 400, 4002)


def test_bad_input_url_to_loopback_is_refused(raw):
    hits: list[str] = []
    receiver = Receiver("127.0.0.1", {"/x.docx": lambda h: hits.append(h.path) or (200, b"x")})
    try:
        response = raw.post("/convert/docx/to/pdf", data={"File": f"{receiver.base}/x.docx"})
        body = assert_vendor_error(response, 500, 5005)
        assert "127.0.0.1" in body["Message"]
        web = raw.post("/convert/web/to/pdf", data={"Url": f"{receiver.base}/x.docx"})
        assert_vendor_error(web, 500, 5005)
    finally:
        receiver.close()
    assert hits == []


def test_other_organizations_cannot_use_files_or_jobs(raw, server, docs):
    uploaded = raw.post("/upload", params={"filename": "test.pdf"},
                        content=(docs / "test.pdf").read_bytes()).json()
    job_id = raw.post("/convert/pdf/to/split", params={"Async": "true"},
                      data={"File": uploaded["FileId"]}).json()["JobId"]
    with httpx.Client(base_url=server.url, timeout=SYNC_TIMEOUT, trust_env=False,
                      headers={"Authorization": f"Bearer {server.keys['globex']}"}) as other:
        stolen = other.post("/convert/pdf/to/split", data={"File": uploaded["FileId"]})
        assert_vendor_error(stolen, 500, 5009)
        assert_vendor_error(other.get(f"/job/{job_id}"), 404, 4040)
        assert_vendor_error(other.delete(f"/job/{job_id}"), 404, 4040)
    assert httpx.get(uploaded["Url"]).status_code == 200  # the link itself needs no key
    assert until(lambda: (r := raw.get(f"/job/{job_id}")).status_code == 200 and r, 60, 0)


def test_32_no_redirect_html_or_array(raw, server):
    for method, path in [("POST", "/convert//to/pdf"), ("GET", "/convert/pdf/to/jpg"),
                         ("POST", "/upload"), ("GET", f"/job/{uuid.uuid4()}"),
                         ("DELETE", f"/job/{uuid.uuid4()}"), ("GET", "/d/nothing"),
                         ("GET", "/user")]:
        response = raw.request(method, path)
        assert response.status_code < 300 or response.status_code >= 400, (method, path)
        assert response.headers["content-type"].startswith(("application/json", "text/plain"))
        assert isinstance(response.json(), dict)


# --- a receiver on 127.0.0.2 (allowed by the async server's SSRF allow-list) -------------------

class Receiver(http.server.ThreadingHTTPServer):
    """Serves pages and records webhook calls; routes map a path to handler(request) ->
    (status, body) (a callable may sleep)."""

    daemon_threads = True

    def __init__(self, host: str, routes: dict) -> None:
        self.routes, self.hits, self.lock = routes, [], threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with receiver.lock:
                    receiver.hits.append((time.monotonic(), self.path))
                route = receiver.routes.get(urlsplit(self.path).path)
                status, body = route(self) if route else (404, b"missing")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        super().__init__((host, 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def calls_to(self, path: str) -> list[str]:
        with self.lock:
            return [p for _, p in self.hits if urlsplit(p).path == path]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


PAGE = (b"<!DOCTYPE html><html><head><title>Fixture</title></head><body>"
        b"<h1>Hello from the fixture page</h1><p>Rendered by Docmill for ConvertAPI</p>"
        b"</body></html>")


def _slow(handler) -> tuple[int, bytes]:
    time.sleep(60)
    return 200, PAGE


@pytest.fixture(scope="module")
def receiver():
    failed_once: set[str] = set()

    def flaky(handler) -> tuple[int, bytes]:  # 503 to the first call for each job
        job_id = parse_qs(urlsplit(handler.path).query).get("JobId", [""])[0]
        if job_id in failed_once:
            return 200, b"ok"
        failed_once.add(job_id)
        return 503, b"busy"

    recv = Receiver("127.0.0.2", {"/page.html": lambda h: (200, PAGE), "/slow.html": _slow,
                                  "/": lambda h: (200, PAGE),
                                  "/hook": lambda h: (200, b"ok"), "/flaky": flaky})
    yield recv
    recv.close()


@pytest.fixture(scope="module")
def hooked(server: DocmillServer, tmp_path_factory: pytest.TempPathFactory):
    """For each backend of `server`, a second server whose SSRF guard allows 127.0.0.2 (the
    receiver), with diagnostics (diag.sleep is the converter `any -> sleep`: a controllable
    slow job) and a 4 MB upload cap. With S3 it stores under a prefix of its own."""
    s3 = dict(server.s3_env)
    if s3:
        s3["DOCMILL_STORAGE_URL"] = s3["DOCMILL_STORAGE_URL"].rstrip("/") + "-convertapi"
    srv = DocmillServer(
        tmp_path_factory.mktemp(f"convertapi-{server.backend}"), backend=server.backend,
        s3_env=s3,
        extra_env={"DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]',
                   "DOCMILL_ENABLE_DIAGNOSTICS": "true",
                   "DOCMILL_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
                   "DOCMILL_WEBHOOK_BACKOFF_BASE_S": "1"})
    srv.cli("migrate")
    srv.create_key("acme", admin=True)
    srv.start()
    yield srv
    srv.destroy()


@pytest.fixture
def hraw(hooked: DocmillServer):
    with vendor_client(hooked) as client:
        yield client


@pytest.fixture
def hcapi(hooked: DocmillServer):
    saved = (convertapi.base_uri, convertapi.api_credentials)
    convertapi.base_uri = hooked.url + "/"
    convertapi.api_credentials = hooked.keys["acme"]
    yield convertapi
    convertapi.base_uri, convertapi.api_credentials = saved


def until(predicate, timeout: float = 60, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def job_event_rows(server: DocmillServer, job_id: str) -> list[tuple[str, int, datetime]]:
    """The job's transitions in order: status, attempt and when (UTC, the server's clock)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT status, attempt, at FROM job_events WHERE job_id = :id ORDER BY id"),
                {"id": job_id}).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], _utc(r[2])) for r in rows]


def _utc(at: datetime | str) -> datetime:
    at = datetime.fromisoformat(at) if isinstance(at, str) else at  # SQLite gives text
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def job_events(server: DocmillServer, job_id: str) -> list[tuple[str, int]]:
    return [(status, attempt) for status, attempt, _ in job_event_rows(server, job_id)]


def job_event_time(server: DocmillServer, job_id: str, status: str) -> datetime:
    """When the job first entered `status`."""
    times = [at for s, _, at in job_event_rows(server, job_id) if s == status]
    assert times, f"job {job_id} never became {status}"
    return times[0]


# --- 9-10: web pages ------------------------------------------------------------------------------

def test_09_web_to_pdf(hcapi, wire, receiver):
    result = hcapi.convert("pdf", {"Url": f"{receiver.base}/page.html"})
    assert calls(wire) == [("POST", "/convert/web/to/pdf")]
    content = result.file.io.getvalue()
    text = pdf_texts(content)[0]
    assert "Hello from the fixture page" in text and "Rendered by Docmill" in text
    assert result.file.filename == "page.pdf"


def test_web_conversion_named_from_the_host(hcapi, wire, receiver):
    result = hcapi.convert("pdf", {"Url": f"{receiver.base}/"})
    assert calls(wire) == [("POST", "/convert/web/to/pdf")]
    assert result.file.filename == "127.0.0.2.pdf"
    assert "Hello from the fixture page" in pdf_texts(result.file.io.getvalue())[0]


def test_10_timeout(hcapi, wire, receiver):
    result = hcapi.convert("pdf", {"Url": f"{receiver.base}/page.html"}, "web", 100)
    assert form_of(wire[0])["Timeout"] == ["100"]
    assert result.file.io.getvalue().startswith(b"%PDF-")
    started = time.monotonic()
    with pytest.raises(convertapi.ApiError) as exc:
        hcapi.convert("pdf", {"Url": f"{receiver.base}/slow.html"}, "web", 10)
    assert exc.value.code == 5000
    assert time.monotonic() - started < 20


def test_timeout_of_a_running_conversion(hraw, hooked):
    started = time.monotonic()
    response = hraw.post("/convert/any/to/sleep", data={"Seconds": "30", "Timeout": "3"},
                         files={"File": ("a.bin", b"abc")})
    assert_vendor_error(response, 500, 5000)  # 5000 is the timeout code, not 5001
    assert time.monotonic() - started < 15


def test_oversize_upload(hraw):
    big = b"\0" * (4 * 1024 * 1024 + 1)
    assert_vendor_error(hraw.post("/convert/any/to/zip", files={"File": ("big.bin", big)}),
                        413, 4000)
    assert_vendor_error(hraw.post("/upload", params={"filename": "big.bin"}, content=big),
                        413, 4000)


# --- 25-30: async, polling, webhooks, semi-async --------------------------------------------

@pytest.mark.backends("all")  # webhooks go through the outbox of each backend
def test_25_28_async_with_webhook(hraw, hooked, receiver, docs):
    response = hraw.post("/convert/docx/to/pdf", params={
        "Async": "true", "WebHook": f"{receiver.base}/hook?source=docmill"},
        data={"StoreFile": "true"},
        files={"File": ("test.docx", (docs / "test.docx").read_bytes())})
    answered = datetime.now(UTC)
    assert response.status_code == 200, response.text
    job_id = response.json()["JobId"]
    assert str(uuid.UUID(job_id)) == job_id and set(response.json()) == {"JobId"}
    hooks = until(lambda: [p for p in receiver.calls_to("/hook") if job_id in p], 60)
    # answered without waiting for the conversion: the job finished after the answer came
    assert answered < job_event_time(hooked, job_id, "SUCCESS")
    assert parse_qs(urlsplit(hooks[0]).query) == {"source": ["docmill"], "JobId": [job_id]}
    result = hraw.get(f"/job/{job_id}")
    assert result.status_code == 200, result.text
    item = result.json()["Files"][0]
    assert result.json()["ConversionCost"] == 2 and item["FileName"] == "test.pdf"
    assert DOCX_PARAGRAPHS[0] in pdf_texts(httpx.get(item["Url"]).content)[0]
    time.sleep(2)  # no second call for the same job
    assert len([p for p in receiver.calls_to("/hook") if job_id in p]) == 1
    assert_vendor_error(hraw.get(f"/job/{uuid.uuid4()}"), 404, 4040)


def test_26_27_30_polls_held_concurrent_refused_delete(hraw):
    response = hraw.post("/convert/any/to/sleep", params={"Async": "true"},
                         data={"Seconds": "12", "StoreFile": "true"},
                         files={"File": ("a.bin", b"abc")})
    job_id = response.json()["JobId"]
    first = hraw.get(f"/job/{job_id}")
    assert first.status_code == 202 and first.json() == {}
    answered = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(hraw.get, f"/job/{job_id}")
        time.sleep(1)
        concurrent = hraw.get(f"/job/{job_id}")
        assert_vendor_error(concurrent, 503, 5030)
        second = held.result()
    assert second.status_code == 202
    assert time.monotonic() - answered >= 4.9  # held: not answered within 5 s of the first
    final = until(lambda: (r := hraw.get(f"/job/{job_id}")).status_code == 200 and r, 60, 0)
    assert final.json()["Files"][0]["FileName"] == "a.bin"
    url = final.json()["Files"][0]["Url"]
    assert httpx.get(url).content == b"abc"
    deleted = hraw.delete(f"/job/{job_id}")
    assert deleted.status_code == 200
    assert_vendor_error(hraw.get(f"/job/{job_id}"), 404, 4040)
    assert_vendor_error(hraw.delete(f"/job/{job_id}"), 404, 4040)
    assert httpx.get(url).status_code == 404


@pytest.mark.backends("all")  # webhooks go through the outbox of each backend
def test_failed_async_job_polls_5xx_and_calls_the_webhook(hraw, receiver):
    response = hraw.post("/convert/docx/to/pdf", params={
        "Async": "true", "WebHook": f"{receiver.base}/hook"},
        files={"File": ("bad.docx", b"PK\x03\x04" + b"x" * 2000)})
    job_id = response.json()["JobId"]
    until(lambda: any(job_id in p for p in receiver.calls_to("/hook")), 60)
    assert_vendor_error(hraw.get(f"/job/{job_id}"), 500, 5002)


@pytest.mark.backends("all")  # webhooks go through the outbox of each backend
def test_webhook_retried_until_delivered(hraw, receiver):
    response = hraw.post("/convert/any/to/zip", params={
        "Async": "true", "WebHook": f"{receiver.base}/flaky"},
        files={"File": ("a.txt", b"zip me")})
    job_id = response.json()["JobId"]
    hits = until(lambda: len(c := [p for p in receiver.calls_to("/flaky") if job_id in p]) >= 2
                 and c, 60)
    time.sleep(3)
    assert len([p for p in receiver.calls_to("/flaky") if job_id in p]) == 2 == len(hits)
    assert hraw.get(f"/job/{job_id}").status_code == 200


def test_29_semi_async_runs_once(hraw, hooked, docs):
    job_id = str(uuid.uuid4())
    files = {"File": ("a.bin", b"semi-async")}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up; the job goes on
        hraw.post("/convert/any/to/sleep", params={"JobId": job_id},
                  data={"Seconds": "3", "StoreFile": "true"}, files=files, timeout=0.5)
    done = until(lambda: (r := hraw.get(f"/job/{job_id}")).status_code == 200 and r, 60, 0)
    again = hraw.post("/convert/any/to/sleep", params={"JobId": job_id},
                      data={"Seconds": "3", "StoreFile": "true"}, files=files)
    assert again.status_code == 200, again.text
    assert again.json() == done.json()  # the same files: attached, not converted again
    events = job_events(hooked, job_id)
    assert [s for s, _ in events].count("SUCCESS") == 1
    assert [s for s, _ in events].count("PROCESSING") == 1
    # a sync request with a fresh client JobId answers the result on its connection
    fresh = str(uuid.uuid4())
    sync = hraw.post("/convert/docx/to/pdf", params={"JobId": fresh},
                     files={"File": ("test.docx", (docs / "test.docx").read_bytes())})
    assert sync.status_code == 200 and sync.json()["Files"][0]["FileName"] == "test.pdf"
    assert hraw.get(f"/job/{fresh}").json() == sync.json()


def test_29_concurrent_requests_with_one_job_id_convert_once(hraw, hooked):
    job_id = str(uuid.uuid4())

    def post() -> httpx.Response:
        return hraw.post("/convert/any/to/sleep", params={"JobId": job_id},
                         data={"Seconds": "2", "StoreFile": "true"},
                         files={"File": ("a.bin", b"twice")})

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post(), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({str(a.json()) for a in answers}) == 1
    assert [s for s, _ in job_events(hooked, job_id)].count("SUCCESS") == 1


# --- 30-31: retention --------------------------------------------------------------------------

def test_30_31_jobs_and_files_expire(make_server, docs):
    srv = make_server("sqlite", DOCMILL_CONVERTAPI_JOB_RETENTION_S="6",
                      DOCMILL_CONVERTAPI_FILE_RETENTION_S="6",
                      DOCMILL_CONVERTAPI_POLL_HOLD_S="0").start()
    with vendor_client(srv) as client:
        uploaded = client.post("/upload", params={"filename": "test.pdf"},
                               content=(docs / "test.pdf").read_bytes()).json()
        job_id = client.post("/convert/pdf/to/split", params={"Async": "true"},
                             data={"File": uploaded["FileId"], "StoreFile": "true"}).json()["JobId"]
        result = until(lambda: (r := client.get(f"/job/{job_id}")).status_code == 200 and r, 30)
        url = result.json()["Files"][0]["Url"]
        assert httpx.get(url).status_code == 200
        until(lambda: client.get(f"/job/{job_id}").status_code == 404, 30, 0.5)
        assert_vendor_error(client.get(f"/job/{job_id}"), 404, 4040)
        assert httpx.get(url).status_code == 404
        until(lambda: httpx.get(uploaded["Url"]).status_code == 404, 30, 0.5)
        gone = client.post("/convert/pdf/to/split", data={"File": uploaded["FileId"]})
        assert_vendor_error(gone, 500, 5009)


def test_html_to_pdf_with_javascript_runs_the_scripts(capi, tmp_path):
    page = tmp_path / "scripted.html"
    page.write_text("<html><body><p id='out'>static</p><script>document.getElementById('out')"
                    ".textContent = 'written by ' + 'script';</script></body></html>")
    plain = capi.convert("pdf", {"File": str(page)}, "html")
    assert "static" in pdf_texts(plain.file.io.getvalue())[0]  # WeasyPrint: no scripts
    scripted = capi.convert("pdf", {"File": str(page), "JavaScript": True,
                                    "ConversionDelay": 0.2}, "html")
    assert "written by script" in pdf_texts(scripted.file.io.getvalue())[0]
