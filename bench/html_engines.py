"""HTML -> PDF engines side by side: WeasyPrint vs headless Chromium, each direct and through
Docmill.

Two documents, built like bench/docraptor.py's from shared/data/html/sparksuite-invoice.html
(its remote logo swapped for a data: URI, so nothing leaves the machine): the invoice as it
is (1 page) and with its item rows repeated until WeasyPrint makes 20 pages of it (Chromium
paginates the same HTML on its own; the table gives each engine's page count).

* **WeasyPrint direct**: `weasyprint.HTML(string=...).write_pdf()` in this process, warm.
* **Chromium direct**: bare Playwright on the same Debian Chromium, browser warm, a fresh
  context per document (as any service isolating its jobs would): `set_content`, `pdf()`
  with the engine's default 75px page margin, so both lay out the same pages.
* **Chromium engine, in process**: `engines/html/chromium.py`'s `render_pdf` (what a worker runs:
  fresh context, the document served through request interception, every request through
  the guard), warm.
* **Docmill, weasyprint / chromium**: `POST /v1/jobs?wait=` `html.to-pdf` with
  `engine: weasyprint` or `engine: chromium` against `docmill serve` (SQLite, 2 local
  workers, both warmed up), then the PDF downloaded: what a client waits for.

Every way renders `--rounds` times per document, interleaved (one of each per round, so that
other load on the shared machine hits all alike); medians and ratios are reported.

    .venv/bin/python bench/html_engines.py [--rounds 7]

Results go to bench/results/html_engines.json and bench/results/html_engines.md.
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
sys.path.insert(0, str(ROOT / "tests"))
from server import DocmillServer  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # last: the client packages come first
from invoices import invoice, pages_of, summary, twenty_pages, weasy  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MARGINS = ("top", "right", "bottom", "left")  # the engine's default page margin (WeasyPrint's)
WAYS = ("weasyprint_direct", "chromium_direct", "chromium_engine", "docmill_weasyprint",
        "docmill_chromium")
LABELS = {"weasyprint_direct": "WeasyPrint direct", "chromium_direct": "Chromium direct",
          "chromium_engine": "Chromium engine (in process)",
          "docmill_weasyprint": "Docmill, engine weasyprint",
          "docmill_chromium": "Docmill, engine chromium"}


class BareChromium:
    """Playwright and Chromium as a user would drive them, without Docmill. On a thread of
    its own: one thread holds one sync Playwright, and the engine's is on the main one."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.thread = ThreadPoolExecutor(max_workers=1)
        self.thread.submit(self._start).result()

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        from docmill.settings import get_settings

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(
            executable_path=get_settings().chromium_executable, headless=True,
            args=["--disable-gpu", "--disable-quic", "--disable-background-networking"])

    def _render(self, html: str) -> bytes:
        context = self.browser.new_context()
        try:
            page = context.new_page()
            page.set_content(html, wait_until="load")
            return page.pdf(print_background=True, prefer_css_page_size=True,
                            margin={side: "75px" for side in MARGINS})
        finally:
            context.close()

    def render(self, html: str) -> bytes:
        return self.thread.submit(self._render, html).result()

    def _close(self) -> None:
        self.browser.close()
        self.playwright.stop()

    def close(self) -> None:
        self.thread.submit(self._close).result()
        self.thread.shutdown()


def engine_render(html: str, workdir: Path) -> bytes:
    from docmill.engines.html.chromium import ChromiumJob, render_pdf

    target = workdir / "engine.pdf"
    render_pdf(ChromiumJob(html=html), target, lambda p, m: None)
    return target.read_bytes()


def docmill(client: Any, html: str, engine: str) -> bytes:
    response = client.post("/v1/jobs", params={"wait": 120}, timeout=180,
                           data={"operation": "html.to-pdf",
                                 "params": json.dumps({"engine": engine})},
                           files={"file": ("invoice.html", html.encode())})
    job = response.json()
    assert response.status_code == 200 and job["status"] == "SUCCESS", job
    pdf = client.get(job["files"][0]["url"])
    assert pdf.status_code == 200
    return pdf.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    docs = {"1 page": invoice(), "20 pages": twenty_pages()}
    workdir = Path(tempfile.mkdtemp(prefix="bench-html-engines-"))
    server = DocmillServer(workdir / "server", backend="sqlite")
    server.cli("migrate")
    server.create_key("bench")
    server.start()
    bare = BareChromium()
    results: dict[str, Any] = {"docs": {}}
    try:
        with server.client("bench") as client:
            ways = {"weasyprint_direct": weasy, "chromium_direct": bare.render,
                    "chromium_engine": lambda h: engine_render(h, workdir),
                    "docmill_weasyprint": lambda h: docmill(client, h, "weasyprint"),
                    "docmill_chromium": lambda h: docmill(client, h, "chromium")}
            for html in docs.values():  # warm up: this process, and both workers' engines
                for way in ways.values():
                    for _ in range(3 if way in (ways["docmill_weasyprint"],
                                                ways["docmill_chromium"]) else 1):
                        way(html)
            for label, html in docs.items():
                samples: dict[str, list[float]] = {way: [] for way in WAYS}
                pages: dict[str, int] = {}
                for _ in range(args.rounds):
                    for way in WAYS:
                        started = time.perf_counter()
                        pdf = ways[way](html)
                        samples[way].append(time.perf_counter() - started)
                        pages[way] = pages_of(pdf)
                entry: dict[str, Any] = {"html_bytes": len(html.encode()), "pages": pages}
                entry.update({way: summary(samples[way]) for way in WAYS})
                median = {way: entry[way]["median_s"] for way in WAYS}
                entry["ratios"] = {
                    "chromium_vs_weasyprint_direct":
                        median["chromium_direct"] / median["weasyprint_direct"],
                    "chromium_vs_weasyprint_docmill":
                        median["docmill_chromium"] / median["docmill_weasyprint"],
                    "chromium_engine_vs_chromium_direct":
                        median["chromium_engine"] / median["chromium_direct"],
                    "docmill_chromium_vs_chromium_direct":
                        median["docmill_chromium"] / median["chromium_direct"],
                    "docmill_weasyprint_vs_weasyprint_direct":
                        median["docmill_weasyprint"] / median["weasyprint_direct"]}
                results["docs"][label] = entry
                print(label, {k: f"{v * 1000:.0f} ms" for k, v in median.items()},
                      {k: f"{v:.2f}x" for k, v in entry["ratios"].items()}, flush=True)
    finally:
        bare.close()
        server.destroy()

    from importlib.metadata import version

    playwright_version = version("playwright")

    results["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["rounds"] = args.rounds
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_1m": round(os.getloadavg()[0], 2),
                          "playwright": playwright_version}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "html_engines.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# HTML engines benchmark ({results['when']})", "",
             f"sparksuite invoice, 1 page and with rows repeated to 20 WeasyPrint pages; "
             f"{args.rounds} rounds after warm-up, the ways interleaved; `docmill serve` on "
             f"SQLite with 2 local workers; {results['machine']['cpus']} CPUs, load average "
             f"{results['machine']['load_average_1m']} at the end (the machine is shared). "
             "Medians in ms (pages in brackets).", "",
             "| way | " + " | ".join(results["docs"]) + " |",
             "|---|" + "---|" * len(results["docs"])]
    for way in WAYS:
        cells = [f"{entry[way]['median_s'] * 1000:.0f} ({entry['pages'][way]})"
                 for entry in results["docs"].values()]
        lines.append(f"| {LABELS[way]} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio of medians | " + " | ".join(results["docs"]) + " |",
              "|---|" + "---|" * len(results["docs"])]
    names = {"chromium_vs_weasyprint_direct": "Chromium / WeasyPrint, direct",
             "chromium_vs_weasyprint_docmill": "Chromium / WeasyPrint, through Docmill",
             "chromium_engine_vs_chromium_direct": "Chromium engine in process / Chromium "
                                                   "direct (interception, guard)",
             "docmill_chromium_vs_chromium_direct": "Docmill chromium / Chromium direct",
             "docmill_weasyprint_vs_weasyprint_direct": "Docmill weasyprint / WeasyPrint "
                                                        "direct"}
    for key, name in names.items():
        cells = [f"{entry['ratios'][key]:.2f}x" for entry in results["docs"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (RESULTS / "html_engines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
