"""The `docmill` command as a user runs it against a live server: submit with a progress bar
and downloaded outputs, list, show and delete jobs; keys created, listed, revoked."""

from __future__ import annotations

import json
import subprocess
import sys

import pypdfium2 as pdfium
from PIL import Image


def run_cli(server, *args, check=True):
    env = dict(server.env, DOCMILL_API_KEY=server.keys["acme"], DOCMILL_SERVER=server.url)
    return subprocess.run([sys.executable, "-m", "docmill.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=check)


def test_submit_wait_downloads_every_page(server, data, tmp_path):
    source = data / "pdf" / "pdflatex-4-pages.pdf"
    result = run_cli(server, "submit", str(source), "--op", "pdf.to-image",
                     "--param", "format=png", "--param", "dpi=50", "--wait",
                     "--out", str(tmp_path))
    paths = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert len(paths) == 4
    doc = pdfium.PdfDocument(source)
    for index, path in enumerate(sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1][:-4]))):
        width, height = doc[index].get_size()
        with Image.open(path) as image:
            assert image.size == (round(width * 50 / 72), round(height * 50 / 72))
    assert "SUCCESS" in result.stderr and "100%" in result.stderr  # the progress bar


def test_submit_failure_is_reported_with_its_code(server, data, tmp_path):
    source = data / "malformed" / "libreoffice-writer-password.pdf"
    result = run_cli(server, "submit", str(source), "--op", "pdf.to-text", "--wait",
                     "--out", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "password_required" in result.stderr


def test_jobs_ls_show_rm(server, data):
    source = data / "pdf" / "minimal-document.pdf"
    job = json.loads(run_cli(server, "submit", str(source), "--op", "pdf.to-text").stdout)
    assert job["status"] in ("ENQUEUED", "PROCESSING", "SUCCESS")
    shown = json.loads(run_cli(server, "jobs", "show", job["id"]).stdout)
    assert shown["id"] == job["id"] and shown["operation"] == "pdf.to-text"
    listing = run_cli(server, "jobs", "ls", "--operation", "pdf.to-text", "--limit", "100").stdout
    assert job["id"][:8] in listing
    run_cli(server, "jobs", "rm", job["id"])
    gone = run_cli(server, "jobs", "show", job["id"], check=False)
    assert gone.returncode == 1 and "not_found" in gone.stderr


def test_keys_create_list_revoke(server):
    created = server.cli("keys", "create", "--org", "cli-org", "--name", "ci")
    key = created.stdout.strip().splitlines()[-1]
    prefix = key.split("_")[1]
    listing = server.cli("keys", "list", "--org", "cli-org").stdout
    assert prefix in listing and key not in listing
    server.cli("keys", "revoke", prefix)
    assert "yes" in server.cli("keys", "list", "--org", "cli-org").stdout
    again = server.cli("keys", "revoke", prefix, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
