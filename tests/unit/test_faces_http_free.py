"""Each face's HTTP-free modules on their own, without a server: request parsing, the error
tables, the status renderers and the webhook builders a worker imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from docmill import errors

ORG = str(uuid.UUID(int=7))
T0 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def _job(**fields):
    from docmill.core.models import Job

    values = {"id": uuid.uuid4().hex, "org_id": ORG, "operation": "pdf.to-text", "params": {},
              "status": "SUCCESS", "progress": 100, "message": "done", "attempts": 1,
              "timeout_s": 120.0, "created_at": T0, "started_at": T0,
              "finished_at": T0 + timedelta(seconds=3), "expires_at": T0 + timedelta(days=1),
              "face_state": {}, "result": {}, "webhook_url": "https://hooks.example/x"}
    values.update(fields)
    job = Job(**values)
    job.files = []
    return job


# --- the worker's view: webhook modules load without HTTP frameworks ---------------------------

def test_the_bootstrap_registers_every_face_builder_without_http_imports():
    code = ("import sys; from docmill.bootstrap import load_webhook_builders, WEBHOOK_MODULES;"
            "load_webhook_builders(); from docmill.core import webhooks;"
            "print(sorted(webhooks._builders)); print(sorted(m for m in ('fastapi', 'starlette')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ, check=True).stdout.splitlines()
    assert out == ["['convertapi', 'docraptor', 'docutray', 'native']", "[]"]


def test_a_face_without_a_builder_gets_the_native_body():
    from docmill.bootstrap import load_webhook_builders
    from docmill.core import webhooks
    from docmill.faces.native import webhook as native

    load_webhook_builders()
    assert webhooks.builder_for("expertai") is native.build
    request = native.build(_job(status="ERROR", error_code="timeout", error_message="late"))
    payload = json.loads(request.body)
    assert (request.method, request.sign, payload["type"]) == ("POST", True, "job.error")
    assert payload["data"]["error"] == {"code": "timeout", "message": "late"}
    assert native.build(_job(webhook_url=None)) is None


# --- native -----------------------------------------------------------------------------------

def test_native_request_fields():
    from docmill.faces.native import request

    assert request.parse_params(None) == {} and request.parse_params('{"a": 1}') == {"a": 1}
    for bad in ("[1]", "{nope"):
        with pytest.raises(errors.InvalidInput, match="'params' must be a JSON object"):
            request.parse_params(bad)
    assert request.parse_timeout("2.5") == 2.5 and request.parse_timeout("") is None
    for bad in ("0", "86401", "soon"):
        with pytest.raises(errors.InvalidInput, match="timeout_s"):
            request.parse_timeout(bad)
    with pytest.raises(ValidationError, match="exactly one of 'url' or 'base64'"):
        request.InputRef(url="https://x.example/a.pdf", base64="AA==")
    try:
        request.JobRequest.model_validate({"operation": "pdf.to-text", "inputs": []})
    except ValidationError as exc:
        refused = request.invalid_request("job request", exc)
    assert refused.message.startswith("invalid job request: inputs:")
    assert refused.details["problems"][0]["field"] == "inputs"


def test_native_job_bodies():
    import io

    from starlette.datastructures import FormData, Headers, UploadFile

    from docmill.faces.native import request

    assert request.is_multipart("multipart/form-data; boundary=x", "file")
    assert not request.is_multipart("application/json", "file")
    assert not request.is_multipart("", "file")  # no body type: read as JSON
    with pytest.raises(errors.UnsupportedFormat,
                       match=r"send multipart/form-data \(file\) or application/json"):
        request.is_multipart("text/plain", "file")
    upload = UploadFile(io.BytesIO(b"%PDF-"), filename="a.pdf",
                        headers=Headers({"content-type": "application/pdf"}))
    form = FormData([("operation", "pdf.to-text"), ("params", '{"pages": "1"}'),
                     ("file", upload), ("timeout_s", "30"), ("webhook_url", "")])
    assert request.job_form(form) == ("pdf.to-text", {"pages": "1"}, [upload], 30.0, None)
    with pytest.raises(errors.InvalidInput, match="the 'operation' field is required"):
        request.job_form(FormData([("file", upload)]))
    with pytest.raises(errors.InvalidInput, match="attach at least one 'file'"):
        request.job_form(FormData([("operation", "pdf.to-text")]))
    run = request.validated(request.RunRequest, {"inputs": [{"base64": "AA=="}]}, "run request")
    assert run.inputs[0].base64 == "AA==" and run.timeout_s is None
    with pytest.raises(errors.InvalidInput, match=r"^invalid run request: timeout_s:"):
        request.validated(request.RunRequest, {"inputs": [{"base64": "AA=="}],
                                               "timeout_s": 8 * 86400}, "run request")


def test_native_doctype_and_key_fields():
    from docmill.core.models import Role
    from docmill.faces.native import request

    assert request.doctype_fields({"schema": {"type": "object"}, "name": "n"}) == {
        "json_schema": {"type": "object"}, "name": "n"}
    both = {"schema": 1, "json_schema": 2}
    assert request.doctype_fields(both) is both  # the core's name wins, nothing renamed
    assert request.expected_field(None) is None
    assert request.expected_field('{"total": 5}') == {"total": 5}
    with pytest.raises(errors.InvalidInput, match="'expected' is not JSON"):
        request.expected_field("{nope")
    with pytest.raises(errors.InvalidInput, match="as a text field"):
        request.expected_field(object())
    assert request.key_request({}) == ("", Role.USER)
    assert request.key_request({"name": " ci ", "role": "admin"}) == ("ci", Role.ADMIN)
    for body, problem in [([], "send a JSON object"), ({"role": "root"}, "'role' must be"),
                          ({"name": "x" * (request.NAME_MAX + 1)}, "'name' must be a string")]:
        with pytest.raises(errors.InvalidInput, match=problem):
            request.key_request(body)


@pytest.mark.parametrize(("error", "status"), [
    (errors.NotFound("x"), 404), (errors.Unauthorized("x"), 401), (errors.Forbidden("x"), 403),
    (errors.Conflict("x"), 409), (errors.TooLarge("x"), 413), (errors.UnsupportedFormat("x"), 415),
    (errors.DownloadFailed("x"), 422), (errors.InvalidInput("x"), 400),
    (errors.Timeout("x"), 504), (errors.DocmillError("x"), 500),
])
def test_native_error_statuses(error, status):
    from docmill.faces.native.errors import error_status

    assert error_status(error) == status


# --- ConvertAPI -------------------------------------------------------------------------------

def test_convertapi_job_errors_and_request_errors():
    from docmill.faces.convertapi import errors as vendor

    assert vendor.for_job("timeout", "slow") == (500, {"Code": 5000, "Message": "slow"})
    assert vendor.for_job("invalid_input", None) == (
        500, {"Code": 5002, "Message": "The conversion failed."})  # the document is at fault
    assert vendor.for_job("password_required", "pw", password_given=True)[1]["Code"] == 5006
    assert vendor.for_job("password_required", "pw")[1]["Code"] == 5003
    status, body = vendor.for_request(errors.InvalidInput(
        "bad", problems=[{"param": "PageRange", "message": "no"}]))
    assert (status, body) == (400, {"Code": 4000, "Message": "bad",
                                    "InvalidParameters": {"PageRange": ["no"]}})
    assert vendor.for_request(errors.NotFound("gone"))[0] == 404


def test_convertapi_webhook_appends_the_job_id():
    from docmill.faces.convertapi import webhook

    job = _job(webhook_url="https://hooks.example/cb?a=1")
    request = webhook.build(job)
    assert request.method == "GET" and request.body is None
    assert parse_qs(request.url.split("?", 1)[1]) == {"a": ["1"], "JobId": [job.id]}


def _convertapi_request(**params):
    from docmill.faces.convertapi.request import VendorRequest

    return VendorRequest(params={name.lower(): (name, value) for name, value in params.items()})


def test_convertapi_timeout_job_id_and_page_range():
    from docmill.faces.convertapi import request
    from docmill.faces.convertapi.errors import VendorError
    from docmill.settings import get_settings

    settings = get_settings()
    assert request.parse_timeout(_convertapi_request(), "web") == \
        settings.convertapi_web_timeout_s
    assert request.parse_timeout(_convertapi_request(), "docx") == \
        settings.convertapi_default_timeout_s
    assert request.parse_timeout(_convertapi_request(timeout=" 30 "), "docx") == 30
    for raw, problem in [("soon", "'soon' is not a whole number of seconds"),
                         ("0", "must be between 1 and"),
                         (str(settings.convertapi_max_timeout_s + 1), "must be between 1 and")]:
        with pytest.raises(VendorError) as refused:
            request.parse_timeout(_convertapi_request(timeout=raw), "docx")
        assert (refused.value.status, refused.value.vendor_code) == (400, 4000)
        assert list(refused.value.invalid) == ["timeout"]  # the name as the client sent it
        assert refused.value.invalid["timeout"][0].startswith(problem)
    job_id = uuid.uuid4()
    assert request.client_job_id(_convertapi_request(JobId=str(job_id).upper())) == str(job_id)
    assert request.client_job_id(_convertapi_request()) is None
    with pytest.raises(VendorError, match="JobId: must be a UUID"):
        request.client_job_id(_convertapi_request(JobId="7"))
    request.check_page_range(_convertapi_request(PageRange="1-3, 5,7-"))
    with pytest.raises(VendorError, match="'odd' is not a page range"):
        request.check_page_range(_convertapi_request(PageRange="odd"))


def test_convertapi_answer_form_and_credentials():
    from starlette.requests import Request

    from docmill.faces.convertapi import request
    from docmill.faces.convertapi.errors import VendorError

    assert request.answer_form(_convertapi_request(download="Inline"), "") == ("inline", False)
    assert request.answer_form(_convertapi_request(), "application/octet-stream") == (
        "attachment", False)
    assert request.answer_form(_convertapi_request(), "multipart/mixed") == ("", True)
    assert request.answer_form(_convertapi_request(download="attachment"),
                               "multipart/mixed") == ("attachment", False)
    assert request.answer_form(_convertapi_request(), "application/json") == ("", False)
    with pytest.raises(VendorError, match="download: must be inline or attachment"):
        request.answer_form(_convertapi_request(download="save"), "")

    def sent(query: bytes, authorization: bytes | None = None) -> Request:
        headers = [(b"authorization", authorization)] if authorization else []
        return Request({"type": "http", "method": "GET", "path": "/user", "headers": headers,
                        "query_string": query})

    assert request.credentials(sent(b"", b"Bearer k1")) == ("k1", "token")
    assert request.credentials(sent(b"Secret=s1", b"Bearer k1")) == ("s1", "secret")
    assert request.credentials(sent(b"Token=t1&ApiKey=9")) == ("t1", "token")
    assert request.credentials(sent(b"auth=a1")) == ("a1", "secret")
    assert request.credentials(sent(b"Secret=+", b"Basic x")) == (None, "token")


# --- DocRaptor --------------------------------------------------------------------------------

def test_docraptor_download_ids_round_trip_and_callback_only_after_success():
    from docmill.faces.docraptor import webhook

    job = _job(face_state={"document_type": "pdf"}, result={"pages": 3})
    token = webhook.download_id(job.id, ORG)
    assert webhook.parse_download_id(token.upper()) == (job.id, ORG)
    assert webhook.parse_download_id("x" * 64) is None
    request = webhook.build(job)
    fields = parse_qs(request.body)
    assert fields["status_id"] == [job.id] and fields["number_of_pages"] == ["3"]
    assert fields["message"] == ["Completed at Thu Jan 15 10:30:03 +0000 2026"]
    assert webhook.build(_job(status="ERROR")) is None


def _docraptor_request(query: bytes = b"", headers: dict[str, str] | None = None,
                       body: bytes = b""):
    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/docs", "query_string": query,
                    "headers": [(k.lower().encode(), v.encode())
                                for k, v in (headers or {}).items()]}, receive)


def test_docraptor_api_key_and_path_ids():
    import base64

    from docmill.faces.docraptor import request

    basic = "Basic " + base64.b64encode(b"KEY1:ignored").decode()
    assert request.api_key(_docraptor_request(headers={"Authorization": basic})) == "KEY1"
    assert request.api_key(_docraptor_request(headers={"Authorization": "Token K2"})) == "K2"
    assert request.api_key(_docraptor_request(b"user_credentials=K3")) == "K3"
    assert request.api_key(_docraptor_request(
        b"user_credentials=K3", {"Authorization": "Basic " + base64.b64encode(b":pw").decode()}
    )) == "K3"  # an empty Basic user name falls back to the query
    assert request.api_key(_docraptor_request()) is None
    with pytest.raises(errors.Unauthorized, match="malformed Basic credentials"):
        request.api_key(_docraptor_request(headers={"Authorization": "Basic //79"}))
    assert [request.strip_format(v) for v in ("abc.JSON", "abc.xml", "abc.pdf")] == [
        "abc", "abc", "abc.pdf"]


def test_docraptor_fields_merge_query_and_body():
    import asyncio

    from docmill.faces.docraptor import request

    sent = _docraptor_request(b"doc[name]=q.pdf&doc[test]=true",
                              {"Content-Type": "application/json"},
                              b'{"doc": {"name": "b.pdf", "document_content": "<p>x</p>"}}')
    fields = asyncio.run(request.read_fields(sent))
    assert fields["name"] == "b.pdf" and fields["document_content"] == "<p>x</p>"
    assert request.as_bool(fields["test"]) is True  # the query's, the body had none


def test_docraptor_retention_terms():
    from docmill.faces.docraptor import request
    from docmill.settings import get_settings

    settings = get_settings()
    plain = request.read_doc({"document_content": "<p>x</p>"}, asynchronous=False, hosted=False)
    assert request.retention_terms(plain) == (
        settings.docraptor_retention_s or settings.retention_s,
        {"downloads": 1 if settings.docraptor_short_retention
         else settings.docraptor_download_limit})
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    hosted = request.read_doc({"document_content": "<p>x</p>", "hosted_download_limit": "3",
                               "hosted_expires_at": later.isoformat()},
                              asynchronous=True, hosted=True)
    kept, state = request.retention_terms(hosted)
    assert state == {"downloads": 3, "link_expires_at": later.isoformat()}
    assert 30 * 86400 - 60 < kept <= 30 * 86400  # until the link expires
    soon = request.read_doc({"document_content": "<p>x</p>",
                             "hosted_expires_at": datetime.now(UTC).isoformat()},
                            asynchronous=True, hosted=True)
    assert request.retention_terms(soon)[0] == settings.docraptor_async_timeout_s + 3600


# --- Docutray ---------------------------------------------------------------------------------

def test_docutray_statuses_and_the_deadline_timeout_text():
    from docmill.faces.docutray import render

    assert render.lifecycle(_job(status="ENQUEUED", attempts=0, finished_at=None)) == (
        "ENQUEUED", None, None)
    assert render.lifecycle(_job(status="ENQUEUED", attempts=1, finished_at=None))[0] == \
        "PROCESSING"  # requeued after a worker died: never backwards
    deadline = T0 + timedelta(hours=1)
    failed = _job(status="ERROR", error_code="timeout", timeout_s=3600.0,
                  deadline_at=deadline, finished_at=deadline)
    assert render.lifecycle(failed) == ("ERROR", "Processing timeout (60 minutes)", deadline)
    assert render.lifecycle(_job(status="ERROR", error_code="engine_failed",
                                error_message="bad scan"))[1] == "bad scan"


def test_docutray_input_errors():
    from docmill.faces.docutray import errors as vendor

    assert vendor.for_input(errors.Unauthorized("x")) == (401, {"error": "Invalid API key"})
    assert vendor.for_input(errors.DownloadFailed("the server answered HTTP 404")) == (
        400, {"message": "Error accessing URL: 404 Not Found"})
    status, body = vendor.for_input(errors.InvalidInput("document_type_code: Required"))
    assert status == 400 and body["message"] == "Validation error"


def test_docutray_webhook_event_names():
    from docmill.faces.docutray import webhook

    done = json.loads(webhook.build(_job(face_state={"kind": "convert"},
                                         result={"data": {"total": 5}})).body)
    assert (done["event"], done["status"], done["data"]) == (
        "CONVERSION_COMPLETED", "SUCCESS", {"total": 5})
    failed = json.loads(webhook.build(_job(status="ERROR", error_code="timeout",
                                           face_state={"kind": "identify"})).body)
    assert (failed["event"], failed["status"]) == ("IDENTIFICATION_FAILED", "ERROR")


def test_docutray_paging_and_the_bearer_only_caller():
    import asyncio

    from starlette.requests import Request

    from docmill.faces.contract import MAX_PAGE
    from docmill.faces.docutray import request
    from docmill.faces.docutray.errors import VendorError

    def sent(query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/api/document-types",
                        "query_string": query, "headers": headers or []})

    assert request.paging(sent(b"")) == (1, request.DEFAULT_PAGE_SIZE)
    assert request.paging(sent(b"page=3&limit=%20")) == (3, request.DEFAULT_PAGE_SIZE)
    assert request.paging(sent(b"page=2&limit=5000")) == (2, request.MAX_PAGE_SIZE)  # clamped
    for query, name, message in [(b"page=x", "page", "Expected an integer"),
                                 (b"page=0", "page", "greater than or equal to 1"),
                                 (f"page={MAX_PAGE + 1}".encode(), "page", "less than"),
                                 (b"limit=0", "limit", "greater than or equal to 1")]:
        with pytest.raises(VendorError) as refused:
            request.paging(sent(query))
        assert refused.value.status == 400
        assert refused.value.body["error"] == "Invalid pagination parameters"
        assert refused.value.body["details"][0]["path"] == [name]
        assert message in refused.value.body["details"][0]["message"]
    for headers in ([], [(b"authorization", b"Basic a2V5Og==")], [(b"authorization", b"Bearer ")]):
        with pytest.raises(VendorError) as refused:
            asyncio.run(request.caller(sent(b"", headers)))
        assert (refused.value.status, refused.value.body) == (401, {"error": "Invalid API key"})


def test_docutray_knowledge_sync_view():
    from docmill.faces.docutray import render

    assert render.sync_view({"sync_id": "s1", "status": "completed", "documents_processed": 2,
                             "errors": [], "started_at": T0, "completed_at": None}) == {
        "syncId": "s1", "status": "completed", "documentsProcessed": 2, "errors": [],
        "startedAt": "2026-01-15T10:30:00.000Z", "completedAt": None}


# --- the render and errors modules of the other faces ----------------------------------------

def test_convertapi_result_names_and_multipart_choice():
    from docmill.core.models import JobFile
    from docmill.faces.convertapi import render

    outputs = [JobFile(name=f"page-{i}.png", content_type="image/png", size=1) for i in (1, 2)]
    assert render.result_names("scan", outputs, None) == ["scan.png", "scan-2.png"]
    assert render.result_names("scan", outputs[:1], "report.png") == ["report.png"]
    assert render.wants_multipart("multipart/mixed")
    assert not render.wants_multipart("multipart/mixed, application/json")


def test_docraptor_status_and_error_tables():
    from docmill.faces.docraptor import errors as vendor
    from docmill.faces.docraptor import render

    assert render.status_body(_job(status="ENQUEUED", attempts=0)) == {
        "status": "queued", "message": "queued"}
    failed = render.status_body(_job(status="ERROR", error_code="timeout", error_message="60 s"))
    assert failed == {"status": "failed", "message": "Failed",
                      "validation_errors": "Document creation timed out: 60 s"}
    assert render.failure_text(_job(status="ERROR", error_code="worker_lost",
                                    error_message="")) == \
        "Document creation failed due to unknown reasons."
    assert vendor.error_status(vendor.DownloadKeyError("x")) == 400
    assert vendor.error_status(errors.NotFound("x")) == 403  # never tells what exists
    assert vendor.error_status(vendor.DocumentFailed("x")) == 422
    assert vendor.xml_errors(["a < b", "", "c\x01"]) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<errors>\n  <error>a &lt; b</error>'
        b"\n  <error>c</error>\n</errors>\n")


def test_expertai_status_and_error_tables():
    from docmill.faces.expertai import errors as vendor
    from docmill.faces.expertai import render

    assert render.status_body(_job(status="PROCESSING", progress=95)) == {
        "current": 95, "message": "classification", "state": "PROGRESS"}
    assert render.status_body(_job(status="ERROR", error_code="engine_failed",
                                   error_message=" bad scan ")) == {
        "current": 0, "message": "bad scan", "state": "FAILURE"}
    assert vendor.error_status(errors.Conflict("x")) == 400
    assert vendor.error_body(404, "/beta/status/x", ["gone"])["_embedded"] == {
        "errors": [{"message": "gone"}]}


def test_expertai_request_bodies():
    from docmill.faces.expertai import request

    assert request.credentials(b'{"username": "acme", "password": "k"}') == ("acme", "k")
    for bad in (b'{"username": "acme", "password": ""}', b'{"password": "k"}'):
        with pytest.raises(errors.Unauthorized, match="send username and password"):
            request.credentials(bad)
    with pytest.raises(errors.InvalidInput, match="malformed JSON"):
        request.credentials(b"{nope")
    with pytest.raises(errors.InvalidInput, match="must be a JSON object"):
        request.document(b"[1]")
    assert request.document(b'{"document": {"name": "a.pdf", "data": "JVBE\\nRi0="}}') == (
        "a.pdf", b"%PDF-")  # whitespace inside the Base64 is dropped
    for body, problem in [(b'{"document": "x"}', "'document' \\(an object\\)"),
                          (b'{"document": {"data": "AA=="}}', "'document.name'"),
                          (b'{"document": {"name": "a", "data": " "}}', "\\(Base64\\) is"),
                          (b'{"document": {"name": "a", "data": "%%"}}', "not valid Base64")]:
        with pytest.raises(errors.InvalidInput, match=problem):
            request.document(body)


@pytest.mark.parametrize(("error", "docraptor", "expertai"), [
    (errors.Unauthorized("x"), 401, 401), (errors.MethodNotAllowed("x"), 405, 405),
    (errors.TooLarge("x"), 400, 413), (errors.Conflict("x"), 400, 400),
    (errors.Forbidden("x"), 403, 403), (errors.NotFound("x"), 403, 404),
    (errors.InvalidInput("x"), 422, 400), (errors.UnsupportedFormat("x"), 422, 400),
    (errors.EngineFailed("x"), 422, 500), (errors.Timeout("x"), 422, 500),
    (errors.DocmillError("x"), 500, 500),
])
def test_docraptor_and_expertai_error_tables(error, docraptor, expertai):
    from docmill.faces.docraptor import errors as docraptor_errors
    from docmill.faces.expertai import errors as expertai_errors

    assert docraptor_errors.error_status(error) == docraptor
    assert expertai_errors.error_status(error) == expertai
