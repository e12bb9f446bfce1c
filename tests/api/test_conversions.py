"""The conversion engines over real HTTP against a real server (both database backends):
office documents to PDF and between formats, HTML and Markdown to PDF with the SSRF guard,
HTML tables to XLSX; concurrency on the two-worker pool, soffice killed under the server,
malformed inputs classified without losing the worker, no orphan soffice after a job
timeout kills its worker."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openpyxl
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from doctext import coverage, odf_text, pdf_pages_text, source_text
from local_http import FILE_ATTACKS, Recorder

WAIT = 90
# "Don't wait" as ?wait=1: the current native face answers 500 for ?wait=0 (DetachedInstanceError
# in job_view, outside this module); a one-second wait takes the other path.
ASYNC = 1


def submit(client, path, operation, params=None, wait=WAIT, name=None, content=None,
           timeout_s=None):
    form = {"operation": operation, "params": json.dumps(params or {})}
    if timeout_s is not None:
        form["timeout_s"] = str(timeout_s)
    body = content if content is not None else Path(path).read_bytes()
    response = client.post("/v1/jobs", params={"wait": wait} if wait else None, data=form,
                           files={"file": (name or Path(path).name, body)},
                           timeout=WAIT + 30)
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_done(client, job, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while job["status"] not in ("SUCCESS", "ERROR") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    return job


def output(client, job, index=0) -> bytes:
    response = client.get(job["files"][index]["url"])
    assert response.status_code == 200
    return response.content


def soffice_pids(server) -> list[int]:
    """soffice processes started by this server's workers: local pool children, or Celery
    worker processes in the distributed setup (whatever processes the server's tree has)."""
    roots = [server.process] + list(getattr(server, "workers", []) or [])
    tree: set[int] = set()
    for root in roots:
        pid = getattr(root, "pid", None)
        if pid is None:
            continue
        try:
            proc = psutil.Process(pid)
            tree |= {pid} | {c.pid for c in proc.children(recursive=True)}
        except psutil.NoSuchProcess:
            continue
    pids = []
    for pid in tree:
        try:
            proc = psutil.Process(pid)
            if proc.name().startswith("soffice") and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(pid)
        except psutil.NoSuchProcess:
            continue
    return pids


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


def test_operations_are_listed(acme):
    ops = {op["name"]: op for op in acme.get("/v1/operations").json()["operations"]}
    assert {"office.to-pdf", "office.convert", "html.to-pdf", "markdown.to-pdf",
            "html.to-xlsx", "html.to-xls"} <= set(ops)
    assert "password" in ops["office.to-pdf"]["params_schema"]["properties"]
    assert "base_url" in ops["html.to-pdf"]["params_schema"]["properties"]


@pytest.mark.parametrize("name", ["par-known-paragraphs.docx", "Electra.odt",
                                  "inventory-table.xlsx", "tbl-cell.pptx"])
def test_office_to_pdf(acme, data, name):
    path = data / "office" / name
    job = submit(acme, path, "office.to-pdf")
    assert job["status"] == "SUCCESS", job
    assert job["progress"] == 100
    pages = pdf_pages_text(output(acme, job))
    assert len(pages) == job["result"]["pages"] >= 1
    assert coverage(source_text(path), "\n".join(pages)) >= 0.9
    assert job["files"][0]["content_type"] == "application/pdf"


def test_office_to_pdf_page_range_and_pdfa(acme, data):
    job = submit(acme, data / "office" / "Electra.odt", "office.to-pdf",
                 {"pages": "1-2", "pdf_format": "pdfa-1b"})
    assert job["status"] == "SUCCESS", job
    raw = output(acme, job)
    assert len(pdf_pages_text(raw)) == 2 and b"pdfaid:part" in raw


def test_office_convert_docx_to_odt(acme, data):
    path = data / "office" / "par-known-paragraphs.docx"
    job = submit(acme, path, "office.convert", {"format": "odt"})
    assert job["status"] == "SUCCESS", job
    assert job["files"][0]["name"].endswith(".odt")
    assert coverage(source_text(path), odf_text(io.BytesIO(output(acme, job)))) >= 0.9


def test_four_concurrent_office_conversions(acme, data):
    paths = [data / "office" / n for n in ("footnotes.docx", "Electra.odt", "any_sheets.xlsx",
                                            "test.pptx")]
    with ThreadPoolExecutor(4) as pool:
        jobs = list(pool.map(lambda p: submit(acme, p, "office.to-pdf", wait=ASYNC), paths))
    for path, job in zip(paths, jobs, strict=True):
        job = wait_done(acme, job)
        assert job["status"] == "SUCCESS", job
        assert coverage(source_text(path), "\n".join(pdf_pages_text(output(acme, job)))) >= 0.9


def test_soffice_killed_between_and_during_jobs(server, acme, data):
    path = data / "office" / "footnotes.docx"
    for _ in range(2):  # warm both workers' instances (either may take a job)
        assert submit(acme, path, "office.to-pdf")["status"] == "SUCCESS"
    before = soffice_pids(server)
    assert before, "no soffice under the workers"
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    job = submit(acme, path, "office.to-pdf")
    assert job["status"] == "SUCCESS", job
    # during: kill every soffice as soon as the job is processing
    job = submit(acme, data / "office" / "Electra.odt", "office.to-pdf", wait=ASYNC)
    deadline = time.monotonic() + 30
    killed = []
    while time.monotonic() < deadline and not killed:
        state = acme.get(f"/v1/jobs/{job['id']}").json()
        if state["status"] in ("SUCCESS", "ERROR"):
            break
        if state["status"] == "PROCESSING":
            for pid in soffice_pids(server):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.02)
    job = wait_done(acme, job)
    assert job["status"] == "SUCCESS", job["error"]  # retried once on a fresh instance
    assert submit(acme, path, "office.to-pdf")["status"] == "SUCCESS"
    assert not set(before) & set(soffice_pids(server))


def test_office_malformed_inputs_are_classified(acme, data):
    good = (data / "office" / "footnotes.docx").read_bytes()
    cases = [
        ("truncated.docx", good[: len(good) // 3], "invalid_input"),
        ("noise.docx", os.urandom(3000), None),  # refused at upload or by the engine
        ("empty-zip.xlsx", b"PK\x05\x06" + b"\0" * 18, None),
    ]
    for name, content, code in cases:
        if code is None:
            # random bytes may sniff as some other type (an executable, say): then the
            # upload itself is refused with 415, which is as good as the engine refusing
            response = acme.post("/v1/jobs", data={"operation": "office.to-pdf"},
                                 files={"file": (name, content)})
            if response.status_code == 415:
                assert response.json()["error"]["code"] == "unsupported_format"
                continue
            assert response.status_code == 202, response.text
            job = wait_done(acme, response.json())
        else:
            job = wait_done(acme, submit(acme, None, "office.to-pdf", name=name,
                                         content=content))
        assert job["status"] == "ERROR", job
        assert job["error"]["code"] in ((code,) if code else ("invalid_input",
                                                               "unsupported_format"))
        assert job["error"]["message"]
    # the workers are still there and still convert
    assert submit(acme, data / "office" / "footnotes.docx", "office.to-pdf")["status"] == \
        "SUCCESS"


def test_office_encrypted_input(acme, data, tmp_path):
    from msoffcrypto.format.ooxml import OOXMLFile

    secret = tmp_path / "secret.docx"
    with open(data / "office" / "par-known-paragraphs.docx", "rb") as plain, \
            open(secret, "wb") as out:
        OOXMLFile(plain).encrypt("s3cret", out)
    job = wait_done(acme, submit(acme, secret, "office.to-pdf"))
    assert job["status"] == "ERROR" and job["error"]["code"] == "password_required", job
    job = wait_done(acme, submit(acme, secret, "office.to-pdf", {"password": "s3cret"}))
    assert job["status"] == "SUCCESS", job


def test_html_to_pdf_refuses_local_and_private_resources(acme, recorder):
    html = FILE_ATTACKS.format(base=recorder.base, port=recorder.server_address[1])
    job = submit(acme, None, "html.to-pdf", name="attack.html", content=html.encode())
    assert job["status"] == "SUCCESS", job
    assert recorder.requests == []
    text = "\n".join(pdf_pages_text(output(acme, job)))
    assert "Rendered without them" in text and "root:" not in text
    warnings = job["result"]["warnings"]
    for url in ("file:///etc/passwd", "file:///etc/hostname", f"{recorder.base}/sheet.css",
                f"{recorder.base}/pixel.png", "http://169.254.169.254/latest/meta-data/"):
        assert any(url in w for w in warnings), (url, warnings)


def test_html_corpus_and_markdown(acme, data):
    path = data / "html" / "pagedjs-long-table.html"
    job = submit(acme, path, "html.to-pdf", {"page_size": "A4", "margin": "2cm"})
    assert job["status"] == "SUCCESS", job
    assert job["result"]["pages"] == len(pdf_pages_text(output(acme, job))) > 1
    markdown = b"# Hello Markdown\n\n* one\n* two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    job = submit(acme, None, "markdown.to-pdf", name="notes.md", content=markdown)
    assert job["status"] == "SUCCESS", job
    text = pdf_pages_text(output(acme, job))[0]
    assert "Hello Markdown" in text and "two" in text


def test_html_to_xlsx(acme):
    html = (b"<table><caption>People</caption><tr><th>Name</th><th>Born</th><th>Score</th></tr>"
            b"<tr><td>Ada</td><td>1815-12-10</td><td>99.5</td></tr></table>")
    job = submit(acme, None, "html.to-xlsx", name="people.html", content=html)
    assert job["status"] == "SUCCESS", job
    workbook = openpyxl.load_workbook(io.BytesIO(output(acme, job)))
    sheet = workbook["People"]
    assert [c.value for c in sheet[1]] == ["Name", "Born", "Score"] and sheet["A1"].font.b
    assert sheet["B2"].is_date and sheet["C2"].value == 99.5


def test_bad_html_params_are_refused_at_submit(acme):
    response = acme.post("/v1/jobs", data={"operation": "html.to-pdf",
                                           "params": json.dumps({"base_url": "file:///etc/"})},
                         files={"file": ("a.html", b"<p>x</p>")})
    assert response.status_code in (400, 422), response.text


def test_job_timeout_leaves_no_orphan_soffice(make_server, data):
    """The runner kills a worker child on job timeout; its soffice must die with it."""
    server = make_server("sqlite", DOCMILL_WORKERS="1").start()
    with server.client() as client:
        # the first office job in a fresh worker starts LibreOffice (seconds): 1 s kills it
        job = submit(client, data / "office" / "Electra.odt", "office.to-pdf",
                     {"pdf_format": "pdfa-2b"}, wait=ASYNC, timeout_s=1)
        job = wait_done(client, job)
        assert job["status"] == "ERROR" and job["error"]["code"] == "timeout", job
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _orphans():
            time.sleep(0.2)
        assert _orphans() == []
        # and the replacement worker converts
        job = submit(client, data / "office" / "footnotes.docx", "office.to-pdf")
        assert job["status"] == "SUCCESS", job


def _orphans() -> list[int]:
    """soffice processes of Docmill whose worker (named in the profile path) is gone."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if "soffice" not in cmd or "docmill-lo-" not in cmd:
                continue
            owner = int(cmd.split("docmill-lo-", 1)[1].split("-", 1)[0])
            if not psutil.pid_exists(owner):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, ValueError, IndexError):
            continue
    return found

