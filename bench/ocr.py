"""OCR benchmark: RapidOCR vs Tesseract on the SROIE receipts and FUNSD forms, bare engine
vs Docmill's pipeline in process vs Docmill's native API, with accuracy in the same table;
and the text-layer path on a 20-page digital PDF.

Rows, per engine and corpus:

* **bare**: the OCR library alone (`TesseractBackend` / `RapidOcrBackend.recognize`) on the
  image as it is, one process, one page after another; models loaded before timing.
* **pipeline**: `docmill.engines.ocr.pipeline.ocr_image` in the same process: orientation detection,
  Tesseract's upscaling of small images and deskew, then the same engine.
* **api**: `ocr.read` jobs with `engine=<name>` through a real `docmill serve` (its local pool,
  2 workers), all pages submitted at once; pages/s is pages over the wall time from the first
  submit to the last SUCCESS. Accuracy is computed from the job's JSON output.

Accuracy: FUNSD word precision/recall/F1 (text match after lower-casing and stripping
punctuation, and box IoU >= 0.5); SROIE line-text CER, the predicted words gathered under the
ground-truth line boxes (see tests/ocr_quality.py). SROIE has line boxes only, so receipts
report CER, not word F1.

Memory: peak RSS of the bench child process that loaded one engine (a worker loads the
same models).

    .venv/bin/python bench/ocr.py [--engines tesseract,rapidocr] [--limit N] [--no-api]

Results go to bench/results/ocr.json and bench/results/ocr.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from ocr_quality import (  # noqa: E402
    WordScore,
    funsd_words,
    line_cer,
    score_words,
    sroie_lines,
)
from server import DATA, DocmillServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def corpus(name: str, limit: int | None) -> list[Path]:
    if name == "receipts":
        files = sorted((DATA / "receipts").glob("sroie_*.jpg"))
    else:
        files = sorted((DATA / "forms").glob("funsd_*.png"))
    return files[:limit] if limit else files


def truth_path(image: Path) -> Path:
    return (image.with_suffix(".boxes.csv") if image.name.startswith("sroie")
            else image.with_suffix(".json"))


class Accuracy:
    def __init__(self) -> None:
        self.words = WordScore(0, 0, 0)
        self.errors = self.chars = 0

    def add(self, image: Path, words: list[tuple[str, tuple]],
            lines: list[tuple[str, tuple]]) -> None:
        if image.name.startswith("funsd"):
            self.words = self.words + score_words(words, funsd_words(truth_path(image)))
        else:
            errors, chars = line_cer(words, sroie_lines(truth_path(image)))
            self.errors += errors
            self.chars += chars

    def as_dict(self, kind: str) -> dict[str, float]:
        if kind == "forms":
            return {"precision": round(self.words.precision, 4),
                    "recall": round(self.words.recall, 4), "f1": round(self.words.f1, 4)}
        return {"cer": round(self.errors / max(1, self.chars), 4)}


# --- in-process measurements (run in a child per engine, for clean memory figures) ----------

def inner(engine: str, kinds: list[str], limit: int | None) -> dict[str, Any]:
    from PIL import Image

    from docmill.engines.ocr import pipeline
    from docmill.engines.ocr.backends import RapidOcrBackend, TesseractBackend

    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = TesseractBackend() if engine == "tesseract" else RapidOcrBackend()
    warm = Image.new("RGB", (200, 60), "white")
    backend.recognize(warm, ["eng"], 96)
    pipeline.ocr_image(warm, 96, engine, ["eng"])  # loads the orientation model too
    out: dict[str, Any] = {}
    for kind in kinds:
        files = corpus(kind, limit)
        for mode in ("bare", "pipeline"):
            accuracy, elapsed = Accuracy(), 0.0
            cpu0 = _cpu_self()
            load = os.getloadavg()[0]
            for path in files:
                image = Image.open(path).convert("RGB")
                t0 = time.perf_counter()
                if mode == "bare":
                    lines = backend.recognize(image, ["eng"], 96)
                    elapsed += time.perf_counter() - t0
                    words = [(w.text, (w.box.x0, w.box.y0, w.box.x1, w.box.y1))
                             for ln in lines for w in ln.words]
                    boxes = [(ln.text, (ln.bbox.x0, ln.bbox.y0, ln.bbox.x1, ln.bbox.y1))
                             for ln in lines]
                else:
                    result = pipeline.ocr_image(image, 72.0, engine, ["eng"])  # 72 dpi: pt = px
                    elapsed += time.perf_counter() - t0
                    words = [(w.text, (w.box.x0, w.box.y0, w.box.x1, w.box.y1))
                             for ln in result.lines for w in ln.words]
                    boxes = [(ln.text, (ln.bbox.x0, ln.bbox.y0, ln.bbox.x1, ln.bbox.y1))
                             for ln in result.lines]
                accuracy.add(path, words, boxes)
            out[f"{kind}/{mode}"] = {"pages": len(files), "seconds": round(elapsed, 2),
                                     "pages_per_s": round(len(files) / elapsed, 3),
                                     "cpu_s_per_page": round((_cpu_self() - cpu0) / len(files), 3),
                                     "load_average": round(load, 2),
                                     **accuracy.as_dict(kind)}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["rss_before_models_mb"] = round(start_rss, 1)
    return out


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_tree(pid: int) -> float:
    """CPU seconds used so far by a process and all its descendants (the server, its
    pool host and workers): what the API path costs, whatever else loads the machine."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root] + root.children(recursive=True):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def run_inner(engine: str, kinds: list[str], limit: int | None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--inner", engine, "--kinds", ",".join(kinds)]
    if limit:
        args += ["--limit", str(limit)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- through the native API ----------------------------------------------------------------

def api_run(server: DocmillServer, files: list[Path], params: dict[str, Any],
            timeout: float = 1800) -> tuple[float, list[dict[str, Any]]]:
    with server.client("acme") as client:
        t0 = time.perf_counter()
        ids = []
        for path in files:
            with open(path, "rb") as handle:
                response = client.post("/v1/jobs", data={"operation": "ocr.read",
                                                         "params": json.dumps(params)},
                                       files={"file": (path.name, handle)})
            response.raise_for_status()
            ids.append(response.json()["id"])
        # Long-poll each job in turn (?wait holds the answer until it finishes): polling in
        # a tight loop would take CPU from the workers being measured.
        jobs: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        for job_id in ids:
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
                if job["status"] in ("SUCCESS", "ERROR"):
                    jobs[job_id] = job
                    break
        wall = time.perf_counter() - t0
        documents = []
        for job_id in ids:
            job = jobs[job_id]
            if job["status"] != "SUCCESS":
                raise RuntimeError(f"job failed: {job.get('error')}")
            url = next(f["url"] for f in job["files"] if f["name"].endswith(".json"))
            documents.append(client.get(url).json())
    return wall, documents


def document_words(document: dict[str, Any]) -> tuple[list, list]:
    words, lines = [], []
    for page in document["pages"]:
        factor = (page["dpi"] or 72) / 72

        def px(b, factor=factor):
            return tuple(v * factor for v in b)

        for block in page["blocks"]:
            groups = ([c["lines"] for c in block["table"]["cells"]] if "table" in block
                      else [block["lines"]])
            for group in groups:
                for line in group:
                    lines.append((line["text"], px(line["bbox"])))
                    words += [(w["text"], px(w["bbox"])) for w in line["words"]]
    return words, lines


# --- text layer ----------------------------------------------------------------------------

def twenty_page_pdf(folder: Path) -> Path:
    import pypdf

    writer = pypdf.PdfWriter()
    sources = sorted((DATA / "pdf").glob("*.pdf")) + sorted((DATA / "invoices").glob("*.pdf"))
    for source in sources:
        if source.name in ("libreoffice-writer-password.pdf", "habibi-rotated.pdf"):
            continue
        reader = pypdf.PdfReader(source)
        for page in reader.pages:
            if len(writer.pages) < 20:
                writer.add_page(page)
    assert len(writer.pages) == 20, len(writer.pages)
    out = folder / "digital-20.pdf"
    with open(out, "wb") as handle:
        writer.write(handle)
    return out


def text_layer_in_process(path: Path, repeats: int = 5) -> dict[str, Any]:
    from docmill.engines.base import EngineInput
    from docmill.engines.ocr.pipeline import ReadParams, loaded_models, read_document

    inp = EngineInput(path, path.name, "application/pdf")
    read_document(inp, ReadParams(), lambda p, m: None)  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        outcome = read_document(inp, ReadParams(), lambda p, m: None)
        times.append(time.perf_counter() - t0)
    sources = {p.source for p in outcome.document.pages}
    best = min(times)
    return {"pages": len(outcome.document.pages), "sources": sorted(sources),
            "ocr_models_loaded": loaded_models(),
            "ms_per_page": round(1000 * best / len(outcome.document.pages), 2),
            "words": len(outcome.document.words())}


# --- report --------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    lines = ["# OCR benchmark", "",
             f"{results['when']} on {results['machine']} (load average at start "
             f"{results['load_average']}). Receipts: {results['counts']['receipts']} SROIE "
             f"JPEGs; forms: {results['counts']['forms']} FUNSD PNGs.", "",
             "| engine | corpus | path | pages | pages/s | CPU s/page | load | word P | word R | "
             "word F1 | line CER |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if results.get("in_process_measured"):
        lines[3:3] = [f"The bare and pipeline rows were measured at "
                      f"{results['in_process_measured']}"
                      ", the api rows and the text-layer path at the date above.", ""]
    for engine, rows in results["engines"].items():
        for key, row in rows.items():
            if "/" not in key:
                continue
            kind, mode = key.split("/")
            lines.append(f"| {engine} | {kind} | {mode} | {row['pages']} | {row['pages_per_s']} | "
                         f"{row.get('cpu_s_per_page', '')} | {row.get('load_average', '')} | "
                         f"{row.get('precision', '')} | {row.get('recall', '')} | "
                         f"{row.get('f1', '')} | {row.get('cer', '')} |")
    lines += ["", "Peak RSS of a process holding one engine (plus the orientation model): " +
              ", ".join(f"{e} {r['peak_rss_mb']} MB" for e, r in results["engines"].items()),
              ""]
    text_layer = results.get("text_layer")
    if text_layer:
        lines += ["## Text-layer path (20-page digital PDF, no OCR)", "",
                  f"- in process: {text_layer['in_process']['ms_per_page']} ms/page "
                  f"(words, lines and layout; sources {text_layer['in_process']['sources']}, "
                  f"OCR models loaded: {text_layer['in_process']['ocr_models_loaded'] or 'none'})"]
        if "api_ms_per_page" in text_layer:
            lines.append(f"- through the native API (one `ocr.read` job, submit to SUCCESS): "
                         f"{text_layer['api_ms_per_page']} ms/page")
        lines.append("")
    lines += ["bare = the OCR library on the image as is; pipeline = Docmill's `ocr_image` in "
              "process (orientation, upscaling and deskew for Tesseract); api = `ocr.read` "
              "jobs through `docmill serve` with 2 workers, all pages submitted at once. "
              "CPU s/page = CPU time of the bench process (bare, pipeline) or of the server and "
              "all its workers (api) per page: unlike pages/s it does not depend on what else "
              "runs on the machine; load = the 1-minute load average when the row started "
              "(this machine is shared, 2 cores).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--kinds", default="receipts,forms")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-api", action="store_true")
    parser.add_argument("--inner", default=None)
    parser.add_argument("--reuse-in-process", action="store_true",
                        help="keep the bare/pipeline rows of the last results/ocr.json")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if args.inner:
        print(json.dumps(inner(args.inner, kinds, args.limit)))
        return
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average": round(os.getloadavg()[0], 2),
        "counts": {k: len(corpus(k, args.limit)) for k in kinds},
        "engines": {},
    }
    previous = (json.loads((RESULTS / "ocr.json").read_text())
                if args.reuse_in_process and (RESULTS / "ocr.json").is_file() else None)
    for engine in args.engines.split(","):
        if previous and engine in previous["engines"]:
            results["engines"][engine] = {k: v for k, v in previous["engines"][engine].items()
                                          if not k.endswith("/api")}
            results["in_process_measured"] = previous["when"]
            continue
        print(f"in process: {engine}", flush=True)
        results["engines"][engine] = run_inner(engine, kinds, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pdf = twenty_page_pdf(folder)
        results["text_layer"] = {"in_process": text_layer_in_process(pdf)}
        if not args.no_api:
            server = DocmillServer(folder / "server")
            server.cli("migrate")
            server.create_key("acme", admin=True)
            server.start()
            try:
                api_run(server, [pdf], {})  # warm the workers
                wall, _ = api_run(server, [pdf], {})
                results["text_layer"]["api_ms_per_page"] = round(1000 * wall / 20, 2)
                for engine in args.engines.split(","):
                    for kind in kinds:
                        print(f"api: {engine} {kind}", flush=True)
                        files = corpus(kind, args.limit)
                        # load the models in both workers
                        api_run(server, files[:2], {"engine": engine})
                        assert server.process is not None
                        cpu0, load = _cpu_tree(server.process.pid), os.getloadavg()[0]
                        wall, documents = api_run(server, files, {"engine": engine})
                        cpu = _cpu_tree(server.process.pid) - cpu0
                        accuracy = Accuracy()
                        for path, document in zip(files, documents, strict=True):
                            words, lines = document_words(document)
                            accuracy.add(path, words, lines)
                        results["engines"][engine][f"{kind}/api"] = {
                            "pages": len(files), "seconds": round(wall, 2),
                            "pages_per_s": round(len(files) / wall, 3),
                            "cpu_s_per_page": round(cpu / len(files), 3),
                            "load_average": round(load, 2),
                            **accuracy.as_dict(kind)}
            finally:
                server.destroy()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "ocr.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
