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

import json
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from local_http import WebhookReceiver  # noqa: E402
from server import DATA, DocmillServer  # noqa: E402

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
PDF = DATA / "pdf" / "pdflatex-4-pages.pdf"
INVOICE = DATA / "invoices" / "AzureInterior.pdf"
WAIT_MS = 90_000
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Debian chromium")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = DocmillServer(tmp_path_factory.mktemp("console"), extra_env={
        "DOCMILL_ENABLE_DIAGNOSTICS": "true", "DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]',
        "DOCMILL_WEBHOOK_GIVE_UP_S": "1"})  # one failed attempt and a delivery is "failed"
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
    # The invoice's first page as an image (a pdf.to-image job) with the fields' boxes.
    acme.get_by_role("button", name="Show page 1 of AzureInterior.pdf as an image").click()
    acme.wait_for_url(re.compile(r".*\?page_image=[0-9a-f-]{36}$"), timeout=WAIT_MS)
    acme.wait_for_function("document.querySelector('.page-view img').naturalWidth > 0")
    on_page_1 = {name for name, f in job["result"]["fields"].items() if f.get("page") == 1}
    assert on_page_1  # the built-in extractor found something on this invoice
    boxes = acme.locator(".page-view .box")
    assert {boxes.nth(i).get_attribute("data-field") for i in range(boxes.count())} == on_page_1
    picture = acme.locator(".page-view img").bounding_box()
    for i in range(boxes.count()):  # every box lies on the picture
        box = boxes.nth(i).bounding_box()
        assert picture["x"] <= box["x"] and box["x"] + box["width"] <= picture["x"] + picture["width"] + 1
        assert picture["y"] <= box["y"] and box["y"] + box["height"] <= picture["y"] + picture["height"] + 1
    acme.locator("#page-image").screenshot(path=str(shots / "extraction-boxes.png"))
    acme.screenshot(path=str(shots / "extraction.png"), full_page=True)
    acme.goto(f"{srv.url}/console/document-types")
    assert acme.get_by_role("link", name="acme_invoice").is_visible()
    acme.screenshot(path=str(shots / "document-types.png"), full_page=True)


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


def test_admin_pages_and_phone_width(browser, srv, acme, shots):
    for path in ("/console/jobs", "/console/submit", "/console/document-types",
                 "/console/document-types/new", "/console/document-types/acme_invoice",
                 "/console/admin/keys", "/console/admin/webhooks", "/console/admin/queue",
                 "/console/admin/organization"):
        acme.goto(srv.url + path)
        assert acme.evaluate(UNLABELLED) == [], path  # every control has a name
        assert acme.locator("h1").count() == 1, path
    acme.goto(f"{srv.url}/console/jobs")
    acme.keyboard.press("Tab")  # the first stop is the skip link, which lands on main
    assert acme.evaluate("document.activeElement.textContent") == "Skip to content"
    acme.keyboard.press("Enter")
    assert acme.evaluate("document.activeElement.id") == "main"
    acme.goto(f"{srv.url}/console/admin/queue")
    assert acme.locator("[data-role=enqueued]").inner_text().isdigit()
    acme.screenshot(path=str(shots / "queue.png"), full_page=True)
    ctx, phone = sign_in(browser, srv, "acme", viewport={"width": 375, "height": 740},
                         is_mobile=True, has_touch=True)
    for path in ("/console/jobs", "/console/submit"):
        phone.goto(srv.url + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)  # nothing wider than the phone (tables scroll)
    phone.goto(f"{srv.url}/console/jobs")
    phone.screenshot(path=str(shots / "jobs-phone.png"), full_page=True)
    phone.get_by_role("button", name="Sign out").click()
    phone.wait_for_url("**/console/sign-in")
    phone.goto(f"{srv.url}/console/jobs")
    assert "/console/sign-in" in phone.url
    ctx.close()
