"""When an extracted value is the labelled one, and which candidates a label points at.

The comparison is the one the quality figures use (and SROIE's evaluation, OCR noise aside):
numbers to the cent, dates as calendar dates, everything else upper case with only letters and
digits kept, so spacing, punctuation and how lines were joined do not count.
"""

from __future__ import annotations

import re
from typing import Any

from docmill.extraction.learned.candidates import LINE_KINDS, MULTILINE_KINDS, Cand, alnum
from docmill.extraction.schema import FieldSpec


def as_date(value: Any) -> str | None:
    """ISO date of a labelled value: ISO as given, eight digits as yyyymmdd when that is a
    date (else ddmmyyyy), else read day first; brackets and stray marks around it ignored."""
    text = str(value).strip().strip("()[]{}<>,;:'\" ")
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text[:10]):
        return text[:10]
    import datetime as dt

    if re.fullmatch(r"\d{8}", text):
        for year, month, day in ((text[:4], text[4:6], text[6:]), (text[4:], text[2:4], text[:2])):
            try:
                return dt.date(int(year), int(month), int(day)).isoformat()
            except ValueError:
                continue
        return None
    import dateutil.parser

    try:
        return dateutil.parser.parse(text, dayfirst=True).date().isoformat()
    except (ValueError, OverflowError):
        return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = re.sub(r"[^\d.,\-]", "", str(value))
    if re.search(r",\d{1,2}$", text):
        text = text.replace(".", "").replace(",", ".")
    text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


def same(spec: FieldSpec, expected: Any, predicted: Any) -> bool:
    if is_empty(expected) or is_empty(predicted):
        return False
    if spec.kind in ("amount", "quantity", "integer", "percent") or \
            (spec.types & {"number", "integer"} and not spec.types & {"string"}):
        a, b = as_number(expected), as_number(predicted)
        return a is not None and b is not None and abs(a - b) < 0.005
    if spec.kind == "date":
        return as_date(expected) is not None and as_date(expected) == as_date(predicted)
    return alnum(expected) != "" and alnum(expected) == alnum(predicted)


def positives(spec: FieldSpec, expected: Any, cands: list[Cand]) -> list[bool]:
    """Which candidates carry (a part of, for multi-line text) the labelled value."""
    if is_empty(expected):
        return [False] * len(cands)
    if spec.kind not in LINE_KINDS:
        return [same(spec, expected, c.value) for c in cands]
    from rapidfuzz import fuzz

    target = alnum(expected)
    out = []
    for c in cands:
        own = alnum(c.value)
        if not own:
            out.append(False)
        elif spec.kind in MULTILINE_KINDS:
            telling = sum(ch.isalpha() for ch in own) >= 2 or len(own) >= 5 or own == target
            inside = telling and own in target
            fuzzy = len(own) >= 6 and fuzz.partial_ratio(own, target) >= 90 and \
                len(own) <= len(target) + 3
            out.append(inside or fuzzy)
        else:
            out.append(own == target or (len(own) >= 6 and fuzz.ratio(own, target) >= 90))
    if spec.kind in MULTILINE_KINDS:  # of one line's variants, only the fullest is right
        best: dict[int, int] = {}
        for i, (c, ok) in enumerate(zip(cands, out, strict=True)):
            if ok and (c.seg.index not in best or
                       len(alnum(c.value)) > len(alnum(cands[best[c.seg.index]].value))):
                best[c.seg.index] = i
        out = [ok and best.get(c.seg.index) == i
               for i, (c, ok) in enumerate(zip(cands, out, strict=True))]
    return out


def expected_value(data: Any, spec: FieldSpec) -> Any:
    node = data
    for key in spec.path:
        node = node.get(key) if isinstance(node, dict) else None
    return node
