"""Conversion engines benchmark: office documents to PDF and HTML to PDF, three ways each.

Office (every .docx of shared/data/office, `--rounds` times):

* **soffice CLI**: `soffice --headless --convert-to pdf` as one process per file, the way
  scripts usually do it (one reused profile folder, so no first-start cost after the first).
* **warm UNO, direct**: Docmill's `OfficeConverter` in this process: one soffice started
  once (start time reported apart), every file converted over the same UNO bridge.
* **Docmill API**: a real `docmill serve` (2 workers, each with its own warm soffice after a
  warm-up), `POST /v1/jobs?wait=...` one job after another (latency as the client sees it:
  upload, queue, conversion, result), then every file submitted at once by 4 clients
  (throughput).

HTML (every .html of shared/data/html): WeasyPrint direct in this process (`render_html`,
the engine's own path) vs through the Docmill API.

    .venv/bin/python bench/engines.py [--rounds 3]

Results go to bench/results/engines.json and bench/results/engines.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server import DATA, DocmillServer  # noqa: E402

OFFICE_EXTS = {".docx"}
RESULTS = ROOT / "bench" / "results"


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "mean_s": statistics.fmean(ordered),
            "median_s": statistics.median(ordered),
            "p95_s": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))],
            "total_s": sum(ordered)}


def bench_cli(files: list[Path], rounds: int) -> dict[str, Any]:
    from docmill.engines.office import program_dir

    soffice = program_dir() / "soffice"
    profile = Path(tempfile.mkdtemp(prefix="bench-lo-profile-"))
    out = Path(tempfile.mkdtemp(prefix="bench-lo-out-"))
    args = [str(soffice), "--headless", "--norestore", f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to", "pdf", "--outdir", str(out)]
    subprocess.run(args + [str(files[0])], capture_output=True, timeout=120)  # profile init
    samples = []
    for _ in range(rounds):
        for path in files:
            started = time.perf_counter()
            subprocess.run(args + [str(path)], capture_output=True, timeout=120, check=True)
            samples.append(time.perf_counter() - started)
            assert (out / f"{path.stem}.pdf").exists()
    shutil.rmtree(profile, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return stats(samples)


def bench_direct(files: list[Path], rounds: int) -> dict[str, Any]:
    from docmill.engines.office import PDF_FILTERS, OfficeConverter

    converter = OfficeConverter()
    started = time.perf_counter()
    converter.ensure_ready(lambda *_: None)
    start_s = time.perf_counter() - started
    out = Path(tempfile.mkdtemp(prefix="bench-uno-out-"))
    samples = []
    try:
        for _ in range(rounds):
            for path in files:
                target = out / f"{path.stem}.pdf"
                started = time.perf_counter()
                converter.convert(path, target, lambda *_: None, export_filter=None,
                                  family_filters=PDF_FILTERS, filter_data={}, filter_options="",
                                  password=None, import_filter=None, import_options="")
                samples.append(time.perf_counter() - started)
    finally:
        converter.stop()
        shutil.rmtree(out, ignore_errors=True)
    return {**stats(samples), "start_s": start_s}


def submit(client, path: Path, operation: str) -> float:
    started = time.perf_counter()
    response = client.post("/v1/jobs", params={"wait": 120},
                           data={"operation": operation, "params": "{}"},
                           files={"file": (path.name, path.read_bytes())}, timeout=180)
    elapsed = time.perf_counter() - started
    job = response.json()
    assert response.status_code == 200 and job["status"] == "SUCCESS", job
    return elapsed


def bench_api(server: DocmillServer, files: list[Path], rounds: int, operation: str,
              clients: int = 4) -> dict[str, Any]:
    with server.client() as client:
        latency = [submit(client, path, operation) for _ in range(rounds) for path in files]
    batch = files * rounds

    def one(path: Path) -> float:
        with server.client() as client:
            return submit(client, path, operation)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        loaded = list(pool.map(one, batch))
    wall = time.perf_counter() - started
    return {"latency": stats(latency), "throughput": {
        "jobs": len(batch), "clients": clients, "wall_s": wall,
        "jobs_per_s": len(batch) / wall, "latency_under_load": stats(loaded)}}


def bench_weasy(files: list[Path], rounds: int) -> dict[str, Any]:
    from docmill.engines.html import HtmlToPdfParams, render_html

    out = Path(tempfile.mkdtemp(prefix="bench-html-"))
    render_html(files[0].read_bytes(), HtmlToPdfParams(), out / "warm.pdf", lambda *_: None)
    samples = []
    for _ in range(rounds):
        for path in files:
            started = time.perf_counter()
            render_html(path.read_bytes(), HtmlToPdfParams(), out / f"{path.stem}.pdf",
                        lambda *_: None)
            samples.append(time.perf_counter() - started)
    shutil.rmtree(out, ignore_errors=True)
    return stats(samples)


def row(name: str, s: dict[str, float], extra: str = "") -> str:
    return (f"| {name} | {s['n']} | {s['mean_s'] * 1000:.0f} | {s['median_s'] * 1000:.0f} | "
            f"{s['p95_s'] * 1000:.0f} | {extra} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    office = sorted(p for p in (DATA / "office").iterdir() if p.suffix in OFFICE_EXTS)
    html = sorted((DATA / "html").rglob("*.html"))
    results: dict[str, Any] = {"when": dt.datetime.now(dt.timezone.utc).isoformat(),
                               "machine": {"python": platform.python_version(),
                                           "cpus": __import__("os").cpu_count()},
                               "rounds": args.rounds, "office_files": [p.name for p in office],
                               "html_files": [p.name for p in html]}
    print(f"office: {len(office)} files x {args.rounds} rounds", flush=True)
    results["office_cli"] = bench_cli(office, args.rounds)
    print("  soffice CLI done", flush=True)
    results["office_direct"] = bench_direct(office, args.rounds)
    print("  warm UNO done", flush=True)
    results["html_direct"] = bench_weasy(html, args.rounds)
    print("  weasyprint direct done", flush=True)

    server = DocmillServer(Path(tempfile.mkdtemp(prefix="bench-engines-")), extra_env={
        "DOCMILL_WORKERS": "2"})
    server.cli("migrate")
    server.create_key("acme", admin=True)
    server.start()
    try:
        with server.client() as client:  # warm both workers' soffice and WeasyPrint
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda p: submit(client, p, "office.to-pdf"), office[:4]))
                list(pool.map(lambda p: submit(client, p, "html.to-pdf"), html[:4]))
        results["office_api"] = bench_api(server, office, args.rounds, "office.to-pdf")
        print("  office API done", flush=True)
        results["html_api"] = bench_api(server, html, args.rounds, "html.to-pdf")
        print("  html API done", flush=True)
    finally:
        server.destroy()
        shutil.rmtree(server.root, ignore_errors=True)

    oa, ha = results["office_api"], results["html_api"]
    lines = [
        f"# Conversion engines benchmark ({results['when'][:19]}Z)",
        "",
        f"{len(office)} office files ({', '.join(results['office_files'])}) and {len(html)} HTML "
        f"files, {args.rounds} rounds, {results['machine']['cpus']} CPUs. Times in ms per "
        "document.",
        "",
        "| way | n | mean | median | p95 | notes |",
        "|---|---|---|---|---|---|",
        row("office: soffice --convert-to, one process per file", results["office_cli"]),
        row("office: one warm soffice over UNO, direct", results["office_direct"],
            f"start {results['office_direct']['start_s']:.1f} s once"),
        row("office: Docmill API, sequential", oa["latency"], "2 workers, warm"),
        row("office: Docmill API, 4 clients", oa["throughput"]["latency_under_load"],
            f"{oa['throughput']['jobs_per_s']:.2f} jobs/s"),
        row("html: WeasyPrint direct", results["html_direct"]),
        row("html: Docmill API, sequential", ha["latency"]),
        row("html: Docmill API, 4 clients", ha["throughput"]["latency_under_load"],
            f"{ha['throughput']['jobs_per_s']:.2f} jobs/s"),
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "engines.md").write_text(table)


if __name__ == "__main__":
    main()
