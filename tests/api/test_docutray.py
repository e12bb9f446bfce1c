"""The Docutray face against real servers, driven by the official `docutray` client (0.2.1).
Numbers in the test names are the items of the conformance checklist in
shared/specs/docutray.md section 11. Also the native `/v1/document-types` API and the tenant
isolation of document types on both faces.

Returned data is checked, not only status codes: extracted data is validated against the
type's schema through the server's own validate endpoint, identification answers name one of
the options, statuses only move forward, error bodies are the vendor's.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
import time
import uuid
from pathlib import Path

import docutray
import httpx
import pypdfium2 as pdfium
import pytest
from server import DocmillServer

STATUSES = ("ENQUEUED", "PROCESSING", "SUCCESS", "ERROR")
SCHEMA = {"type": "object",
          "properties": {"invoice_number": {"type": ["string", "null"]},
                         "total": {"type": ["number", "null"]}}}
BROKEN_PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\ntrailer\n" * 20
RECEIPT_SCHEMA = {"type": "object",
                  "properties": {"company": {"type": ["string", "null"]},
                                 "date": {"type": ["string", "null"]},
                                 "total": {"type": ["number", "null"]}}}


# --- documents and clients --------------------------------------------------------------------

@pytest.fixture(scope="session")
def docs(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """invoice.pdf (a real invoice, with invoice2data's fields in invoice.json), invoice.png
    (its first page), receipt.jpg (SROIE)."""
    folder = tmp_path_factory.mktemp("docutray-docs")
    source = sorted((data / "invoices").glob("*.pdf"))[0]
    (folder / "invoice.pdf").write_bytes(source.read_bytes())
    (folder / "invoice.json").write_bytes(source.with_suffix(".json").read_bytes())
    pdf = pdfium.PdfDocument(str(source))
    try:
        pdf[0].render(scale=150 / 72).to_pil().convert("RGB").save(folder / "invoice.png")
    finally:
        pdf.close()
    (folder / "receipt.jpg").write_bytes(sorted((data / "receipts").glob("*.jpg"))[0].read_bytes())
    return folder


def client(srv: DocmillServer, org: str = "acme", base: str | None = None,
           **kwargs: object) -> docutray.Client:
    kwargs.setdefault("max_retries", 0)
    return docutray.Client(api_key=srv.keys[org], base_url=base or srv.url, **kwargs)


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[tuple[httpx.Request, httpx.Response]]:
    """Every request the official client sends, with its response, in order."""
    sent: list[tuple[httpx.Request, httpx.Response]] = []
    original = httpx.Client.send

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = original(self, request, **kwargs)
        sent.append((request, response))
        return response

    monkeypatch.setattr(httpx.Client, "send", send)
    return sent


def raw(srv: DocmillServer, org: str = "acme") -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, trust_env=False,
                        headers={"Authorization": f"Bearer {srv.keys[org]}"})


class Types:
    """The document types this module's tests convert and identify with, per server."""

    def __init__(self, srv: DocmillServer) -> None:
        c = client(srv)
        tag = uuid.uuid4().hex[:6]
        self.invoice = c.document_types.create(
            name="Supplier invoice", code_type=f"acme_invoice_{tag}",
            description="An invoice from a supplier: invoice number, dates, amounts due, VAT",
            json_schema=SCHEMA, is_draft=False)
        self.receipt = c.document_types.create(
            name="Till receipt", code_type=f"acme_receipt_{tag}",
            description="A shop or restaurant till receipt: cash, change, items, total",
            json_schema=RECEIPT_SCHEMA, is_draft=False)
        with raw(srv) as http:  # identification hints (a Docmill extra, not in the client)
            for made, words in ((self.invoice, ["invoice", "invoice number", "bill to",
                                                "due date", "VAT"]),
                                (self.receipt, ["receipt", "cash", "change", "thank you"])):
                assert http.patch(f"/v1/document-types/{made.id}",
                                  json={"keywords": words}).status_code == 200
        other = client(srv, "globex")
        self.foreign = other.document_types.create(
            name="Globex secret", code_type=f"globex_secret_{tag}", description="private",
            json_schema=SCHEMA)


@pytest.fixture(scope="module")
def types(server: DocmillServer) -> Types:
    return Types(server)


def assert_schema_valid(srv: DocmillServer, type_id: str, data: dict) -> None:
    assert isinstance(data, dict)
    result = client(srv).document_types.validate(type_id, data)
    assert result.is_valid(), result.errors.messages


# --- 1, 3, 34: auth and request ids -------------------------------------------------------------

def test_01_03_34_auth_and_request_id(server, wire, monkeypatch):
    monkeypatch.setenv("DOCUTRAY_API_KEY", server.keys["acme"])
    page = docutray.Client(base_url=server.url, max_retries=0).document_types.list()
    assert page.page == 1
    request, response = wire[-1]
    assert request.headers["authorization"] == f"Bearer {server.keys['acme']}"
    assert response.headers["x-request-id"]
    bad = docutray.Client(api_key="dm_nope_nope", base_url=server.url, max_retries=0)
    with pytest.raises(docutray.AuthenticationError) as caught:
        bad.convert.run(file=b"%PDF-1.4", document_type_code="invoice")
    assert caught.value.status_code == 401
    assert caught.value.body == {"error": "Invalid API key"}
    assert caught.value.request_id == wire[-1][1].headers["x-request-id"]


# --- 4-10, 18: sync conversion -------------------------------------------------------------------

def test_04_10_sync_convert_inputs(server, types, docs, wire):
    c = client(server)
    code = types.invoice.codeType
    pdf = (docs / "invoice.pdf").read_bytes()
    png = (docs / "invoice.png").read_bytes()
    started = time.monotonic()
    result = c.convert.run(file=docs / "invoice.pdf", document_type_code=code)
    assert time.monotonic() - started < 60
    assert [r.method for r, _ in wire] == ["POST"]  # 10: exactly one POST
    assert set(result.data) <= set(SCHEMA["properties"])
    assert_schema_valid(server, types.invoice.id, result.data)
    assert result.status == "SUCCESS" and result.conversion_id
    truth = json.loads((docs / "invoice.json").read_text())[0]  # invoice2data's fields
    assert result.data["invoice_number"] == truth["invoice_number"]
    assert result.data["total"] == pytest.approx(truth["amount"])
    for kwargs in ({"file": pdf},  # part 'image', filename 'document', application/pdf
                   {"file": docs / "invoice.png"},
                   {"file": png},  # PNG bytes the client types application/pdf: sniffed
                   {"file_base64": "data:image/png;base64," + base64.b64encode(png).decode()},
                   {"file_base64": base64.b64encode(pdf).decode(),
                    "content_type": "application/pdf"},
                   {"file_base64": base64.b64encode(png).decode()}):  # 7: no type at all
        data = c.convert.run(document_type_code=code, **kwargs).data
        assert set(data) <= set(SCHEMA["properties"]), kwargs.keys()
        assert_schema_valid(server, types.invoice.id, data)
    with pytest.raises(docutray.NotFoundError) as caught:  # 18
        c.convert.run(file=pdf, document_type_code="nope")
    assert caught.value.body == {"message": "Document type not found"}


def test_bad_inputs_answer_vendor_errors(server, types):
    code = types.invoice.codeType
    with raw(server) as http:
        answer = http.post("/api/convert", content=b"x", headers={"Content-Type": "text/plain"})
        assert answer.status_code == 415
        assert answer.json() == {"message": "Unsupported Content-Type. Use multipart/form-data "
                                            "or application/json."}
        answer = http.post("/api/convert", json={"document_type_code": code})
        assert answer.status_code == 400 and answer.json()["message"] == "Validation error"
        assert answer.json()["errors"]
        answer = http.post("/api/convert", json={"image_base64": "aGVsbG8gd29ybGQ=",
                                                 "document_type_code": code})
        assert answer.status_code == 400, answer.text  # text/plain is no document
        answer = http.post("/api/convert", json={"image_url": "http://127.0.0.1:9/x.pdf",
                                                 "document_type_code": code})
        assert answer.status_code == 400, answer.text  # SSRF guard: loopback refused
        assert answer.json()["message"].startswith("Error accessing URL")
        answer = http.post("/api/steps-async/step_1", json={})  # no such pipeline
        assert answer.status_code == 404
        assert answer.json() == {"message": "Step not found or access denied"}
        assert answer.headers["x-request-id"]
        answer = http.post("/api/no-such-endpoint", json={})
        assert answer.status_code == 404 and answer.json()["error"] == "Not found"
        answer = http.post("/api/knowledge-bases", json={})  # served: name and schema missing
        assert answer.status_code == 400 and answer.json()["message"] == "Validation error"
        assert answer.headers["x-request-id"]


# --- 9, 11-16: async conversion ------------------------------------------------------------------

def test_09_11_12_13_async_convert(server, types, docs):
    c = client(server)
    submitted = c.convert.run_async(file=docs / "invoice.pdf",
                                    document_type_code=types.invoice.codeType,
                                    document_metadata={"k": "v"})
    assert submitted.conversion_id and submitted.status == "ENQUEUED"
    seen: list[str] = []
    final = submitted.wait(poll_interval=0.5, on_status=lambda s: seen.append(s.status))
    assert set(seen) <= set(STATUSES)
    order = [STATUSES.index(s) for s in seen]
    assert order == sorted(order)  # never backwards
    assert final.status == "SUCCESS" and final.data is not None and final.error is None
    assert set(final.data) <= set(SCHEMA["properties"])
    assert final.response_timestamp >= final.request_timestamp
    assert final.document_type_code == types.invoice.codeType
    assert final.original_filename == "invoice.pdf"
    assert final.model_extra["document_metadata"] == {"k": "v"}
    # 9 in JSON: metadata as an object
    pdf = base64.b64encode((docs / "invoice.pdf").read_bytes()).decode()
    again = c.convert.run_async(file_base64=pdf, content_type="application/pdf",
                                document_type_code=types.invoice.codeType,
                                document_metadata={"batch": 7}).wait(poll_interval=0.5)
    assert again.status == "SUCCESS" and again.model_extra["document_metadata"] == {"batch": 7}


def test_14_15_16_status_errors_and_engine_failure(server, types):
    c = client(server)
    with pytest.raises(docutray.NotFoundError) as caught:
        c.convert.get_status("unknown")
    assert caught.value.body == {"error": "Conversion not found"}
    submitted = c.convert.run_async(file=BROKEN_PDF, document_type_code=types.invoice.codeType)
    with pytest.raises(docutray.PermissionDeniedError) as caught:  # 15
        client(server, "globex").convert.get_status(submitted.conversion_id)
    assert caught.value.body == {"error": "Access denied to this conversion"}
    final = submitted.wait(poll_interval=0.5)  # 16: nothing raised
    assert final.is_error() and isinstance(final.error, str) and final.error
    assert final.data is None and final.response_timestamp is not None
    with pytest.raises(docutray.UnprocessableEntityError) as caught:  # sync: 422, no retry
        client(server, max_retries=2).convert.run(file=BROKEN_PDF,
                                                  document_type_code=types.invoice.codeType)
    assert caught.value.body["status"] == "ERROR" and caught.value.body["conversion_id"]


# --- 19-22: identification -----------------------------------------------------------------------

def test_19_20_21_22_identify(server, types, docs):
    c = client(server)
    options = [types.invoice.codeType, types.receipt.codeType]
    result = c.identify.run(file=docs / "invoice.pdf", document_type_code_options=options)
    assert result.document_type.code in options
    assert 0 <= result.document_type.confidence <= 1
    assert result.document_type.name in ("Supplier invoice", "Till receipt")
    assert isinstance(result.alternatives, list)
    assert {a.code for a in result.alternatives} <= set(options) | {"other"}
    assert result.document_type.code == types.invoice.codeType
    chosen = next(a for a in result.alternatives if a.code == result.document_type.code)
    assert chosen.confidence == result.document_type.confidence
    anything = c.identify.run(file=docs / "receipt.jpg")  # 20: every usable type
    assert anything.document_type.name and 0 <= anything.document_type.confidence <= 1
    status = c.identify.run_async(file=docs / "receipt.jpg",
                                  document_type_code_options=options).wait(poll_interval=0.5)
    assert status.identification_id and status.status == "SUCCESS"  # 21
    assert status.document_type is not None and status.alternatives is not None
    assert status.document_type.code == types.receipt.codeType
    assert status.model_extra["document_type_code_options"] == options
    with pytest.raises(docutray.NotFoundError) as caught:  # 22
        c.identify.get_status("unknown")
    assert caught.value.body == {"message": "Identification not found"}
    with pytest.raises(docutray.PermissionDeniedError):
        client(server, "globex").identify.get_status(status.identification_id)


# --- steps: pipelines of the caller's organization -------------------------------------------

def step_pipeline(srv: DocmillServer, types: Types) -> dict:
    """identify among the module's two types, then extract with the schema of the one found."""
    codes = [types.invoice.codeType, types.receipt.codeType]
    with raw(srv) as http:
        made = http.post("/v1/pipelines", json={
            "name": f"identify-then-extract-{uuid.uuid4().hex[:6]}", "steps": [
                {"id": "identify", "operation": "identify.type",
                 "params": {"candidates": codes}},
                {"id": "extract", "operation": "extract.fields", "when": {
                    "step": "identify",
                    "cases": {c: {"params": {"document_type_code": c}} for c in codes}}}]})
    assert made.status_code == 201, made.text
    return made.json()


def test_steps_run_async_wait_and_status(server, types, docs):
    pipeline = step_pipeline(server, types)
    c = client(server)
    submitted = c.steps.run_async(pipeline["id"], file=docs / "invoice.pdf",
                                  document_metadata={"k": "v"})
    assert submitted.execution_id and submitted.status == "ENQUEUED"
    assert submitted.step_id == pipeline["id"]
    assert submitted.model_extra["step_name"] == pipeline["name"]
    seen: list[str] = []
    final = submitted.wait(poll_interval=0.5, on_status=lambda s: seen.append(s.status))
    order = [STATUSES.index(s) for s in seen]
    assert set(seen) <= set(STATUSES) and order == sorted(order)  # never backwards
    assert final.status == "SUCCESS" and final.error is None, final.error
    assert set(final.data) <= set(SCHEMA["properties"])  # the invoice type's schema
    assert_schema_valid(server, types.invoice.id, final.data)
    truth = json.loads((docs / "invoice.json").read_text())[0]
    assert final.data["invoice_number"] == truth["invoice_number"]
    assert final.response_timestamp >= final.request_timestamp
    assert final.original_filename == "invoice.pdf" and final.step_id == pipeline["id"]
    assert final.model_extra["document_metadata"] == {"k": "v"}
    # by name, in JSON: the receipt branch
    jpg = base64.b64encode((docs / "receipt.jpg").read_bytes()).decode()
    receipt = c.steps.run_async(pipeline["name"], file_base64=jpg,
                                content_type="image/jpeg").wait(poll_interval=0.5)
    assert receipt.status == "SUCCESS", receipt.error
    assert set(receipt.data) <= set(RECEIPT_SCHEMA["properties"]) and receipt.data
    assert_schema_valid(server, types.receipt.id, receipt.data)
    with raw(server) as http:  # the run behind it, on the native API
        run = http.get(f"/v1/runs/{final.execution_id}").json()
        assert [s["step"] for s in run["steps"]] == ["identify", "extract"]
        assert run["result"]["data"] == final.data
    # errors, in the vendor's words
    with pytest.raises(docutray.NotFoundError) as caught:
        c.steps.get_status("unknown")
    assert caught.value.body == {"message": "Execution not found"}
    with raw(server) as http:
        answer = http.get("/api/steps-async/status/not%20an%20id")
        assert answer.status_code == 400
        assert answer.json() == {"message": "Invalid execution ID format"}
    other = client(server, "globex")
    with pytest.raises(docutray.PermissionDeniedError) as caught:
        other.steps.get_status(final.execution_id)
    assert caught.value.body == {"message": "Access denied to this execution"}
    with pytest.raises(docutray.NotFoundError) as caught:  # another organization's pipeline
        other.steps.run_async(pipeline["id"], file=docs / "invoice.pdf")
    assert caught.value.body == {"message": "Step not found or access denied"}
    failed = c.steps.run_async(pipeline["id"], file=BROKEN_PDF).wait(poll_interval=0.5)
    assert failed.is_error() and isinstance(failed.error, str) and "identify" in failed.error
    assert failed.data is None


# --- 23-31: document types -------------------------------------------------------------------

def test_23_24_list_pagination_and_search(server, wire):
    server.create_key("paging")
    c = client(server, "paging")
    first = c.document_types.list()
    assert (first.page, first.limit) == (1, 20) and isinstance(first.total, int)
    assert c.document_types.list(limit=500).limit <= 100
    for index in range(45 - first.total):
        c.document_types.create(name=f"Paging type {index}", code_type=f"paging_type_{index:02d}",
                                description="zebra" if index % 10 == 0 else "plain",
                                json_schema=SCHEMA)
    del wire[:]
    items = list(c.document_types.list(limit=20).auto_paging_iter())
    assert len(items) == 45 and len({i.id for i in items}) == 45
    assert len(wire) == 3
    found = c.document_types.list(search="ZEBRA").data
    made = range(45 - first.total)
    assert {t.codeType for t in found} == {f"paging_type_{i:02d}" for i in made[::10]}
    by_code = c.document_types.list(search="type_07").data
    assert [t.codeType for t in by_code] == ["paging_type_07"]
    with raw(server, "paging") as http:
        answer = http.get("/api/document-types", params={"page": 0})
        assert answer.status_code == 400
        assert answer.json()["error"] == "Invalid pagination parameters"


def test_25_31_create_get_update_validate(server):
    user = client(server, "globex")
    tag = uuid.uuid4().hex[:6]
    created = user.document_types.create(name="Inv", code_type=f"globex_inv_{tag}",
                                         description="d", json_schema=SCHEMA, is_public=True)
    assert created.codeType == f"globex_inv_{tag}"
    assert created.isPublic is False and created.isDraft is True  # 25, 26
    for bad in ("inv", "globex_ab", "Globex_Upper", "acme_not_mine"):  # 26
        with pytest.raises(docutray.BadRequestError) as caught:
            user.document_types.create(name="Inv", code_type=bad, description="d",
                                       json_schema=SCHEMA)
        assert caught.value.body["message"] == "Validation error" and caught.value.body["errors"]
    with pytest.raises(docutray.BadRequestError) as caught:  # invalid JSON Schema
        user.document_types.create(name="Inv", code_type=f"globex_bad_{tag}", description="d",
                                   json_schema={"type": "object", "properties": {"a": {"type": 5}}})
    assert "invalid JSON Schema" in caught.value.body["errors"][0]
    published = client(server).document_types.create(
        name="Contract", code_type=f"contract_{tag}", description="d", json_schema=SCHEMA,
        is_public=True, is_draft=False)  # 26: an admin, no prefix, public
    assert published.isPublic is True and published.source == "ADMIN"
    with pytest.raises(docutray.ConflictError):  # 27
        user.document_types.create(name="Inv", code_type=f"globex_inv_{tag}", description="d",
                                   json_schema=SCHEMA)
    assert user.document_types.get(created.id).jsonSchema == SCHEMA  # 28
    with raw(server, "globex") as http:
        body = http.get(f"/api/document-types/{created.id}").json()
        assert body["data"]["codeType"] == created.codeType  # 0.2.x reads the envelope,
        assert {k: body[k] for k in body["data"]} == body["data"]  # 0.1.0 the top level
        assert body["schema_"] == SCHEMA
        assert http.get(f"/api/document-types/{published.id}").status_code == 200
    with pytest.raises(docutray.NotFoundError) as caught:  # 29
        client(server).document_types.get(created.id)
    assert caught.value.body == {"error": "Document type not found"}
    updated = user.document_types.update(created.id, name="X", is_draft=False)  # 30
    assert (updated.name, updated.isDraft) == ("X", False) and updated.status != created.status
    with raw(server, "globex") as http:
        answer = http.put(f"/api/document-types/{created.id}",
                          json={"codeType": "globex_renamed", "description": "new"})
        assert answer.status_code == 200
        assert answer.json()["data"]["codeType"] == created.codeType
        assert answer.json()["data"]["description"] == "new"
        forbidden = http.put(f"/api/document-types/{published.id}", json={"name": "Mine"})
        assert forbidden.status_code == 403
        assert forbidden.json() == {"error": "Insufficient permissions"}
        assert http.post(f"/api/document-types/{created.id}/validate").json() == {
            "error": "Invalid body"}
    good = user.document_types.validate(created.id, {"invoice_number": "A-1", "total": 12.5})
    assert good.is_valid() and good.errors.count == 0  # 31
    bad = user.document_types.validate(created.id, {"invoice_number": 7, "total": "lots"})
    assert not bad.is_valid() and bad.errors.count == 2 and len(bad.errors.messages) == 2


# --- tenant isolation (native and Docutray) ---------------------------------------------------

@pytest.mark.backends("all")  # isolation
def test_tenant_isolation_of_document_types(server, types, docs):
    secret = types.foreign  # globex's private type
    acme = client(server)
    assert secret.codeType not in {t.codeType for t in
                                   acme.document_types.list(limit=100).auto_paging_iter()}
    with pytest.raises(docutray.NotFoundError) as caught:
        acme.convert.run(file=docs / "invoice.pdf", document_type_code=secret.codeType)
    assert caught.value.body == {"message": "Document type not found"}
    options = [types.invoice.codeType, secret.codeType]
    with pytest.raises(docutray.PermissionDeniedError) as caught:
        acme.identify.run(file=docs / "invoice.pdf", document_type_code_options=options)
    assert caught.value.body == {"message": "You do not have permission to use the following "
                                            f"document types: {secret.codeType}"}
    with pytest.raises(docutray.PermissionDeniedError) as caught:
        acme.identify.run_async(file=docs / "invoice.pdf", document_type_code_options=options)
    assert caught.value.body == {"message": f"Document types not accessible: {secret.codeType}"}
    with raw(server) as http:  # the native API
        assert http.get(f"/v1/document-types/{secret.codeType}").status_code == 404
        assert http.get(f"/v1/document-types/{secret.id}").status_code == 404
        listed = http.get("/v1/document-types", params={"limit": 100}).json()
        assert secret.codeType not in {t["code"] for t in listed["document_types"]}
        assert http.delete(f"/v1/document-types/{secret.codeType}").status_code == 404
    with raw(server, "globex") as http:
        assert http.get(f"/v1/document-types/{secret.codeType}").json()["owned"] is True


def test_native_document_types_and_examples(server, docs):
    tag = uuid.uuid4().hex[:6]
    with raw(server, "globex") as http:
        bad = http.post("/v1/document-types", json={
            "code": f"globex_bad_{tag}", "name": "Bad", "description": "d",
            "schema": {"type": "object", "required": "total"}})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
        assert "invalid JSON Schema" in bad.json()["error"]["message"]
        made = http.post("/v1/document-types", json={
            "code": f"globex_receipt_{tag}", "name": "Receipts", "description": "Till receipts",
            "schema": RECEIPT_SCHEMA, "keywords": ["cash", "change"], "is_draft": False})
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        assert made.json()["source"] == "USER" and made.json()["keywords"] == ["cash", "change"]
        patched = http.patch(f"/v1/document-types/{code}", json={"keywords": ["till"]})
        assert patched.json()["keywords"] == ["till"] and patched.json()["version"] == 2
        check = http.post(f"/v1/document-types/{code}/validate", json={"total": "x"}).json()
        assert check["valid"] is False and check["errors"]
        with open(docs / "receipt.jpg", "rb") as handle:
            example = http.post(f"/v1/document-types/{code}/examples",
                                files={"file": ("receipt.jpg", handle, "image/jpeg")})
        assert example.status_code == 201, example.text
        assert example.json()["characters"] > 50 and example.json()["examples"] == 1
        assert http.get(f"/v1/document-types/{code}").json()["examples"] == 1
        assert http.delete(f"/v1/document-types/{code}").status_code == 204
        assert http.get(f"/v1/document-types/{code}").status_code == 404


def test_type_taught_by_examples_is_identified(server, data):
    """Three sample forms posted to the native examples endpoint make the Docutray face's
    identification recognise an unseen form as the taught type (the examples reach the
    engine through the candidates). Once, on SQLite: the path is the same on every backend."""
    if server.backend != "sqlite":
        pytest.skip("backend-independent; the examples endpoint runs on every backend above")
    forms = sorted((data / "forms").glob("funsd_*.png"))
    code = f"acme_field_report_{uuid.uuid4().hex[:6]}"
    with raw(server) as http:
        assert http.post("/v1/document-types", json={
            "code": code, "name": "Field report", "description": "Reports",
            "schema": {"type": "object", "properties": {"remarks": {"type": ["string", "null"]}}},
            "is_draft": False}).status_code == 201
        for path in forms[:3]:
            with open(path, "rb") as handle:
                taught = http.post(f"/v1/document-types/{code}/examples",
                                   files={"file": (path.name, handle, "image/png")})
            assert taught.status_code == 201, taught.text
        assert taught.json()["examples"] == 3
    options = [code, "invoice", "receipt", "letter"]
    found = client(server).identify.run(file=forms[3], document_type_code_options=options)
    assert found.document_type.code == code, found.alternatives
    assert found.document_type.name == "Field report"


# --- 35: the async client ------------------------------------------------------------------

def test_35_async_client(server, types, docs):
    pipeline = step_pipeline(server, types)

    async def scenario() -> None:
        async with docutray.AsyncClient(api_key=server.keys["acme"], base_url=server.url,
                                        max_retries=0) as c:
            result = await c.convert.run(file=docs / "invoice.pdf",
                                         document_type_code=types.invoice.codeType)
            assert set(result.data) <= set(SCHEMA["properties"])
            status = await c.convert.run_async(file=docs / "invoice.png",
                                               document_type_code=types.invoice.codeType)
            assert status.status == "ENQUEUED"
            final = await status.wait_async(poll_interval=0.5)
            assert final.status == "SUCCESS" and isinstance(final.data, dict)
            options = [types.invoice.codeType, types.receipt.codeType]
            found = await c.identify.run(file=docs / "invoice.pdf",
                                         document_type_code_options=options)
            assert found.document_type.code in options
            page = await c.document_types.list()
            assert (page.page, page.limit) == (1, 20)
            step = await c.steps.run_async(pipeline["id"], file=docs / "invoice.pdf")
            done = await step.wait_async(poll_interval=0.5)
            assert done.status == "SUCCESS" and set(done.data) <= set(SCHEMA["properties"])

    asyncio.run(scenario())


# --- 2, 8: a server mounted under a prefix, fetching URLs from a local host --------------------

class Files(http.server.ThreadingHTTPServer):
    """Serves the fixture documents on 127.0.0.2 (allowed through DOCMILL_SSRF_ALLOW_HOSTS)
    and records the webhooks POSTed to /hook."""

    def __init__(self, folder: Path) -> None:
        hooks = self.hooks = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                path = folder / self.path.lstrip("/")
                if self.path.count("/") != 1 or not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}"


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory, docs: Path):
    """A SQLite server with the face under /dt, allowed to fetch from 127.0.0.2, sending
    acme's webhooks there, with a 4 MB upload cap."""
    files = Files(docs)
    srv = DocmillServer(tmp_path_factory.mktemp("docutray-prefixed"), backend="sqlite",
                        extra_env={"DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]',
                                   "DOCMILL_DOCUTRAY_PREFIX": "/dt",
                                   "DOCMILL_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
                                   "DOCMILL_DOCUTRAY_WEBHOOKS": json.dumps(
                                       {"acme": f"{files.base}/hook"})})
    srv.cli("migrate")
    srv.create_key("acme", admin=True)
    srv.start()
    yield srv, files
    srv.destroy()
    files.shutdown()
    files.server_close()


def test_02_08_prefix_and_url_inputs(prefixed):
    srv, files = prefixed
    c = client(srv, base=srv.url + "/dt/")
    made = c.document_types.create(name="Invoice T", code_type="acme_invoice_t",
                                   description="invoices", json_schema=SCHEMA)
    result = c.convert.run(url=f"{files.base}/invoice.pdf", document_type_code=made.codeType)
    assert set(result.data) <= set(SCHEMA["properties"])
    status = c.convert.run_async(url=f"{files.base}/invoice.png",
                                 document_type_code=made.codeType).wait(poll_interval=0.5)
    assert status.status == "SUCCESS" and status.original_filename == "invoice.png"
    assert status.status_url.startswith(srv.url + "/dt/api/convert-async/status/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            h[1].get("conversion_id") == status.conversion_id for h in files.hooks):
        time.sleep(0.2)
    headers, hook = next(h for h in files.hooks
                         if h[1].get("conversion_id") == status.conversion_id)
    assert hook["event"] == "CONVERSION_COMPLETED" and hook["status"] == "SUCCESS"
    assert hook["data"] == status.data and "webhook-signature" in {k.lower() for k in headers}
    with raw(srv) as http:  # a step from a URL under the prefix, with its STEP_ webhook
        made_step = http.post("/v1/pipelines", json={"name": "extract-t", "steps": [
            {"id": "extract", "operation": "extract.fields",
             "params": {"document_type_code": made.codeType}}]}).json()
    step = c.steps.run_async("extract-t", url=f"{files.base}/invoice.pdf").wait(poll_interval=0.5)
    assert step.status == "SUCCESS" and set(step.data) <= set(SCHEMA["properties"])
    assert step.step_id == made_step["id"] and step.original_filename == "invoice.pdf"
    assert step.status_url.startswith(srv.url + "/dt/api/steps-async/status/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            h[1].get("conversion_id") == step.execution_id for h in files.hooks):
        time.sleep(0.2)
    _, hook = next(h for h in files.hooks if h[1].get("conversion_id") == step.execution_id)
    assert hook["event"] == "STEP_COMPLETED" and hook["data"] == step.data
    with pytest.raises(docutray.APIError) as caught:
        c.convert.run(url=f"{files.base}/missing.pdf", document_type_code=made.codeType)
    assert caught.value.status_code == 400
    assert caught.value.body == {"message": "Error accessing URL: 404 Not Found"}
    with pytest.raises(docutray.APIError) as caught:  # nothing listens there
        c.convert.run(url="http://127.0.0.2:9/x.pdf", document_type_code=made.codeType)
    assert caught.value.status_code < 500 and caught.value.status_code != 429
    with pytest.raises(docutray.APIError) as caught:
        c.convert.run(file=b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024),
                      document_type_code=made.codeType)
    assert caught.value.status_code == 413
    assert caught.value.body == {"message": "File exceeds maximum allowed size (4MB)"}
    assert httpx.get(srv.url + "/api/document-types").status_code == 404  # not at the root


# --- 17, 32, 33, 408: timeouts and rate limits on a private server with no workers ---------------

def test_17_32_33_timeouts_and_rate_limits(make_server, docs, wire):
    srv = make_server("sqlite", DOCMILL_WORKERS="0", DOCMILL_DOCUTRAY_JOB_TIMEOUT_S="2",
                      DOCMILL_DOCUTRAY_SYNC_WAIT_S="1",
                      DOCMILL_DOCUTRAY_RATE_LIMITS='{"throttled": 2}',
                      DOCMILL_DOCUTRAY_RATE_WINDOW_S="3600", DOCMILL_DOCUTRAY_RETRY_AFTER_MAX_S="1")
    srv.create_key("throttled")
    srv.start()
    c = client(srv)
    made = c.document_types.create(name="Invoice T", code_type="acme_invoice_t",
                                   description="invoices", json_schema=SCHEMA)
    pdf = (docs / "invoice.pdf").read_bytes()
    with pytest.raises(docutray.APIError) as caught:  # sync: no worker, answered in time
        c.convert.run(file=pdf, document_type_code=made.codeType)
    assert caught.value.status_code == 408 and caught.value.body["conversion_id"]
    stuck = c.convert.run_async(file=pdf, document_type_code=made.codeType)
    final = stuck.wait(poll_interval=0.5)  # 17: the auto-timeout, shortened
    assert final.status == "ERROR" and final.error == "Processing timeout (2 seconds)"
    assert c.convert.get_status(stuck.conversion_id).status == "ERROR"  # and it stays so
    limited = client(srv, "throttled")
    for _ in range(2):
        limited.document_types.list()
    with pytest.raises(docutray.RateLimitError) as caught:  # 32
        limited.convert.get_status("unknown")
    error = caught.value
    assert error.retry_after == 1.0 and error.limit_type == "hour"
    assert (error.limit, error.remaining) == (2, 0)
    assert isinstance(error.reset_time, int) and error.reset_time > time.time()
    assert error.body["retryAfter"] > 1 and error.headers["x-ratelimit-limit-type"] == "hour"
    del wire[:]
    with pytest.raises(docutray.RateLimitError):  # 33: a 429 on a GET is tried 3 times...
        client(srv, "throttled", max_retries=2).convert.get_status("unknown")
    assert [r.status_code for _, r in wire] == [429, 429, 429]
    del wire[:]
    with pytest.raises(docutray.BadRequestError):  # ... a 400 once
        client(srv, max_retries=2).document_types.list(limit=0)
    assert len(wire) == 1
