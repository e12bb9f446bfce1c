"""The issuing organization and its address at the top of the first page (a receipt's
first lines), and the company a legal footer names: candidates found by position."""

from __future__ import annotations

import re

from docmill.extraction import values as V
from docmill.extraction.labels import _STOP_LINE, Candidate
from docmill.extraction.layout import Layout, Seg
from docmill.extraction.schema import FieldSpec

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
