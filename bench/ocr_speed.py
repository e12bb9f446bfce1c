"""Speed of reading + extracting a receipt photo, before vs after the RapidOCR speed-up, side
by side in one run, with the accuracy of both.

* **before**: RapidOCR as rapidocr configures itself (detector at its own resolution: the
  image shrunk to 2000 px and its short side raised to 736 px; the per-line 0/180
  classifier; recognizer batches of 6 padded to 320 px): `RapidOcrBackend(det_line_px=None,
  line_classifier=True, rec_width=320, rec_batch=6)`;
* **after**: the defaults (`RapidOcrBackend()`): detector at the resolution that makes text
  lines ~14 px high (from the connected-component text height), no line classifier, lines
  recognized one at a time at their own width.

Every receipt goes through exactly what `extract.fields` runs (`read_document` with default
parameters: orientation, RapidOCR, layout; then the built-in extractor with the `receipt`
type's schema) once with each configuration, in alternating order, so that the load the
other processes put on this shared machine falls on both alike. Per receipt: wall time and
this process's CPU time (onnxruntime runs one thread per worker, as a worker does with
2 workers on 2 cores). Accuracy: the four SROIE fields (tests/extract_corpus.py `same`) and
line CER against the line transcripts (tests/ocr_quality.py `line_cer`); FUNSD word
precision / recall of both on the 10 forms of shared/data (tests/unit/test_ocr.py floors).

SROIE receipts come from a folder of img_NNN.jpg / key_NNN.json / box_NNN.csv and a split
file (ids per train / validation / test; ids 400-625 are never read). Tune on train and
validation; run `--split test` once, after tuning.

    .venv/bin/python bench/ocr_speed.py --split validation [--limit N] \\
        [--sroie /work/cache/sroie] [--split-file training/sroie_split.json]

Results go to bench/results/ocr_speed-<split>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from extract_corpus import DATA, RECEIPT_FIELDS, same  # noqa: E402
from ocr_quality import WordScore, funsd_words, line_cer, score_words, sroie_lines  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RESERVED = range(400, 626)  # acceptance-check ids: never read
CONFIGS = {"before": {"det_line_px": None, "line_classifier": True, "rec_width": 320,
                      "rec_batch": 6},
           "after": {}}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def receipt_ids(split_file: Path, split: str, limit: int | None) -> list[str]:
    ids = json.loads(split_file.read_text())[split]
    if any(int(i) in RESERVED for i in ids):
        raise SystemExit("the split holds reserved ids (400-625)")
    if limit and limit < len(ids):
        step = len(ids) / limit
        ids = [ids[int(k * step)] for k in range(limit)]
    return ids


def run(split: str, ids: list[str], folder: Path, threads: int) -> dict[str, Any]:
    from PIL import Image

    from docmill.engines.base import EngineInput
    from docmill.engines.ocr import pipeline
    from docmill.engines.ocr.backends import RapidOcrBackend
    from docmill.extraction import values
    from docmill.extraction.builtin_types import builtin_type
    from docmill.extraction.extractor import extract

    values.warm_up()
    schema = builtin_type("receipt")["schema"]
    backends = {name: RapidOcrBackend(threads, **kw) for name, kw in CONFIGS.items()}
    blank = Image.new("RGB", (200, 60), "white")
    for backend in backends.values():  # load every model before timing
        pipeline._models.rapidocr = backend
        pipeline.ocr_image(blank, 96, "rapidocr", ["eng"])
    rows = {name: {"wall": [], "cpu": [], "errors": 0, "chars": 0,
                   "hits": {f: [] for f in RECEIPT_FIELDS}} for name in CONFIGS}
    load_start = os.getloadavg()[0]
    for k, rid in enumerate(ids):
        path = folder / f"img_{rid}.jpg"
        truth = json.loads((folder / f"key_{rid}.json").read_text())
        lines = sroie_lines(folder / f"box_{rid}.csv")
        order = list(CONFIGS) if k % 2 == 0 else list(CONFIGS)[::-1]
        for name in order:
            pipeline._models.rapidocr = backends[name]
            t0, c0 = time.perf_counter(), time.process_time()
            document = pipeline.read_document(EngineInput(path, path.name, "image/jpeg"),
                                              pipeline.ReadParams(), lambda *_: None).document
            answer = extract(document, schema)["data"]
            row = rows[name]
            row["wall"].append(time.perf_counter() - t0)
            row["cpu"].append(time.process_time() - c0)
            page = document.pages[0]
            px = page.dpi / 72
            words = [(w.text, (w.box.x0 * px, w.box.y0 * px, w.box.x1 * px, w.box.y1 * px))
                     for w in page.words()]
            errors, chars = line_cer(words, lines)
            row["errors"] += errors
            row["chars"] += chars
            for field in RECEIPT_FIELDS:
                if str(truth.get(field, "")).strip():
                    row["hits"][field].append(same(field, truth[field], answer.get(field)))
        print(rid, " ".join(f"{n} {rows[n]['wall'][-1]:.2f}s" for n in CONFIGS), flush=True)
    out: dict[str, Any] = {}
    for name, row in rows.items():
        fields = {f: round(sum(v) / len(v), 4) for f, v in row["hits"].items() if v}
        out[name] = {
            "wall_median_s": round(statistics.median(row["wall"]), 3),
            "wall_p90_s": round(quantile(row["wall"], 0.9), 3),
            "wall_mean_s": round(statistics.mean(row["wall"]), 3),
            "wall_max_s": round(max(row["wall"]), 3),
            "cpu_median_s": round(statistics.median(row["cpu"]), 3),
            "cpu_p90_s": round(quantile(row["cpu"], 0.9), 3),
            "line_cer": round(row["errors"] / max(1, row["chars"]), 4),
            "fields": fields,
            "mean_field_accuracy": round(sum(fields.values()) / len(fields), 4),
            "all_four_right": sum(all(row["hits"][f][i] for f in RECEIPT_FIELDS
                                      if i < len(row["hits"][f]))
                                  for i in range(len(ids))),
        }
    before, after = out["before"], out["after"]
    out["ratios"] = {key: round(before[key] / after[key], 2) for key in
                     ("wall_median_s", "wall_p90_s", "cpu_median_s", "cpu_p90_s")}
    out["receipts"] = len(ids)
    out["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return out


def funsd(threads: int) -> dict[str, Any]:
    from PIL import Image

    from docmill.engines.ocr import pipeline
    from docmill.engines.ocr.backends import RapidOcrBackend

    forms = sorted((DATA / "forms").glob("funsd_*.png"))
    out = {}
    for name, kw in CONFIGS.items():
        pipeline._models.rapidocr = RapidOcrBackend(threads, **kw)
        total = WordScore(0, 0, 0)
        t0 = time.perf_counter()
        for path in forms:
            result = pipeline.ocr_image(Image.open(path).convert("RGB"), 72, "rapidocr", ["eng"])
            words = [(w.text, tuple(w.box.rounded())) for ln in result.lines for w in ln.words]
            total = total + score_words(words, funsd_words(path.with_suffix(".json")))
        out[name] = {"forms": len(forms), "precision": round(total.precision, 4),
                     "recall": round(total.recall, 4), "f1": round(total.f1, 4),
                     "wall_s_per_form": round((time.perf_counter() - t0) / len(forms), 3)}
    return out


def markdown(results: dict[str, Any]) -> str:
    r = results["receipts"]
    b, a = r["before"], r["after"]
    out = ["# RapidOCR speed-up: extract.fields on SROIE receipt photos", "",
           f"{results['date']}, {results['machine']}; split `{results['split']}`, "
           f"{r['receipts']} receipts, before and after alternating per receipt in one run; "
           f"onnxruntime threads per process: {results['threads']}; load average "
           f"{r['load_average'][0]} at start, {r['load_average'][1]} at end (the machine is "
           "shared). Regenerate: `.venv/bin/python bench/ocr_speed.py --split "
           f"{results['split']}`.", "",
           "| config | wall median s | wall p90 s | wall mean s | wall max s | CPU median s | "
           "CPU p90 s | line CER | " + " | ".join(RECEIPT_FIELDS) + " | mean field acc. | "
           "all four right |",
           "|---" * (10 + len(RECEIPT_FIELDS)) + "|"]
    for name, row in (("before", b), ("after", a)):
        out.append(f"| {name} | {row['wall_median_s']} | {row['wall_p90_s']} | "
                   f"{row['wall_mean_s']} | {row['wall_max_s']} | {row['cpu_median_s']} | "
                   f"{row['cpu_p90_s']} | {row['line_cer']} | "
                   + " | ".join(f"{row['fields'].get(f, 0):.3f}" for f in RECEIPT_FIELDS)
                   + f" | **{row['mean_field_accuracy']:.3f}** | {row['all_four_right']} |")
    ratios = r["ratios"]
    out += ["", f"before / after: wall median {ratios['wall_median_s']}x, wall p90 "
            f"{ratios['wall_p90_s']}x, CPU median {ratios['cpu_median_s']}x, CPU p90 "
            f"{ratios['cpu_p90_s']}x.", ""]
    if results.get("funsd"):
        out += ["FUNSD word precision / recall / F1 (10 forms, RapidOCR, `ocr_image`; floors "
                "in tests/unit/test_ocr.py: 0.66 / 0.62, F1 0.64):", ""]
        for name, row in results["funsd"].items():
            out.append(f"- {name}: {row['precision']} / {row['recall']} / {row['f1']} "
                       f"({row['wall_s_per_form']} s per form)")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="validation",
                        choices=("train", "validation", "test"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sroie", type=Path,
                        default=Path(os.environ.get("DOCMILL_SROIE", "/work/cache/sroie")))
    parser.add_argument("--split-file", type=Path, default=ROOT / "training" / "sroie_split.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-funsd", action="store_true")
    args = parser.parse_args()
    ids = receipt_ids(args.split_file, args.split, args.limit)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "split": args.split, "threads": args.threads, "ids": ids,
        "receipts": run(args.split, ids, args.sroie, args.threads),
    }
    if not args.no_funsd:
        results["funsd"] = funsd(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"ocr_speed-{args.split}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (RESULTS / f"{stem}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
