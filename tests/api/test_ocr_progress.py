"""Progress of a long read over the native API: a 96-page PDF shows real intermediate
percentages, never decreasing, and 100 only with SUCCESS (issue 8's progress requirement;
test_ocr.py's 30-page test checks the order and the end, this one the way there).

The events come from `/v1/jobs/{id}/events` (SSE); the 96 text-layer pages take several
seconds, many times the runner's progress-write interval (32 pages read in under two
intervals on an idle machine, so only one intermediate percentage was written).
"""

from __future__ import annotations

import io
import json

import pypdf


def test_long_pdf_shows_intermediate_percentages(acme, data):
    writer = pypdf.PdfWriter()
    while len(writer.pages) < 96:
        writer.append(pypdf.PdfReader(data / "pdf" / "pdflatex-4-pages.pdf"))
    buffer = io.BytesIO()
    writer.write(buffer)
    response = acme.post("/v1/jobs", data={"operation": "layout.analyze"},
                         files={"file": ("long.pdf", buffer.getvalue())})
    assert response.status_code in (200, 201, 202), response.text
    seen: list[tuple[int, str, str]] = []
    with acme.stream("GET", f"/v1/jobs/{response.json()['id']}/events",
                     timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append((event["progress"], event["status"], event.get("message") or ""))
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress), seen
    assert seen[-1][:2] == (100, "SUCCESS"), seen
    assert all(p < 100 for p, status, _ in seen if status != "SUCCESS"), seen
    middle = {p for p, status, _ in seen if status == "PROCESSING" and 0 < p < 100}
    assert len(middle) >= 2, seen  # several distinct percentages on the way
    assert any("page" in message for p, _, message in seen if p in middle), seen
