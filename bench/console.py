"""Console benchmark: each main console page vs the native API call it is built on, over
10,000 jobs in the database.

Against a real `docmill serve` subprocess (SQLite, temp data folder), 10,000 jobs are written
straight into the database (tests/console_seed.py). Then, round after round, every console
page and the native `/v1` call that supplies its data are requested alternately by one client:

* **native call**: the bare API answer (JSON), what a script would read instead of the page;
* **console page**: the same data through the console (in-process API call with the
  session's key, Jinja2 rendering), timed by the client and by its `Server-Timing` header.

The console's budget is 100 ms of server time per page (issue 17); the ratio says what the
console adds over the API call beneath it.

    .venv/bin/python bench/console.py [--rounds 15] [--jobs 10000]

Results go to bench/results/console.json and bench/results/console.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from console_seed import seed_jobs, signed_in  # noqa: E402
from server import DocmillServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUDGET_MS = 100.0
console = Console()


def pages(job_id: str, day_ago: str) -> list[tuple[str, str]]:
    """(console page, the native call its data comes from)."""
    return [
        ("/console/jobs", "/v1/jobs?limit=50"),
        ("/console/jobs?status=ERROR", "/v1/jobs?status=ERROR&limit=50"),
        ("/console/jobs?operation=ocr.read&since=24h",
         f"/v1/jobs?operation=ocr.read&created_after={day_ago}&limit=50"),
        (f"/console/jobs/{job_id}", f"/v1/jobs/{job_id}"),
        ("/console/submit", "/v1/operations"),
        ("/console/document-types", "/v1/document-types"),
        ("/console/admin/keys", "/v1/keys"),
        ("/console/admin/queue", "/v1/queue"),
        ("/console/admin/webhooks", "/v1/webhook-deliveries"),
    ]


def timed_get(client: Any, path: str) -> tuple[float, float | None]:
    started = time.perf_counter()
    answer = client.get(path)
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status_code} {answer.text[:200]}")
    timing = answer.headers.get("server-timing")
    return took, float(timing.split("dur=")[1]) if timing else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    srv = DocmillServer(Path(tempfile.mkdtemp(prefix="docmill-bench-console-")),
                        extra_env={"DOCMILL_WORKERS": "1"})
    rows: list[dict[str, Any]] = []
    try:
        srv.cli("migrate")
        srv.create_key("acme", admin=True)
        seed_jobs(srv.database_url, "acme", args.jobs)
        srv.start()
        with closing(signed_in(srv.url, srv.keys["acme"])) as page_client, \
                srv.client("acme") as api:
            job_id = re.search(r'href="/console/jobs/([0-9a-f-]{36})"',
                               page_client.get("/console/jobs").text).group(1)
            day_ago = (dt.datetime.now(dt.UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            pairs = pages(job_id, day_ago)
            for page, call in pairs:  # warm both (templates, connections, caches)
                timed_get(page_client, page)
                timed_get(api, call)
            samples: dict[str, dict[str, list[float]]] = {
                page: {"native": [], "page": [], "server": []} for page, _ in pairs}
            for index in range(args.rounds):
                for page, call in pairs:
                    order = [("native", api, call), ("page", page_client, page)]
                    if index % 2:
                        order.reverse()
                    for kind, client, path in order:
                        took, server = timed_get(client, path)
                        samples[page][kind].append(took)
                        if kind == "page" and server is not None:
                            samples[page]["server"].append(server)
            for page, call in pairs:
                native = statistics.median(samples[page]["native"])
                shown = statistics.median(samples[page]["page"])
                server = statistics.median(samples[page]["server"])
                rows.append({"page": page, "native_call": call.split("?")[0],
                             "native_p50_ms": round(native, 1), "page_p50_ms": round(shown, 1),
                             "page_server_p50_ms": round(server, 1),
                             "ratio_page_native": round(shown / native, 2),
                             "within_budget": server < BUDGET_MS})
    finally:
        srv.destroy()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    report = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": commit,
              "jobs": args.jobs, "rounds": args.rounds, "budget_ms": BUDGET_MS, "pages": rows,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_before": round(load_before, 2),
                          "load_after": round(os.getloadavg()[0], 2)}}
    table = Table(title=f"Console pages vs native calls ({args.jobs} jobs, {args.rounds} rounds)")
    for column in ("page", "native call p50 ms", "page p50 ms", "page server p50 ms",
                   "page / native"):
        table.add_column(column, justify="left" if column == "page" else "right",
                         min_width=44 if column == "page" else None)
    for row in rows:
        table.add_row(row["page"], f"{row['native_p50_ms']:.1f}", f"{row['page_p50_ms']:.1f}",
                      f"{row['page_server_p50_ms']:.1f}", f"{row['ratio_page_native']:.2f}x")
    console.print(table)
    over = [r["page"] for r in rows if not r["within_budget"]]
    verdict = "every page within it" if not over else f"over it: {', '.join(over)}"
    console.print(f"budget {BUDGET_MS:.0f} ms of server time per page: {verdict}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(report, indent=2) + "\n")
    md = ["# Console benchmark", "",
          f"Each main console page vs the native call its data comes from, over {args.jobs:,} "
          "jobs in a SQLite database (`docmill serve`, client on the same machine, the two "
          f"alternating, {args.rounds} rounds, medians). Run with `.venv/bin/python "
          f"bench/console.py --rounds {args.rounds}`.", "",
          f"- date: {report['date']}, commit {commit}",
          f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, 1-minute "
          f"load average {report['machine']['load_before']} before and "
          f"{report['machine']['load_after']} after", "",
          "| page | native call | native p50 ms | page p50 ms | page server p50 ms | "
          "page / native |", "|---|---|---:|---:|---:|---:|"]
    md += [f"| `{r['page']}` | `{r['native_call']}` | {r['native_p50_ms']} | "
           f"{r['page_p50_ms']} | {r['page_server_p50_ms']} | {r['ratio_page_native']}x |"
           for r in rows]
    md += ["", f"Budget: {BUDGET_MS:.0f} ms of server time per page: {verdict}.", ""]
    (RESULTS / "console.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
