"""The slim image (no LibreOffice, no Chromium): it starts, runs PDF and OCR jobs, and an office
job fails with an error that names what is missing and which image has it."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest

from .conftest import IMAGE, pdf_text, podman, run_job, served, write_scan


@pytest.fixture(scope="module")
def slim(slim_image: str):
    with served(slim_image) as started:
        yield started


def test_slim_image_has_neither_libreoffice_nor_chromium(slim_image: str, image: str):
    sizes = {name: int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout)
             for name in (slim_image, IMAGE)}
    assert sizes[slim_image] < sizes[IMAGE] - 400e6, sizes
    found = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", slim_image, "-c",
                   "ls /usr/lib/libreoffice /usr/bin/chromium /usr/lib/chromium 2>&1; true").stdout
    assert found.count("No such file or directory") == 3, found


def test_slim_image_runs_pdf_and_ocr_jobs(slim: dict, tmp_path: Path):
    scan = write_scan(tmp_path / "scan.pdf", "Invoice number 4711 paid")
    other = write_scan(tmp_path / "other.pdf", "Second page here")
    merged = run_job(slim, "pdf.merge", scan, other)
    assert merged["status"] == "SUCCESS", merged
    assert merged["content"].startswith(b"%PDF-")
    ocr = run_job(slim, "ocr.searchable-pdf", scan)
    assert ocr["status"] == "SUCCESS", ocr
    assert "Invoice number 4711 paid" in pdf_text(ocr["content"])


def test_slim_image_refuses_an_office_job_with_a_clear_error(slim: dict, tmp_path: Path):
    document = docx.Document()
    document.add_paragraph("an office document")
    document.save(tmp_path / "report.docx")
    job = run_job(slim, "office.to-pdf", tmp_path / "report.docx")
    assert job["status"] == "ERROR", job
    assert job["error"]["code"] == "engine_failed", job
    message = job["error"]["message"]
    assert "LibreOffice is not installed" in message and "core container image" in message, job
