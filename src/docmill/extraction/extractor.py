"""The built-in extractor: fills a JSON Schema from a read document, no model needed.

For every property (a `FieldSpec`) candidates come from:

1. **labels**: the property's name, title, short description and `x-docmill-synonyms`,
   fuzzy-matched (rapidfuzz) against word windows of every line; the value is then looked
   for after the label on the same line, in the segments to its right on the same visual
   row, or just below it, and parsed by kind (values.py). A label window that is part of a
   longer label of another property ("Due Date" holds "Date") belongs to that property, and
   a line holding one of the property's `x-docmill-exclude` words next to the label
   ("Total Qty") is not its label;
2. **format alone**, for values that name themselves (an IBAN, an e-mail, a currency) and for
   generic date and total properties, at a lower confidence;
3. **position**, for the issuing organization and its address at the top of the first page
   (a receipt's first lines).

All candidates of all properties are then assigned greedily by score, one property per
place on the page. Arrays of objects are read from table-like rows under a header row
whose cells match the item properties' labels. Confidence = label match x placement x
parse quality x OCR confidence (x 0.5 without a label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from docmill.documents import Box, Document
from docmill.extraction import values as V
from docmill.extraction.layout import Layout, Seg
from docmill.extraction.schema import (
    FieldSpec,
    field_specs,
    make_valid,
    missing_required,
    normalise_label,
    set_path,
    words_of,
    skeleton,
)

if TYPE_CHECKING:
    from docmill.extraction.learned.model import FieldModel


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
    for (seg, i, size), text in zip(where, texts):
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
                    value, s_end = _address_below(layout, s)
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
    texts = []
    for s in lines:
        if texts and _STOP_LINE.search(s.text):
            break
        texts.append(s.text)
    return ", ".join(t.strip(" ,") for t in texts), 0


# --- position: the issuer and its address at the top of page 1 -----------------------------

_ORG_SUFFIX = re.compile(
    r"(?i)\b(sdn\.?\s*bhd|bhd|s/b|ltd|limited|inc|llc|l\.l\.c|corp|corporation|co\.|company|"
    r"gmbh|ag|b\.?v\.?|n\.?v\.?|s\.?a\.?s?|sarl|s\.?r\.?l|plc|pte|pvt|enterprise|trading|"
    r"restaurant|hardware|store|stores|mart|market|supermarket|bakery|cafe|café|pharmacy|"
    r"motor|services|group|holdings|kitchen|kitchenette|pub|bistro|bookstore|station|"
    r"industries|international)\b\.?")
_NOT_ORG = re.compile(
    r"(?i)\b(tax invoice|invoice|receipt|official receipt|cash bill|bill|welcome|tel|phone|fax|"
    r"gst|reg\.? ?no|co\.? ?reg|date|time|cashier|table|page|facture|rechnung|factuur|"
    r"simplified|copy|order|thank)\b")
_NEVER_ORG = re.compile(r"(?i)\b(fka|formerly)\b|www\.|\.com\b|@|https?:|"
                        r"\d{3,4}[\s-]\d{2,4}[\s-]\d{3,4}")
_STOP_LINE = re.compile(
    r"(?i)(^\W*[TF]\s*[:.]|tax\s*invoice|invoice|receipt|guest\s*check|\bcheck\b|"
    r"(?<!\d)0\d{1,2}[- ]?\d{3,4}[- ]?\d{4}(?!\d)|(?<![\d,])\d{3,4}[ -]\d{2,4}[ -]\d{4}(?!\d)|"
    r"\+\d{2}|\btel\b|\bphone\b|\bfax\b|\bh/?p\b|"
    r"\bgst\b|\bsst\b|\bemail\b|e-mail|\bwebsite\b|"
    r"\binvoice\b|\breceipt\b|\bdate\b|\bcashier\b|\bbill\b|\btable\b|\btax\b|\bdoc\b|"
    r"\bco\.? ?reg|\breg\.? ?no|\bcompany no|\bvat\b|\bslip\b|\bno\s*:|www\.|@)")


def _clean_org(text: str) -> str:
    """'AEON CO. (M) BHD (126926-H)' -> 'AEON CO. (M) BHD'; 'Amazon Web Services Invoice' ->
    'Amazon Web Services'; 'QualityHosting AG - Uferweg 40-42 - ...' -> 'QualityHosting AG'."""
    text = re.sub(r"\(\s*[\w-]*\d[\w-]*\s*\)", " ", text)
    text = re.sub(r"(?i)\b(tax invoice|invoice|receipt|facture|rechnung|factuur|factura)\b\.?",
                  " ", text)
    m = _ORG_SUFFIX.search(text)
    if m:
        cut = re.search(r"\s[-–|,]\s|,", text[m.end():])
        if cut:
            text = text[:m.end() + cut.start()]
    return " ".join(text.split()).strip(" ,-–")


def _top_organization(layout: Layout, spec: FieldSpec) -> tuple[list[Candidate], int]:
    """The first lines of page 1 that name a business; returns the candidate and the index
    of its last segment (the address starts after it)."""
    from rapidfuzz import fuzz

    first_page = [s for s in layout.segs if s.page == 1 and s.rel_y < 0.45]
    first_page.sort(key=lambda s: (s.row, s.box.x0))
    if not first_page:
        return [], -1
    body = sorted(s.box.height for s in first_page)[len(first_page) // 2]
    domains = _domains(layout)
    best: tuple[float, int, int] | None = None  # score, first index, last index
    for i, seg in enumerate(first_page[:12]):
        text = seg.text.strip()
        letters = sum(c.isalpha() for c in text)
        if letters < 3 or _NEVER_ORG.search(text) or (
                _STOP_LINE.search(text) and not _ORG_SUFFIX.search(text)) or (
                _NOT_ORG.search(text) and not _ORG_SUFFIX.search(text)):
            continue
        score = 0.45 - 0.03 * i
        if _SKIP_LINE.match(text) or re.search(r"(?i)\b(company|co)\.?\s*(no|reg)", text):
            continue
        if _ORG_SUFFIX.search(text):
            score += 0.35 if i <= 4 else 0.1
        squashed = re.sub(r"[^a-z0-9]", "", text.lower())
        if any(len(d) >= 4 and fuzz.partial_ratio(d, squashed) >= 90 for d in domains):
            score += 0.3  # the name the web site or e-mail address spells
        if seg.box.height > 1.2 * body:
            score += 0.1
        if text.upper() == text:
            score += 0.05
        if sum(c.isdigit() for c in text) > letters:
            score -= 0.3
        last = i
        # "MR D.I.Y. (JOHOR)" + "SDN BHD" on the next line: one name
        if i + 1 < len(first_page) and _ORG_SUFFIX.fullmatch(
                " ".join(first_page[i + 1].text.split()).strip(" .,")):
            last = i + 1
            score += 0.3
        if best is None or score > best[0]:
            best = (score, i, last)
    if best is None:
        return [], -1
    score, i, last = best
    segs = first_page[i:last + 1]
    text = _clean_org(" ".join(s.text.strip() for s in segs))
    cand = Candidate(spec, text, min(0.95, score) * segs[0].confidence, segs[0], 0,
                     len(segs[0].text), "position")
    return [cand], layout.segs.index(segs[-1])


_SKIP_LINE = re.compile(
    r"(?i)^\W*(\(?\s*(co\.?\s*)?(reg(istration)?|company)\.?\s*(no|number)?\.?\s*:?\s*"
    r"[\w-]*\d[\w-]*\s*\)?"
    r"|\(\s*[\w-]*\d[\w-]*\s*\)|(gst|sst|vat)\s*(reg)?\.?\s*(id|no)\.?.*|formerly.*|licensee.*"
    r"|.*\b(member|owned|operated)\b.*)\W*$")


def _domains(layout: Layout) -> set[str]:
    """'www.azure-interior.com', 'x@azure-interior.com' -> {'azureinterior'}."""
    out = set()
    for seg in layout.segs:
        for f in V.find_urls(seg.text) + V.find_emails(seg.text):
            host = re.sub(r"^(https?://)?(www\.)?", "", f.value.lower()).split("/")[0]
            host = host.split("@")[-1]
            parts = host.split(".")
            if len(parts) >= 2:
                name = re.sub(r"[^a-z0-9]", "", parts[-2] if len(parts[-1]) <= 3 else parts[-1])
                if name not in ("example", "gmail", "yahoo", "hotmail", "outlook", "com", "co"):
                    out.add(name)
    return out


_LEGAL = re.compile(r"(?i)\b(au capital|capital social|share capital|si[eè]ge social|"
                    r"registered office|rcs|kvk|handelsregister|registergericht|vorstand|"
                    r"gesch[aä]ftsf[uü]hrer)\b")


def _legal_organization(layout: Layout, spec: FieldSpec) -> list[Candidate]:
    """The company named in the legal footer ('Free SAS au capital de ...', or the name
    line right above 'Siège social : ...')."""
    out = []
    for seg in layout.segs:
        m = _LEGAL.search(seg.text)
        if not m:
            continue
        before = _clean_org(re.split(r"[-–|]", seg.text[:m.start()])[0])
        if len(before) >= 2 and re.search(r"[A-Za-z]{2}", before) and len(before.split()) <= 5:
            out.append(Candidate(spec, before, 0.55 * seg.confidence, seg, 0, len(before),
                                 "position"))
            continue
        above = [s for s in layout.segs if s.page == seg.page and s.row == seg.row - 1]
        for s in above:
            text = s.text.strip()
            if 1 <= len(text.split()) <= 4 and not re.search(r"\d", text) and \
                    abs(s.box.cx - seg.box.cx) < seg.box.width / 2:
                out.append(Candidate(spec, _clean_org(text), 0.55 * s.confidence, s, 0,
                                     len(s.text), "position"))
    return out[:1]


def _top_address(layout: Layout, spec: FieldSpec, after: int) -> list[Candidate]:
    """The lines after the issuer's name up to the first phone/tax/date line (a
    registration number, tax id or date line right under the name is stepped over)."""
    first_page = [s for s in layout.segs if s.page == 1 and s.rel_y < 0.5]
    first_page.sort(key=lambda s: (s.row, s.box.x0))
    try:
        start = next(i for i, s in enumerate(first_page) if s.index == after) + 1
    except StopIteration:
        return []
    taken: list[Seg] = []
    for seg in first_page[start:start + 10]:
        text = seg.text.strip()
        skippable = bool(_SKIP_LINE.match(text)) or (
            bool(V.find_dates(text) or V.find_times(text)) and
            len(re.sub(r"[\W\d]", "", text)) <= 6) or (
            not re.search(r"\d", text) and not _STREET.search(text) and len(text) > 25)
        if not taken and skippable:
            continue
        if _STOP_LINE.search(text) or (taken and (_SKIP_LINE.match(text) or V.find_times(text))):
            break
        if taken and taken[-1].row != seg.row and seg.box.y0 - taken[-1].box.y1 > \
                2.5 * max(seg.box.height, 1):
            break
        taken.append(seg)
    if not taken:
        return []
    text = " ".join(s.text.strip() for s in taken)
    text = re.sub(r"^\(?[A-Z]{0,3}\d{5,}-[A-Z]\)?\s+", "", text)  # a glued registration no
    looks = bool(re.search(r"\d", text)) + bool(_STREET.search(text)) + (len(taken) >= 2)
    score = 0.35 + 0.15 * looks
    conf = sum(s.confidence for s in taken) / len(taken)
    return [Candidate(spec, text, score * conf, taken[0], 0, len(taken[0].text), "position")]


_STREET = re.compile(r"(?i)\b(jalan|jln|street|st|road|rd|avenue|ave|lot|no|taman|lane|plaza|"
                     r"blok|block|floor|flr|level|straat|strasse|straße|rue|weg|bandar|kawasan)\b")


# --- format alone --------------------------------------------------------------------------

_GENERIC_TOTAL = {"total", "amount", "grand total", "amount due", "total amount", "total due"}
_SELF_NAMING = {"email", "iban", "bic", "url", "currency", "phone", "tax_id"}
_GENERIC_DATE = {"date", "invoice date", "issue date", "receipt date", "bill date",
                 "document date", "transaction date", "purchase date", "order date",
                 "statement date", "date of issue"}


def _format_candidates(layout: Layout, spec: FieldSpec, month_first: bool) -> list[Candidate]:
    plain = " ".join(words_of(spec.name))
    out: list[Candidate] = []
    if spec.kind in _SELF_NAMING and spec.kind != "bic":
        finder = V.find_tax_ids if spec.kind == "tax_id" else _finder(spec, month_first)
        assert finder is not None
        for seg in layout.segs:
            for f in finder(seg.text):
                if spec.kind == "iban" and f.quality < 1.0:
                    continue
                if spec.kind == "phone" and (len(re.sub(r"\D", "", str(f.value))) < 9 or
                                             not re.search(r"[\s()+.-]", str(f.value))):
                    continue  # bare digit runs are item codes and barcodes as often
                value = _convert(spec, f)
                if value is not None:
                    out.append(Candidate(spec, value, 0.45 * f.quality * seg.confidence, seg,
                                         f.start, f.end, "format"))
        if spec.kind == "currency":
            return _currency_vote(spec, layout, out)
        return out[:1] if spec.kind != "phone" else out[:1]
    if spec.kind == "date" and plain in _GENERIC_DATE:
        for seg in layout.segs:
            for f in V.find_dates(seg.text, month_first):
                timed = bool(V.find_times(seg.text[f.end:f.end + 12]))
                rel = (seg.page - 1 + seg.rel_y) / max(1, layout.page_count)
                out.append(Candidate(spec, f.value, 0.4 * f.quality * seg.confidence
                                     * (1.0 - 0.2 * rel) * (1.15 if timed else 1.0), seg,
                                     f.start, f.end, "format"))
        return out
    if spec.kind == "time" and plain in ("time", "transaction time", "purchase time"):
        for seg in layout.segs:  # the time printed right after a date
            for d in V.find_dates(seg.text, month_first):
                for f in V.find_times(seg.text[d.end:d.end + 14]):
                    out.append(Candidate(spec, f.value, 0.45 * f.quality * seg.confidence, seg,
                                         d.end + f.start, d.end + f.end, "format"))
        return out[:1]
    if spec.kind == "amount" and spec.position == "bottom" and plain in _GENERIC_TOTAL:
        amounts = [(f, seg) for seg in layout.segs for f in V.find_amounts(seg.text)
                   if f.quality >= 0.8]
        if amounts:
            f, seg = max(amounts, key=lambda x: (x[0].value[0], x[1].index))
            value = _convert(spec, f)
            if value is not None:
                out.append(Candidate(spec, value, 0.25 * seg.confidence, seg, f.start, f.end,
                                     "format"))
    return out


def _currency_vote(spec: FieldSpec, layout: Layout, found: list[Candidate]) -> list[Candidate]:
    """The document's currency: the code or symbol printed most often (amounts' symbols
    included), ties to the first."""
    votes: dict[str, list[Candidate]] = {}
    for c in found:
        votes.setdefault(c.value, []).append(c)
    if not votes:
        return []
    code, cands = max(votes.items(), key=lambda kv: (len(kv[1]), -kv[1][0].seg.index))
    share = len(cands) / sum(len(v) for v in votes.values())
    best = cands[0]
    best.score = min(0.9, 0.45 + 0.4 * share)
    return [best]


# --- arrays of objects (line items) ----------------------------------------------------------

def _items(layout: Layout, spec: FieldSpec, month_first: bool) -> tuple[list[dict], dict]:
    """Rows under the best header row: a row whose segments' words match two or more item
    properties' labels gives the columns; following rows are cut into those columns."""
    from rapidfuzz import fuzz

    item_specs = spec.items or []
    if not item_specs:
        return [], {}
    best_row, best_cols = -1, {}
    headers: list[tuple[int, dict]] = []
    for r, row in enumerate(layout.rows):
        cols: dict[str, tuple[float, float, float]] = {}
        words = [(w, s) for s in row for w in s.words]
        for ispec in item_specs:
            best = 0.0
            span = None
            for label in ispec.labels:
                k = len(label.split())
                for i in range(len(words) - k + 1):
                    window = " ".join(_norm_word(w.text) for w, _ in words[i:i + k])
                    score = (100.0 if window == label else 0.0) if len(label) <= 4 else \
                        fuzz.ratio(window, label)
                    if score >= 88 and score > best:
                        best = score
                        box = Box.union(w.box for w, _ in words[i:i + k])
                        span = (box.x0, box.x1, box.cx)
            if span:
                cols[ispec.pointer] = span
        if len(cols) >= 2:
            headers.append((r, cols))
        if len(cols) >= 2 and len(cols) > len(best_cols):
            best_row, best_cols = r, cols
    if best_row < 0:
        return [], {}
    items: list[dict] = []
    fields: dict[str, dict] = {}
    # the table, then its continuation under the same header on each following page
    page = layout.rows[best_row][0].page
    for r, cols in [(best_row, best_cols)] + [
            (r, c) for r, c in headers if set(c) == set(best_cols) and
            layout.rows[r][0].page > page]:
        if r != best_row and layout.rows[r][0].page == page:
            continue
        page = layout.rows[r][0].page
        _read_table(layout, spec, item_specs, r, cols, month_first, items, fields)
    return items, fields


def _read_table(layout: Layout, spec: FieldSpec, item_specs: list[FieldSpec], best_row: int,
                best_cols: dict, month_first: bool, items: list[dict],
                fields: dict[str, dict]) -> None:
    header = layout.rows[best_row]
    page = header[0].page
    by_name = {s.pointer: s for s in item_specs}
    columns = _columns(header, best_cols, item_specs)
    height = max(s.box.height for s in header)
    last_y = max(s.box.y1 for s in header)
    last_item_y = None
    found_here = 0
    for row in layout.rows[best_row + 1:]:
        top = min(s.box.y0 for s in row)
        if row[0].page != page or top - last_y > 6 * height:
            break
        first_word = _norm_word(row[0].words[0].text) if row[0].words else ""
        if first_word in _TABLE_END_SKIP or re.match(r"sub-?\s*total", first_word):
            last_y = max(s.box.y1 for s in row)
            continue  # a section's subtotal: the table goes on
        if first_word in _TABLE_END and found_here:  # (before an item: a header's 2nd line)
            break
        last_y = max(s.box.y1 for s in row)
        cells: dict[str, list] = {}
        for seg in row:
            for w in seg.words:
                name = _column_of(w.box, columns)
                if name is not None:
                    cells.setdefault(name, []).append((w, seg))
        item: dict[str, Any] = {}
        item_fields: dict[str, dict] = {}
        for name, ws in cells.items():
            ispec = by_name[name]
            cell_text = " ".join(w.text for w, _ in ws)
            finder = _finder(ispec, month_first)
            if finder is None:
                value = _STRIP.sub("", cell_text) or None
                quality = 0.8
            else:
                found = finder(cell_text)
                if ispec.kind == "amount":
                    found = found[-1:]
                value = _convert(ispec, found[0]) if found else None
                quality = found[0].quality if found else 0
            if value is None:
                continue
            item[name] = value
            box = Box.union(w.box for w, _ in ws)
            conf = sum(w.confidence for w, _ in ws) / len(ws)
            item_fields[name] = {"value": value, "confidence": round(0.7 * quality * conf, 3),
                                 "page": page, "box": box.rounded(), "via": "table"}
        money = [n for n in item if by_name[n].kind == "amount"]
        text_cols = [n for n in item if by_name[n].kind not in ("amount", "quantity",
                                                                "percent")]
        if not money:
            # a description continued right under the previous item: append it
            if items and text_cols and last_item_y is not None and \
                    top - last_item_y < 1.2 * height:
                prev = items[-1]
                name = text_cols[0]
                if isinstance(prev.get(name), str):
                    prev[name] = prev[name] + "\n" + str(item[name])
                    last_item_y = max(s.box.y1 for s in row)
            continue  # a section header or a note between items
        nested = skeleton(item_specs)
        for name, value in item.items():
            set_path(nested, by_name[name].path, value)
        i = len(items)
        items.append(nested)
        found_here += 1
        last_item_y = max(s.box.y1 for s in row)
        for name, f in item_fields.items():
            fields[f"{spec.pointer}/{i}/{name}"] = f


_TABLE_END = {"total", "totaal", "summe", "gesamt", "gesamtbetrag", "tax", "vat", "tva", "btw",
              "mwst", "gst", "sst", "grand", "net", "balance", "amount", "discount", "rounding",
              "shipping", "freight"}
_TABLE_END_SKIP = {"subtotal", "subtotaal", "zwischensumme", "sous-total"}


def _columns(header: list[Seg], matched: dict[str, tuple[float, float, float]],
             item_specs: list[FieldSpec]) -> list[tuple[str | None, float, float]]:
    """(property or None, x0, x1) per column, left to right. Header words no property
    matched become columns of their own (None: ignored), unless they touch a matched span
    ("Unit" before "Price"); a description property no header names takes the space left of
    the first column."""
    spans = {name: [x0, x1] for name, (x0, x1, _) in matched.items()}
    others: list[list[float]] = []
    for seg in header:
        for w in seg.words:
            if any(x0 - 1 <= w.box.cx <= x1 + 1 for x0, x1 in spans.values()):
                continue
            near = [n for n, (x0, x1) in spans.items()
                    if w.box.x1 >= x0 - 8 and w.box.x0 <= x1 + 8]
            if near:
                span = spans[near[0]]
                span[0], span[1] = min(span[0], w.box.x0), max(span[1], w.box.x1)
            else:
                others.append([w.box.x0, w.box.x1])
    cols: list[tuple[str | None, float, float]] = [(n, x0, x1) for n, (x0, x1) in spans.items()]
    cols += [(None, x0, x1) for x0, x1 in others]
    cols.sort(key=lambda c: c[1])
    text_specs = [s for s in item_specs if s.kind == "text" and s.pointer not in spans]
    if text_specs and cols and cols[0][0] is not None and \
            by_kind_missing(spans, item_specs):
        cols.insert(0, (text_specs[0].pointer, 0.0, cols[0][1] - 10))
    return cols


def by_kind_missing(spans: dict, item_specs: list[FieldSpec]) -> bool:
    """No text column was named in the header."""
    return not any(s.kind == "text" and s.pointer in spans for s in item_specs)


def _column_of(box: Box, columns: list[tuple[str | None, float, float]]) -> str | None:
    inside = [c for c in columns if c[1] - 2 <= box.cx <= c[2] + 2]
    if inside:
        return inside[0][0]
    best = min(columns, key=lambda c: min(abs(box.cx - (c[1] + c[2]) / 2), abs(box.x1 - c[2]),
                                          abs(box.x0 - c[1])))
    return best[0]


# --- the whole document --------------------------------------------------------------------

def _month_first(layout: Layout) -> bool:
    """US documents write month/day: decided by the numeric dates that can only be read one
    way (a part over 12)."""
    mdy = dmy = 0
    for seg in layout.segs:
        for m in re.finditer(r"(?<![\d/.-])(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})(?![\d/-])",
                             seg.text):
            a, b = int(m.group(1)), int(m.group(2))
            if a <= 12 < b <= 31:
                mdy += 1
            elif b <= 12 < a <= 31:
                dmy += 1
    return mdy > dmy


def scalar_specs(specs: list[FieldSpec]) -> list[FieldSpec]:
    """The properties filled with one value (line items are read as tables)."""
    return [s for s in specs if "array" not in s.types or s.types & {"string", "number"}]


def extract(document: Document, schema: dict[str, Any], layout: Layout | None = None,
            model: FieldModel | None = None) -> dict[str, Any]:
    """Fill `schema` from `document`: {"data", "fields", "missing_required", "dropped"}.

    With a field `model` (`extraction/learned`), the rules answer first and the model then
    replaces each answer it is sure of with its own pick among every candidate."""
    layout = layout or Layout.of(document)
    specs = field_specs(schema)
    month_first = _month_first(layout)
    data = skeleton(specs)
    fields: dict[str, dict[str, Any]] = {}
    scalar = scalar_specs(specs)
    arrays = [s for s in specs if s not in scalar]

    candidates: list[Candidate] = []
    hits = _label_hits(layout, scalar)
    for hit in hits:
        candidates += _value_after(layout, hit, month_first)
    company_end = -1
    for spec in scalar:
        if spec.kind == "organization" and spec.position == "top":
            found, company_end = _top_organization(layout, spec)
            candidates += found + _legal_organization(layout, spec)
    for spec in scalar:
        if spec.kind == "address" and spec.position == "top" and company_end >= 0:
            candidates += _top_address(layout, spec, company_end)
        candidates += _format_candidates(layout, spec, month_first)

    candidates.sort(key=lambda c: c.score, reverse=True)
    taken_fields: set[str] = set()
    taken_places: list[tuple[int, int, int]] = []
    for cand in candidates:
        pointer = cand.spec.pointer
        if pointer in taken_fields or cand.score <= 0.05:
            continue
        if cand.via != "position" and cand.spec.kind not in ("currency",) and any(
                p[0] == cand.place[0] and p[1] < cand.place[2] and cand.place[1] < p[2]
                for p in taken_places):
            continue
        value = cand.value
        if "array" in cand.spec.types and not isinstance(value, list):
            value = [value]
        taken_fields.add(pointer)
        if cand.spec.kind != "currency" and cand.via != "position":
            taken_places.append(cand.place)
        set_path(data, cand.spec.path, value)
        fields[pointer] = {"value": value, "confidence": round(min(1.0, cand.score), 3),
                           "page": cand.seg.page, "box": cand.box.rounded(), "via": cand.via}

    if model is not None:
        _apply_model(model, layout, scalar, data, fields, month_first, hits)

    for spec in arrays:
        items, item_fields = _items(layout, spec, month_first)
        if items:
            set_path(data, spec.path, items)
            fields.update(item_fields)

    data, dropped = make_valid(data, schema, specs)
    for pointer in dropped:
        fields.pop(pointer, None)
        for key in [k for k in fields if k.startswith(pointer + "/")]:
            fields.pop(key)
    return {"data": data, "fields": fields, "missing_required": missing_required(data, specs),
            "dropped": dropped}


def _apply_model(model: FieldModel, layout: Layout, specs: list[FieldSpec],
                 data: dict[str, Any], fields: dict[str, dict[str, Any]],
                 month_first: bool, hits: list[LabelHit]) -> None:
    from docmill.extraction.learned.model import apply

    by_pointer = {s.pointer: s for s in specs}
    for pointer, found in apply(model, layout, specs, fields, month_first, hits).items():
        spec = by_pointer[pointer]
        value = found.value
        if "array" in spec.types and not isinstance(value, list):
            value = [value]
        set_path(data, spec.path, value)
        boxes = [c.seg.span_box(c.start, c.end) for c in found.cands]
        fields[pointer] = {"value": value, "confidence": round(min(1.0, found.confidence), 3),
                           "page": found.cands[0].seg.page, "box": Box.union(boxes).rounded(),
                           "via": "model"}
