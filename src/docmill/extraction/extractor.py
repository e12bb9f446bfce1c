"""The built-in extractor: fills a JSON Schema from a read document, no model needed.

For every property (a `FieldSpec`) candidates come from:

1. **labels** (`labels.py`): the property's name, title, short description and
   `x-docmill-synonyms`, fuzzy-matched (rapidfuzz) against word windows of every line; the
   value is then looked for after the label on the same line, in the segments to its right
   on the same visual row, or just below it, and parsed by kind (values.py). A label window
   that is part of a longer label of another property ("Due Date" holds "Date") belongs to
   that property, and a line holding one of the property's `x-docmill-exclude` words next
   to the label ("Total Qty") is not its label;
2. **format alone** (`by_format.py`), for values that name themselves (an IBAN, an e-mail, a
   currency) and for generic date and total properties, at a lower confidence;
3. **position** (`issuer.py`), for the issuing organization and its address at the top of
   the first page (a receipt's first lines).

All candidates of all properties are then assigned greedily by score, one property per
place on the page. Arrays of objects are read from table-like rows under a header row
whose cells match the item properties' labels (`items.py`). Confidence = label match x
placement x parse quality x OCR confidence (x 0.5 without a label).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from docmill.documents import Box, Document
from docmill.extraction.by_format import _format_candidates
from docmill.extraction.issuer import _legal_organization, _top_address, _top_organization
from docmill.extraction.items import _items
from docmill.extraction.labels import Candidate, LabelHit, _label_hits, _value_after
from docmill.extraction.layout import Layout
from docmill.extraction.schema import (
    FieldSpec,
    field_specs,
    make_valid,
    missing_required,
    set_path,
    skeleton,
)

if TYPE_CHECKING:
    from docmill.extraction.learned.model import FieldModel


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
