"""ConvertAPI face benchmark: the official `convertapi` client (2.0.1) against Docmill vs the
bare engine called directly, for docx -> pdf and pdf -> jpg.

* **engine, direct**: the engine class in this process (`OfficeEngine`, `PdfEngine`), warm
  (soffice started before timing), writing its files to a temporary folder;
* **ConvertAPI client**: `convertapi.convert(...)` (upload, convert, wait, JSON with result
  URLs) then `result.save_files(dir)` (every result file downloaded, one new HTTP connection
  per file, as the client does) against a real `docmill serve` (2 workers, warm); both times
  are reported, the ratio target applies to the convert call (the engine's files are on the
  server's disk in both cases);
* **8 clients**: the same client calls from 8 threads at once over the whole document set,
  for throughput and failures.

Documents: docx files written with python-docx (1, 10 and 30 pages of text with a table per
page) plus the corpus's docx files; PDFs made from them by the engine, plus a corpus PDF.
The ratio is client time / direct time per document; the target is <= 1.1 for documents
of 10 pages or more.

    .venv/bin/python bench/convertapi.py [--rounds 3] [--clients 8]

Results go to bench/results/convertapi.json and bench/results/convertapi.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is called convertapi.py: keep its folder off the path so that `import convertapi`
# finds the official client, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))
from server import DATA, DocmillServer  # noqa: E402 - after the sys.path entry above

RESULTS = ROOT / "bench" / "results"
WORDS = ["docmill", "converts", "documents", "for", "every", "client", "that", "speaks", "a",
         "vendor", "protocol", "and", "keeps", "the", "job", "state", "in", "one", "core"]


def make_docx(path: Path, pages: int) -> Path:
    import docx

    document = docx.Document()
    for page in range(pages):
        document.add_heading(f"Section {page + 1}", level=1)
        for n in range(6):
            document.add_paragraph(" ".join(WORDS[(page + n + i) % len(WORDS)]
                                            for i in range(60)))
        table = document.add_table(rows=4, cols=4)
        for r, row in enumerate(table.rows):
            for c, cell in enumerate(row.cells):
                cell.text = f"{page + 1}.{r}.{c}"
        if page < pages - 1:
            document.add_page_break()
    document.save(path)
    return path


def pdf_pages(path: Path) -> int:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        return len(doc)
    finally:
        doc.close()


def median(samples: list[float]) -> float:
    return statistics.median(samples)


class Direct:
    """The bare engines in this process, warm."""

    def __init__(self, workdir: Path) -> None:
        from docmill.engines.office.engine import OfficeEngine
        from docmill.engines.pdf.render import PdfEngine

        self.workdir = workdir
        self.office, self.pdf = OfficeEngine(), PdfEngine()
        self.office.start()
        self.pdf.start()

    def run(self, kind: str, path: Path) -> tuple[float, int]:
        from docmill.core.inputs import sniff
        from docmill.engines.base import EngineInput
        from docmill.engines.office.formats import ToPdfParams
        from docmill.engines.pdf.render import ToImageParams

        out = Path(tempfile.mkdtemp(dir=self.workdir))
        item = EngineInput(path, path.name, sniff(path.read_bytes()[:262144], path.name))
        started = time.perf_counter()
        if kind == "docx->pdf":
            result = self.office.run("office.to-pdf", [item], ToPdfParams(), out,
                                     lambda *_: None)
        else:
            result = self.pdf.run("pdf.to-image", [item], ToImageParams(format="jpeg"), out,
                                  lambda *_: None)
        elapsed = time.perf_counter() - started
        shutil.rmtree(out, ignore_errors=True)
        return elapsed, len(result.outputs)

    def stop(self) -> None:
        self.office.stop()


def client_run(kind: str, path: Path, workdir: Path) -> tuple[float, float, int]:
    """(seconds until `convert` returned, seconds until every file was saved, files)."""
    import convertapi

    out = Path(tempfile.mkdtemp(dir=workdir))
    started = time.perf_counter()
    result = convertapi.convert("pdf" if kind == "docx->pdf" else "jpg", {"File": str(path)})
    converted = time.perf_counter() - started
    files = result.save_files(str(out))
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return converted, elapsed, len(files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    import convertapi

    work = Path(tempfile.mkdtemp(prefix="bench-convertapi-"))
    docs_dir = work / "docs"
    docs_dir.mkdir()
    generated = [make_docx(docs_dir / f"report-{n}p.docx", n) for n in (1, 10, 30)]
    corpus = sorted(p for p in (DATA / "office").iterdir() if p.suffix == ".docx")
    docx_files = generated + corpus

    direct = Direct(work)
    direct.run("docx->pdf", generated[0])  # start soffice before timing
    pdf_files = []
    for source in generated[1:]:
        from docmill.engines.base import EngineInput
        from docmill.engines.office.formats import ToPdfParams

        out = docs_dir / "pdf"
        out.mkdir(exist_ok=True)
        result = direct.office.run("office.to-pdf", [EngineInput(
            source, source.name, "application/vnd.openxmlformats-officedocument."
            "wordprocessingml.document")], ToPdfParams(), out, lambda *_: None)
        target = docs_dir / f"{source.stem}.pdf"
        shutil.move(result.outputs[0].path, target)
        pdf_files.append(target)
    pdf_files.append(DATA / "pdf" / "pdflatex-4-pages.pdf")
    cases = [("docx->pdf", p) for p in docx_files] + [("pdf->jpg", p) for p in pdf_files]
    pages = {}
    for kind, path in cases:
        if kind == "pdf->jpg":
            pages[(kind, path)] = pdf_pages(path)
    print(f"{len(cases)} documents x {args.rounds} rounds", flush=True)

    server = DocmillServer(work / "server", extra_env={"DOCMILL_WORKERS": "2"})
    server.cli("migrate")
    key = server.create_key("acme", admin=True)
    server.start()
    convertapi.base_uri = server.url + "/"
    convertapi.api_credentials = key
    rows: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(2) as pool:  # warm both workers (soffice, PDFium)
            for _ in range(2):
                list(pool.map(lambda c: client_run(*c, work), [cases[0], cases[1],
                                                               cases[-1], cases[-2]]))
        for kind, path in cases:
            direct_samples, convert_samples, client_samples, outputs = [], [], [], 0
            for _ in range(args.rounds):
                elapsed, outputs = direct.run(kind, path)
                direct_samples.append(elapsed)
                converted, elapsed, got = client_run(kind, path, work)
                assert got == outputs, (path, got, outputs)
                convert_samples.append(converted)
                client_samples.append(elapsed)
            doc_pages = pages.get((kind, path))
            if doc_pages is None:  # docx: pages of the PDF the engine makes
                doc_pages = outputs and _docx_pages(direct, path, work)
            row = {"kind": kind, "document": path.name, "pages": doc_pages, "outputs": outputs,
                   "direct_s": median(direct_samples), "convert_s": median(convert_samples),
                   "client_s": median(client_samples)}
            row["ratio"] = row["convert_s"] / row["direct_s"]
            row["ratio_with_downloads"] = row["client_s"] / row["direct_s"]
            row["overhead_ms"] = (row["convert_s"] - row["direct_s"]) * 1000
            rows.append(row)
            print(f"  {kind} {path.name}: {doc_pages} p, direct {row['direct_s'] * 1000:.0f} ms,"
                  f" convert {row['convert_s'] * 1000:.0f} ms (x{row['ratio']:.2f}), with "
                  f"downloads {row['client_s'] * 1000:.0f} ms (x{row['ratio_with_downloads']:.2f})",
                  flush=True)

        batch = cases * max(1, args.rounds)
        failures: list[str] = []

        def one(case: tuple[str, Path]) -> float:
            try:
                return client_run(*case, work)[1]
            except BaseException as exc:  # noqa: BLE001 - ApiError is a BaseException
                failures.append(f"{case[1].name}: {exc}")
                return float("nan")

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            latencies = list(pool.map(one, batch))
        wall = time.perf_counter() - started
        ok = [x for x in latencies if not math.isnan(x)]
        sequential_total = sum(r["client_s"] for r in rows) * max(1, args.rounds)
        load = {"clients": args.clients, "conversions": len(batch), "failures": len(failures),
                "failure_samples": failures[:5], "wall_s": wall,
                "conversions_per_s": len(batch) / wall,
                "sequential_client_s": sequential_total,
                "speedup_vs_sequential": sequential_total / wall,
                "latency_median_s": statistics.median(ok) if ok else None,
                "latency_max_s": max(ok) if ok else None}
    finally:
        server.destroy()
        direct.stop()

    results = {"when": dt.datetime.now(dt.UTC).isoformat(),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
               "rounds": args.rounds, "workers": 2, "documents": rows, "concurrent": load}
    long_docs = [r for r in rows if (r["pages"] or 0) >= 10]
    results["worst_ratio_10_plus_pages"] = max((r["ratio"] for r in long_docs), default=None)
    results["worst_ratio_with_downloads_10_plus_pages"] = max(
        (r["ratio_with_downloads"] for r in long_docs), default=None)
    results["load_average"] = os.getloadavg()
    lines = [
        f"# ConvertAPI face benchmark ({results['when'][:19]}Z)",
        "",
        ("Official `convertapi` 2.0.1 client (upload, convert, save every result file) "
         "against `docmill serve` (2 workers, warm) vs the bare engine in-process (warm). "
         f"Median of {args.rounds} rounds, {os.cpu_count()} CPUs."),
        "",
        ("`convert` = until `convertapi.convert()` returned (upload, conversion, JSON with the "
        "result URLs): the engine's work plus Docmill's; `+ save` = also every result file "
        "downloaded and written (one new connection per file, as the client does)."),
        "",
        ("| conversion | document | pages | files | engine direct ms | convert ms | ratio | "
         "overhead ms | convert + save ms | ratio |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['document']} | {r['pages']} | {r['outputs']} | "
                     f"{r['direct_s'] * 1000:.0f} | {r['convert_s'] * 1000:.0f} | "
                     f"{r['ratio']:.2f} | {r['overhead_ms']:.0f} | "
                     f"{r['client_s'] * 1000:.0f} | {r['ratio_with_downloads']:.2f} |")
    worst = results["worst_ratio_10_plus_pages"]
    worst_dl = results["worst_ratio_with_downloads_10_plus_pages"]
    lines += [
        "",
        (f"Worst ratio for documents of 10+ pages: **{worst:.2f}x** for the convert call "
         f"(target <= 1.1x), {worst_dl:.2f}x with every result file downloaded. Load average "
         f"during the run: {', '.join(f'{x:.1f}' for x in results['load_average'])}."
         if worst is not None else ""),
        "",
        (f"{load['clients']} concurrent clients: {load['conversions']} conversions in "
         f"{load['wall_s']:.1f} s = **{load['conversions_per_s']:.2f} conversions/s** "
         f"({load['speedup_vs_sequential']:.2f}x the sequential client time), "
         f"**{load['failures']} failures**, latency median "
         f"{load['latency_median_s'] or 0:.2f} s, max {load['latency_max_s'] or 0:.2f} s."),
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convertapi.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "convertapi.md").write_text(table)
    shutil.rmtree(work, ignore_errors=True)


def _docx_pages(direct: Direct, path: Path, work: Path) -> int:
    from docmill.engines.base import EngineInput
    from docmill.engines.office.formats import ToPdfParams

    out = Path(tempfile.mkdtemp(dir=work))
    result = direct.office.run("office.to-pdf", [EngineInput(
        path, path.name, "application/vnd.openxmlformats-officedocument."
        "wordprocessingml.document")], ToPdfParams(), out, lambda *_: None)
    count = pdf_pages(result.outputs[0].path)
    shutil.rmtree(out, ignore_errors=True)
    return count


if __name__ == "__main__":
    main()
