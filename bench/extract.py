"""Extraction and identification benchmark, per part of the training split (train /
validation / test, training/*_split.json), per field: the rule-based extractor alone, with
the shipped field model, and a naive regex baseline, on SROIE receipts and public labelled
invoices; the time per receipt of OCR + extraction; a user type taught from 20 labelled
receipts against the untrained schema-only path; identification among the built-in types.

Documents are read exactly as extract.fields reads them (the training script's reading and
cache); field comparison and normalisation: tests/extract_corpus.py.

* **rules**: `extraction.extractor.extract(document, builtin schema)`;
* **rules+model**: the same with the type's shipped field model (`extraction/learned`);
* **regex**: the first line is the company/issuer, the next two lines the address, the first
  numeric date, the amount after the last "total", "invoice no/number/#" followed by a token,
  the first currency sign or code, the first EU VAT number / IBAN / BIC-shaped token.

    .venv/bin/python bench/extract.py --sroie DIR --invoices DIR [DIR...] [--cache DIR]

Results go to bench/results/extract.json and bench/results/extract.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))
import train_models as T  # noqa: E402  (the training script's split, reading and cache)
from extract_corpus import (  # noqa: E402
    DATA,
    INVOICE_FIELDS,
    RECEIPT_FIELDS,
    invoice_truth,
    invoices,
    read,
    receipts,
    same,
    scored_fields,
)

from docmill.extraction import values as V  # noqa: E402
from docmill.extraction.builtin_types import builtin_type, builtin_types  # noqa: E402
from docmill.extraction.extractor import extract  # noqa: E402
from docmill.extraction.identifier import identify  # noqa: E402
from docmill.extraction.learned.model import shipped_model  # noqa: E402

RESULTS = ROOT / "bench" / "results"
THRESHOLD = 0.35


# --- the naive baseline --------------------------------------------------------------------

_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})\b|\b(\d{4})-(\d\d)-(\d\d)\b")
_TOTAL = re.compile(r"(?i)total[^\n\d]{0,30}?(\d{1,6}[.,]\d{2})")
_INVNO = re.compile(r"(?i)invoice\s*(?:no\.?|number|nr\.?|#)\s*[:#]?\s*([A-Z0-9][\w/-]+)")
_CUR = {"$": "USD", "€": "EUR", "£": "GBP", "RM": "MYR", "EUR": "EUR", "USD": "USD",
        "INR": "INR", "Rs": "INR"}


def naive(text: str, kind: str) -> dict[str, Any]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    out: dict[str, Any] = {}
    first = lines[0] if lines else None
    m = _DATE.search(text)
    date = None
    if m and m.group(1):
        y = int(m.group(3)) + (2000 if len(m.group(3)) == 2 else 0)
        try:
            date = dt.date(y, int(m.group(2)), int(m.group(1))).isoformat()
        except ValueError:
            date = None
    elif m:
        date = f"{m.group(4)}-{m.group(5)}-{m.group(6)}"
    totals = _TOTAL.findall(text)
    total = float(totals[-1].replace(",", ".")) if totals else None
    if kind == "receipt":
        out.update(company=first, address=" ".join(lines[1:3]) or None, date=date, total=total)
        return out
    inv = _INVNO.search(text)
    cur = re.search(r"[$€£]|\b(?:EUR|USD|INR|RM|Rs)\b", text)
    vat = V._VAT.search(text)
    iban = re.search(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", text)
    bic = re.search(r"\b[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b", text)
    out.update(issuer=first, invoice_number=inv.group(1) if inv else None, date=date,
               date_due=None, amount=total, amount_untaxed=None,
               currency=_CUR.get(cur.group(0)) if cur else None,
               vat=vat.group(1) if vat else None, iban=iban.group(0) if iban else None,
               bic=bic.group(0) if bic else None, order_id=None)
    return out


# --- runs ----------------------------------------------------------------------------------

def _load_split(kind: str, sroie: Path | None, invoice_dirs: list[Path], cache: Path
                ) -> dict[str, list[tuple[str, Any, dict[str, Any]]]]:
    """Per part, (name, document, truth): the training script's split and reading cache."""
    split = json.loads((ROOT / "training" / f"{'sroie' if kind == 'receipt' else 'invoice'}"
                        "_split.json").read_text())
    docs = T.sroie_documents(sroie) if kind == "receipt" else T.invoice_documents(invoice_dirs)
    return {part: [(name, T.read(docs[name][0], cache), docs[name][1])
                   for name in split[part] if name in docs]
            for part in ("train", "validation", "test")}


def _table(kind: str, rows: list[tuple[str, Any, dict[str, Any]]], fields,
           methods: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"documents": len(rows)}
    for method, answer_of in methods.items():
        hits: dict[str, list[bool]] = {f: [] for f in fields}
        t0 = time.perf_counter()
        answers = [answer_of(document) for _, document, _ in rows]
        elapsed = time.perf_counter() - t0
        for (_, _, truth), answer in zip(rows, answers, strict=True):
            for f in scored_fields(kind, truth):
                if f in hits:
                    hits[f].append(same(f, truth[f], answer.get(f)))
        per_field = {f: round(sum(v) / len(v), 4) for f, v in hits.items() if v}
        out[method] = {"fields": per_field,
                       "mean": round(sum(per_field.values()) / len(per_field), 4),
                       "ms_per_document": round(1000 * elapsed / max(1, len(rows)), 1)}
    return out


def fields_by_part(kind: str, parts, fields) -> dict[str, Any]:
    schema = builtin_type(kind)["schema"]
    model = shipped_model(kind)
    methods = {"rules": lambda d: extract(d, schema)["data"],
               "rules+model": lambda d: extract(d, schema, model=model)["data"],
               "regex": lambda d: naive(d.to_text(), kind)}
    return {part: _table(kind, rows, fields, methods) for part, rows in parts.items()}


def reading_time(rows: list[tuple[str, Any, dict[str, Any]]], paths: dict[str, Path],
                 kind: str) -> dict[str, Any]:
    """OCR + extraction per document, read afresh (no cache), as an extract.fields job does
    inside the worker: read_document then the rules and the shipped model."""
    schema = builtin_type(kind)["schema"]
    model = shipped_model(kind)
    times = []
    for name, _, _ in rows:
        path = paths[name]
        t0 = time.perf_counter()
        document = T.read(path, None)
        extract(document, schema, model=model)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"documents": len(times), "median_s": round(statistics.median(times), 3),
            "p90_s": round(times[int(0.9 * (len(times) - 1))], 3), "max_s": round(times[-1], 3)}


TAUGHT_SCHEMA = {"type": "object", "properties": {
    "company": {"type": ["string", "null"], "title": "Shop"},
    "date": {"type": ["string", "null"], "format": "date", "title": "Day"},
    "address": {"type": ["string", "null"], "title": "Where"},
    "total": {"type": ["number", "null"], "title": "Paid"}}}


def taught_type(parts, examples: int = 20) -> dict[str, Any]:
    """A user's own receipt-like type (plain names, no Docmill hints) taught from `examples`
    labelled train receipts (the API's extract.train), against the untrained schema-only
    path, on the test part."""
    from docmill.extraction.learned.training import train_type

    taught = [{"name": n, "expected": {**t, "date": _iso(t.get("date"))},
               "document": d.to_dict()} for n, d, t in parts["train"][:examples]]
    t0 = time.perf_counter()
    model, report = train_type({"schema": TAUGHT_SCHEMA, "examples": taught})
    train_s = time.perf_counter() - t0
    table = _table("receipt", parts["test"], RECEIPT_FIELDS, {
        "untrained": lambda d: extract(d, TAUGHT_SCHEMA)["data"],
        "taught": lambda d: extract(d, TAUGHT_SCHEMA, model=model)["data"]})
    return {"examples": examples, "training_s": round(train_s, 1),
            "cross_validated": report["quality"], "test": table}


def _iso(value: Any) -> Any:
    import dateutil.parser

    try:
        return dateutil.parser.parse(str(value), dayfirst=True).date().isoformat()
    except (ValueError, OverflowError):
        return None


def line_items() -> dict[str, Any]:
    """invoice2data's line amounts found among the extracted lines' amounts."""
    schema = builtin_type("invoice")["schema"]
    found = total = 0
    for path in invoices():
        truth = [ln for ln in invoice_truth(path).get("lines") or [] if "name" in ln
                 or "desc" in ln]
        if not truth:
            continue
        lines = extract(read(path), schema)["data"].get("lines") or []
        amounts = {round(float(v), 2) for ln in lines for k, v in ln.items()
                   if k in ("price_unit", "price_subtotal") and v is not None}
        for ln in truth:
            total += 1
            want = [ln.get(k) for k in ("price_subtotal", "price_unit", "price") if
                    ln.get(k) is not None]
            if any(round(float(w), 2) in amounts for w in want):
                found += 1
    return {"lines": total, "found": found, "recall": round(found / total, 4) if total else None}


def identification() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_identify import LETTER_HTML
    from weasyprint import HTML

    letter = Path(tempfile.mkdtemp(prefix="docmill-bench-")) / "letter.pdf"
    HTML(string=LETTER_HTML).write_pdf(letter)
    forms = sorted((DATA / "forms").glob("funsd_*.png"))
    cases = [(p, "receipt") for p in receipts()] + [(p, "invoice") for p in invoices()] + \
        [(p, None) for p in forms] + \
        [(p, None) for p in sorted((DATA / "pdf").glob("*.pdf"))] + [(letter, "letter")]
    options = [{"code": t["codeType"], "name": t["name"], "description": t["description"],
                "schema": t["schema"], "keywords": t["keywords"], "examples": []}
               for t in builtin_types()]
    right = 0
    wrong = []
    elapsed = 0.0
    for path, expected in cases:
        document = read(path)
        t0 = time.perf_counter()
        result = identify(document, options, THRESHOLD)
        elapsed += time.perf_counter() - t0
        if result["document_type_code"] == expected:
            right += 1
        else:
            wrong.append([path.name, expected, result["document_type_code"],
                          result["ranking"][:2]])
    by_kind: dict[str, list[int]] = {}
    for _path, expected in cases:
        by_kind.setdefault(str(expected), [0, 0])[1] += 1
    for path, expected in cases:
        if not any(w[0] == path.name for w in wrong):
            by_kind[str(expected)][0] += 1
    taught = {"code": "field-report", "name": "Field report", "description": "",
              "schema": None, "keywords": [], "examples": [read(p).to_text() for p in forms[:3]]}
    taught_right = 0
    for path in forms[3:]:
        result = identify(read(path), options + [taught], THRESHOLD)
        taught_right += result["document_type_code"] == "field-report"
    builtin_cases = [c for c in cases if c[1] is not None]
    builtin_right = sum(1 for p, e in builtin_cases if not any(w[0] == p.name for w in wrong))
    return {"documents": len(cases), "accuracy": round(right / len(cases), 4),
            "accuracy_typed_documents": round(builtin_right / len(builtin_cases), 4),
            "by_expected": {k: f"{v[0]}/{v[1]}" for k, v in by_kind.items()},
            "ms_per_document": round(1000 * elapsed / len(cases), 1), "wrong": wrong,
            "taught_type": {"examples": 3, "unseen": len(forms) - 3,
                            "recognised": taught_right,
                            "accuracy": round(taught_right / (len(forms) - 3), 4)}}


def markdown(results: dict[str, Any]) -> str:
    out = ["# Extraction and identification benchmark", "",
           f"{results['date']}, {results['machine']}. Regenerate: "
           "`.venv/bin/python bench/extract.py --sroie DIR --invoices DIR...` "
           "(training/README.md says where the data comes from).", "",
           "Per-field accuracy: share of ground-truth values found exactly, after the "
           "normalisation of tests/extract_corpus.py (the harness the issue measured with). "
           "Parts are the training split's (training/*_split.json): the model was fitted on "
           "train + validation, its thresholds tuned on validation; **test was never used "
           "for anything but this table**; train and validation rows are in-sample for the shipped "
           "model (training/*.results.json has validation for a model fitted on train alone). "
           "`rules` = the rule-based extractor alone, "
           "`rules+model` = with the shipped field model, `regex` = a few regular "
           "expressions. ms/document: extraction of an already-read document.", ""]
    for corpus, fields in (("receipts", RECEIPT_FIELDS), ("invoices", INVOICE_FIELDS)):
        parts = results[corpus]
        shown = [f for f in fields if any(f in parts[p][m]["fields"] for p in parts
                                          for m in ("rules",))]
        out += [f"## {corpus}", "",
                "| part | documents | method | " + " | ".join(shown) + " | mean | ms/doc |",
                "|---" * (len(shown) + 5) + "|"]
        for part, table in parts.items():
            for method in ("rules", "rules+model", "regex"):
                row = table[method]
                out.append(f"| {part} | {table['documents']} | {method} | " + " | ".join(
                    f"{row['fields'][f]:.2f}" if f in row["fields"] else "-" for f in shown)
                    + f" | **{row['mean']:.3f}** | {row['ms_per_document']} |")
        out.append("")
    timing = results["receipt_time"]
    out += ["## Time per receipt (OCR + extraction, read afresh, test part)", "",
            "| documents | median s | p90 s | max s |", "|---|---|---|---|",
            f"| {timing['documents']} | {timing['median_s']} | {timing['p90_s']} | "
            f"{timing['max_s']} |", ""]
    taught = results["taught_type"]
    out += [f"## A type taught from {taught['examples']} labelled receipts", "",
            "A user type with plain property names (Shop, Day, Where, Paid; no Docmill hints), "
            f"taught from {taught['examples']} train receipts (training took "
            f"{taught['training_s']} s), on the test part:", "",
            "| method | " + " | ".join(RECEIPT_FIELDS) + " | mean |",
            "|---" * (len(RECEIPT_FIELDS) + 2) + "|"]
    for method in ("untrained", "taught"):
        row = taught["test"][method]
        out.append(f"| {method} | " + " | ".join(f"{row['fields'].get(f, 0):.2f}"
                                                 for f in RECEIPT_FIELDS)
                   + f" | **{row['mean']:.3f}** |")
    out += ["", "Cross-validated quality the type reports (5 folds over its examples): " +
            ", ".join(f"{f} {q['accuracy']:.2f} (rules {q['rules_accuracy']:.2f})"
                      for f, q in taught["cross_validated"].items()), ""]
    ident = results["identification"]
    out += ["## Identification (7 built-in types as the options, threshold "
            f"{THRESHOLD})", "",
            "| documents | accuracy | typed documents only | ms/document | by expected type |",
            "|---|---|---|---|---|",
            f"| {ident['documents']} | **{ident['accuracy']:.3f}** | "
            f"{ident['accuracy_typed_documents']:.3f} | {ident['ms_per_document']} | "
            + ", ".join(f"{k}: {v}" for k, v in ident["by_expected"].items()) + " |", "",
            f"Type taught from 3 example texts (FUNSD forms): {ident['taught_type']['recognised']}"
            f" of {ident['taught_type']['unseen']} unseen forms recognised.", ""]
    r, i = results["receipts"]["test"]["rules+model"], results["invoices"]["test"]["rules+model"]
    out += ["## Against the issue's targets (test part)", "",
            f"- receipts mean field accuracy {r['mean']:.3f} (target 0.92)",
            f"- invoices mean field accuracy {i['mean']:.3f} (target 0.88)",
            f"- taught type {taught['test']['taught']['mean']:.3f} vs untrained "
            f"{taught['test']['untrained']['mean']:.3f}",
            f"- receipt OCR + extraction median {timing['median_s']} s (target 2 s)",
            f"- identification among the built-in types {ident['accuracy']:.3f} (target 0.98)",
            ""]
    return "\n".join(out)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--sroie", type=Path, required=True)
    parser.add_argument("--invoices", type=Path, nargs="+", required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/docmill-train-cache"))
    args = parser.parse_args()
    V.warm_up()
    receipts_ = _load_split("receipt", args.sroie, [], args.cache)
    invoices_ = _load_split("invoice", None, args.invoices, args.cache)
    paths = {k: v[0] for k, v in T.sroie_documents(args.sroie).items()}
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}, {os.cpu_count()} cores",
        "receipts": fields_by_part("receipt", receipts_, RECEIPT_FIELDS),
        "invoices": fields_by_part("invoice", invoices_, INVOICE_FIELDS),
        "receipt_time": reading_time(receipts_["test"], paths, "receipt"),
        "taught_type": taught_type(receipts_),
        "invoice_line_items": line_items(),
        "identification": identification(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = markdown(results)
    (RESULTS / "extract.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
