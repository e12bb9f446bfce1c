"""Pipelines against real servers and real engines: definitions checked on save, runs as a
parent job with ordinary step jobs (linear, a branch on the identified type, a page fan-out
merged again), a worker or the whole server SIGKILLed mid-run (the run finishes, a finished
step never runs again), cancel and delete, webhooks, and isolation between organizations.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from standardwebhooks.webhooks import Webhook

CRASH_BACKENDS = [b for b in os.environ.get("DOCMILL_TEST_BACKENDS",
                                            "sqlite,postgres,distributed").split(",") if b]
CRASH_ENV = {"DOCMILL_ENABLE_DIAGNOSTICS": "true", "DOCMILL_WORKERS": "2",
             "DOCMILL_LEASE_S": "4"}  # a killed Celery worker's job is requeued when it lapses

pytestmark = pytest.mark.backends("all")  # steps are chained by the dispatcher


def make_pipeline(client, steps, name=None, expect=201):
    body = {"name": name or f"p-{uuid.uuid4().hex[:8]}", "steps": steps}
    answer = client.post("/v1/pipelines", json=body)
    assert answer.status_code == expect, answer.text
    return answer.json()


def start(client, pipeline_id, path: Path, **form):
    with open(path, "rb") as handle:
        answer = client.post(f"/v1/pipelines/{pipeline_id}/runs", data=form,
                             files={"file": (path.name, handle)})
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def wait_run(client, run_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/runs/{run_id}", params={"wait": 5}).json()
        if run["status"] in ("SUCCESS", "ERROR"):
            return run
    raise AssertionError(f"run {run_id} never finished: {run}")


def pdf_pages_text(data: bytes) -> list[str]:
    pdf = pdfium.PdfDocument(data)
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def claims(client, job_id) -> int:
    rows = client.get(f"/v1/jobs/{job_id}/transitions").json()["transitions"]
    return sum(1 for r in rows if r["status"] == "PROCESSING")


@pytest.fixture(scope="session")
def four_pages(data) -> Path:
    return data / "pdf" / "pdflatex-4-pages.pdf"


# --- runs ------------------------------------------------------------------------------------

def test_linear_three_steps(acme, four_pages):
    pipeline = make_pipeline(acme, [
        {"id": "rotate", "operation": "pdf.rotate", "params": {"angle": 90}},
        {"id": "stamp", "operation": "pdf.watermark", "params": {"text": "PIPELINED"},
         "inputs": ["rotate"]},
        {"id": "text", "operation": "pdf.to-text", "inputs": ["stamp"]},
    ])
    run = start(acme, pipeline["id"], four_pages)
    assert run["operation"] == "pipeline.run" and run["status"] == "PROCESSING"
    run = wait_run(acme, run["id"])
    assert run["status"] == "SUCCESS", run["error"]
    assert run["progress"] == 100
    steps = run["result"]["steps"]
    assert [(s["id"], s["status"], len(s["jobs"])) for s in steps] == [
        ("rotate", "SUCCESS", 1), ("stamp", "SUCCESS", 1), ("text", "SUCCESS", 1)]
    assert [s["step"] for s in run["steps"]] == ["rotate", "stamp", "text"]
    # each step job is an ordinary job of the run, fed the previous step's output, run once
    previous = None
    for entry in run["steps"]:
        job = acme.get(f"/v1/jobs/{entry['job_id']}").json()
        assert job["status"] == "SUCCESS" and job["attempts"] == 1
        assert job["run"] == {"id": run["id"], "step": entry["step"], "item": 0}
        if previous is not None:
            assert [i["name"] for i in job["inputs"]] == [f["name"] for f in previous["files"]]
        previous = job
    stamped = acme.get(f"/v1/jobs/{run['steps'][1]['job_id']}/files/"
                       f"{previous['inputs'][0]['name']}")
    assert stamped.status_code == 200
    pdf = pdfium.PdfDocument(stamped.content)
    assert [pdf[i].get_rotation() for i in range(len(pdf))] == [90] * 4  # step 1 reached it
    pdf.close()
    # the run's file is the last step's text, which has the watermark of step 2
    assert [f["name"] for f in run["files"]] == [f["name"] for f in previous["files"]]
    text = acme.get(f"/v1/jobs/{run['id']}/files/{run['files'][0]['name']}").text
    assert "PIPELINED" in text.replace("\n", "").replace(" ", "")
    original = pdf_pages_text(four_pages.read_bytes())
    assert original[0].split()[0] in text


def test_branch_on_identified_type(acme, data):
    invoice_schema = acme.get("/v1/document-types/invoice").json()["schema"]
    receipt_schema = acme.get("/v1/document-types/receipt").json()["schema"]
    pipeline = make_pipeline(acme, [
        {"id": "identify", "operation": "identify.type",
         "params": {"candidates": ["receipt", "invoice"]}},
        {"id": "extract", "operation": "extract.fields",
         "when": {"step": "identify", "cases": {
             "receipt": {"params": {"document_type_code": "receipt"}},
             "invoice": {"params": {"document_type_code": "invoice"}}}}},
        {"id": "archive", "operation": "pdf.to-pdfa", "when": {"step": "identify", "cases": {
            "invoice": {}}}},
    ])
    invoice = sorted((data / "invoices").glob("*.pdf"))[0]
    receipt = sorted((data / "receipts").glob("*.jpg"))[0]
    truth = json.loads(invoice.with_suffix(".json").read_text())[0]
    runs = {name: start(acme, pipeline["id"], path)["id"]
            for name, path in (("invoice", invoice), ("receipt", receipt))}
    found = {name: wait_run(acme, run_id) for name, run_id in runs.items()}
    for name, schema in (("invoice", invoice_schema), ("receipt", receipt_schema)):
        run = found[name]
        assert run["status"] == "SUCCESS", run["error"]
        identify, extract, archive = run["result"]["steps"]
        assert identify["result"]["document_type_code"] == name
        assert extract["branch"] == name
        job = acme.get(f"/v1/jobs/{extract['jobs'][0]}").json()
        assert job["params"]["document_type_code"] == name
        assert job["params"]["schema"] == schema  # the schema of the type found
        assert set(run["result"]["data"]) <= set(schema["properties"])
        assert run["result"]["data"] == extract["result"]["data"]
        assert archive["status"] == ("SUCCESS" if name == "invoice" else "SKIPPED")
    assert found["invoice"]["result"]["data"]["invoice_number"] == truth["invoice_number"]
    # the run's files: what the steps nothing reads made (extraction JSON, the PDF/A)
    assert [f["content_type"] for f in found["invoice"]["files"]] == ["application/json",
                                                                      "application/pdf"]
    assert len(found["receipt"]["steps"]) == 2  # no job for the skipped step


def test_page_fanout_then_merge(acme, four_pages):
    pipeline = make_pipeline(acme, [
        {"id": "turn", "operation": "pdf.rotate", "params": {"angle": 180},
         "foreach": "page"},
        {"id": "merge", "operation": "pdf.merge", "inputs": ["turn"]},
    ])
    answer = acme.post(f"/v1/pipelines/{pipeline['name']}/runs", params={"wait": 60}, json={
        "inputs": [{"base64": base64.b64encode(four_pages.read_bytes()).decode(),
                    "filename": "four.pdf"}]})  # JSON inputs, as /v1/jobs takes them
    assert answer.status_code in (200, 202), answer.text
    run = wait_run(acme, answer.json()["id"])
    assert run["status"] == "SUCCESS", run["error"]
    turn = run["result"]["steps"][0]
    assert len(turn["jobs"]) == 5 and len(turn["results"]) == 4  # the split, then 4 pages
    items = sorted((s["item"], s["operation"]) for s in run["steps"] if s["step"] == "turn")
    assert items == [(-1, "pdf.split")] + [(i, "pdf.rotate") for i in range(4)]
    merged = acme.get(f"/v1/jobs/{run['id']}/files/{run['files'][0]['name']}").content
    pdf = pdfium.PdfDocument(merged)
    assert [pdf[i].get_rotation() for i in range(len(pdf))] == [180] * 4
    pdf.close()
    assert pdf_pages_text(merged) == pdf_pages_text(four_pages.read_bytes())  # in order


def test_invalid_definitions_are_refused_naming_the_step(acme):
    cases = [
        ([{"id": "a", "operation": "pdf.nope"}], "a", "unknown operation"),
        ([{"id": "read", "operation": "ocr.read"},
          {"id": "merge", "operation": "pdf.merge", "inputs": ["read"]}], "merge",
         "cannot take the output of step 'read'"),
        ([{"id": "a", "operation": "pdf.rotate", "inputs": ["b"]},
          {"id": "b", "operation": "pdf.rotate", "inputs": ["a"]}], None, "cycle"),
        ([{"id": "a", "operation": "pdf.rotate", "inputs": ["ghost"]}], "a",
         "unknown step 'ghost'"),
        ([{"id": "a", "operation": "pdf.rotate", "params": {"angle": 45}}], "a", "angle"),
        ([{"id": "x", "operation": "extract.fields",
           "params": {"document_type_code": "no_such_type"}}], "x",
         "Document type not found"),
        ([{"id": "pick", "operation": "extract.fields",
           "when": {"step": "nobody", "cases": {"invoice": {}}}}], "pick", "unknown step"),
        ([{"id": "s", "operation": "ocr.read", "foreach": "page", "inputs": ["input"]},
          {"id": "t", "operation": "archive.zip", "foreach": "sideways"}], "t", "foreach"),
        ([{"id": "a", "operation": "pdf.rotate"}, {"id": "a", "operation": "pdf.rotate"}],
         "a", "unique"),
    ]
    names = []
    for steps, step, words in cases:
        name = f"bad-{uuid.uuid4().hex[:8]}"
        names.append(name)
        answer = acme.post("/v1/pipelines", json={"name": name, "steps": steps})
        assert answer.status_code == 422, (steps, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_pipeline" and words in error["message"], error
        if step is not None:
            assert error["details"]["step"] == step, error
        else:
            assert error["details"]["step"] in {"a", "b"}
    listed = {p["name"] for p in acme.get("/v1/pipelines").json()["pipelines"]}
    assert not listed & set(names)  # nothing refused was saved
    good = make_pipeline(acme, [{"id": "a", "operation": "pdf.rotate"}])
    make_pipeline(acme, [{"id": "a", "operation": "pdf.rotate"}], name=good["name"],
                  expect=409)
    answer = acme.put(f"/v1/pipelines/{good['id']}",
                      json={"steps": [{"id": "a", "operation": "pdf.nope"}]})
    assert answer.status_code == 422  # an update is checked the same way, and not kept
    assert acme.get(f"/v1/pipelines/{good['name']}").json()["steps"] == good["steps"]
    with open(__file__, "rb") as handle:  # a Python file is no PDF: 415, nothing kept
        answer = acme.post(f"/v1/pipelines/{good['id']}/runs",
                           files={"file": ("x.py", handle)})
    assert answer.status_code == 415, answer.text


def test_isolation_of_pipelines_and_runs(acme, globex, four_pages):
    pipeline = make_pipeline(acme, [{"id": "turn", "operation": "pdf.rotate"}])
    run = wait_run(acme, start(acme, pipeline["id"], four_pages)["id"])
    step_job = run["steps"][0]["job_id"]
    for ref in (pipeline["id"], pipeline["name"]):
        assert globex.get(f"/v1/pipelines/{ref}").status_code == 404
        assert globex.put(f"/v1/pipelines/{ref}", json={"description": "x"}).status_code == 404
        assert globex.delete(f"/v1/pipelines/{ref}").status_code == 404
        with open(four_pages, "rb") as handle:
            ran = globex.post(f"/v1/pipelines/{ref}/runs", files={"file": ("a.pdf", handle)})
        assert ran.status_code == 404
    assert pipeline["id"] not in {p["id"] for p in globex.get("/v1/pipelines").json()["pipelines"]}
    for path in (f"/v1/runs/{run['id']}", f"/v1/jobs/{run['id']}", f"/v1/jobs/{step_job}",
                 f"/v1/jobs/{run['id']}/files/{run['files'][0]['name']}",
                 f"/v1/jobs/{step_job}/inputs/{four_pages.name}"):
        assert globex.get(path).status_code == 404, path
    assert globex.post(f"/v1/runs/{run['id']}/cancel").status_code == 404
    assert globex.delete(f"/v1/runs/{run['id']}").status_code == 404
    assert acme.get(f"/v1/runs/{run['id']}").json()["status"] == "SUCCESS"  # untouched
    # a same-named pipeline of globex is its own
    mine = make_pipeline(globex, [{"id": "turn", "operation": "pdf.rotate"}],
                         name=pipeline["name"])
    assert mine["id"] != pipeline["id"]


# --- crashes, cancel, delete, webhooks (private servers with the diagnostic engine) -----------

SLOW = [
    {"id": "one", "operation": "diag.sleep", "params": {"seconds": 0.2, "steps": 2}},
    {"id": "two", "operation": "diag.sleep", "params": {"seconds": 6, "steps": 30},
     "inputs": ["one"]},
    {"id": "three", "operation": "diag.sleep", "params": {"seconds": 0.2, "steps": 2},
     "inputs": ["two"]},
]


class Hooks(ThreadingHTTPServer):
    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}/hook"


def running_step(client, run_id, step, timeout=60):
    """The step's job once a worker holds it, with the worker's pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in client.get(f"/v1/runs/{run_id}").json()["steps"]:
            if entry["step"] == step and entry["status"] == "PROCESSING":
                rows = client.get(f"/v1/jobs/{entry['job_id']}/transitions").json()
                owner = rows["transitions"][-1]["owner"]
                return entry["job_id"], int(owner.rsplit(":", 1)[1])
        time.sleep(0.1)
    raise AssertionError(f"step {step} never ran")


def assert_ran_once_each(client, run, twice=()):
    assert run["status"] == "SUCCESS", run["error"]
    by_step = {}
    for entry in run["steps"]:
        by_step.setdefault(entry["step"], []).append(entry["job_id"])
    assert {k: len(v) for k, v in by_step.items()} == {"one": 1, "two": 1, "three": 1}
    assert claims(client, by_step["one"][0]) == 1  # step 1 ran exactly once
    for step in ("two", "three"):
        assert claims(client, by_step[step][0]) == (2 if step in twice else 1)


@pytest.mark.parametrize("backend", CRASH_BACKENDS)
def test_worker_killed_during_step_two(make_server, backend):
    hooks = Hooks()
    srv = make_server(backend, **CRASH_ENV, DOCMILL_SSRF_ALLOW_HOSTS='["127.0.0.2"]').start()
    with srv.client() as acme:
        pipeline = make_pipeline(acme, SLOW)
        run = start(acme, pipeline["id"], Path(__file__), webhook_url=hooks.url)
        _, pid = running_step(acme, run["id"], "two")
        os.kill(pid, signal.SIGKILL)
        run = wait_run(acme, run["id"])
        assert_ran_once_each(acme, run, twice=("two",))
        secret = acme.get("/v1/organization").json()["webhook_secret"]
    deadline = time.monotonic() + 30
    while not hooks.received and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # a second one would have come by now
    assert len(hooks.received) == 1  # one webhook, for the run, none for its steps
    headers, body = hooks.received[0]
    payload = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    assert payload["type"] == "job.success" and payload["data"]["id"] == run["id"]
    assert [s["id"] for s in payload["data"]["result"]["steps"]] == ["one", "two", "three"]
    hooks.shutdown()


@pytest.mark.parametrize("backend", CRASH_BACKENDS)
def test_server_killed_mid_run_and_restarted(make_server, backend):
    srv = make_server(backend, **CRASH_ENV).start()
    with srv.client() as acme:
        pipeline = make_pipeline(acme, SLOW)
        run = start(acme, pipeline["id"], Path(__file__))
        running_step(acme, run["id"], "two")
    srv.stop(signal.SIGKILL)
    srv.start()
    with srv.client() as acme:
        run = wait_run(acme, run["id"])
        assert_ran_once_each(acme, run, twice=("two",))


def test_cancel_and_delete_stop_and_remove_steps(make_server, four_pages):
    srv = make_server("sqlite", DOCMILL_ENABLE_DIAGNOSTICS="true", DOCMILL_WORKERS="2").start()
    with srv.client() as acme:
        pipeline = make_pipeline(acme, SLOW)
        for how in ("cancel", "delete"):
            run = start(acme, pipeline["id"], four_pages)
            job_id, _ = running_step(acme, run["id"], "two")
            first = run["steps"][0]["job_id"] if run["steps"] else None
            if how == "cancel":
                answer = acme.post(f"/v1/runs/{run['id']}/cancel")
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "ERROR" and answer.json()["steps"] == []
                assert answer.json()["error"]["code"] == "cancelled"
                assert acme.post(f"/v1/runs/{run['id']}/cancel").status_code == 409
            else:
                assert acme.delete(f"/v1/runs/{run['id']}").status_code == 204
                assert acme.get(f"/v1/runs/{run['id']}").status_code == 404
            assert acme.get(f"/v1/jobs/{job_id}").status_code == 404  # the running step
            if first:
                assert acme.get(f"/v1/jobs/{first}").status_code == 404  # a finished one
            time.sleep(7)  # longer than step two: nothing comes after it
            listed = acme.get("/v1/jobs", params={"operation": "diag.sleep"}).json()["jobs"]
            assert not [j for j in listed if j.get("run", {}).get("id") == run["id"]]
        # a run past its timeout ends ERROR timeout and its running step is stopped
        run = start(acme, pipeline["id"], four_pages, timeout_s="2")
        job_id, _ = running_step(acme, run["id"], "two")
        run = wait_run(acme, run["id"], timeout=30)
        assert run["status"] == "ERROR" and run["error"]["code"] == "timeout", run
        deadline = time.monotonic() + 10  # its live steps are stopped right after it ends
        while acme.get(f"/v1/jobs/{job_id}").status_code != 404:
            assert time.monotonic() < deadline, "the running step was not stopped"
            time.sleep(0.1)
        run = acme.get(f"/v1/runs/{run['id']}").json()
        assert [s["step"] for s in run["steps"]] == ["one"]  # the finished step stays


# --- the CLI -------------------------------------------------------------------------------

def test_cli_create_run_and_remove(server, four_pages, tmp_path):
    from api.test_cli import run_cli  # tests/ is on sys.path (conftest.py)

    name = f"cli-{uuid.uuid4().hex[:6]}"
    definition = tmp_path / "pipeline.json"
    definition.write_text(json.dumps({"name": name, "steps": [
        {"id": "pages", "operation": "pdf.rotate", "foreach": "page"},
        {"id": "merge", "operation": "pdf.merge", "inputs": ["pages"]}]}))
    created = json.loads(run_cli(server, "pipelines", "create", str(definition)).stdout)
    assert created["name"] == name
    assert name in run_cli(server, "pipelines", "ls").stdout
    out = tmp_path / "out"
    result = run_cli(server, "pipelines", "run", name, str(four_pages), "--wait",
                     "--out", str(out))
    paths = [Path(line.strip()) for line in result.stdout.splitlines() if line.strip()]
    assert len(paths) == 1 and "SUCCESS" in result.stderr
    merged = pdfium.PdfDocument(paths[0].read_bytes())
    assert [merged[i].get_rotation() for i in range(len(merged))] == [90] * 4
    merged.close()
    definition.write_text(json.dumps({"name": name + "-bad", "steps": [
        {"id": "merge", "operation": "pdf.merge", "inputs": ["nowhere"]}]}))
    refused = run_cli(server, "pipelines", "create", str(definition), check=False)
    assert refused.returncode == 1 and "invalid_pipeline" in refused.stderr
    assert "merge" in refused.stderr
    run_cli(server, "pipelines", "rm", name)
    assert name not in run_cli(server, "pipelines", "ls").stdout
