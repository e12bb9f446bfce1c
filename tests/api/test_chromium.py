"""Headless Chromium through a running Docmill, on every backend: `html.to-pdf` offers the
engine in /v1/operations and prints what scripts wrote; the hostile set (local files in
elements, CSS, fetch() and XMLHttpRequest, loopback and metadata addresses) renders without
them, nothing reaches a loopback server, and the refused URLs are in the job's warnings; a
script that never ends fails the job with `timeout` and the next job works; the official
DocRaptor client's `javascript=True` gets the script's output."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import docraptor
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from doctext import pdf_pages_text
from local_http import FILE_ATTACKS, Recorder

WAIT = 90
SCRIPTED = """<!DOCTYPE html><html><body><h1 id="h">static</h1><p id="out">results:</p>
<script>
const say = (t) => document.getElementById('out').append(' ' + t);
document.getElementById('h').textContent = 'Built by JavaScript';
fetch('file:///etc/passwd').then(r => r.text()).then(say, () => say('file_refused'));
fetch('{base}/secret').then(r => r.text()).then(say, () => say('loopback_refused'));
fetch('http://169.254.169.254/latest/meta-data/').then(r => r.text())
  .then(say, () => say('metadata_refused'));
try {{ const x = new XMLHttpRequest(); x.open('GET', 'file:///etc/passwd', false); x.send();
  say(x.responseText) }} catch (e) {{ say('xhr_refused') }}
</script></body></html>"""


@pytest.fixture
def recorder():
    server = Recorder()
    server.routes["/secret"] = (200, {"Content-Type": "text/plain"}, b"LOOPBACK-SECRET")
    yield server
    server.shutdown()
    server.server_close()


def submit(client, html: str, params: dict) -> dict:
    response = client.post("/v1/jobs", params={"wait": WAIT},
                           data={"operation": "html.to-pdf", "params": json.dumps(params)},
                           files={"file": ("page.html", html.encode())}, timeout=WAIT + 30)
    assert response.status_code in (200, 202), response.text
    job = response.json()
    deadline = time.monotonic() + WAIT
    while job["status"] not in ("SUCCESS", "ERROR") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    return job


def pdf_text(client, job) -> str:
    response = client.get(job["files"][0]["url"])
    assert response.status_code == 200
    return "\n".join(pdf_pages_text(response.content))


def test_operations_offer_chromium(acme):
    ops = {op["name"]: op for op in acme.get("/v1/operations").json()["operations"]}
    properties = ops["html.to-pdf"]["params_schema"]["properties"]
    assert "chromium" in json.dumps(properties["engine"]) and "javascript" in properties
    assert "javascript" in ops["html.print-pdf"]["params_schema"]["properties"]


def test_scripts_run_and_hostile_requests_are_refused(acme, recorder):
    port = recorder.server_address[1]
    runs = []
    for html in (SCRIPTED.format(base=recorder.base),
                 FILE_ATTACKS.format(base=recorder.base, port=port)):
        job = submit(acme, html, {"javascript": True})
        assert job["status"] == "SUCCESS", job
        text, warnings = pdf_text(acme, job), job["result"]["warnings"]
        assert recorder.requests == []  # the loopback server heard nothing
        assert "root:" not in text and "LOOPBACK-SECRET" not in text
        assert any("file:///etc/passwd" in w for w in warnings), warnings
        runs.append((text, warnings))
    (text, warnings), (_, static_warnings) = runs
    assert "Built by JavaScript" in text
    for outcome in ("file_refused", "loopback_refused", "metadata_refused", "xhr_refused"):
        assert outcome in text
    assert any(f"{recorder.base}/secret" in w for w in warnings), warnings
    for url in ("file:///etc/hostname", f"{recorder.base}/sheet.css",
                f"{recorder.base}/pixel.png", "http://169.254.169.254/latest/meta-data/"):
        assert any(url in w for w in static_warnings), (url, static_warnings)


def test_endless_script_times_out_and_the_next_job_works(acme):
    job = submit(acme, "<p>x</p><script>while (true) {}</script>",
                 {"javascript": True, "page_timeout_s": 2})
    assert job["status"] == "ERROR" and job["error"]["code"] == "timeout", job
    job = submit(acme, "<p id=x>-</p><script>x.textContent = 'NEXT JOB'</script>",
                 {"javascript": True})
    assert job["status"] == "SUCCESS", job
    assert "NEXT JOB" in pdf_text(acme, job)


def test_docraptor_client_javascript(server):
    api = docraptor.DocApi()
    api.api_client.configuration.host = server.url
    api.api_client.configuration.username = server.keys["acme"]
    html = ("<title>t</title><p id='x'>static</p><script>document.getElementById('x')"
            ".textContent = 'JSRAN ' + [1, 2, 3].map(n => n * 2).join('-')</script>")
    doc = docraptor.Doc(name="js.pdf", document_type="pdf", document_content=html,
                        javascript=True, test=True)
    text = " ".join(" ".join(pdf_pages_text(api.create_doc(doc))).split())
    assert "JSRAN 2-4-6" in text and "static" not in text
    assert "TEST DOCUMENT" in text  # the face's test watermark applies to Chromium too
    status_id = api.create_async_doc(docraptor.Doc(
        name="js.pdf", document_type="pdf", document_content=html, test=False,
        prince_options=docraptor.PrinceOptions(javascript=True))).status_id
    deadline = time.monotonic() + WAIT
    while (status := api.get_async_doc_status(status_id)).status not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.25)
    assert status.status == "completed", status
    text = " ".join(" ".join(pdf_pages_text(api.get_async_doc(status.download_id))).split())
    assert "JSRAN 2-4-6" in text and "TEST DOCUMENT" not in text
