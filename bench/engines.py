"""Conversion engines benchmark: office documents to PDF three ways, and PDF pages to PNG.

Office: 20 .docx documents: the 6 of shared/data/office, its 3 .odt files saved as .docx by
LibreOffice, and 11 reports written with python-docx (1 to 30 pages of headings, paragraphs
and a table per page), each converted `--rounds` times:

* **soffice CLI**: `soffice --headless --convert-to pdf` as one process per file, the way
  scripts usually do it (one reused profile folder, so no first-start cost after the first).
* **warm UNO, direct**: Docmill's `OfficeConverter` in this process: one soffice started
  once (start time reported apart), every file converted over the same UNO bridge.
* **Docmill API**: a real `docmill serve` (2 workers, each with its own warm soffice after a
  warm-up), `POST /v1/jobs?wait=...` one job after another (latency as the client sees it:
  upload, queue, conversion, result), then every file submitted at once by 8 clients
  (throughput, p95 latency, failures).

PDF -> PNG at 150 dpi of a 20-page PDF (shared/data/pdf/pdflatex-4-pages.pdf five times over):
pypdfium2 direct in this process (render + PNG encode, as the engine does) vs `pdf.to-image`
through the API.

HTML -> PDF engines are measured in bench/html_engines.py (WeasyPrint and Chromium, direct
and through Docmill).

    .venv/bin/python bench/engines.py [--rounds 2]

Results go to bench/results/engines.json and bench/results/engines.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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
            "p95_s": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "total_s": sum(ordered)}


def bench_cli(files: list[Path], rounds: int) -> dict[str, Any]:
    from docmill.engines.office.bridge import program_dir

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
    from docmill.engines.office.converter import OfficeConverter
    from docmill.engines.office.formats import PDF_FILTERS

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


def corpus(workdir: Path) -> list[Path]:
    """The 20 docx documents described in the module docstring."""
    from docx import Document
    from docx.shared import Pt

    from docmill.engines.office.bridge import program_dir

    files = sorted((DATA / "office").glob("*.docx"))
    profile = Path(tempfile.mkdtemp(prefix="bench-lo-profile-"))
    odt = sorted((DATA / "office").glob("*.odt"))
    subprocess.run([str(program_dir() / "soffice"), "--headless", "--norestore",
                    f"-env:UserInstallation={profile.as_uri()}", "--convert-to", "docx",
                    "--outdir", str(workdir), *map(str, odt)],
                   capture_output=True, timeout=300, check=True)
    shutil.rmtree(profile, ignore_errors=True)
    files += [workdir / f"{p.stem}.docx" for p in odt]
    for n, pages in enumerate((1, 1, 2, 3, 5, 5, 8, 10, 15, 20, 30)):
        doc = Document()
        doc.styles["Normal"].font.size = Pt(11)
        for page in range(pages):
            doc.add_heading(f"Report {n + 1}, section {page + 1}", level=1)
            for para in range(4):
                doc.add_paragraph(
                    f"Paragraph {para + 1} of section {page + 1}. " + "The quarterly figures "
                    "below compare the regions by revenue, cost and margin. " * 4)
            table = doc.add_table(rows=6, cols=4)
            for r, cells in enumerate(table.rows):
                for c, cell in enumerate(cells.cells):
                    cell.text = "Region" if (r, c) == (0, 0) else f"{r * 1000 + c * 37}"
            if page < pages - 1:
                doc.add_page_break()
        path = workdir / f"report-{n + 1:02d}-{pages}p.docx"
        doc.save(path)
        files.append(path)
    assert len(files) == 20, len(files)
    return files


def twenty_page_pdf(workdir: Path) -> Path:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(5):
        writer.append(str(DATA / "pdf" / "pdflatex-4-pages.pdf"))
    path = workdir / "twenty-pages.pdf"
    writer.write(path)
    assert len(pypdf.PdfReader(path).pages) == 20
    return path


def bench_png_direct(pdf: Path, rounds: int) -> dict[str, Any]:
    import pypdfium2 as pdfium

    samples = []
    out = Path(tempfile.mkdtemp(prefix="bench-png-"))
    for _ in range(rounds + 1):  # the first round warms the caches and is dropped
        started = time.perf_counter()
        doc = pdfium.PdfDocument(pdf)
        for index in range(len(doc)):
            doc[index].render(scale=150 / 72).to_pil().save(out / f"{index}.png", "PNG")
        doc.close()
        samples.append(time.perf_counter() - started)
    shutil.rmtree(out, ignore_errors=True)
    return stats(samples[1:])


def submit(client, path: Path, operation: str, params: str = "{}") -> float:
    started = time.perf_counter()
    response = client.post("/v1/jobs", params={"wait": 120},
                           data={"operation": operation, "params": params},
                           files={"file": (path.name, path.read_bytes())}, timeout=180)
    elapsed = time.perf_counter() - started
    job = response.json()
    assert response.status_code == 200 and job["status"] == "SUCCESS", job
    return elapsed


def bench_api(server: DocmillServer, files: list[Path], rounds: int, operation: str,
              clients: int = 8) -> dict[str, Any]:
    with server.client() as client:
        latency = [submit(client, path, operation) for _ in range(rounds) for path in files]
    batch = files * rounds
    failures: list[str] = []

    def one(path: Path) -> float | None:
        try:
            with server.client() as client:
                return submit(client, path, operation)
        except Exception as exc:  # noqa: BLE001 - counted, reported
            failures.append(f"{path.name}: {exc}")
            return None

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        loaded = [t for t in pool.map(one, batch) if t is not None]
    wall = time.perf_counter() - started
    return {"latency": stats(latency), "throughput": {
        "jobs": len(batch), "clients": clients, "wall_s": wall, "failures": failures,
        "jobs_per_s": len(loaded) / wall, "latency_under_load": stats(loaded)}}


def row(name: str, s: dict[str, float], extra: str = "") -> str:
    return (f"| {name} | {s['n']} | {s['mean_s'] * 1000:.0f} | {s['median_s'] * 1000:.0f} | "
            f"{s['p95_s'] * 1000:.0f} | {extra} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-engines-docs-"))
    office = corpus(workdir)
    pdf = twenty_page_pdf(workdir)
    results: dict[str, Any] = {"when": dt.datetime.now(dt.UTC).isoformat(),
                               "machine": {"python": platform.python_version(),
                                           "cpus": os.cpu_count(),
                                           "load_before": os.getloadavg()},
                               "rounds": args.rounds, "office_files": [p.name for p in office]}
    print(f"office: {len(office)} files x {args.rounds} rounds", flush=True)
    results["office_cli"] = bench_cli(office, args.rounds)
    print("  soffice CLI done", flush=True)
    results["office_direct"] = bench_direct(office, args.rounds)
    print("  warm UNO done", flush=True)
    results["png_direct"] = bench_png_direct(pdf, args.rounds)
    print("  pypdfium2 direct done", flush=True)

    server = DocmillServer(Path(tempfile.mkdtemp(prefix="bench-engines-")), extra_env={
        "DOCMILL_WORKERS": "2"})
    server.cli("migrate")
    server.create_key("acme", admin=True)
    server.start()
    png_params = json.dumps({"format": "png", "dpi": 150})
    try:
        with server.client() as client:  # warm both workers' soffice
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda p: submit(client, p, "office.to-pdf"), office[:4]))
            submit(client, pdf, "pdf.to-image", png_params)
            results["png_api"] = stats([submit(client, pdf, "pdf.to-image", png_params)
                                        for _ in range(args.rounds)])
        print("  pdf.to-image API done", flush=True)
        results["office_api"] = bench_api(server, office, args.rounds, "office.to-pdf")
        print("  office API done", flush=True)
    finally:
        server.destroy()
        shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()

    oa = results["office_api"]
    cli, direct = results["office_cli"], results["office_direct"]
    throughput = oa["throughput"]
    lines = [
        f"# Conversion engines benchmark ({results['when'][:19]}Z)",
        "",
        f"{len(office)} docx documents ({', '.join(results['office_files'])}), "
        f"{args.rounds} rounds, {results['machine']['cpus']} CPUs, load average "
        f"{results['machine']['load_before'][0]:.1f} before, "
        f"{results['machine']['load_after'][0]:.1f} after. Times in ms per document.",
        "",
        "| way | n | mean | median | p95 | notes |",
        "|---|---|---|---|---|---|",
        row("docx->pdf: soffice --convert-to, one process per file", cli),
        row("docx->pdf: one warm soffice over UNO, direct", direct,
            f"start {direct['start_s']:.1f} s once"),
        row("docx->pdf: Docmill API, sequential", oa["latency"], "2 workers, warm"),
        row("docx->pdf: Docmill API, 8 concurrent clients", throughput["latency_under_load"],
            f"{throughput['jobs_per_s']:.2f} jobs/s, {len(throughput['failures'])} failures"),
        row("pdf->png 150 dpi, 20 pages: pypdfium2 direct", results["png_direct"]),
        row("pdf->png 150 dpi, 20 pages: Docmill API", results["png_api"]),
        "",
        "Ratios (medians):",
        "",
        f"- Docmill API vs soffice per file: **{cli['median_s'] / oa['latency']['median_s']:.1f}x"
        "** faster per document (target >= 3x)",
        f"- Docmill API vs one warm instance called directly: **"
        f"{oa['latency']['median_s'] / direct['median_s']:.2f}x** (target <= 1.10x)",
        f"- 8 concurrent clients: {throughput['jobs']} conversions, "
        f"{len(throughput['failures'])} failures, p95 "
        f"{throughput['latency_under_load']['p95_s'] * 1000:.0f} ms",
        f"- pdf->png through the API vs direct: **"
        f"{results['png_api']['median_s'] / results['png_direct']['median_s']:.2f}x**",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "engines.md").write_text(table)


if __name__ == "__main__":
    main()
