"""Candidates by format alone: values that name themselves (an IBAN, an e-mail, a
currency) and generic date, time and total properties, at a lower confidence than a label's."""

from __future__ import annotations

import re

from docmill.extraction import values as V
from docmill.extraction.labels import Candidate, _convert, _finder
from docmill.extraction.layout import Layout
from docmill.extraction.schema import FieldSpec, words_of

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
        return out[:1]
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
    _value, cands = max(votes.items(), key=lambda kv: (len(kv[1]), -kv[1][0].seg.index))
    share = len(cands) / sum(len(v) for v in votes.values())
    best = cands[0]
    best.score = min(0.9, 0.45 + 0.4 * share)
    return [best]
