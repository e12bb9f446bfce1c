"""The native face's job lifecycle over real HTTP against a real server."""

from __future__ import annotations

import json

import pypdfium2 as pdfium
import pytest

pytestmark = pytest.mark.fast  # the app in-process (tests/inprocess.py)


def submit(client, path, operation, params=None, wait=30):
    with open(path, "rb") as handle:
        response = client.post("/v1/jobs", params={"wait": wait} if wait else None,
                               data={"operation": operation, "params": json.dumps(params or {})},
                               files={"file": (path.name, handle)})
    return response


def test_pdf_to_text_matches_pdfium(acme, data):
    path = data / "pdf" / "pdflatex-4-pages.pdf"
    response = submit(acme, path, "pdf.to-text")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "SUCCESS" and job["progress"] == 100
    doc = pdfium.PdfDocument(path)
    expected = [doc[i].get_textpage().get_text_bounded().replace("\r\n", "\n")
                for i in range(len(doc))]
    assert [p["text"] for p in job["result"]["pages"]] == expected
    text = acme.get(job["files"][0]["url"]).text
    assert text.split("\f") == expected


def test_list_filter_and_cursor(acme, data):
    path = data / "pdf" / "minimal-document.pdf"
    ids = [submit(acme, path, "pdf.to-text", wait=0).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = acme.get("/v1/jobs", params={"operation": "pdf.to-text", "limit": 2,
                                            **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in ids] == list(reversed(ids))


def test_events_stream_reaches_success(acme, data):
    job = submit(acme, data / "pdf" / "pdflatex-4-pages.pdf", "pdf.to-image",
                 {"dpi": 100}, wait=0).json()
    events = []
    with acme.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    assert events[-1]["status"] == "SUCCESS" and events[-1]["progress"] == 100


def test_delete_then_404(acme, data):
    job = submit(acme, data / "pdf" / "minimal-document.pdf", "pdf.to-text").json()
    assert acme.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert acme.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert acme.get(f"/v1/jobs/{job['id']}/files/{job['files'][0]['name']}").status_code == 404
    assert acme.delete(f"/v1/jobs/{job['id']}").status_code == 404


def test_operations_lists_schemas(acme):
    ops = {op["name"]: op for op in acme.get("/v1/operations").json()["operations"]}
    assert {"pdf.to-image", "pdf.to-text", "pdf.merge", "pdf.split", "image.to-pdf",
            "image.convert"} <= set(ops)
    assert ops["pdf.to-image"]["params_schema"]["properties"]["dpi"]["default"] == 150


def test_each_operation_has_a_one_line_description(acme):
    """The first sentence of the operation's summary, whitespace folded onto one line."""
    ops = {op["name"]: op for op in acme.get("/v1/operations").json()["operations"]}
    for name, op in ops.items():
        description = op["description"]
        assert description and "\n" not in description, name
        assert op["summary"].split()[:3] == description.split()[:3], name
    assert ops["pdf.merge"]["description"] == "Concatenate PDFs in the order given."
    assert ops["html.to-pdf"]["description"].startswith("Render an HTML document to PDF")
    folded = " ".join(ops["html.to-pdf"]["summary"].split())
    assert len(ops["html.to-pdf"]["description"]) < len(folded)  # one sentence of several
