"""Pipeline benchmark: a 3-step pipeline run vs the same three jobs chained by a client.

Against a real `docmill serve` subprocess (temp data folder, free port, the default local
worker pool), the same document goes through `pdf.rotate` -> `pdf.watermark` -> `pdf.to-text`:

* **client chain**: what a client does without pipelines: `POST /v1/jobs?wait=30` for step
  1, download its output, submit it as step 2 (`?wait=30`), download, submit step 3; the time
  is the first upload to the third job's SUCCESS as the client sees it (downloads included:
  a client has to move the bytes);
* **pipeline run**: `POST /v1/pipelines/{id}/runs?wait=30`, answered once the run (all
  three step jobs, created by the server one after the other) has finished.

Rounds alternate the two, so load drift on a shared machine hits both alike. Every answer is
checked: SUCCESS, and the final text equal between the two paths. The target is a pipeline
run taking at most 1.1x the client chain's median.

    .venv/bin/python bench/pipelines.py [--rounds 40] [--backend sqlite|postgres]

Results go to bench/results/pipelines.json and bench/results/pipelines.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import DATA, DocmillServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOCUMENT = DATA / "pdf" / "pdflatex-4-pages.pdf"
STEPS = [
    {"id": "rotate", "operation": "pdf.rotate", "params": {"angle": 180}},
    {"id": "stamp", "operation": "pdf.watermark", "params": {"text": "BENCH"},
     "inputs": ["rotate"]},
    {"id": "text", "operation": "pdf.to-text", "inputs": ["stamp"]},
]
TARGET_RATIO = 1.1
console = Console()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _finished(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    if answer.status_code != 200 or body.get("status") != "SUCCESS":
        raise RuntimeError(f"not finished: HTTP {answer.status_code} {answer.text[:300]}")
    return body


def client_chain(http: httpx.Client) -> tuple[float, str]:
    started = time.perf_counter()
    name, content = DOCUMENT.name, DOCUMENT.read_bytes()
    for step in STEPS:
        job = _finished(http.post("/v1/jobs", params={"wait": 30},
                                  data={"operation": step["operation"],
                                        "params": json.dumps(step.get("params", {}))},
                                  files={"file": (name, content)}))
        output = job["files"][0]
        content = http.get(f"/v1/jobs/{job['id']}/files/{output['name']}").content
        name = output["name"]
    return time.perf_counter() - started, content.decode()


def pipeline_run(http: httpx.Client, pipeline_id: str) -> tuple[float, str]:
    started = time.perf_counter()
    run = _finished(http.post(f"/v1/pipelines/{pipeline_id}/runs", params={"wait": 30},
                              files={"file": (DOCUMENT.name, DOCUMENT.read_bytes())}))
    text = http.get(f"/v1/jobs/{run['id']}/files/{run['files'][0]['name']}").content
    return time.perf_counter() - started, text.decode()


def stats(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"runs": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(percentile(ms, 95), 2), "mean_ms": round(statistics.fmean(ms), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    srv = DocmillServer(Path(tempfile.mkdtemp(prefix="docmill-bench-pipelines-")),
                        backend=args.backend,
                        extra_env={"DOCMILL_SWEEP_INTERVAL_S": "30",
                                   "DOCMILL_POLL_INTERVAL_S": "0.5"})
    try:
        srv.cli("migrate")
        srv.create_key("bench", admin=True)
        srv.start()
        with srv.client("bench") as http:
            made = http.post("/v1/pipelines", json={"name": f"bench-{uuid.uuid4().hex[:6]}",
                                                    "steps": STEPS})
            made.raise_for_status()
            pipeline_id = made.json()["id"]
            for _ in range(3):  # warm both paths (engines, connections)
                client_chain(http)
                pipeline_run(http, pipeline_id)
            chain_s: list[float] = []
            run_s: list[float] = []
            for index in range(args.rounds):
                pairs = [("chain", lambda: client_chain(http)),
                         ("run", lambda: pipeline_run(http, pipeline_id))]
                if index % 2:
                    pairs.reverse()
                texts = {}
                for kind, call in pairs:
                    seconds, texts[kind] = call()
                    (chain_s if kind == "chain" else run_s).append(seconds)
                if texts["chain"] != texts["run"]:
                    raise RuntimeError("the pipeline's text differs from the chained jobs'")
    finally:
        srv.destroy()
    chain, run = stats(chain_s), stats(run_s)
    ratio = round(run["p50_ms"] / chain["p50_ms"], 3)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    report = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "commit": commit, "backend": args.backend, "rounds": args.rounds,
              "document": DOCUMENT.name, "steps": [s["operation"] for s in STEPS],
              "client_chain": chain, "pipeline_run": run, "ratio_p50": ratio,
              "target_ratio": TARGET_RATIO, "machine": {
                  "cpus": os.cpu_count(), "python": platform.python_version(),
                  "load_before": round(load_before, 2),
                  "load_after": round(os.getloadavg()[0], 2)}}
    table = Table(title=f"3-step pipeline vs 3 chained jobs ({args.backend}, "
                        f"{args.rounds} rounds)")
    for column in ("", "p50 ms", "p95 ms", "mean ms"):
        table.add_column(column, justify="right" if column else "left")
    for label, row in (("client chain (3 x POST ?wait + download)", chain),
                       ("pipeline run (POST runs?wait)", run)):
        table.add_row(label, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
                      f"{row['mean_ms']:.1f}")
    table.add_row("ratio run / chain (p50)", f"{ratio:.3f}x", "", "")
    console.print(table)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    console.print(f"target <= {TARGET_RATIO}x: {verdict}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "pipelines" if args.backend == "sqlite" else f"pipelines-{args.backend}"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [f"# Pipeline benchmark ({args.backend})", "",
          f"`{DOCUMENT.name}` (4 pages) through `pdf.rotate` -> `pdf.watermark` -> "
          "`pdf.to-text`: a 3-step pipeline run vs the same three jobs chained by a client "
          "(each `POST /v1/jobs?wait=30`, its output downloaded and uploaded to the next). "
          f"Run with `.venv/bin/python bench/pipelines.py --rounds {args.rounds}"
          f"{'' if args.backend == 'sqlite' else ' --backend ' + args.backend}`.", "",
          f"- date: {report['date']}, commit {commit}",
          f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, shared with "
          f"other work: 1-minute load average {report['machine']['load_before']} before and "
          f"{report['machine']['load_after']} after",
          "- server: `docmill serve`, 2 worker processes; client on the same machine, the "
          "two paths alternating round by round, the final texts compared", "",
          "| | p50 ms | p95 ms | mean ms |", "|---|---:|---:|---:|",
          f"| client chain | {chain['p50_ms']} | {chain['p95_ms']} | {chain['mean_ms']} |",
          f"| pipeline run | {run['p50_ms']} | {run['p95_ms']} | {run['mean_ms']} |",
          f"| ratio run / chain | {ratio}x | | |", "",
          f"Target: a run at most {TARGET_RATIO}x the chain's median: {verdict}.", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
