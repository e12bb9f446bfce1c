"""The ConvertAPI face against the 1.x official client (`convertapi==1.8.0`, in a virtualenv of
its own, see tests/clients.py), the safety of the anonymous uploads that client makes, and what
any client may meet: `Accept: multipart/mixed`, unknown routes in the vendor's error shape.

1.x differs from 2.x on the wire: `POST /upload` carries no credentials at all, every other
call puts them in the query (`?Secret=`, `?Token=`, `?Token=&ApiKey=`), and a `Converter`
parameter becomes a path suffix `/converter/{name}`.
"""

from __future__ import annotations

import email.parser
import io
import json
import textwrap
import time
from pathlib import Path

import docx
import httpx
import pypdf
import pytest
from clients import run_client
from server import DocmillServer

CLIENT = "convertapi==1.8.0"

# Runs in the 1.8.0 virtualenv: records every request the client sends, then runs `calls`.
PRELUDE = """
import json, os, sys
from urllib.parse import urlsplit, parse_qs
import requests, convertapi
sent = []
original = requests.Session.send
def send(self, request, **kwargs):
    parts = urlsplit(request.url)
    sent.append([request.method, parts.path, sorted(parse_qs(parts.query))])
    return original(self, request, **kwargs)
requests.Session.send = send
convertapi.base_uri = os.environ["BASE"] + "/"
def error(exc):
    return {"code": exc.code, "message": exc.message}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    folder = tmp_path_factory.mktemp("convertapi-1x")
    document = docx.Document()
    document.add_paragraph("Converted by the ConvertAPI 1.x client")
    document.save(folder / "letter.docx")
    reader = pypdf.PdfReader(data / "pdf" / "pdflatex-4-pages.pdf")
    writer = pypdf.PdfWriter()
    writer.add_page(reader.pages[0])
    with open(folder / "one.pdf", "wb") as handle:
        writer.write(handle)
    return folder


def client(server: DocmillServer, body: str, **env: str) -> dict:
    result = run_client(CLIENT, PRELUDE + textwrap.dedent(body), {"BASE": server.url, **env})
    assert isinstance(result, dict)
    return result


def test_uploads_without_credentials_then_converts_with_the_secret(server, files, tmp_path):
    result = client(server, """
        convertapi.api_secret = os.environ["KEY"]
        r = convertapi.convert("pdf", {"File": os.environ["DOCX"]})
        path = r.file.save(os.environ["OUT"])
        print(json.dumps({"sent": sent, "name": r.file.filename, "path": path,
                          "cost": r.conversion_cost}))
        """, KEY=server.keys["acme"], DOCX=str(files / "letter.docx"), OUT=str(tmp_path))
    upload, convert, download = result["sent"]
    assert upload == ["POST", "/upload", []]  # no credentials at all
    assert convert == ["POST", "/convert/docx/to/pdf", ["Secret"]]
    assert download[0] == "GET" and download[1].startswith("/d/")
    assert result["name"] == "letter.pdf" and result["cost"] >= 1
    reader = pypdf.PdfReader(result["path"])
    assert "Converted by the ConvertAPI 1.x client" in reader.pages[0].extract_text()


def test_multi_file_uploads_in_parallel(server, files):
    result = client(server, """
        convertapi.api_secret = os.environ["KEY"]
        r = convertapi.convert("merge", {"Files": [os.environ["PDF"]] * 3})
        print(json.dumps({"bytes": r.file.io.getvalue().hex(), "sent": sent}))
        """, KEY=server.keys["acme"], PDF=str(files / "one.pdf"))
    # the uploads ran in the client's worker processes (multiprocessing), out of `sent`'s sight
    assert result["sent"][0] == ["POST", "/convert/pdf/to/merge", ["Secret"]]
    merged = pypdf.PdfReader(io.BytesIO(bytes.fromhex(result["bytes"])))
    assert len(merged.pages) == 3


@pytest.mark.parametrize("how", ["secret", "token", "token+apikey"])
def test_query_credentials(server, files, how):
    result = client(server, """
        key = os.environ["KEY"]
        how = os.environ["HOW"]
        if how == "secret":
            convertapi.api_secret = key
        else:
            convertapi.api_token = key
            if how == "token+apikey":
                convertapi.api_key = 834345618
        user = convertapi.user()
        r = convertapi.convert("pdf", {"File": os.environ["DOCX"]})
        print(json.dumps({"user": user, "sent": sent, "size": len(r.file.io.getvalue())}))
        """, KEY=server.keys["acme"], HOW=how, DOCX=str(files / "letter.docx"))
    expected = {"secret": ["Secret"], "token": ["Token"],
                "token+apikey": ["ApiKey", "Token"]}[how]
    assert result["sent"][0] == ["GET", "/user", expected]
    assert result["sent"][2] == ["POST", "/convert/docx/to/pdf", expected]
    assert result["user"]["Active"] is True and result["size"] > 1000


def test_unknown_secret_and_missing_credentials(server, files):
    result = client(server, """
        out = {}
        convertapi.api_secret = "not-a-key"
        try:
            convertapi.user()
        except convertapi.ApiError as exc:
            out["bad_secret"] = error(exc)
        convertapi.api_secret = None  # the client then sends ?Secret=None
        try:
            convertapi.convert("pdf", {"Url": "https://example.com/"})
        except convertapi.ApiError as exc:
            out["none"] = error(exc)
        convertapi.api_secret, convertapi.api_token = None, "not-a-token"
        try:
            convertapi.user()
        except convertapi.ApiError as exc:
            out["bad_token"] = error(exc)
        print(json.dumps(out))
        """)
    assert result["bad_secret"]["code"] == 4010 and result["none"]["code"] == 4010
    assert result["bad_token"]["code"] == 4011


def test_converter_becomes_a_path_suffix(server, files):
    result = client(server, """
        convertapi.api_secret = os.environ["KEY"]
        r = convertapi.convert("pdf", {"File": os.environ["DOCX"], "Converter": "openoffice"})
        print(json.dumps({"sent": sent, "head": r.file.io.getvalue()[:5].decode()}))
        """, KEY=server.keys["acme"], DOCX=str(files / "letter.docx"))
    assert result["sent"][1][:2] == ["POST", "/convert/docx/to/pdf/converter/openoffice"]
    assert result["head"] == "%PDF-"


# --- anonymous uploads: what they cannot be used for ------------------------------------------

def raw(server: DocmillServer, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, timeout=120, trust_env=False, headers=headers)


def vendor_error(response: httpx.Response, status: int, code: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["Code"] == code and body["Message"].strip(), body
    return body


def anonymous_upload(server: DocmillServer, content: bytes, name: str) -> httpx.Response:
    with raw(server) as http:
        return http.post("/upload", content=content,
                         headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})


def test_anonymous_upload_is_useless_without_a_key(server, files):
    content = (files / "one.pdf").read_bytes()
    response = anonymous_upload(server, content, "one.pdf")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["FileExt"] == "pdf" and body["FileSize"] == len(content) and "Url" not in body
    file_id = body["FileId"]
    with raw(server) as http:
        # not a file host: the id downloads nothing
        vendor_error(http.get(f"/d/{file_id}"), 404, 4040)
        assert http.head(f"/d/{file_id}").status_code == 404
        # and converts nothing without a key
        vendor_error(http.post("/convert/pdf/to/txt", data={"File": file_id}), 401, 4013)
    with raw(server, server.keys["globex"]) as http:  # any valid key may convert it
        converted = http.post("/convert/pdf/to/txt", data={"File": file_id, "StoreFile": "true"})
        assert converted.status_code == 200, converted.text


def test_anonymous_upload_limits(make_server, files):
    srv = make_server(DOCMILL_CONVERTAPI_ANONYMOUS_MAX_BYTES="4000",
                      DOCMILL_CONVERTAPI_ANONYMOUS_RETENTION_S="2",
                      DOCMILL_CONVERTAPI_ANONYMOUS_RATE="4",
                      DOCMILL_CONVERTAPI_ANONYMOUS_RATE_WINDOW_S="3600")
    srv.start()
    vendor_error(anonymous_upload(srv, b"x" * 4001, "big.txt"), 413, 4000)
    with raw(srv) as http:  # a chunked body with no declared length is capped as it streams
        chunked = http.post("/upload", content=iter([b"x" * 3000, b"x" * 3000]),
                            headers={"Content-Disposition": "attachment; filename=big.txt"})
        vendor_error(chunked, 413, 4000)
        vendor_error(http.post("/upload", params={"url": "https://example.com/a.pdf"}),
                     401, 4013)
    small = anonymous_upload(srv, b"short lived note", "note.txt")
    assert small.status_code == 200, small.text
    time.sleep(2.5)
    with raw(srv, srv.keys["acme"]) as http:
        expired = http.post("/convert/txt/to/pdf", data={"File": small.json()["FileId"]})
        vendor_error(expired, 500, 5009)
        # with a key, uploads have the ordinary size cap and are served from /d/
        keyed = http.post("/upload", content=b"y" * 8000,
                          headers={"Content-Disposition": "attachment; filename=keyed.txt"})
        assert keyed.status_code == 200 and http.get(keyed.json()["Url"]).content == b"y" * 8000
    answers = [anonymous_upload(srv, b"note", "n.txt").status_code for _ in range(3)]
    assert answers[:1] == [200] and answers[-1] == 503, answers  # 4 per window, counted above
    limited = anonymous_upload(srv, b"note", "n.txt")
    vendor_error(limited, 503, 5031)
    assert int(limited.headers["Retry-After"]) >= 1


def test_operator_can_require_a_key_for_uploads(make_server):
    srv = make_server(DOCMILL_CONVERTAPI_ANONYMOUS_UPLOADS="false")
    srv.start()
    vendor_error(anonymous_upload(srv, b"note", "n.txt"), 401, 4013)


# --- multipart/mixed answers and unknown routes ------------------------------------------------

def test_multipart_mixed_answer(server, data):
    with raw(server, server.keys["acme"]) as http:
        response = http.post("/convert/pdf/to/split", headers={"Accept": "multipart/mixed"},
                             files={"File": ("four.pdf",
                                             (data / "pdf" / "pdflatex-4-pages.pdf").read_bytes())})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + response.headers["content-type"].encode() + b"\r\n\r\n"
        + response.content)
    parts = message.get_payload()
    assert len(parts) == 4
    for index, part in enumerate(parts):
        assert part.get_content_type() == "application/pdf"
        expected = "four.pdf" if index == 0 else f"four-{index + 1}.pdf"
        assert part.get_filename() == expected
        body = part.get_payload(decode=True)
        assert int(part["Content-Length"]) == len(body)
        assert len(pypdf.PdfReader(io.BytesIO(body)).pages) == 1


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/convert/pdf", 404), ("POST", "/convert/pdf/to/jpg/extra/bits", 404),
    ("GET", "/info/nothing-here", 404), ("GET", "/job/", 404), ("GET", "/d/", 404),
    ("PUT", "/upload", 405), ("DELETE", "/user", 405), ("GET", "/async/job/x/y", 404),
    ("PATCH", "/convert/pdf/to/jpg", 405),
    # bare face paths: an answer in the vendor's shape, never a redirect to the slashed path
    ("GET", "/convert", 404), ("POST", "/convert", 404), ("GET", "/d", 404), ("POST", "/d", 404),
    ("GET", "/info", 404), ("GET", "/job", 404), ("POST", "/async", 404)])
def test_unknown_routes_answer_in_the_vendor_shape(server, method, path, status):
    with raw(server, server.keys["acme"]) as http:
        response = http.request(method, path)
    assert response.headers["content-type"].startswith("application/json")
    body = vendor_error(response, status, 4040 if status == 404 else 4050)
    assert "detail" not in body and json.dumps(body)
    if status == 405:
        assert response.headers["allow"]


def test_unknown_routes_under_a_mount_prefix(make_server, files):
    """With the face mounted under a prefix, every unknown path under it (the bare prefix
    too) answers in the vendor's shape, and the face's real routes still work."""
    srv = make_server(DOCMILL_CONVERTAPI_PREFIX="capi")
    srv.start()
    with raw(srv, srv.keys["acme"]) as http:
        for method, path in (("GET", "/capi"), ("POST", "/capi/"), ("GET", "/capi/nothing"),
                             ("POST", "/capi/convert/pdf/to/jpg/extra")):
            vendor_error(http.request(method, path), 404, 4040)
        assert http.get("/capi/user").status_code == 200
        assert http.get("/user").status_code == 404  # not mounted at the root any more


def test_refused_uploads_reach_the_1x_client_as_api_errors(make_server, files):
    """What docs/convertapi.md promises a 1.x user: an upload Docmill refuses (over the
    anonymous cap; anonymous uploads turned off) is the client's `ApiError` with the code."""
    body = """
        convertapi.api_secret = os.environ["KEY"]
        try:
            convertapi.convert("pdf", {"File": os.environ["DOCX"]})
            print(json.dumps({"error": None}))
        except convertapi.ApiError as exc:
            print(json.dumps({"error": error(exc)}))
        """
    capped = make_server(DOCMILL_CONVERTAPI_ANONYMOUS_MAX_BYTES="1000")
    capped.start()
    result = client(capped, body, KEY=capped.keys["acme"], DOCX=str(files / "letter.docx"))
    assert result["error"] and result["error"]["code"] == 4000, result
    closed = make_server(DOCMILL_CONVERTAPI_ANONYMOUS_UPLOADS="false")
    closed.start()
    result = client(closed, body, KEY=closed.keys["acme"], DOCX=str(files / "letter.docx"))
    assert result["error"] and result["error"]["code"] == 4013, result
