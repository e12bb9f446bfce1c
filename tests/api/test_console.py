"""The web console driven in real headless Chromium (Playwright with Debian's chromium, as
engines/html/chromium.py launches it) against one real `docmill serve` for the module.

Sign in with a key; submit a PDF through the file input and watch the bar move to SUCCESS;
open and download the output; create a document type (a schema error shown inline first)
and extract with it; create a key (shown once, working on the API) and revoke it; redeliver
a failed webhook; another organization's session gets 404 for the job; forms without the
CSRF token are refused. Screenshots of the main pages go to `DOCMILL_SCREENSHOTS` (the
folder docs/console/ is made from) or the test's temporary folder.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from local_http import WebhookReceiver
from server import DATA, DocmillServer

from docmill.core.models import Job, utcnow

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
PDF = DATA / "pdf" / "pdflatex-4-pages.pdf"
INVOICE = DATA / "invoices" / "AzureInterior.pdf"
SECOND_INVOICE = DATA / "invoices" / "QualityHosting.pdf"
WAIT_MS = 90_000
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Debian chromium")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = DocmillServer(tmp_path_factory.mktemp("console"), extra_env={
        "DOCMILL_ENABLE_DIAGNOSTICS": "true", "DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]',
        "DOCMILL_WEBHOOK_GIVE_UP_S": "1",  # one failed attempt and a delivery is "failed"
        "DOCMILL_EXTRACT_MIN_LABELLED": "2"})  # two labelled examples train a type
    server.cli("migrate")
    server.create_key("acme", admin=True)
    server.create_key("globex")
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DOCMILL_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(browser, srv, org: str, **context):
    ctx = browser.new_context(accept_downloads=True, **context)
    page = ctx.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{srv.url}/console/jobs")
    assert "/console/sign-in" in page.url  # not signed in: sent to the sign-in page
    page.get_by_label("API key").fill(srv.keys[org])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/jobs")
    return ctx, page


@pytest.fixture(scope="module")
def acme(browser, srv):
    ctx, page = sign_in(browser, srv, "acme", viewport={"width": 1280, "height": 900})
    yield page
    ctx.close()


@pytest.fixture(scope="module")
def state() -> dict:
    return {}


def test_sign_in_cookie_and_refused_key(browser, srv, acme):
    cookie = next(c for c in acme.context.cookies() if c["name"] == "docmill_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert srv.keys["acme"] not in cookie["value"]  # encrypted, not the key itself
    assert acme.get_by_text("acme · admin").is_visible()
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{srv.url}/console/sign-in")
    page.get_by_label("API key").fill("dm_000000000000_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Sign-in refused")
    page.goto(f"{srv.url}/console/jobs")
    assert "/console/sign-in" in page.url
    ctx.close()


def test_submit_pdf_progress_to_success_and_download(acme, srv, state, shots):
    acme.goto(f"{srv.url}/console/submit")
    acme.get_by_label("Operation").select_option("diag.sleep")
    acme.get_by_label("Seconds").wait_for()  # the form follows the operation's schema
    acme.get_by_label("Seconds").fill("4")
    acme.get_by_label("Steps").fill("8")
    acme.get_by_label("Files").set_input_files(str(PDF))
    acme.screenshot(path=str(shots / "submit.png"), full_page=True)
    acme.get_by_role("button", name="Submit", exact=True).click()
    acme.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    job_id = acme.url.rsplit("/", 1)[1]
    # Record every value the bar takes while the SSE stream drives it (in sessionStorage:
    # the page reloads itself when the job ends).
    acme.evaluate("""() => {
        const bar = document.querySelector('#job-progress progress');
        const seen = [bar.value];
        new MutationObserver(() => {
            seen.push(bar.value); sessionStorage.setItem('seen', JSON.stringify(seen));
        }).observe(bar, {attributes: true, childList: true});
    }""")
    acme.wait_for_function("JSON.parse(sessionStorage.getItem('seen') || '[]')"
                           ".some(v => v > 0 && v < 100)", timeout=WAIT_MS)
    acme.screenshot(path=str(shots / "job-running.png"), full_page=True)
    acme.wait_for_selector("text=Download echo-pdflatex-4-pages.pdf", timeout=WAIT_MS)
    assert acme.locator("#job-progress [data-role=status]").inner_text() == "SUCCESS"
    seen = json.loads(acme.evaluate("sessionStorage.getItem('seen')"))
    moving = sorted({v for v in seen if 0 < v < 100})
    assert len(moving) >= 2, seen  # several intermediate values, not a jump to 100
    with acme.expect_download() as download:
        acme.get_by_role("link", name="Download echo-pdflatex-4-pages.pdf").click()
    assert Path(download.value.path()).read_bytes() == PDF.read_bytes()
    assert acme.get_by_text("SUCCESS").first.is_visible()
    events = acme.locator(".events li").all_inner_texts()
    assert [e.split()[1] for e in events] == ["ENQUEUED", "PROCESSING", "SUCCESS"]
    state["job"] = job_id


def test_image_output_preview_and_jobs_list(acme, srv, state, shots):
    acme.goto(f"{srv.url}/console/submit?operation=pdf.to-image")
    acme.get_by_label("Pages").fill("1")
    acme.get_by_label("Dpi").fill("40")
    acme.get_by_label("Files").set_input_files(str(PDF))
    acme.get_by_role("button", name="Submit", exact=True).click()
    acme.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    preview = acme.locator("img.preview")
    preview.wait_for(timeout=WAIT_MS)
    acme.wait_for_function("document.querySelector('img.preview').naturalWidth > 0")
    assert acme.evaluate("document.querySelector('img.preview').naturalWidth") > 100
    acme.screenshot(path=str(shots / "job.png"), full_page=True)
    with acme.expect_download() as download:
        acme.locator("[data-role=download]").first.click()
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    acme.goto(f"{srv.url}/console/jobs?operation=diag.sleep")
    rows = acme.locator("#job-rows tr")
    assert rows.count() == 1 and state["job"][:8] in rows.inner_text()
    acme.goto(f"{srv.url}/console/jobs")
    assert acme.locator("#job-rows tr").count() == 2
    acme.screenshot(path=str(shots / "jobs.png"), full_page=True)


def test_jobs_list_follows_live_jobs(acme, srv):
    """More live jobs than the page streams at once: every row still reaches SUCCESS on
    the open page, by stream or by the rows' refresh."""
    with srv.client("acme") as api:
        ids = [api.post("/v1/jobs", data={"operation": "diag.sleep",
                                          "params": json.dumps({"seconds": 1.5, "steps": 5})},
                        files={"file": (f"w{i}.pdf", PDF.read_bytes())}).json()["id"]
               for i in range(6)]
    acme.goto(f"{srv.url}/console/jobs?operation=diag.sleep")
    assert acme.locator("tr[data-live-job]").count() >= 3  # still waiting or running
    acme.evaluate("window.samePage = true")  # gone if the page were reloaded
    statuses = "[...document.querySelectorAll('#job-rows [data-role=status]')]"
    acme.wait_for_function(f"{statuses}.length === 7 && "
                           f"{statuses}.every(s => s.textContent === 'SUCCESS')",
                           timeout=WAIT_MS)
    for job_id in ids:
        assert job_id[:8] in acme.locator("#job-rows").inner_text()
    assert acme.evaluate("window.samePage") is True


def test_jobs_time_filter(acme, srv):
    """"Created: last 1h" leaves out a job created two hours ago (its creation time moved
    back in the database: the server cannot be made to wait), "last 24h" lists it."""
    from sqlalchemy import create_engine, update

    with srv.client("acme") as api:
        old, new = (api.post("/v1/jobs", params={"wait": 60}, data={"operation": "pdf.to-text"},
                             files={"file": (name, PDF.read_bytes())}).json()["id"]
                    for name in ("old.pdf", "new.pdf"))
    engine = create_engine(srv.database_url)
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == old).values(
            created_at=utcnow() - timedelta(hours=2)))
    engine.dispose()
    acme.goto(f"{srv.url}/console/jobs?operation=pdf.to-text")
    rows = acme.locator("#job-rows")
    assert old[:8] in rows.inner_text() and new[:8] in rows.inner_text()
    for since, listed in (("1h", {new}), ("24h", {old, new})):
        acme.get_by_label("Created").select_option(since)
        acme.get_by_role("button", name="Filter").click()
        acme.wait_for_url(f"**/console/jobs?*since={since}*")
        shown = rows.inner_text()
        assert {j for j in (old, new) if j[:8] in shown} == listed, since


DROP = """(b64) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], 'dropped.pdf', {type: 'application/pdf'}));
    return transfer;
}"""


def test_drag_and_drop_submit(acme, srv):
    """A file dropped on the drop zone (a real `drop` event carrying a DataTransfer) is
    listed, submitted and becomes the job's input."""
    acme.goto(f"{srv.url}/console/submit?operation=pdf.to-text")
    transfer = acme.evaluate_handle(DROP, base64.b64encode(PDF.read_bytes()).decode())
    acme.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    assert "over" in acme.get_attribute("#dropzone", "class")  # the zone shows the hover
    acme.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    assert "over" not in acme.get_attribute("#dropzone", "class")
    assert acme.locator("#chosen-files li").all_inner_texts() == [
        f"dropped.pdf ({PDF.stat().st_size} bytes)"]
    acme.get_by_role("button", name="Submit", exact=True).click()
    acme.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    with srv.client("acme") as api:
        job = api.get(f"/v1/jobs/{acme.url.rsplit('/', 1)[1]}", params={"wait": 60}).json()
    assert job["operation"] == "pdf.to-text" and job["status"] == "SUCCESS"
    assert [(f["name"], f["size"]) for f in job["inputs"]] == [
        ("dropped.pdf", PDF.stat().st_size)]


def test_other_organization_gets_404(browser, srv, state):
    ctx, page = sign_in(browser, srv, "globex")
    response = page.goto(f"{srv.url}/console/jobs/{state['job']}")
    assert response.status == 404 and "not found" in page.get_by_role("alert").inner_text()
    for path in (f"/console/jobs/{state['job']}/files/echo-pdflatex-4-pages.pdf",
                 f"/console/jobs/{state['job']}/events"):
        assert page.request.get(srv.url + path).status == 404, path  # with the session cookie
    page.goto(f"{srv.url}/console/jobs")
    assert page.locator("#job-rows").inner_text().strip() == "No jobs match."
    assert page.get_by_role("link", name="Admin").count() == 0  # a user key: no admin pages
    assert page.goto(f"{srv.url}/console/admin/keys").status == 403
    ctx.close()


def test_document_type_create_and_extract(acme, srv, shots):
    acme.goto(f"{srv.url}/console/document-types/new")
    acme.get_by_label("Code").fill("acme_invoice")
    acme.get_by_label("Name", exact=True).fill("Acme invoice")
    acme.get_by_label("Description").fill("Invoices we receive")
    schema = acme.get_by_label("JSON schema")
    schema.fill('{"type": "object", "properties": {"total": {"type": "amount"}}}')
    acme.get_by_role("button", name="Create").click()
    error = acme.locator("#schema-error")  # the API's schema problem, under the field
    assert "invalid JSON Schema" in error.inner_text() and "amount" in error.inner_text()
    assert acme.get_by_label("Code").input_value() == "acme_invoice"  # kept for the retry
    schema.fill('{"type": "object", "properties": {"total": ')
    assert "Not valid JSON" in acme.locator("#schema-live").inner_text()  # live check
    acme.screenshot(path=str(shots / "document-type-edit.png"), full_page=True)
    schema.fill(json.dumps({"type": "object", "properties": {
        "invoice_number": {"type": "string", "description": "Invoice number"},
        "date": {"type": "string", "format": "date", "description": "Invoice date"},
        "total": {"type": "number", "description": "Total amount"}}}))
    acme.get_by_role("button", name="Create").click()
    acme.wait_for_url("**/console/document-types/acme_invoice?saved=1")
    assert acme.get_by_role("status").inner_text() == "Saved."
    acme.get_by_label("Sample document").set_input_files(str(INVOICE))
    acme.get_by_role("button", name="Add example").click()
    acme.wait_for_url("**/console/document-types/acme_invoice?example=1", timeout=WAIT_MS)
    assert "1 example(s)" in acme.get_by_role("status").inner_text()
    with srv.client("acme") as api:
        assert api.get("/v1/document-types/acme_invoice").json()["examples"] == 1
    acme.get_by_label("Document (PDF or image)").set_input_files(str(INVOICE))
    acme.get_by_role("button", name="Extract").click()
    acme.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    acme.wait_for_selector("table.fields", timeout=WAIT_MS)
    job_id = acme.url.rsplit("/", 1)[1]
    with srv.client("acme") as api:
        job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "SUCCESS" and job["operation"] == "extract.fields"
    assert job["params"]["document_type_code"] == "acme_invoice"
    assert set(job["result"]["data"]) == {"invoice_number", "date", "total"}
    for pointer in job["result"]["fields"]:  # every found field is in the table
        assert acme.locator("table.fields").get_by_text(pointer, exact=True).count() == 1
    # The invoice's first page as an image (a pdf.to-image job the page asks for by
    # itself, no button to press) with the fields' boxes.
    acme.wait_for_url(re.compile(r".*\?page_image=[0-9a-f-]{36}$"), timeout=WAIT_MS)
    acme.wait_for_function("document.querySelector('.page-view img').naturalWidth > 0")
    on_page_1 = {name for name, f in job["result"]["fields"].items() if f.get("page") == 1}
    assert on_page_1  # the built-in extractor found something on this invoice
    boxes = acme.locator(".page-view .box")
    assert {boxes.nth(i).get_attribute("data-field") for i in range(boxes.count())} == on_page_1
    picture = acme.locator(".page-view img").bounding_box()
    for i in range(boxes.count()):  # every box lies on the picture
        box = boxes.nth(i).bounding_box()
        assert picture["x"] <= box["x"]
        assert box["x"] + box["width"] <= picture["x"] + picture["width"] + 1
        assert picture["y"] <= box["y"]
        assert box["y"] + box["height"] <= picture["y"] + picture["height"] + 1
    acme.locator("#page-image").screenshot(path=str(shots / "extraction-boxes.png"))
    acme.screenshot(path=str(shots / "extraction.png"), full_page=True)
    acme.goto(f"{srv.url}/console/document-types")
    assert acme.get_by_role("link", name="acme_invoice").is_visible()
    acme.screenshot(path=str(shots / "document-types.png"), full_page=True)


def invoice_values(pdf: Path) -> dict:
    """The values a test invoice holds (its answer key beside it), in acme_invoice's fields."""
    key = json.loads(pdf.with_suffix(".json").read_text())[0]
    return {"invoice_number": key["invoice_number"], "date": key["date"],
            "total": key["amount"]}


def finished(api, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/jobs/{job_id}", params={"wait": 20}, timeout=60).json()
        if job["status"] in ("SUCCESS", "ERROR") or time.monotonic() > deadline:
            return job


def test_labelled_example_and_teaching_status(acme, srv, shots):
    """Expected values checked against the schema (refusal inline, nothing added), a
    labelled example the API reports as such, and, once the server's minimum of two is
    reached, the training and its per-field quality on the type's page."""
    page = f"{srv.url}/console/document-types/acme_invoice"
    acme.goto(page)
    assert acme.locator("[data-role=labelled]").inner_text().startswith("0 ")
    assert "none yet" in acme.locator("[data-role=active]").inner_text()
    expected = acme.get_by_label("Expected values (optional JSON)")
    acme.get_by_label("Sample document").set_input_files(str(INVOICE))
    expected.fill('{"total": "a lot"}')
    acme.get_by_role("button", name="Add example").click()
    error = acme.locator("#expected-error")  # the API's check against the schema
    assert "does not match" in error.inner_text() and "total" in error.inner_text()
    assert expected.input_value() == '{"total": "a lot"}'  # kept for the retry
    expected.fill('{"total": ')
    assert "Not valid JSON" in acme.locator("#expected-live").inner_text()  # live check
    with srv.client("acme") as api:
        before = api.get("/v1/document-types/acme_invoice").json()
    assert before["examples"] == 1 and before["model"]["labelled_examples"] == 0
    acme.get_by_label("Sample document").set_input_files(str(INVOICE))
    expected.fill(json.dumps(invoice_values(INVOICE)))
    acme.get_by_role("button", name="Add example").click()
    acme.wait_for_url("**/console/document-types/acme_invoice?example=2&labelled=1",
                      timeout=WAIT_MS)
    assert acme.get_by_role("status").inner_text().startswith("Labelled example added")
    assert acme.locator("[data-role=labelled]").inner_text().startswith("1 ")
    with srv.client("acme") as api:
        row = api.get("/v1/document-types/acme_invoice").json()
        assert row["examples"] == 2 and row["model"]["labelled_examples"] == 1
        # The second labelled example (by the API) reaches the minimum: a training starts.
        answer = api.post("/v1/document-types/acme_invoice/examples",
                          data={"expected": json.dumps(invoice_values(SECOND_INVOICE))},
                          files={"file": (SECOND_INVOICE.name, SECOND_INVOICE.read_bytes())},
                          timeout=120)
        assert answer.status_code == 201, answer.text
        training = answer.json()["training_job_id"]
        assert training and finished(api, training)["status"] == "SUCCESS"
        model = api.get("/v1/document-types/acme_invoice").json()["model"]
    acme.goto(page)
    assert acme.locator("[data-role=labelled]").inner_text().startswith("2 ")
    assert training[:8] in acme.locator("[data-role=active]").inner_text()
    assert "ready" in acme.locator("[data-role=latest]").inner_text()
    quality = model["active"]["quality"]
    assert quality  # scored per labelled field
    rows = acme.locator("table.quality tbody tr")
    assert rows.count() == len(quality)
    for pointer, q in quality.items():
        shown = acme.locator(f"table.quality tr[data-field='{pointer}'] [data-role=accuracy]")
        assert shown.inner_text() == f"{100 * q['accuracy']:.0f}%"
    acme.locator("#teaching").screenshot(path=str(shots / "teaching.png"))
    acme.screenshot(path=str(shots / "document-type.png"), full_page=True)


def test_document_type_edit(acme, srv):
    """An invalid schema edit is shown under the field and changes nothing; a valid one is
    saved, as the API then shows."""
    acme.goto(f"{srv.url}/console/document-types/acme_invoice")
    acme.get_by_role("link", name="Edit").click()
    acme.wait_for_url("**/console/document-types/acme_invoice/edit")
    with srv.client("acme") as api:
        before = api.get("/v1/document-types/acme_invoice").json()
    schema = acme.get_by_label("JSON schema")
    assert json.loads(schema.input_value()) == before["schema"]  # the form starts from it
    schema.fill('{"type": "object", "properties": {"total": {"type": "amount"}}}')
    acme.get_by_role("button", name="Save").click()
    error = acme.locator("#schema-error")
    assert "invalid JSON Schema" in error.inner_text() and "amount" in error.inner_text()
    with srv.client("acme") as api:
        unchanged = api.get("/v1/document-types/acme_invoice").json()
    assert unchanged["schema"] == before["schema"]
    assert unchanged["version"] == before["version"]
    changed = {**before["schema"], "properties": {
        **before["schema"]["properties"],
        "due_date": {"type": "string", "format": "date", "description": "Due date"}}}
    schema.fill(json.dumps(changed))
    acme.get_by_label("Description").fill("Invoices we receive, with their due date")
    acme.get_by_role("button", name="Save").click()
    acme.wait_for_url("**/console/document-types/acme_invoice?saved=1")
    assert acme.get_by_role("status").inner_text() == "Saved."
    with srv.client("acme") as api:
        after = api.get("/v1/document-types/acme_invoice").json()
    assert after["schema"] == changed
    assert after["description"] == "Invoices we receive, with their due date"
    assert after["version"] > before["version"]
    assert "due_date" in acme.locator("pre.json").inner_text()


def test_failed_job_shows_its_error(acme, srv, state):
    """A PDF operation on a corrupt PDF, submitted in the console: the job page shows the
    error's code and message, as the API reports them."""
    acme.goto(f"{srv.url}/console/submit?operation=pdf.to-text")
    acme.get_by_label("Files").set_input_files({
        "name": "broken.pdf", "mimeType": "application/pdf",
        "buffer": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF truncated"})
    acme.get_by_role("button", name="Submit", exact=True).click()
    acme.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    job_id = acme.url.rsplit("/", 1)[1]
    acme.wait_for_selector("#job-error", timeout=WAIT_MS)  # the page reloads when it ends
    with srv.client("acme") as api:
        job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "ERROR" and job["error"]["code"] and job["error"]["message"]
    shown = acme.locator("#job-error").inner_text()
    assert job["error"]["code"] in shown and job["error"]["message"] in shown
    assert acme.locator("#job-progress [data-role=status]").inner_text() == "ERROR"
    state["failed_job"] = job_id


WORD_BOXES = """() => {
    const picture = document.querySelector('.page-view img').getBoundingClientRect();
    const boxes = [...document.querySelectorAll('.page-view .box.word')];
    const outside = boxes.map(b => b.getBoundingClientRect()).filter(r =>
        r.left < picture.left - 1 || r.top < picture.top - 1 || r.width <= 0 ||
        r.right > picture.right + 1 || r.bottom > picture.bottom + 1 || r.height <= 0);
    return {count: boxes.length, outside: outside.length};
}"""


@pytest.mark.parametrize("operation", ["ocr.read", "layout.analyze"])
def test_word_boxes_over_page_1(acme, srv, shots, operation):
    """An `ocr.read` or `layout.analyze` job's page 1 appears as a picture by itself, with
    a box per word of page 1 in its document JSON (table cells' words too), every box on
    the picture."""
    with srv.client("acme") as api:
        job = api.post("/v1/jobs", params={"wait": 60}, data={"operation": operation},
                       files={"file": (INVOICE.name, INVOICE.read_bytes())}).json()
        assert job["status"] == "SUCCESS", job.get("error")
        name = next(f["name"] for f in job["files"] if f["name"].endswith(".json"))
        document = api.get(f"/v1/jobs/{job['id']}/files/{name}").json()
    page_1 = next(p for p in document["pages"] if p["page"] == 1)
    lines = [line for b in page_1["blocks"] for line in b.get("lines") or []]
    lines += [line for b in page_1["blocks"] if b.get("table")
              for cell in b["table"]["cells"] for line in cell["lines"]]
    words = [w for line in lines for w in line["words"]]
    assert len(words) > 20
    acme.goto(f"{srv.url}/console/jobs/{job['id']}")
    acme.wait_for_url(re.compile(r".*\?page_image=[0-9a-f-]{36}$"), timeout=WAIT_MS)
    acme.wait_for_function("document.querySelector('.page-view img').naturalWidth > 0")
    assert acme.evaluate(WORD_BOXES) == {"count": len(words), "outside": 0}
    assert f"with the {len(words)} words read" in acme.locator("#page-image h2").inner_text()
    if operation == "ocr.read":
        acme.locator("#page-image").screenshot(path=str(shots / "word-boxes.png"))


def test_create_and_revoke_key(acme, srv, shots):
    acme.goto(f"{srv.url}/console/admin/keys")
    acme.get_by_label("Name").fill("ci-bot")
    acme.get_by_role("button", name="Create key").click()
    key = acme.get_by_role("textbox", name="The new key").input_value()
    assert key.startswith("dm_")
    acme.screenshot(path=str(shots / "keys.png"), full_page=True)
    with httpx.Client(base_url=srv.url, trust_env=False) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/organization", headers=headers).json()["slug"] == "acme"
        acme.reload()  # the key is never shown again
        assert key not in acme.content()
        prefix = key.split("_")[1]
        acme.locator(f"tr[data-key-prefix='{prefix}']").get_by_role("button").click()
        acme.wait_for_selector(f"tr[data-key-prefix='{prefix}'] >> text=revoked")
        assert client.get("/v1/organization", headers=headers).status_code == 401


def test_redeliver_failed_webhook(acme, srv, shots):
    receiver = WebhookReceiver(status=500)
    try:
        with srv.client("acme") as api:
            job = api.post("/v1/jobs", params={"wait": 60},
                           data={"operation": "pdf.to-text", "webhook_url": receiver.url},
                           files={"file": ("a.pdf", PDF.read_bytes())}).json()
            assert job["status"] == "SUCCESS"

            def delivery() -> dict:
                return api.get("/v1/webhook-deliveries", params={"job_id": job["id"]}
                               ).json()["deliveries"][0]

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the receiver answers 500: one attempt,
                failed = delivery()             # then "failed" (DOCMILL_WEBHOOK_GIVE_UP_S)
                if failed["state"] == "failed":
                    break
                time.sleep(0.2)
            assert failed["state"] == "failed" and failed["last_status"] == 500
            receiver.status = 200
            acme.goto(f"{srv.url}/console/admin/webhooks?job_id={job['id']}")
            row = acme.locator(f"tr[data-delivery='{failed['id']}']")
            assert row.locator("[data-role=state]").inner_text() == "failed"
            row.get_by_role("button", name=f"Redeliver delivery {failed['id']}").click()
            acme.wait_for_url("**/console/admin/webhooks?redelivered=*")
            acme.goto(f"{srv.url}/console/admin/webhooks?job_id={job['id']}")
            row = acme.locator(f"tr[data-delivery='{failed['id']}']")
            assert row.locator("[data-role=state]").inner_text() == "delivered"
            assert row.locator("[data-role=attempts]").inner_text() == str(failed["attempts"] + 1)
            assert len(receiver.bodies) == failed["attempts"] + 1
            assert receiver.bodies[-1]["data"]["id"] == job["id"]
            acme.screenshot(path=str(shots / "webhooks.png"), full_page=True)
    finally:
        receiver.close()


def test_delete_job(acme, srv):
    with srv.client("acme") as api:
        job = api.post("/v1/jobs", params={"wait": 60}, data={"operation": "pdf.to-text"},
                       files={"file": ("gone.pdf", PDF.read_bytes())}).json()
        acme.goto(f"{srv.url}/console/jobs/{job['id']}")
        acme.get_by_role("button", name="Delete job").click()  # confirm() is accepted
        acme.wait_for_url("**/console/jobs?notice=deleted")
        assert acme.get_by_role("status").inner_text() == "The job was deleted."
        assert api.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert job["id"][:8] not in acme.locator("#job-rows").inner_text()


def test_forged_forms_are_refused(acme, srv, browser):
    acme.goto(f"{srv.url}/console/admin/keys")
    before = acme.locator("table.keys tbody tr").count()
    for token in (None, "forged-token"):
        acme.evaluate("""(token) => {
            const form = document.createElement('form');
            form.method = 'post'; form.action = '/console/admin/keys';
            for (const [k, v] of [['name', 'forged'], ['role', 'admin']].concat(
                    token ? [['csrf', token]] : [])) {
                const input = document.createElement('input');
                input.name = k; input.value = v; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""", token)
        acme.wait_for_load_state()
        assert "CSRF" in acme.get_by_role("alert").inner_text()
    with srv.client("acme") as api:
        assert "forged" not in [k["name"] for k in api.get("/v1/keys").json()["keys"]]
    acme.goto(f"{srv.url}/console/admin/keys")
    assert acme.locator("table.keys tbody tr").count() == before
    # The same forgery sent by curl with the session cookie but no token: 403 too.
    cookie = next(c for c in acme.context.cookies() if c["name"] == "docmill_console")
    with httpx.Client(base_url=srv.url, trust_env=False) as client:
        answer = client.post("/console/admin/keys", data={"name": "forged"},
                             headers={"Cookie": f"docmill_console={cookie['value']}"})
    assert answer.status_code == 403


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length)
                  && !el.getAttribute('aria-label') && !(el.textContent || '').trim())
    .map(el => el.outerHTML)"""


NO_OVERFLOW = "document.scrollingElement.scrollWidth <= window.innerWidth"
# Text contrast from computed styles: each visible text's colour against the background it
# is painted on (the ancestors' background colours composited, alpha and all), WCAG AA:
# 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
CONTRAST = """() => {
    const rgba = (s) => { const p = s.match(/[\\d.]+/g).map(Number); return p.length > 3 ? p : [...p, 1]; };
    const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3])).concat(1);
    const backdrop = (el) => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = rgba(getComputedStyle(e).backgroundColor);
            if (c[3] > 0) layers.push(c);
            if (c[3] >= 1) break;
        }
        return layers.reverse().reduce((below, top) => over(top, below), [255, 255, 255, 1]);
    };
    const luminance = (c) => c.slice(0, 3).map(v => v / 255)
        .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const skip = 'script, style, noscript, option, progress, meter, object, template';
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const failures = [];
    let checked = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!node.textContent.trim() || el.closest(skip) || !el.getClientRects().length) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden') continue;
        const bg = backdrop(el), fg = over(rgba(style.color), bg);
        const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
        const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
        checked++;
        if (ratio < needed) failures.push([node.textContent.trim().slice(0, 40), style.color,
                                           'on rgb(' + bg.slice(0, 3).join(',') + ')', ratio.toFixed(2)]);
    }
    return {checked, failures};
}"""  # noqa: E501 - JavaScript, kept as the browser runs it


def main_pages(state: dict) -> list[str]:
    return ["/console/jobs", "/console/submit", f"/console/jobs/{state['job']}",
            f"/console/jobs/{state['failed_job']}", "/console/document-types",
            "/console/document-types/new", "/console/document-types/acme_invoice",
            "/console/document-types/acme_invoice/edit", "/console/admin/keys",
            "/console/admin/webhooks", "/console/admin/queue", "/console/admin/organization"]


def test_admin_pages_and_phone_width(browser, srv, acme, shots, state):
    for path in main_pages(state):
        acme.goto(srv.url + path)
        assert acme.evaluate(UNLABELLED) == [], path  # every control has a name
        assert acme.locator("h1").count() == 1, path
        contrast = acme.evaluate(CONTRAST)
        assert contrast["checked"] > 5 and contrast["failures"] == [], (path, contrast)
    acme.goto(f"{srv.url}/console/jobs")
    acme.keyboard.press("Tab")  # the first stop is the skip link, which lands on main
    assert acme.evaluate("document.activeElement.textContent") == "Skip to content"
    acme.keyboard.press("Enter")
    assert acme.evaluate("document.activeElement.id") == "main"
    acme.goto(f"{srv.url}/console/admin/queue")
    assert acme.locator("[data-role=enqueued]").inner_text().isdigit()
    with srv.client("acme") as api:
        queue = api.get("/v1/queue").json()
    workers, retention = queue["workers"], queue["retention"]
    shown = {role: acme.locator(f"[data-role={role}]").inner_text() for role in (
        "dispatcher", "workers-here", "retention", "max-attempts", "timeout",
        "webhook-give-up", "sweep")}
    assert shown == {
        "dispatcher": workers["dispatcher"], "workers-here": str(workers["workers_here"]),
        "retention": f"{round(retention['retention_s'] / 3600, 1)} h",
        "max-attempts": str(retention["max_attempts"]),
        "timeout": f"{retention['default_timeout_s']} s",
        "webhook-give-up": f"{retention['webhook_give_up_s']} s",  # 1 s on this server
        "sweep": f"{retention['sweep_interval_s']} s"}
    if "pool_alive" in workers:
        assert acme.locator("[data-role=pool]").inner_text().startswith(
            "running" if workers["pool_alive"] else "down")
    acme.screenshot(path=str(shots / "queue.png"), full_page=True)
    acme.goto(f"{srv.url}/console/admin/organization")  # its own organization, no other
    assert "acme" in acme.locator(".facts").inner_text()
    assert "globex" not in acme.content()
    assert "docmill keys create --org" in acme.locator("#other-organizations").inner_text()
    ctx, phone = sign_in(browser, srv, "acme", viewport={"width": 375, "height": 740},
                         is_mobile=True, has_touch=True)
    for path in main_pages(state):
        phone.goto(srv.url + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)  # nothing wider than the phone (tables scroll)
        assert phone.evaluate(NO_OVERFLOW), path
    phone.goto(f"{srv.url}/console/jobs")
    phone.screenshot(path=str(shots / "jobs-phone.png"), full_page=True)
    phone.get_by_role("button", name="Sign out").click()
    phone.wait_for_url("**/console/sign-in")
    phone.goto(f"{srv.url}/console/jobs")
    assert "/console/sign-in" in phone.url
    ctx.close()
