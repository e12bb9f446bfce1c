"""Candidate spans for one schema field, and the features a field model scores them by.

Every feature is computed from the read document alone (never from the expected answer), so
training and extraction see exactly the same thing. Dense features are numbers in a fixed
order (`DENSE`); words around a candidate become sparse "slot:word" tokens that a model maps
through the vocabulary it learnt (`tokens`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from docmill.extraction.layout import Layout, Seg
from docmill.extraction.schema import FieldSpec

LINE_KINDS = frozenset({"organization", "address", "person", "text"})
MULTILINE_KINDS = frozenset({"organization", "address"})
SKIPPED_KINDS = frozenset({"boolean"})

_COMPANY_WORDS = re.compile(
    r"(?i)\b(sdn\.?\s*bhd|bhd|berhad|enterprise|trading|ltd|limited|llc|inc|gmbh|s\.?a\.?s?|"
    r"b\.?v\.?|corp|corporation|company|co\.|plc|restaurant|restoran|store|mart|market|shop|"
    r"services?|industries|hardware|stationery|bakery|cafe|pharmacy|supermarket|s\.?r\.?l|ag)\b")
_POSTCODE = re.compile(r"\b\d{5}\b")
# what often follows a name on its line: a registration number "(519537-X)", "Co. No."
_TRAILER = re.compile(r"\s*(\(|\[|\b(co\.?\s*(reg\.?)?\s*no|reg\.?\s*no|gst|tel|phone)\b|"
                      r"\b\d{4,}-?[A-Z]\b)", re.IGNORECASE)
_PHONE_HINT = re.compile(r"(?i)\b(tel|phone|fax|h/p|hp|mobile)\b")
_ROUNDING = re.compile(r"(?i)\bround")
_TAX_HINT = re.compile(r"(?i)\b(gst|sst|vat|tax|reg|co\.?\s*no|roc|id)\b")


@dataclass
class Cand:
    """One place a field's value may be: a span of a segment, or a segment whole."""

    seg: Seg
    start: int
    end: int
    value: Any
    quality: float = 1.0
    whole_line: bool = False
    order: int = 0  # the segment's place top to bottom, left to right (DocContext.order)
    dense: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.seg.text[self.start:self.end]


@dataclass
class DocContext:
    """Per-document facts every candidate's features refer to."""

    layout: Layout
    order: list[Seg]  # visual order: rows top to bottom, left to right in a row
    page_width: dict[int, float]
    median_height: float
    amounts: list[float]
    rule_fields: dict[str, dict[str, Any]]
    label_scores: dict[tuple[int, str], float]  # (seg index, field pointer) -> best label score
    differences: set[int] = field(default_factory=set)  # a - b of two amounts (cash - change)
    sums: set[int] = field(default_factory=set)  # a + b of two amounts (subtotal + tax)
    rounds_cash: bool = False  # a line says the total was rounded ("Rounding Adj")

    @classmethod
    def of(cls, layout: Layout, rule_fields: dict[str, dict[str, Any]],
           label_scores: dict[tuple[int, str], float]) -> DocContext:
        from docmill.extraction import values as V

        widths: dict[int, float] = {}
        for s in layout.segs:
            widths[s.page] = max(widths.get(s.page, 1.0), s.box.x1)
        heights = [s.box.height for s in layout.segs if s.box.height > 0]
        amounts = []
        for s in layout.segs:
            for f in V.find_amounts(s.text, decimals_only=True):
                amounts.append(float(f.value[0]))
        order = [s for row in layout.rows for s in row]
        distinct = sorted(set(amounts))[:80]
        differences = {_round(a - b) for a in distinct for b in distinct if 0 < b < a}
        sums = {_round(a + b) for i, a in enumerate(distinct) for b in distinct[i:] if a > 0}
        return cls(layout, order, widths, median(heights) if heights else 10.0, amounts,
                   rule_fields, label_scores, differences, sums,
                   any(_ROUNDING.search(s.text) for s in layout.segs))

    def position(self, seg: Seg) -> int:
        index = getattr(self, "_position", None)
        if index is None:
            index = {s.index: i for i, s in enumerate(self.order)}
            self._position = index
        return index[seg.index]


def _norm_token(word: str) -> str:
    word = re.sub(r"[^A-Z0-9]", "", word.upper())
    word = re.sub(r"\d+", "9", word)
    return word if len(word) >= 2 or word == "9" else ""


def _words(text: str, limit: int | None = None, last: bool = False) -> list[str]:
    toks = [t for t in (_norm_token(w) for w in text.split()) if t]
    if limit is not None:
        toks = toks[-limit:] if last else toks[:limit]
    return toks


def generate(layout: Layout, spec: FieldSpec, month_first: bool) -> list[Cand]:
    """Every place `spec`'s value may be in the document."""
    from docmill.extraction.labels import _convert, _finder

    if spec.kind in SKIPPED_KINDS:
        return []
    out: list[Cand] = []
    if spec.kind in LINE_KINDS:
        for seg in layout.segs:
            text = seg.text.strip()
            if not text:
                continue
            out.append(Cand(seg, 0, len(seg.text), text, whole_line=True))
            for cut in _TRAILER.finditer(seg.text):  # "AEON CO. (M) BHD (126926-H)"
                head = seg.text[:cut.start()].strip()
                if cut.start() >= 3 and head:
                    out.append(Cand(seg, 0, cut.start(), head))
            colon = seg.text.find(":")
            if 0 < colon < len(seg.text) - 2 and colon <= 40:
                rest = seg.text[colon + 1:]
                start = colon + 1 + (len(rest) - len(rest.lstrip()))
                if seg.text[start:].strip():
                    out.append(Cand(seg, start, len(seg.text), seg.text[start:].strip()))
        return out
    finder = _finder(spec, month_first)
    if finder is None:
        return out
    for seg in layout.segs:
        for found in finder(seg.text):
            value = _convert(spec, found)
            if value is None or value == "":
                continue
            out.append(Cand(seg, found.start, found.end, value, found.quality))
            if isinstance(value, float) and value < 0:  # "-51.88": a dash read as a minus
                out.append(Cand(seg, found.start, found.end, -value, found.quality * 0.5))
    return out


DENSE = (
    "page", "rel_y", "rel_x0", "rel_x1", "rel_width", "rel_index", "index", "index_from_end",
    "rel_height", "ocr_confidence", "row_size", "row_position", "row_from_right",
    "span_start", "span_at_end", "span_share", "whole_line", "quality",
    "chars", "words", "digits", "letters", "upper", "punct", "has_colon",
    "company_words", "postcode", "phone_hint", "tax_hint",
    "number", "log_number", "amount_rank", "amount_rank_rel", "is_max_amount", "same_value_count",
    "has_decimals", "value_count_rank", "is_difference", "is_sum",
    "label_same_seg", "label_left", "label_above", "label_below_seg",
    "rule_same", "rule_value", "rule_confidence", "rule_inside",
    "lines_above_same_x", "gap_above", "gap_below",
)


def alnum(text: Any) -> str:
    """Upper-case letters and digits only: how text values are compared."""
    return re.sub(r"[^A-Z0-9]", "", str(text).upper())


def featurize(cands: list[Cand], spec: FieldSpec, ctx: DocContext) -> None:
    """Fill each candidate's `dense` (in DENSE order) and `tokens`."""
    layout = ctx.layout
    n = max(1, len(layout.segs))
    rule = ctx.rule_fields.get(spec.pointer)
    rule_alnum = alnum(rule["value"]) if rule and rule.get("value") is not None else ""
    sorted_amounts = sorted(set(ctx.amounts), reverse=True)
    values = [c.value for c in cands]
    counts: dict[Any, int] = {}
    for v in values:
        counts[_key(v)] = counts.get(_key(v), 0) + 1
    count_order = sorted(set(counts.values()), reverse=True)
    for c in cands:
        seg = c.seg
        width = ctx.page_width.get(seg.page, 1.0)
        row = layout.rows[seg.row] if 0 <= seg.row < len(layout.rows) else [seg]
        pos = row.index(seg) if seg in row else 0
        text = c.text
        number = _number(c.value)
        if number is not None and sorted_amounts:
            rank = next((i for i, a in enumerate(sorted_amounts) if a <= number + 1e-9),
                        len(sorted_amounts))
        else:
            rank = -1
        here = ctx.position(seg)
        c.order = here
        prev_seg = ctx.order[here - 1] if here > 0 else None
        next_seg = ctx.order[here + 1] if here + 1 < len(ctx.order) else None
        above = _above(layout, seg)
        left_segs = row[:pos]
        label_same = ctx.label_scores.get((seg.index, spec.pointer), 0.0) if c.start > 0 or \
            not c.whole_line else 0.0
        label_left = max((ctx.label_scores.get((s.index, spec.pointer), 0.0)
                          for s in left_segs), default=0.0)
        label_above = ctx.label_scores.get((above.index, spec.pointer), 0.0) if above else 0.0
        label_here = ctx.label_scores.get((seg.index, spec.pointer), 0.0)
        rule_same = rule_value = rule_inside = 0.0
        if rule:
            same_value = _key(rule.get("value")) == _key(c.value)
            on_seg = rule.get("box") is not None and rule.get("page") == seg.page and \
                _overlaps(rule["box"], seg.box)
            rule_value = float(same_value)
            rule_same = float(same_value and on_seg)
            own = alnum(c.value)
            rule_inside = float(bool(own) and own in rule_alnum and on_seg)
        gap_above = (seg.box.y0 - prev_seg.box.y1) / ctx.median_height if prev_seg and \
            prev_seg.page == seg.page else 5.0
        gap_below = (next_seg.box.y0 - seg.box.y1) / ctx.median_height if next_seg and \
            next_seg.page == seg.page else 5.0
        c.dense = [
            seg.page, seg.rel_y, seg.box.x0 / width, seg.box.x1 / width,
            seg.box.width / width, here / n, here, n - 1 - here,
            seg.box.height / ctx.median_height if ctx.median_height else 1.0,
            seg.span_confidence(c.start, c.end), len(row), pos, len(row) - 1 - pos,
            c.start / max(1, len(seg.text)), float(c.end >= len(seg.text.rstrip()) - 1),
            (c.end - c.start) / max(1, len(seg.text)), float(c.whole_line), c.quality,
            len(text), len(text.split()), sum(ch.isdigit() for ch in text) / max(1, len(text)),
            sum(ch.isalpha() for ch in text) / max(1, len(text)),
            sum(ch.isupper() for ch in text) / max(1, sum(ch.isalpha() for ch in text)),
            sum(not ch.isalnum() and not ch.isspace() for ch in text),
            float(":" in seg.text),
            float(bool(_COMPANY_WORDS.search(seg.text))), float(bool(_POSTCODE.search(seg.text))),
            float(bool(_PHONE_HINT.search(seg.text))), float(bool(_TAX_HINT.search(seg.text))),
            number if number is not None else -1.0,
            math.log10(abs(number) + 1) if number is not None else -1.0,
            rank, rank / max(1, len(sorted_amounts)) if rank >= 0 else -1.0,
            float(rank == 0), counts.get(_key(c.value), 0),
            float(bool(re.search(r"[.,]\d\d\b", text))),
            count_order.index(counts[_key(c.value)]) if _key(c.value) in counts else -1,
            float(number is not None and _round(number) in ctx.differences),
            float(number is not None and _round(number) in ctx.sums),
            label_same, label_left, label_above, label_here,
            rule_same, rule_value, float(rule.get("confidence", 0.0)) if rule else 0.0,
            rule_inside,
            float(above is not None and abs(above.box.x0 - seg.box.x0) < ctx.median_height),
            gap_above, gap_below,
        ]
        toks = [f"L:{t}" for t in _words(seg.text[:c.start], 3, last=True)]
        for s in left_segs[-2:]:
            toks += [f"R:{t}" for t in _words(s.text, 4, last=True)]
        if above is not None:
            toks += [f"A:{t}" for t in _words(above.text, 4)]
        if prev_seg is not None and prev_seg is not above:
            toks += [f"P:{t}" for t in _words(prev_seg.text, 3)]
        if next_seg is not None:
            toks += [f"N:{t}" for t in _words(next_seg.text, 3)]
        toks += [f"T:{t}" for t in _words(seg.text[c.end:], 2)]
        if spec.kind in LINE_KINDS:
            toks += [f"S:{t}" for t in _words(text, 6)]
        c.tokens = list(dict.fromkeys(toks))


def _round(number: float) -> int:
    return round(number * 100)


def _key(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, str):
        return alnum(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _overlaps(box: list[float], other) -> bool:
    return min(box[2], other.x1) > max(box[0], other.x0) and \
        min(box[3], other.y1) > max(box[1], other.y0)


def _above(layout: Layout, seg: Seg) -> Seg | None:
    """The nearest segment in an earlier row that overlaps `seg` horizontally."""
    for r in range(seg.row - 1, max(-1, seg.row - 4), -1):
        for s in layout.rows[r]:
            if s.page == seg.page and min(s.box.x1, seg.box.x1) > max(s.box.x0, seg.box.x0):
                return s
    return None
