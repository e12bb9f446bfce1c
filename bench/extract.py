"""Extraction and identification benchmark: Docmill's built-in extractor vs a naive regex
baseline over the same OCR text, per field, on the SROIE receipts and invoice2data's invoices;
identification accuracy and time per document among the built-in types; a type taught from
three examples.

Every document is read once, exactly as extract.fields reads it (ocr.read's pipeline,
default parameters: RapidOCR for the receipt photos, the text layer for the invoices,
Tesseract for the FUNSD scans); reading time is reported apart. Field comparison and
normalisation: tests/extract_corpus.py.

* **docmill**: `extraction.extractor.extract(document, builtin schema)`;
* **regex**: what a few lines of regular expressions over the plain text find: the first
  line is the company/issuer, the next two lines the address, the first numeric date, the
  amount after the last "total", "invoice no/number/#" followed by a token, the first
  currency sign or code, the first EU VAT number / IBAN / BIC-shaped token;
* documents/s: extraction only, over already-read documents (the reading is in its own row).

Identification: every corpus document (receipts -> receipt, invoices -> invoice, FUNSD forms
and the generic PDFs -> none of the options, a rendered business letter -> letter) against
the 7 built-in types; the taught type: 3 FUNSD forms' texts as examples, the 7 other forms
to recognise, among the built-in types plus it.

    .venv/bin/python bench/extract.py

Results go to bench/results/extract.json and bench/results/extract.md.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from extract_corpus import (  # noqa: E402
    DATA,
    INVOICE_FIELDS,
    RECEIPT_FIELDS,
    invoice_truth,
    invoices,
    read,
    receipt_truth,
    receipts,
    same,
    scored_fields,
)

from docmill.extraction import values as V  # noqa: E402
from docmill.extraction.builtin_types import builtin_type, builtin_types  # noqa: E402
from docmill.extraction.extractor import extract  # noqa: E402
from docmill.extraction.identifier import identify  # noqa: E402

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

def field_table(kind: str, paths: list[Path], truth_of, fields) -> dict[str, Any]:
    schema = builtin_type(kind)["schema"]
    t0 = time.perf_counter()
    documents = [read(p) for p in paths]
    read_s = time.perf_counter() - t0
    rows: dict[str, Any] = {}
    for method in ("docmill", "regex"):
        hits: dict[str, list[bool]] = {f: [] for f in fields}
        misses = []
        t0 = time.perf_counter()
        answers = [extract(d, schema)["data"] if method == "docmill"
                   else naive(d.to_text(), kind) for d in documents]
        elapsed = time.perf_counter() - t0
        for path, answer in zip(paths, answers):
            truth = truth_of(path)
            for field in scored_fields(kind, truth):
                ok = same(field, truth[field], answer.get(field))
                hits[field].append(ok)
                if not ok and method == "docmill":
                    misses.append([path.name, field, truth[field], answer.get(field)])
        per_field = {f: round(sum(v) / len(v), 4) for f, v in hits.items() if v}
        scored = [x for v in hits.values() for x in v]
        rows[method] = {"fields": per_field,
                        "mean_field_accuracy": round(sum(per_field.values()) / len(per_field), 4),
                        "all_values_accuracy": round(sum(scored) / len(scored), 4),
                        "values_scored": len(scored), "docs_per_s": round(len(paths) / elapsed, 2),
                        "misses": misses}
    rows["read"] = {"documents": len(paths), "seconds": round(read_s, 2),
                    "docs_per_s": round(len(paths) / read_s, 3) if read_s else None}
    return rows


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
    from test_identify import LETTER_HTML  # noqa: E402
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
    for (path, expected), _ in zip(cases, range(len(cases))):
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
           "`.venv/bin/python bench/extract.py`.", "",
           "Per-field accuracy (share of ground-truth values found exactly, after the "
           "normalisation of tests/extract_corpus.py); documents/s = extraction over "
           "already-read documents.", ""]
    for corpus, fields in (("receipts", RECEIPT_FIELDS), ("invoices", INVOICE_FIELDS)):
        table = results[corpus]
        shown = [f for f in fields if f in table["docmill"]["fields"]]
        out.append(f"## {corpus} ({table['read']['documents']} documents; reading them: "
                   f"{table['read']['seconds']} s, {table['read']['docs_per_s']} docs/s)")
        out.append("")
        out.append("| method | " + " | ".join(shown) + " | mean field acc. | all values | "
                   "docs/s |")
        out.append("|---" * (len(shown) + 4) + "|")
        for method in ("docmill", "regex"):
            row = table[method]
            out.append(f"| {method} | " + " | ".join(f"{row['fields'][f]:.2f}" for f in shown)
                       + f" | **{row['mean_field_accuracy']:.3f}** | "
                       f"{row['all_values_accuracy']:.3f} ({row['values_scored']}) | "
                       f"{row['docs_per_s']} |")
        d, r = table["docmill"], table["regex"]
        ratio = d["mean_field_accuracy"] / r["mean_field_accuracy"] if \
            r["mean_field_accuracy"] else float("inf")
        out += ["", f"docmill / regex mean field accuracy: {ratio:.2f}x", ""]
    li = results["invoice_line_items"]
    out += [f"Invoice line items: {li['found']} of {li['lines']} ground-truth line amounts "
            f"found among the extracted lines (recall {li['recall']}).", ""]
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
    targets = results["targets"]
    out += ["## Against the issue's targets", "",
            f"- SROIE receipts mean field accuracy {targets['receipts']:.3f} (target 0.90)",
            f"- invoices mean field accuracy {targets['invoices']:.3f} (target 0.85)",
            f"- identification among the built-in types {targets['identification']:.3f} "
            "(target 0.98)", ""]
    return "\n".join(out)


def main() -> None:
    V.warm_up()
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "receipts": field_table("receipt", receipts(), receipt_truth, RECEIPT_FIELDS),
        "invoices": field_table("invoice", invoices(), invoice_truth, INVOICE_FIELDS),
        "invoice_line_items": line_items(),
        "identification": identification(),
    }
    results["targets"] = {"receipts": results["receipts"]["docmill"]["mean_field_accuracy"],
                          "invoices": results["invoices"]["docmill"]["mean_field_accuracy"],
                          "identification": results["identification"]["accuracy"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = markdown(results)
    (RESULTS / "extract.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
