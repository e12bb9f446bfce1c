"""Teaching a document type by labelled examples, through the native API, on every backend:
labelled examples (a real receipt photo read by OCR, its values as JSON), a training job that
starts by itself once there are enough, the type's own extractor used by `extract.fields`
naming the type, its cross-validated quality on the type, isolation between organizations,
and a damaged model that leaves extraction to the rules."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ocr import finish, run, submit

from docmill.extraction.learned.matching import as_number

# the training is a job (the dispatcher), the model a blob (S3 on the distributed backend)
pytestmark = pytest.mark.backends("all")

SCHEMA = {"type": "object", "properties": {
    "shop": {"type": ["string", "null"], "title": "Shop"},
    "day": {"type": ["string", "null"], "format": "date", "title": "Day"},
    "paid": {"type": ["number", "null"], "title": "Paid"},
}}
TAUGHT = 10  # the server's default extract_min_labelled


def labelled(path: Path) -> dict:
    import dateutil.parser

    key = json.loads(path.with_suffix(".json").read_text())
    day = dateutil.parser.parse(key["date"], dayfirst=True).date().isoformat()
    return {"shop": key["company"], "day": day,
            "paid": as_number(key["total"]) if key["total"] else None}


def add_example(client, code: str, path: Path, expected: dict | None):
    data = {"expected": json.dumps(expected)} if expected is not None else {}
    return client.post(f"/v1/document-types/{code}/examples", data=data,
                       files={"file": (path.name, path.read_bytes(), "image/jpeg")})


@pytest.fixture(scope="module")
def taught(server, data):
    """A private type of acme's with TAUGHT labelled receipts and its finished training."""
    with server.client("acme") as acme:
        yield _teach(acme, data)


def _teach(acme, data):
    code = f"acme_till_{uuid.uuid4().hex[:6]}"
    made = acme.post("/v1/document-types", json={"code": code, "name": "Till receipt",
                                                  "description": "A shop till slip.",
                                                  "schema": SCHEMA, "is_draft": False})
    assert made.status_code == 201, made.text
    receipts = sorted((data / "receipts").glob("sroie_*.jpg"))
    training = None
    for n, path in enumerate(receipts[:TAUGHT]):
        response = add_example(acme, code, path, labelled(path))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["labelled"] is True
        if n + 1 < TAUGHT:
            assert body["training_job_id"] is None  # not enough examples yet
        else:
            training = body["training_job_id"]
    assert training
    job = finish(acme, acme.get(f"/v1/jobs/{training}").json(), timeout=300)
    assert job["status"] == "SUCCESS", job.get("error")
    return code, job, receipts[TAUGHT:]


def test_labelled_examples_train_the_type_and_extraction_uses_it(acme, taught):
    code, job, unseen = taught
    assert job["operation"] == "extract.train"
    assert job["result"]["examples"] == TAUGHT
    assert set(job["result"]["fields"]) == {"shop", "day", "paid"}
    view = acme.get(f"/v1/document-types/{code}").json()
    model = view["model"]
    assert model["labelled_examples"] == TAUGHT and model["min_labelled"] == TAUGHT
    active = model["active"]
    assert active["state"] == "ready" and active["job_id"] == job["id"]
    for field in ("shop", "day", "paid"):
        quality = active["quality"][field]
        assert quality["documents"] >= TAUGHT - 1 and 0 <= quality["accuracy"] <= 1
    # the taught extractor reads an unseen receipt of the type
    result = run(acme, unseen[0], "extract.fields", {"document_type_code": code})["result"]
    assert result["model"] == "taught"
    assert set(result["data"]) == {"shop", "day", "paid"}
    assert any(f["via"] == "model" for f in result["fields"].values()), result["fields"]
    truth = labelled(unseen[0])
    assert result["data"]["paid"] == truth["paid"] and result["data"]["day"] == truth["day"]


def test_teaching_is_private_to_the_organization(acme, globex, taught, data):
    code, job, unseen = taught
    # another organization sees neither the type, nor its trainings, nor its model
    assert globex.get(f"/v1/document-types/{code}").status_code == 404
    assert globex.post(f"/v1/document-types/{code}/train").status_code == 404
    assert globex.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert add_example(globex, code, unseen[0], labelled(unseen[0])).status_code == 404
    # a caller cannot point a job at a model file, its own or another's
    model_key = next(f for f in job["files"] if f["name"].endswith(".model.gz"))
    for client, params in ((acme, {"schema": SCHEMA}), (acme, {"document_type_code": code}),
                           (globex, {"document_type_code": "receipt"})):
        response = submit(client, unseen[0], "extract.fields",
                          {**params, "model_key": f"whatever/{model_key['name']}"})
        assert response.status_code == 400, response.text
        assert "model_key" in response.text
    # the built-in receipt type is unchanged for globex: the shipped model, no taught one
    receipt = globex.get("/v1/document-types/receipt").json()["model"]
    assert receipt["active"] is None and receipt["labelled_examples"] == 0


def test_labelled_examples_are_checked_against_the_schema(acme, data):
    code = f"acme_check_{uuid.uuid4().hex[:6]}"
    assert acme.post("/v1/document-types", json={"code": code, "name": "Checked",
                                                 "description": "Checked.",
                                                 "schema": SCHEMA}).status_code == 201
    path = sorted((data / "receipts").glob("sroie_*.jpg"))[0]
    for bad in ('{"paid": "a lot"}', '["not", "an", "object"]', "{not json"):
        response = acme.post(f"/v1/document-types/{code}/examples", data={"expected": bad},
                             files={"file": (path.name, path.read_bytes(), "image/jpeg")})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_input"
    # too few labelled examples to train on request
    response = acme.post(f"/v1/document-types/{code}/train")
    assert response.status_code == 409, response.text
    # an unlabelled example still teaches identification only
    response = add_example(acme, code, path, None)
    assert response.status_code == 201 and response.json()["labelled"] is False
    view = acme.get(f"/v1/document-types/{code}").json()
    assert view["examples"] == 1 and view["model"]["labelled_examples"] == 0


def test_a_damaged_taught_model_leaves_extraction_to_the_rules(acme, taught, server):
    if server.backend == "distributed":
        pytest.skip("damages the file in the local blob folder")
    code, job, unseen = taught
    for path in server.root.rglob("*.model.gz"):
        if job["id"] in str(path):
            path.write_bytes(b"\x1f\x8b this is not a model")
    result = run(acme, unseen[1], "extract.fields", {"document_type_code": code})["result"]
    assert result["model"] is None
    assert any("could not be used" in w for w in result.get("warnings", [])), result
    assert set(result["data"]) == {"shop", "day", "paid"}  # the rules answered alone
    assert all(f["via"] != "model" for f in result["fields"].values())
    # deleting the type takes its trainings and models with it
    assert acme.delete(f"/v1/document-types/{code}").status_code == 204
    assert acme.get(f"/v1/jobs/{job['id']}").status_code == 404
