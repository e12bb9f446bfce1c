"""expert.ai face benchmark: the same documents read by the bare engine in one process, by
Docmill's native API and by the expert.ai face, side by side in one run.

Rows, per corpus (SROIE receipt photos -> RapidOCR, FUNSD form scans -> Tesseract, both by
`engine=auto`; a 20-page digital PDF -> text layer):

* **bare**: `OcrEngine.run("layout.analyze")` in this process, one document after another,
  models loaded before timing: the work every path does, with nothing around it.
* **native**: `layout.analyze` jobs through `docmill serve` (one worker, so the engine runs
  one document at a time as in the bare row), all submitted at once, each JSON output
  downloaded; wall time from the first submit to the last download.
* **expertai**: the same documents as expert.ai tasks: token, `POST
  /beta/layout-document-async` (Base64 in JSON), `GET /beta/status/{id}` every 0.2 s until
  SUCCESS with the rendered result (layout + packed words); same wall-time rule.

The ratio column is pages/s over the bare row's (target for the face: >= 0.95). CPU s/page
counts this process (bare) or the server and its workers (native, expertai), which the
machine's other load does not change. One worker: a ratio over 1 would otherwise only show
two cores working.

    .venv/bin/python bench/expertai.py [--forms N] [--receipts N]

Results go to bench/results/expertai.json and bench/results/expertai.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ocr import _cpu_tree, corpus, twenty_page_pdf  # noqa: E402  (bench/ocr.py)
from server import DocmillServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# The same onnxruntime thread count in this process and in the server's one worker (by
# default each would take cores / workers, which differ between the two).
OCR_THREADS = "1"
os.environ["DOCMILL_OCR_THREADS"] = OCR_THREADS
POLL_S = 0.2


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _content_type(path: Path) -> str:
    return {".pdf": "application/pdf", ".jpg": "image/jpeg", ".png": "image/png"}[path.suffix]


def bare(files: list[Path]) -> dict[str, Any]:
    from docmill.engines.base import EngineInput
    from docmill.engines.ocr.pipeline import LayoutParams, OcrEngine

    engine = OcrEngine()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def read(path: Path) -> int:
            return engine.run("layout.analyze", [EngineInput(path, path.name,
                                                             _content_type(path))],
                              LayoutParams(), work, lambda p, m: None).pages

        read(files[0])  # warm-up: loads this corpus' models
        cpu0, t0 = _cpu_self(), time.perf_counter()
        pages = sum(read(path) for path in files)
        wall = time.perf_counter() - t0
    return {"pages": pages, "seconds": round(wall, 3), "cpu_s": round(_cpu_self() - cpu0, 2)}


def native(server: DocmillServer, files: list[Path]) -> dict[str, Any]:
    with server.client("acme") as client:
        t0 = time.perf_counter()
        ids = []
        for path in files:
            response = client.post("/v1/jobs", data={"operation": "layout.analyze"},
                                   files={"file": (path.name, path.read_bytes())})
            response.raise_for_status()
            ids.append(response.json()["id"])
        pages = 0
        for job_id in ids:
            while True:
                job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
                if job["status"] in ("SUCCESS", "ERROR"):
                    break
            assert job["status"] == "SUCCESS", job
            url = next(f["url"] for f in job["files"] if f["name"].endswith(".json"))
            pages += len(client.get(url).json()["pages"])
        return {"pages": pages, "seconds": round(time.perf_counter() - t0, 3)}


def expertai(server: DocmillServer, files: list[Path]) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=120, trust_env=False) as client:
        t0 = time.perf_counter()
        token = client.post("/oauth2/token", json={"username": "acme",
                                                   "password": server.keys["acme"]}).text
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for path in files:
            body = {"document": {"name": path.name,
                                 "data": base64.b64encode(path.read_bytes()).decode()}}
            response = client.post("/beta/layout-document-async", json=body, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["taskId"])
        pages = 0
        for task_id in ids:
            while True:
                status = client.get(f"/beta/status/{task_id}", headers=headers).json()
                if status["state"] in ("SUCCESS", "FAILURE"):
                    break
                time.sleep(POLL_S)
            assert status["state"] == "SUCCESS", status
            pages += status["result"]["header"]["totPages"]
        return {"pages": pages, "seconds": round(time.perf_counter() - t0, 3)}


def measured(server: DocmillServer, run, files: list[Path]) -> dict[str, Any]:
    assert server.process is not None
    cpu0, load = _cpu_tree(server.process.pid), os.getloadavg()[0]
    row = run(server, files)
    row["load_average"] = round(load, 2)
    row["cpu_s"] = round(_cpu_tree(server.process.pid) - cpu0, 2)
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = ["# expert.ai face benchmark", "",
             f"{results['when']} on {results['machine']} (load average at start "
             f"{results['load_average']}). Every path runs the same `layout.analyze` work "
             "(text layer or OCR, then layout); the server has one worker.", "",
             "| corpus | path | docs | pages | seconds | pages/s | x bare | CPU s/page | "
             "x bare (CPU) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus_name, rows in results["corpora"].items():
        base, base_cpu = rows["bare"]["pages_per_s"], rows["bare"]["cpu_s_per_page"]
        for path in ("bare", "native", "expertai"):
            row = rows[path]
            lines.append(f"| {corpus_name} | {path} | {rows['documents']} | {row['pages']} | "
                         f"{row['seconds']} | {row['pages_per_s']} | "
                         f"{row['pages_per_s'] / base:.3f} | {row['cpu_s_per_page']} | "
                         f"{base_cpu / row['cpu_s_per_page']:.3f} |")
    lines += ["", "x bare = pages/s over the bare engine's on the same corpus (target for the "
              "face: >= 0.95); x bare (CPU) = the bare engine's CPU seconds per page over the "
              "path's (server and workers), the same ratio in CPU terms, which the machine's "
              "other load (the 1-minute load average is in the JSON) barely moves. "
              "bare = `OcrEngine.run('layout.analyze')` in one process; "
              "native = `/v1/jobs` + JSON download; expertai = `/beta/layout-document-async` + "
              f"`/beta/status` polled every {POLL_S} s until SUCCESS with the rendered result. "
              "Receipts (JPEG) are read by RapidOCR, forms (PNG) by Tesseract (engine=auto); "
              "the digital PDF (4 tasks of 20 pages) by its text layer. "
              "Every row is one run after a "
              "warm-up. RapidOCR runs with one onnxruntime thread on every path.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forms", type=int, default=6)
    parser.add_argument("--receipts", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average": round(os.getloadavg()[0], 2), "corpora": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpora = {"receipts (SROIE)": corpus("receipts", args.receipts),
                   "forms (FUNSD)": corpus("forms", args.forms),
                   "digital PDF, 20 pages, x4": [twenty_page_pdf(folder)] * 4}
        for name, files in corpora.items():
            print(f"bare: {name}", flush=True)
            load = os.getloadavg()[0]
            row = bare(files)
            row["load_average"] = round(load, 2)
            results["corpora"][name] = {"documents": len(files), "bare": row}
        server = DocmillServer(folder / "server", extra_env={"DOCMILL_WORKERS": "1",
                                                                "DOCMILL_OCR_THREADS": OCR_THREADS})
        server.cli("migrate")
        server.create_key("acme", admin=True)
        server.start()
        try:
            for name, files in corpora.items():
                native(server, files[:1])  # the worker loads this corpus' models
                for path, run in (("native", native), ("expertai", expertai)):
                    print(f"{path}: {name}", flush=True)
                    results["corpora"][name][path] = measured(server, run, files)
        finally:
            server.destroy()
    for rows in results["corpora"].values():
        for path in ("bare", "native", "expertai"):
            row = rows[path]
            row["pages_per_s"] = round(row["pages"] / row["seconds"], 3)
            row["cpu_s_per_page"] = round(row["cpu_s"] / row["pages"], 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "expertai.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "expertai.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
