"""The corpus documents read once per process, their ground truth, and the field comparisons
shared by tests/unit/test_extract.py, tests/unit/test_identify.py and bench/extract.py.

Normalisation (SROIE's key fields are compared as the dataset's evaluation does after OCR
noise is set aside):
- company, address: upper case, only letters and digits kept (spacing and punctuation vary
  with the OCR and with how lines are joined);
- date: both sides parsed to a calendar date (the ground truth day-first, as in Malaysia;
  eight digits as yyyymmdd, else ddmmyyyy);
- total / amounts: numerically, to the cent (a currency code around the ground truth, as in
  `RM22.65`, is not part of the number); a receipt whose total is not annotated ("") is
  left out of that field.
invoice2data fields: dates and amounts as above; issuer when either side's words contain
the other's ("Free" ~ "Free SAS"); identifiers (invoice number, VAT, IBAN, BIC, order id)
upper case letters and digits only; currency exactly.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import re
from functools import cache
from pathlib import Path
from typing import Any

from docmill.documents import Document
from docmill.engines.base import EngineInput
from docmill.engines.ocr.pipeline import ReadParams, read_document

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():  # as tests/server.py: CI clones main with shared/ beside it
    DATA = Path(os.environ.get("DOCMILL_TEST_DATA", "../shared/data")).resolve()
_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".pdf": "application/pdf"}

RECEIPT_FIELDS = ("company", "address", "date", "total")
INVOICE_FIELDS = ("issuer", "invoice_number", "date", "date_due", "amount", "amount_untaxed",
                  "currency", "vat", "iban", "bic", "order_id")


@cache
def read(path: Path) -> Document:
    """The document as extract.fields reads it (ocr.read's pipeline, default parameters).

    Read once per process; under pytest-xdist once per test run: tests/conftest.py names in
    DOCMILL_TEST_READ_CACHE a folder of the run's temporary directory (never kept for a later
    run) where the first worker to read a document leaves it for the others."""
    inp = EngineInput(path, path.name, _TYPES[path.suffix.lower()])
    folder = os.environ.get("DOCMILL_TEST_READ_CACHE")
    if not folder:
        return read_document(inp, ReadParams(), lambda *_: None).document
    key = hashlib.sha256(path.read_bytes() + repr(ReadParams()).encode()).hexdigest()[:32]
    stored = Path(folder) / f"{key}.pickle"
    stored.parent.mkdir(parents=True, exist_ok=True)
    with open(stored.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker reads it, the others wait and load it
        if stored.exists():
            return pickle.loads(stored.read_bytes())
        document = read_document(inp, ReadParams(), lambda *_: None).document
        partial = stored.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(document))
        partial.replace(stored)
        return document


def receipts(step: int = 1) -> list[Path]:
    return sorted((DATA / "receipts").glob("sroie_*.jpg"))[::step]


def invoices() -> list[Path]:
    return sorted((DATA / "invoices").glob("*.pdf"))


def receipt_truth(path: Path) -> dict[str, str]:
    return json.loads(path.with_suffix(".json").read_text())


def invoice_truth(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text())[0]


def _alnum(value: Any) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(value).upper())


def _day(value: Any) -> str | None:
    """A ground-truth date: SROIE's keys also write `20180304`, `25032018`, `(06/12/2016)`.
    Written apart from docmill's own `learned.matching.as_date` on purpose: the judge does not
    share code with what it judges."""
    import datetime as dt

    import dateutil.parser

    text = str(value).strip().strip("()[] ")
    if re.fullmatch(r"\d{8}", text):
        for y, m, d in ((text[:4], text[4:6], text[6:]), (text[4:], text[2:4], text[:2])):
            try:
                return dt.date(int(y), int(m), int(d)).isoformat()
            except ValueError:
                continue
        return None
    try:
        return dateutil.parser.parse(text, dayfirst=True).date().isoformat()
    except (ValueError, OverflowError):
        return None


def _money(value: Any) -> float | None:
    """A number, with a currency sign or code around it (SROIE's keys: `RM22.65`)."""
    text = re.sub(r"^[A-Za-z$€£¥\s]+|[A-Za-z$€£¥\s]+$", "", str(value)).replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def same(field: str, truth: Any, predicted: Any) -> bool:
    if predicted is None:
        return False
    if field in ("company", "address"):
        return _alnum(truth) == _alnum(predicted)
    if field in ("date", "date_due"):
        return (truth if re.fullmatch(r"\d{4}-\d\d-\d\d", str(truth)) else _day(truth)) == \
            predicted
    if field in ("total", "amount", "amount_untaxed"):
        a, b = _money(truth), _money(predicted)
        return a is not None and b is not None and abs(a - b) < 0.005
    if field == "issuer":
        t = set(re.findall(r"[a-z0-9]+", str(truth).lower()))
        p = set(re.findall(r"[a-z0-9]+", str(predicted).lower()))
        return bool(t and p) and (t <= p or p <= t)
    if field == "currency":
        return str(truth).upper() == str(predicted).upper()
    return _alnum(truth) == _alnum(predicted)


def scored_fields(kind: str, truth: dict[str, Any]) -> list[str]:
    """The fields a ground-truth record lets us score."""
    if kind == "receipt":
        return [f for f in RECEIPT_FIELDS if str(truth.get(f, "")).strip()]
    return [f for f in INVOICE_FIELDS if truth.get(f) not in (None, "")]


def boxes_document(path: Path) -> Document:
    """A receipt as its SROIE line annotations give it (each transcript at its box, no OCR),
    for unit tests that train and apply field models in milliseconds. Boxes in pixels (read
    as points at 72 dpi); a word's box is its share of the line's width."""
    from PIL import Image

    from docmill.documents import Block, Box, Line, Page, Word

    with Image.open(path) as image:
        width, height = image.size
    blocks = []
    for row in path.with_suffix(".boxes.csv").read_text(encoding="utf-8").splitlines():
        parts = row.split(",")
        if len(parts) < 9 or not ",".join(parts[8:]).strip():
            continue
        xs, ys = [int(v) for v in parts[0:8:2]], [int(v) for v in parts[1:8:2]]
        text = ",".join(parts[8:]).strip()
        x0, x1 = min(xs), max(xs)
        per_char = (x1 - x0) / max(1, len(text))
        words, pos = [], 0
        for token in text.split():
            start = text.index(token, pos)
            pos = start + len(token)
            words.append(Word(token, Box(x0 + start * per_char, min(ys), x0 + pos * per_char,
                                         max(ys))))
        blocks.append(Block("text", [Line(words)]))
    return Document([Page(1, float(width), float(height), "ocr", blocks, dpi=72.0)])
