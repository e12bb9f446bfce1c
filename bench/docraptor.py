"""DocRaptor face benchmark: an invoice rendered by WeasyPrint directly vs through the
official `docraptor` client against a real Docmill.

Two documents, both built from shared/data/html/sparksuite-invoice.html (its remote logo
swapped for a data: URI, so nothing leaves the machine): the invoice as it is (1 page) and
the invoice with its item rows repeated until it fills 20 pages.

* **WeasyPrint direct**: `weasyprint.HTML(string=...).write_pdf()` in this process, warm.
* **client sync**: `DocApi.create_doc` (POST /docs) against `docmill serve` (SQLite, local
  pool of 2 workers, warmed up): upload, queue, render in a worker, PDF back.
* **client async**: `create_async_doc`, `get_async_doc_status` polled every `--poll` seconds
  until completed, then `get_async_doc`: what a client waits for end to end.

Every way renders `--rounds` times, interleaved (one of each per round, so that other load
on the machine hits all of them alike); the table gives the median and the ratio to the bare
engine (target: client sync <= 1.15x WeasyPrint direct on the 20-page document).

    .venv/bin/python bench/docraptor.py [--rounds 7] [--poll 0.05]

Results go to bench/results/docraptor.json and bench/results/docraptor.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the client package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))
from server import DocmillServer  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # last: the client packages come first
from invoices import invoice, pages_of, summary, twenty_pages, weasy  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_RATIO = 1.15


def timed_into(samples: list[float], call: Any) -> Any:
    started = time.perf_counter()
    result = call()
    samples.append(time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--poll", type=float, default=0.05, help="async status poll interval")
    args = parser.parse_args()

    import docraptor

    docs = {"1 page": invoice(), "20 pages": twenty_pages()}
    results: dict[str, Any] = {"docs": {}}
    server = DocmillServer(Path(tempfile.mkdtemp(prefix="bench-docraptor-")), backend="sqlite")
    server.cli("migrate")
    key = server.create_key("bench")
    server.start()
    try:
        api = docraptor.DocApi()
        api.api_client.configuration.host = server.url
        api.api_client.configuration.username = key

        def sync(html: str) -> bytes:
            return api.create_doc({"document_type": "pdf", "document_content": html,
                                   "name": "invoice.pdf", "test": False})

        def asynchronous(html: str) -> bytes:
            status_id = api.create_async_doc({"document_type": "pdf", "name": "invoice.pdf",
                                              "document_content": html, "test": False}
                                             ).status_id
            while True:
                status = api.get_async_doc_status(status_id)
                if status.status == "completed":
                    return api.get_async_doc(status.download_id)
                if status.status == "failed":
                    raise RuntimeError(status.validation_errors)
                time.sleep(args.poll)

        for html in docs.values():  # warm up: this process's WeasyPrint, both workers
            weasy(html)
            for _ in range(3):
                sync(html)
        for label, html in docs.items():
            # Interleaved, one of each way per round: load on the machine hits all alike.
            direct, via_sync, via_async = [], [], []
            for _ in range(args.rounds):
                bare_pdf = timed_into(direct, lambda h=html: weasy(h))
                sync_pdf = timed_into(via_sync, lambda h=html: sync(h))
                async_pdf = timed_into(via_async, lambda h=html: asynchronous(h))
            pages = pages_of(bare_pdf)
            assert pages_of(sync_pdf) == pages_of(async_pdf) == pages, label
            entry = {"pages": pages, "html_bytes": len(html.encode()),
                     "weasyprint_direct": summary(direct), "client_sync": summary(via_sync),
                     "client_async": summary(via_async)}
            base = entry["weasyprint_direct"]["median_s"]
            entry["ratio_sync"] = entry["client_sync"]["median_s"] / base
            entry["ratio_async"] = entry["client_async"]["median_s"] / base
            results["docs"][label] = entry
            print(f"{label}: direct {base * 1000:.0f} ms, sync {entry['ratio_sync']:.3f}x, "
                  f"async {entry['ratio_async']:.3f}x", flush=True)
    finally:
        server.destroy()

    results["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["rounds"] = args.rounds
    results["poll_s"] = args.poll
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_1m": round(os.getloadavg()[0], 2)}
    results["target"] = {"ratio_sync_20_pages_max": TARGET_RATIO,
                         "met": results["docs"]["20 pages"]["ratio_sync"] <= TARGET_RATIO}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "docraptor.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# DocRaptor face benchmark ({results['when']})", "",
             f"sparksuite invoice, 1 page and repeated rows to 20 pages; {args.rounds} rounds "
             f"each after warm-up, the three ways interleaved; `docmill serve` on SQLite with "
             f"2 local workers; async polls "
             f"every {args.poll * 1000:g} ms; {results['machine']['cpus']} CPUs, load average "
             f"{results['machine']['load_average_1m']} at the end (the machine is shared). "
             f"Medians in ms.",
             "", "| document | pages | WeasyPrint direct | client sync | ratio | client async "
             "| ratio |", "|---|---|---|---|---|---|---|"]
    for label, entry in results["docs"].items():
        lines.append(
            f"| {label} | {entry['pages']} | {entry['weasyprint_direct']['median_s'] * 1000:.0f}"
            f" | {entry['client_sync']['median_s'] * 1000:.0f} | {entry['ratio_sync']:.3f}x"
            f" | {entry['client_async']['median_s'] * 1000:.0f} | {entry['ratio_async']:.3f}x |")
    met = "met" if results["target"]["met"] else "NOT met"
    lines += ["", f"Target: client sync on the 20-page document <= {TARGET_RATIO}x WeasyPrint "
              f"direct: **{met}** ({results['docs']['20 pages']['ratio_sync']:.3f}x)."]
    (RESULTS / "docraptor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
