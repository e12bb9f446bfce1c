"""extract.fields and identify.type as jobs through the native /v1/jobs API, on every
backend: the params travel as JSON in the `params` form field, the answer is the job's
result (and a JSON output file), a bad schema is refused at submit time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ocr import output, run, submit

from docmill.extraction.builtin_types import builtin_type, builtin_types

pytestmark = pytest.mark.fast  # the app in-process (tests/inprocess.py)


def test_extract_fields_job(acme, data):
    schema = builtin_type("invoice")["schema"]
    job = run(acme, data / "invoices" / "coolblue1.pdf", "extract.fields",
              {"schema": schema, "document_type_code": "invoice"})
    result = job["result"]
    assert result["pages"] == 1 and result["text_source"] == "text-layer"
    assert result["extractor"] == "builtin" and result["document_type_code"] == "invoice"
    found = result["data"]
    assert found["invoice_number"] == "993548900" and found["date"] == "2014-04-19"
    assert found["amount"] == 717.97 and found["currency"] == "EUR"
    assert set(found) == set(schema["properties"])
    amount = result["fields"]["amount"]
    assert amount["page"] == 1 and len(amount["box"]) == 4 and 0 < amount["confidence"] <= 1
    assert json.loads(output(acme, job, ".json"))["data"] == found


def test_identify_type_job(acme, data):
    candidates = [{"code": t["codeType"], "name": t["name"], "description": t["description"],
                   "schema": t["schema"], "keywords": t["keywords"]} for t in builtin_types()]
    job = run(acme, data / "invoices" / "AmazonWebServices.pdf", "identify.type",
              {"candidates": candidates, "threshold": 0.35})
    result = job["result"]
    assert result["document_type_code"] == "invoice" and result["confidence"] >= 0.35
    assert result["ranking"][0]["code"] == "invoice"
    assert len(result["ranking"]) == 7
    # a lorem-ipsum page is none of them
    job = run(acme, data / "pdf" / "minimal-document.pdf", "identify.type",
              {"candidates": candidates})
    assert job["result"]["document_type_code"] is None
    assert len(job["result"]["ranking"]) == 7


def test_invalid_schema_is_refused_at_submit(acme, data):
    response = submit(acme, data / "invoices" / "coolblue1.pdf", "extract.fields",
                      {"schema": {"type": "object", "properties": {"a": {"type": "strin"}}}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and "schema" in error["message"].lower()
    response = submit(acme, data / "invoices" / "coolblue1.pdf", "identify.type",
                      {"candidates": []})
    assert response.status_code == 400, response.text


def test_native_jobs_name_document_types_by_code(acme, globex, data):
    """`document_type_code` alone brings the type's schema; `candidates` may be codes; another
    organization's private type is not found."""
    job = run(acme, data / "invoices" / "coolblue1.pdf", "extract.fields",
              {"document_type_code": "invoice"})
    assert set(job["result"]["data"]) == set(builtin_type("invoice")["schema"]["properties"])
    assert job["result"]["data"]["invoice_number"] == "993548900"
    job = run(acme, data / "invoices" / "AmazonWebServices.pdf", "identify.type",
              {"candidates": ["receipt", "invoice", "letter"]})
    assert job["result"]["document_type_code"] == "invoice"
    assert sorted(r["code"] for r in job["result"]["ranking"]) == ["invoice", "letter", "receipt"]

    import uuid

    code = f"acme_private_{uuid.uuid4().hex[:6]}"
    made = acme.post("/v1/document-types", json={
        "code": code, "name": "Private", "description": "acme only",
        "schema": {"type": "object", "properties": {"total": {"type": ["number", "null"]}}},
        "is_draft": False})
    assert made.status_code == 201, made.text
    for params in ({"document_type_code": code}, {"candidates": [code]}):
        operation = "extract.fields" if "document_type_code" in params else "identify.type"
        response = submit(globex, data / "invoices" / "coolblue1.pdf", operation, params)
        assert response.status_code in (403, 404), response.text
        assert code in response.text or response.status_code == 404
