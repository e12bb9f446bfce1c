"""Labels and the values after them: the built-in extractor's first source of candidates.

A property's name, title, short description and `x-docmill-synonyms` are fuzzy-matched
(rapidfuzz) against word windows of every line (`_label_hits`); its value is then looked for
after the label on the same line, in the segments to its right on the same visual row, or
just below it, and parsed by kind (`_finder`, `_convert`, over values.py). `Candidate` is
what every source of candidates (here, `issuer.py`, `by_format.py`) proposes to
`extractor.extract`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from docmill.documents import Box
from docmill.extraction import values as V
from docmill.extraction.layout import Layout, Seg
from docmill.extraction.schema import FieldSpec, normalise_label


@dataclass
class Candidate:
    spec: FieldSpec
    value: Any
    score: float
    seg: Seg
    start: int
    end: int
    via: str  # label | format | position

    @property
    def box(self) -> Box:
        return self.seg.span_box(self.start, self.end)

    @property
    def place(self) -> tuple[int, int, int]:
        return (self.seg.index, self.start, self.end)


@dataclass
class LabelHit:
    spec: FieldSpec
    seg: Seg
    first: int  # word indexes [first, last)
    last: int
    score: float  # 0..1


_STRIP = re.compile(r"^[\s:;#.\-–=|*()\[\]]+|[\s:;.\-–=|*]+$")
_SEPARATORS = re.compile(r"^[\s:;.\-–=|>]*")


def _norm_word(text: str) -> str:
    return normalise_label(text).strip(":;.,-")


# --- labels --------------------------------------------------------------------------------

BELOW = 0.75  # placement factor of a value under its label (right of it: 0.85-0.95)
MAX_LABEL_START = 4  # labels start a segment, or nearly ("Facture n° 12 du 02/07/2015")


def _windows(layout: Layout) -> tuple[list[str], list[tuple[Seg, int, int]]]:
    """Every word window a label may be: up to 6 words, starting at one of a segment's first
    words. Cached on the layout (identification extracts several schemas from one)."""
    cached = getattr(layout, "_label_windows", None)
    if cached is not None:
        return cached
    texts: list[str] = []
    where: list[tuple[Seg, int, int]] = []
    for seg in layout.segs:
        words = [_norm_word(w.text) for w in seg.words]
        for i in range(min(len(words), MAX_LABEL_START)):
            for size in range(1, min(6, len(words) - i) + 1):
                window = " ".join(w for w in words[i:i + size] if w)
                if window and len(window) <= 60:
                    texts.append(window)
                    where.append((seg, i, size))
    layout._label_windows = (texts, where)  # type: ignore[attr-defined]
    return texts, where


def _label_hits(layout: Layout, specs: list[FieldSpec]) -> list[LabelHit]:
    from rapidfuzz import fuzz, process

    texts, where = _windows(layout)
    labels: list[tuple[FieldSpec, str, int]] = [(spec, label, len(label.split()))
                                                for spec in specs for label in spec.labels]
    if not texts or not labels:
        return []
    unique = sorted(set(texts))
    index = {t: i for i, t in enumerate(unique)}
    matrix = process.cdist(unique, [lab for _, lab, _ in labels], scorer=fuzz.ratio,
                           score_cutoff=86, dtype="uint8")
    best: dict[tuple[int, int], LabelHit] = {}  # (seg index, spec id) -> best hit
    spec_ids = {id(spec): n for n, spec in enumerate(specs)}
    for (seg, i, size), text in zip(where, texts, strict=True):
        row = matrix[index[text]]
        for j in row.nonzero()[0]:
            spec, label, k = labels[j]
            if abs(size - k) > 1:
                continue
            score = float(row[j])
            if (len(label) <= 4 or len(text) <= 4) and text.rstrip(":") != label:
                continue
            score = score / 100 - 0.02 * abs(size - k)
            # a label usually starts a segment; a longer one is more specific
            # ("Total Sales (Inclusive of GST)" over "Total")
            score -= 0.04 * min(i, 3)
            score += min(0.12, 0.03 * (size - 1))
            key = (seg.index, spec_ids[id(spec)])
            current = best.get(key)
            if current is None or score > current.score or (
                    score == current.score and size > current.last - current.first):
                best[key] = LabelHit(spec, seg, i, i + size, score)
    hits = []
    for hit in best.values():
        words = [_norm_word(w.text) for w in hit.seg.words]
        if not _excluded(hit, words):
            hits.append(hit)
    hits = _drop_shadowed(hits)
    for h in hits:
        # fields that sit at the bottom (totals) or top of the page prefer labels there
        rel = (h.seg.page - 1 + h.seg.rel_y) / max(1, layout.page_count)
        if h.spec.position == "bottom":
            h.score += 0.3 * rel
        elif h.spec.position == "top":
            h.score -= 0.05 * rel
    return hits


def _excluded(hit: LabelHit, words: list[str]) -> bool:
    if not hit.spec.exclude:
        return False
    around = words[:hit.first] + words[hit.last:hit.last + 3]
    for w in around:
        for piece in re.split(r"[()/\s]+", w):
            if piece in hit.spec.exclude:
                return True
    return False


def _drop_shadowed(hits: list[LabelHit]) -> list[LabelHit]:
    """A label window inside a longer label window of another property is not a label."""
    out = []
    for h in hits:
        shadowed = any(o is not h and o.seg is h.seg and o.spec is not h.spec
                       and o.first <= h.first and o.last >= h.last
                       and (o.last - o.first) > (h.last - h.first) and o.score >= h.score - 0.1
                       for o in hits)
        if not shadowed:
            out.append(h)
    return out


# --- values after a label ------------------------------------------------------------------

def _finder(spec: FieldSpec, month_first: bool):
    kind = spec.kind
    if kind == "date":
        return lambda t: V.find_dates(t, month_first)
    if kind == "time":
        return V.find_times
    if kind in ("amount",):
        return lambda t: V.find_amounts(t)
    if kind in ("quantity", "integer"):
        return lambda t: V.find_amounts(t)
    if kind == "percent":
        return V.find_percents
    if kind == "email":
        return V.find_emails
    if kind == "url":
        return V.find_urls
    if kind == "phone":
        return V.find_phones
    if kind == "iban":
        return lambda t: V.find_ibans(t) or [V.Found(f.value, f.start, f.end, 0.6)
                                             for f in V.find_identifiers(t)[:1]
                                             if len(f.value) >= 10]
    if kind == "bic":
        return V.find_bics
    if kind == "tax_id":
        return lambda t: V.find_tax_ids(t) or _tax_fallback(t)
    if kind == "currency":
        return V.find_currencies
    if kind == "identifier":
        return V.find_identifiers
    return None  # free text


def _name_like(value: str) -> bool:
    letters = sum(c.isalpha() for c in value)
    return letters >= 3 and letters > sum(c.isdigit() for c in value) and \
        not re.match(r"(?i)(no|nr|number|#|n°)\b", value) and "@" not in value and \
        "www" not in value.lower() and "|" not in value


def _tax_fallback(text: str) -> list[V.Found]:
    m = re.search(r"[A-Z]{0,3}[\s-]?\d[\d\s.\-/A-Z]{5,}\d[A-Z]?", text)
    return [V.Found(m.group(0).strip(), m.start(), m.end(), 0.7)] if m else []


def _convert(spec: FieldSpec, found: V.Found) -> Any:
    """The JSON value of a parsed span, in the property's type (None if it cannot be)."""
    value = found.value
    types = spec.types
    if spec.kind in ("amount", "quantity", "integer"):
        amount = value[0] if isinstance(value, tuple) else value
        if not isinstance(amount, Decimal):
            return None
        if "number" in types:
            return float(amount)
        if "integer" in types:
            return int(amount) if amount == int(amount) else None
        return format(amount, "f")
    if spec.kind == "percent":
        if "number" in types or "integer" in types:
            return float(value) if "number" in types else int(value)
        return f"{value}%"
    if isinstance(value, Decimal):
        value = float(value) if "number" in types else format(value, "f")
    if "string" not in types and isinstance(value, str):
        if "number" in types:
            try:
                return float(value)
            except ValueError:
                return None
        if "integer" in types and value.isdigit():
            return int(value)
        return None
    if isinstance(value, str) and spec.schema.get("format") == "date-time" and \
            re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        value += "T00:00:00"
    return value


def _value_after(layout: Layout, hit: LabelHit, month_first: bool) -> list[Candidate]:
    spec, seg = hit.spec, hit.seg
    finder = _finder(spec, month_first)
    start = seg.word_start(hit.last)
    rest = seg.text[start:]
    lead = len(_SEPARATORS.match(rest).group(0))  # type: ignore[union-attr]
    places: list[tuple[Seg, int, str, float]] = []
    if rest[lead:].strip():
        places.append((seg, start + lead, rest[lead:], 1.0))
    for i, right in enumerate(layout.right_of(seg)):
        gap = max(0.0, right.box.x0 - seg.box.x1)  # points: a value column may be far right
        places.append((right, 0, right.text, max(0.85, 0.95 - 0.1 * gap / 300 - 0.03 * i)))
    below = layout.below(seg, x0=seg.span_box(seg.word_start(hit.first),
                                              seg.word_start(hit.last)).x0)
    for b in below:
        places.append((b, 0, b.text, BELOW))
    out: list[Candidate] = []
    if finder is None:  # free text: the first place that holds some
        for s, offset, text, placement in places:
            value = _STRIP.sub("", text)
            if text.rstrip().endswith(":") and s is not seg:
                continue  # another label, not a value
            if spec.kind in ("organization", "person") and not _name_like(value):
                continue
            if len(value) >= 2 and any(c.isalnum() for c in value):
                begin = offset + text.find(value)
                if spec.kind == "address" and placement == BELOW:
                    value, _end = _address_below(layout, s)
                    return [Candidate(spec, value, hit.score * placement * s.confidence,
                                      s, begin, len(s.text), "label")]
                out.append(Candidate(spec, value, hit.score * placement * 0.9 * s.span_confidence(
                    begin, begin + len(value)), s, begin, begin + len(value), "label"))
                break
        return out
    if spec.kind == "amount":
        return _amount_after(spec, hit, places)
    for s, offset, text, placement in places:
        found = finder(text)
        if not found:
            continue
        f = found[0]
        value = _convert(spec, f)
        if value is None:
            continue
        conf = s.span_confidence(offset + f.start, offset + f.end)
        out.append(Candidate(spec, value, hit.score * placement * f.quality * conf, s,
                             offset + f.start, offset + f.end, "label"))
        break
    return out


def _amount_after(spec: FieldSpec, hit: LabelHit, places) -> list[Candidate]:
    """The last money amount after the label, up to the next word that starts another label
    (a row "Tax 15% on $ 112.90 | $ 16.94" gives 16.94; "Excl. VAT € 593,36 | Subtotal ..."
    stops before Subtotal)."""
    found_any: list[tuple[Seg, int, V.Found, float]] = []
    for s, offset, text, placement in places:
        if placement == BELOW and found_any:
            break
        if found_any and s is not hit.seg and re.search(r"[A-Za-zÀ-ÿ]{3,}", text) and \
                not V.find_currencies(text):
            break
        amounts = [f for f in V.find_amounts(text) if f.quality >= 0.8
                   or spec.kind != "amount"]
        if not amounts:
            amounts = [f for f in V.find_amounts(text)]
            # a bare integer after a label ("Total 5") is a weak amount
        for f in amounts:
            found_any.append((s, offset, f, placement))
        if placement == BELOW and amounts:
            break
        # words after an amount on the same segment start another label
        if amounts and s is hit.seg:
            tail = text[amounts[-1].end:]
            if re.search(r"[A-Za-zÀ-ÿ]{3,}", tail):
                break
    if not found_any:
        return []
    strong = [x for x in found_any if x[2].quality >= 0.8] or found_any
    s, offset, f, placement = strong[-1]
    value = _convert(hit.spec, f)
    if value is None:
        return []
    conf = s.span_confidence(offset + f.start, offset + f.end)
    return [Candidate(spec, value, hit.score * placement * f.quality * conf, s,
                      offset + f.start, offset + f.end, "label")]


def _address_below(layout: Layout, first: Seg) -> tuple[str, int]:
    lines = [first] + layout.below(first, limit=4, max_gap=1.2)
    texts: list[str] = []
    for s in lines:
        if texts and _STOP_LINE.search(s.text):
            break
        texts.append(s.text)
    return ", ".join(t.strip(" ,") for t in texts), 0


# A line that ends a block of name and address lines (a phone, tax, date or document line).
_STOP_LINE = re.compile(
    r"(?i)(^\W*[TF]\s*[:.]|tax\s*invoice|invoice|receipt|guest\s*check|\bcheck\b|"
    r"(?<!\d)0\d{1,2}[- ]?\d{3,4}[- ]?\d{4}(?!\d)|(?<![\d,])\d{3,4}[ -]\d{2,4}[ -]\d{4}(?!\d)|"
    r"\+\d{2}|\btel\b|\bphone\b|\bfax\b|\bh/?p\b|"
    r"\bgst\b|\bsst\b|\bemail\b|e-mail|\bwebsite\b|"
    r"\binvoice\b|\breceipt\b|\bdate\b|\bcashier\b|\bbill\b|\btable\b|\btax\b|\bdoc\b|"
    r"\bco\.? ?reg|\breg\.? ?no|\bcompany no|\bvat\b|\bslip\b|\bno\s*:|www\.|@)")
