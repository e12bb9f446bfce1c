"""The expert.ai Extract face over HTTP (httpx) against a real server.

Each test is one or more items of the conformance checklist in
shared/specs/expertai-extract.md section 8 (the numbers are in the names). The vendor's
Python client (`expertai-extract`) is not installable here, so item 22 mimics its token
expiry check, URL building, polling loop and words decoder. Expected words come from
pypdfium2 in this process; documents are made with reportlab, pypdf, pikepdf and img2pdf.
A task's polls are kept per server (`_runs`), so the items that check one task's answer
share a single run of it.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import struct
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
import pikepdf
import pypdf
import pypdfium2 as pdfium
from reportlab.lib import colors
from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas
from reportlab.platypus import Table, TableStyle

from docmill.engines.pdf.render import page_text

UNRESERVED = re.compile(r"^[A-Za-z0-9._~-]+$")
ALLOWED_TYPES = {"page", "title", "text", "header", "footer", "table", "cell"}
TEXT_TYPES = {"title", "text", "header", "footer", "cell"}
VENDOR_SAMPLE = "H4sIAK+FKGIC/ytJLS5hYGJgYEgB4lQgrgHiIiAGAEjL9hsZAAAA"
POLL_S = 0.1
_runs: dict[tuple[str, str], tuple[list[dict], dict, float]] = {}


# --- helpers -------------------------------------------------------------------------------


def get_token(server, org: str = "acme", content_type: str = "application/json") -> str:
    body = json.dumps({"username": org, "password": server.keys[org]})
    response = httpx.post(f"{server.url}/oauth2/token", content=body,
                          headers={"Content-Type": content_type}, trust_env=False)
    assert response.status_code == 200, response.text
    return response.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json",
            "User-Agent": "OpenAPI-Generator/1.0.0/python"}


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


def start(server, token: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/beta/layout-document-async", timeout=60, trust_env=False,
                      json={"document": {"name": name, "data": b64(data)}},
                      headers=bearer(token))


def poll(server, token: str, task_id: str, timeout: float = 240) -> tuple[list[dict], dict]:
    """Every poll's body until SUCCESS or FAILURE (each checked to be a 200 JSON answer)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=60,
                      trust_env=False) as client:
        while True:
            response = client.get(f"/beta/status/{task_id}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            seen.append(body)
            if body["state"] in ("SUCCESS", "FAILURE"):
                return seen, body
            assert time.monotonic() < deadline, f"task {task_id} did not finish: {body}"
            time.sleep(POLL_S)


def run_task(server, name: str, data: bytes) -> tuple[list[dict], dict]:
    """Start and poll a task once per server and document; later calls reuse the answer."""
    key = (server.url, name)
    if key not in _runs:
        token = get_token(server)
        response = start(server, token, name, data)
        assert response.status_code == 202, response.text
        began = time.monotonic()
        seen, final = poll(server, token, response.json()["taskId"])
        _runs[key] = (seen, final, time.monotonic() - began)
    seen, final, _ = _runs[key]
    return seen, final


def succeeded(server, name: str, data: bytes) -> dict:
    _, final = run_task(server, name, data)
    assert final["state"] == "SUCCESS", final
    return final["result"]


def assert_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    errors = body["_embedded"]["errors"]
    assert isinstance(errors, list) and errors
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    return body


def official_words(encoded: str) -> list[tuple[str, int, list[int]]]:
    """The official client's loop: text up to NUL, uint32le id, 4 x uint32le bbox, skip 4."""
    raw = gzip.decompress(base64.standard_b64decode(encoded))
    out, i = [], 0
    while i < len(raw):
        end = raw.index(b"\x00", i)
        values = struct.unpack_from("<5I", raw, end + 1)
        out.append((raw[i:end].decode("utf-8"), values[0], list(values[1:])))
        i = end + 1 + 20 + 4
    return out


def check_layout(result: dict, sizes_pt: list[tuple[float, float]]) -> None:
    """Checklist 16 on one result."""
    layout = result["layout"]
    by_id = {el["id"]: el for el in layout}
    assert len(by_id) == len(layout) and all(type(i) is int for i in by_id)
    pages = [el for el in layout if el["type"] == "page"]
    assert [p["page"] for p in pages] == list(range(1, len(sizes_pt) + 1))
    assert [el["page"] for el in layout] == sorted(el["page"] for el in layout)
    for page, (w, h) in zip(pages, sizes_pt, strict=True):
        assert page["bbox"] == [0, 0, round(w * 100 / 72), round(h * 100 / 72)]
        first = next(el for el in layout if el["page"] == page["page"])
        assert first is page
    for el in layout:
        assert el["type"] in ALLOWED_TYPES
        box = el["bbox"]
        assert len(box) == 4 and all(type(v) is int for v in box)
        assert box[0] <= box[2] and box[1] <= box[3]
        assert ("content" in el) == (el["type"] in TEXT_TYPES)
        if "content" in el:
            assert isinstance(el["content"], str)
        if el["type"] == "page":
            assert "parent" not in el
            continue
        parent = by_id[el["parent"]]
        assert el["id"] in parent["children"] and parent["page"] == el["page"]
        assert parent["type"] == ("table" if el["type"] == "cell" else "page")
        if el["type"] == "cell":
            assert type(el["row"]) is int and type(el["column"]) is int
            assert type(el["isHead"]) is bool
            if "span" in el:
                assert el["span"] is None or (len(el["span"]) == 2 and el["span"] != [1, 1])
    for el in layout:
        for child in el.get("children", []):
            assert by_id[child]["parent"] == el["id"]


def check_words(result: dict) -> list[list[tuple[str, int, list[int]]]]:
    """Checklist 15 on one result; the decoded words of each page."""
    layout = {el["id"]: el for el in result["layout"]}
    pages = {el["page"]: el for el in result["layout"] if el["type"] == "page"}
    assert len(result["words"]) == result["header"]["totPages"]
    decoded = []
    for number, encoded in enumerate(result["words"], start=1):
        words = official_words(encoded)
        page_box = pages[number]["bbox"]
        for text, parent, box in words:
            assert text and "\x00" not in text
            assert layout[parent]["page"] == number
            assert layout[parent]["type"] not in ("page", "table")
            assert 0 <= box[0] <= box[2] <= page_box[2] and 0 <= box[1] <= box[3] <= page_box[3]
        decoded.append(words)
    return decoded


# --- documents -----------------------------------------------------------------------------


def golden_pdf() -> bytes:
    """Letter, one word 'test' in Helvetica 11 at x = 72 pt, its top 72 pt below the edge."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=letter)
    pdf.setTitle("Golden test")
    pdf.setFont("Helvetica", 11)
    pdf.drawString(72, letter[1] - 72 - 11 * 0.75, "test")
    pdf.save()
    return buffer.getvalue()


def report_pdf() -> bytes:
    """Two pages with a running header and footer; a ruled 2 x 3 table on page 1."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=letter)
    width, height = letter
    body = ["Revenue grew in every region during the quarter, led by strong demand.",
            "Costs stayed flat while the team shipped two new product lines.",
            "The outlook for next year remains cautious but positive overall."]
    for number in (1, 2):
        pdf.setFont("Helvetica", 9)
        pdf.drawString(72, height - 40, "Globex Quarterly Report")
        pdf.drawString(width - 150, height - 40, "Confidential")
        pdf.drawString(72, 36, f"Page {number} of 2")
        pdf.setFont("Helvetica", 11)
        y = height - 120
        for line in body:
            pdf.drawString(72, y, line)
            y -= 16
        if number == 1:
            table = Table([["Item", "Quantity", "Price"], ["Apples", "12", "3.50"]],
                          colWidths=[120, 120, 120])
            table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 1, colors.black),
                                       ("FONT", (0, 0), (-1, -1), "Helvetica", 11)]))
            table.wrapOn(pdf, width, height)
            table.drawOn(pdf, 72, y - 80)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def accents_pdf() -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=letter)
    pdf.setFont("Helvetica", 14)
    pdf.drawString(72, 700, "Caffè Straße è ß")
    pdf.save()
    return buffer.getvalue()


def thirty_pages(data: Path) -> bytes:
    writer = pypdf.PdfWriter()
    while len(writer.pages) < 30:
        writer.append(pypdf.PdfReader(data / "pdf" / "pdflatex-4-pages.pdf"))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def blank_pages(count: int) -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(count):
        writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    buffer = io.BytesIO()
    with pikepdf.open(io.BytesIO(golden_pdf())) as pdf:
        pdf.save(buffer, encryption=pikepdf.Encryption(owner="owner", user="secret"))
    return buffer.getvalue()


def page_sizes(data: bytes) -> list[tuple[float, float]]:
    doc = pdfium.PdfDocument(data)
    return [doc[i].get_size() for i in range(len(doc))]


# --- 1-3: the token ------------------------------------------------------------------------


def test_01_token_both_content_types(server):
    for content_type in ("application/json", "application/json; charset=utf-8"):
        token = get_token(server, content_type=content_type)
        assert token and token.strip() == token and not re.search(r"\s", token)
        assert not token.startswith('"') and token.count(".") == 2
        assert all(token.split("."))


def test_02_token_payload_decodes_with_standard_base64(server):
    for _ in range(10):  # the filler is random: several tokens, every one must be clean
        token = get_token(server)
        segment = token.split(".")[1]
        assert "-" not in segment and "_" not in segment
        claims = json.loads(base64.b64decode(segment + "=" * (-len(segment) % 4)))
        assert type(claims["exp"]) is int and claims["exp"] > time.time()


def test_03_wrong_credentials(server):
    url = f"{server.url}/oauth2/token"
    for body in ({"username": "acme", "password": server.keys["acme"] + "x"},
                 {"username": "acme", "password": "not-a-key"},
                 {"username": "globex", "password": server.keys["acme"]},  # someone else's org
                 {"username": "acme"}):
        assert_error(httpx.post(url, json=body, trust_env=False), 401)


# --- 4-5: using tokens ---------------------------------------------------------------------


def test_04_missing_invalid_expired_or_revoked_token(server):
    url = f"{server.url}/beta/layout-document-async"
    body = {"document": {"name": "a.pdf", "data": b64(golden_pdf())}}
    assert_error(httpx.post(url, json=body, trust_env=False), 401)
    assert_error(httpx.post(url, json=body, headers=bearer("garbage"), trust_env=False), 401)
    # An expired token: a real one, re-signed with the server's key and a past `exp`.
    secret = (server.root / "expertai-token.key").read_bytes().strip()
    claims = jwt.decode(get_token(server), secret, algorithms=["HS256"],
                        audience="docmill-expertai")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    response = httpx.post(url, json=body, headers=bearer(expired), trust_env=False)
    assert_error(response, 401)
    assert response.headers.get("www-authenticate") == "Bearer"
    forged = jwt.encode({**claims}, b"another key, as long as a real one: 32 bytes+",
                        algorithm="HS256")
    assert_error(httpx.post(url, json=body, headers=bearer(forged), trust_env=False), 401)
    # A revoked key's tokens stop working...
    key = server.cli("keys", "create", "--org", "acme").stdout.strip().splitlines()[-1]
    token = httpx.post(f"{server.url}/oauth2/token", trust_env=False,
                       json={"username": "acme", "password": key}).text
    status_url = f"{server.url}/beta/status/00000000-0000-4000-8000-000000000000"
    assert_error(httpx.get(status_url, headers=bearer(token), trust_env=False), 404)
    server.cli("keys", "revoke", key.split("_")[1])
    # ... within the key cache's 5 s (the revocation came from another process).
    deadline = time.monotonic() + 10
    while (response := httpx.get(status_url, headers=bearer(token), trust_env=False)
           ).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert_error(response, 401)


def test_05_unsubscribed_organization_is_forbidden(server):
    """tests/server.py subscribes only acme and globex (DOCMILL_EXPERTAI_SUBSCRIBED_ORGS)."""
    if "initech" not in server.keys:
        server.create_key("initech")
    token = get_token(server, "initech")  # the credentials are fine: the token is issued
    assert_error(start(server, token, "a.pdf", golden_pdf()), 403)
    response = httpx.get(f"{server.url}/beta/status/x", headers=bearer(token), trust_env=False)
    body = assert_error(response, 403)
    assert body["_embedded"]["errors"][0]["message"] == "No active subscription for Extract"


# --- 6-10: starting tasks, request errors, routing -----------------------------------------


def test_06_valid_request_is_accepted(server):
    response = start(server, get_token(server), "a.pdf", golden_pdf())
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/json")
    task_id = response.json()["taskId"]
    assert isinstance(task_id, str) and UNRESERVED.match(task_id)
    assert list(response.json()) == ["taskId"]
    assert response.headers["location"].endswith(f"/beta/status/{task_id}")


def test_07_malformed_requests(server):
    url = f"{server.url}/beta/layout-document-async"
    headers = bearer(get_token(server))
    sent = [httpx.post(url, content=b"{not json", trust_env=False,
                       headers={**headers, "Content-Type": "application/json"})]
    for body in ({}, {"document": {"name": "x.pdf"}}, {"document": "x"},
                 {"document": {"name": "x.pdf", "data": "not base64 at all!"}},
                 {"document": {"name": 3, "data": b64(golden_pdf())}}, []):
        sent.append(httpx.post(url, json=body, headers=headers, trust_env=False))
    for response in sent:
        assert_error(response, 400)


def test_08_oversize_body(server):
    token = get_token(server)
    big = b"%PDF-1.4\n" + b"0" * (11 * 1024 * 1024)  # 14.7 MB as Base64
    response = start(server, token, "big.pdf", big)
    assert_error(response, 413)
    # A streamed body with no declared length is cut at the same limit.
    payload = json.dumps({"document": {"name": "big.pdf", "data": b64(big)}}).encode()
    response = httpx.post(f"{server.url}/beta/layout-document-async", trust_env=False,
                          content=iter([payload[i:i + (1 << 20)]
                                        for i in range(0, len(payload), 1 << 20)]),
                          headers={**bearer(token), "Content-Type": "application/json"},
                          timeout=60)
    assert_error(response, 413)


def test_09_methods_paths_and_doubled_slash(server):
    token = get_token(server)
    headers = bearer(token)
    task_id = start(server, token, "a.pdf", golden_pdf()).json()["taskId"]
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False) as client:
        assert_error(client.get("/beta/layout-document-async"), 405)
        assert_error(client.post(f"/beta/status/{task_id}"), 405)
        assert_error(client.get("/oauth2/token"), 405)
        assert_error(client.get("/beta/no-such-resource"), 404)
        assert_error(client.post("/beta/status"), 404)
    # A base URL configured with a trailing slash: the client sends '//beta/...'.
    response = httpx.get(f"{server.url}//beta/status/{quote(task_id, safe='')}",
                         headers=headers, trust_env=False)
    assert response.status_code == 200 and response.json()["state"] in (
        "PENDING", "PROGRESS", "SUCCESS")
    response = httpx.post(f"{server.url}//beta/layout-document-async", headers=headers,
                          json={"document": {"name": "a.pdf", "data": b64(golden_pdf())}},
                          trust_env=False)
    assert response.status_code == 202
    response = httpx.post(f"{server.url}//oauth2/token", trust_env=False,
                          json={"username": "acme", "password": server.keys["acme"]})
    assert response.status_code == 200


def test_10_unknown_and_other_organizations_tasks(server):
    acme, globex = get_token(server, "acme"), get_token(server, "globex")
    url = f"{server.url}/beta/status/"
    assert_error(httpx.get(url + "3f2c7a0e-9d1b-4b7e-9a55-0c1d2e3f4a5b", headers=bearer(acme),
                           trust_env=False), 404)
    task_id = start(server, acme, "a.pdf", golden_pdf()).json()["taskId"]
    refused = start(server, acme, "hello.txt", b"hello").json()["taskId"]
    for other in (task_id, refused):
        assert_error(httpx.get(url + other, headers=bearer(globex), trust_env=False), 404)
        assert httpx.get(url + other, headers=bearer(acme), trust_env=False).status_code == 200
    # A job of another face (the native API) is not a task either.
    with server.client("acme") as client:
        native = client.post("/v1/jobs", data={"operation": "layout.analyze"},
                             files={"file": ("a.pdf", golden_pdf())})
        assert native.status_code in (200, 201, 202), native.text
    assert_error(httpx.get(url + native.json()["id"], headers=bearer(acme), trust_env=False),
                 404)


# --- 11-16: polling and the result ---------------------------------------------------------


def test_11_12_polls_and_progress_on_thirty_pages(server, data):
    seen, final = run_task(server, "thirty.pdf", thirty_pages(data))
    assert final["state"] == "SUCCESS"
    in_flight = seen[:-1]
    for body in in_flight:
        assert set(body) == {"current", "message", "state"}
        assert body["state"] in ("PENDING", "PROGRESS")
        assert type(body["current"]) is int and 0 <= body["current"] <= 99
        assert isinstance(body["message"], str) and body["message"]
        if body["state"] == "PENDING":
            assert body == {"current": 0, "message": "queued", "state": "PENDING"}
        else:
            assert body["message"] in ("page conversion", "classification")
    currents = [body["current"] for body in seen]
    assert currents == sorted(currents) and currents[-1] == 100
    # Real percentages: a 30-page document is seen part-way through.
    assert any(0 < body["current"] < 100 and body["state"] == "PROGRESS" for body in seen), seen


def test_13_14_15_16_success_header_words_layout(server, data):
    content = thirty_pages(data)
    _, final = run_task(server, "thirty.pdf", content)
    assert final["current"] == 100 and final["message"] == "completed"
    assert set(final) == {"current", "message", "result", "state"}
    result = final["result"]
    assert set(result) == {"header", "layout", "words"}
    header = result["header"]
    sizes = page_sizes(content)
    assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$", header["conversionDateTime"])
    assert header["documentName"] == "thirty.pdf"
    assert header["totPages"] == len(sizes) == 32
    assert 0 <= header["errorPages"] <= header["totPages"] and header["errorPages"] == 0
    assert isinstance(header["version"], str) and header["metadata"] == []
    info = pdfium.PdfDocument(content).get_metadata_dict(skip_empty=True)
    assert header["customInfo"]["Producer"] == info["Producer"]
    assert all(isinstance(k, str) and isinstance(v, str)
               for k, v in header["customInfo"].items())
    check_layout(result, sizes)
    doc = pdfium.PdfDocument(content)
    for index, words in enumerate(check_words(result)):
        expected = page_text(doc[index].get_textpage()).split()
        assert [text for text, _, _ in words] == [w for w in words_in_order(result, index + 1)]
        assert Counter(text for text, _, _ in words) == Counter(expected)


def words_in_order(result: dict, page: int) -> list[str]:
    """Words of the page's text elements, in layout order (the words string's order)."""
    out = []
    for el in result["layout"]:
        if el["page"] == page and el["type"] in TEXT_TYPES:
            out.extend(el["content"].split())
    return out


def test_17_golden_one_word_pdf(server):
    content = golden_pdf()
    result = succeeded(server, "golden.pdf", content)
    layout = result["layout"]
    assert layout[0]["bbox"] == [0, 0, 850, 1100] and layout[0]["type"] == "page"
    texts = [el for el in layout if el["type"] == "text"]
    assert len(texts) == 1 and texts[0]["content"] == "test\n"
    element = texts[0]
    assert all(abs(a - b) <= 3 for a, b in zip(element["bbox"], [100, 100, 125, 114], strict=True))
    raw = gzip.decompress(base64.standard_b64decode(result["words"][0]))
    ((text, parent, box),) = official_words(result["words"][0])
    assert (text, parent) == ("test", element["id"])
    assert all(abs(a - b) <= 3 for a, b in zip(box, [100, 101, 124, 114], strict=True))
    # Byte for byte: one 25-byte record, no separator after the last one.
    assert raw == b"test\x00" + struct.pack("<5I", element["id"], *box)
    assert result["header"]["customInfo"]["Title"] == "Golden test"
    assert result["header"]["documentName"] == "golden.pdf"
    check_layout(result, page_sizes(content))
    # The packing itself reproduces the vendor's own sample string exactly.
    from docmill.faces.expertai.render import pack_words

    assert pack_words([("test", 2, (100, 101, 124, 114))], mtime=0x622885AF) == VENDOR_SAMPLE


def test_18_headers_footers_and_table(server):
    content = report_pdf()
    result = succeeded(server, "report.pdf", content)
    check_layout(result, page_sizes(content))
    check_words(result)
    layout = result["layout"]
    for page in (1, 2):
        types = [el["type"] for el in layout if el["page"] == page]
        assert "header" in types and "footer" in types
    tables = [el for el in layout if el["type"] == "table"]
    assert len(tables) == 1
    cells = [el for el in layout if el["type"] == "cell"]
    assert len(cells) == 6 and sorted(c["id"] for c in cells) == sorted(tables[0]["children"])
    assert len({(c["row"], c["column"]) for c in cells}) == 6
    assert all(c["isHead"] == (c["row"] == 0) for c in cells)
    assert [c["content"].strip() for c in cells] == ["Item", "Quantity", "Price", "Apples",
                                                    "12", "3.50"]


def test_19_not_a_pdf_and_encrypted_pdf_fail(server):
    token = get_token(server)
    for name, content in (("hello.pdf", b"hello"), ("locked.pdf", encrypted_pdf()),
                          ("broken.pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF")):
        response = start(server, token, name, content)
        assert response.status_code == 202, response.text
        _, final = poll(server, token, response.json()["taskId"])
        assert set(final) == {"current", "message", "state"}, final
        assert final["state"] == "FAILURE" and final["current"] == 0
        assert isinstance(final["message"], str) and final["message"].strip()


def test_20_page_limit(server):
    token = get_token(server)
    response = start(server, token, "long.pdf", blank_pages(501))
    assert response.status_code == 202
    _, final = poll(server, token, response.json()["taskId"])
    assert final["state"] == "FAILURE" and "500" in final["message"], final
    assert final["message"] == "document has 501 pages, maximum is 500"


def test_21_utf8_content_and_words(server):
    result = succeeded(server, "accents.pdf", accents_pdf())
    contents = "".join(el.get("content", "") for el in result["layout"])
    assert "Caffè Straße è ß" in contents
    words = [text for text, _, _ in check_words(result)[0]]
    assert words == ["Caffè", "Straße", "è", "ß"]


def test_scanned_image_through_the_face(server, data):
    """Beyond the vendor: a scan (PNG, read by Tesseract) comes out in the same format."""
    path = sorted((data / "forms").glob("funsd_*.png"))[0]
    result = succeeded(server, path.name, path.read_bytes())
    header = result["header"]
    assert header["totPages"] == 1 and header["customInfo"] == {}
    truth = json.loads(path.with_suffix(".json").read_text())
    expected = {w["text"].lower() for item in truth["form"] for w in item.get("words", [])}
    words = check_words(result)[0]
    found = [text for text, _, _ in words]
    assert len(found) >= 0.5 * len(expected)
    assert sum(text.lower() in expected for text in found) >= 0.6 * len(found)
    from PIL import Image

    with Image.open(path) as image:
        dpi = image.info.get("dpi", (96, 96))[0] or 96
        size_pt = (image.width * 72 / dpi, image.height * 72 / dpi)
    check_layout(result, [size_pt])


# --- 22: the official client's logic -------------------------------------------------------


class MimicClient:
    """What `expertai-extract` 0.1.2 does: token from `authorization_host`, expiry read from
    the token's payload with standard base64, URLs by concatenation, the path id quoted with
    no safe characters, polling until SUCCESS or FAILURE."""

    def __init__(self, authorization_host: str, host: str, username: str, password: str):
        self.authorization_host, self.host = authorization_host, host
        self.username, self.password = username, password
        self.token: str | None = None
        self.token_fetches = 0

    def _expired(self) -> bool:
        if self.token is None or len(self.token.split(".")) != 3:
            return True
        payload = self.token.split(".")[1]
        claims = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        return time.time() >= claims.get("exp", float("inf"))

    def _headers(self) -> dict[str, str]:
        if self._expired():
            response = httpx.post(self.authorization_host, trust_env=False,
                                  json={"username": self.username, "password": self.password},
                                  headers={"Content-Type": "application/json; charset=utf-8"})
            if response.status_code != 200:
                raise RuntimeError(f"Failed authentication with status: {response.status_code}")
            self.token = response.content.decode("utf-8")
            self.token_fetches += 1
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "OpenAPI-Generator/1.0.0/python"}

    def layout_document_async(self, name: str, data: str) -> str:
        response = httpx.post(self.host + "/layout-document-async", headers=self._headers(),
                              json={"document": {"name": name, "data": data}}, trust_env=False)
        assert response.status_code == 202, response.text
        task_id = response.json()["taskId"]
        assert isinstance(task_id, str)
        return task_id

    def status(self, task_id: str) -> dict:
        response = httpx.get(self.host + "/status/" + quote(task_id, safe=""),
                             headers=self._headers(), trust_env=False)
        assert response.status_code == 200, response.text
        body = response.json()
        assert type(body["current"]) is int and isinstance(body["message"], str)
        return body


def test_22_official_client_flow(server):
    client = MimicClient(f"{server.url}/oauth2/token", f"{server.url}/beta/", "acme",
                         server.keys["acme"])  # a base with a trailing slash, as users write
    task_id = client.layout_document_async("report.pdf", b64(report_pdf()))
    while True:
        body = client.status(task_id)
        if body["state"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(POLL_S)
    assert body["state"] == "SUCCESS"
    assert client.token_fetches == 1  # the token's expiry was readable: no refetch per call
    for encoded in body["result"]["words"]:
        assert official_words(encoded)
