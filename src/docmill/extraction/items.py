"""Arrays of objects (line items): read from the table-like rows under a header row whose
cells match the item properties' labels, continued under the same header on later pages."""

from __future__ import annotations

import re
from typing import Any

from docmill.documents import Box
from docmill.extraction.labels import _STRIP, _convert, _finder, _norm_word
from docmill.extraction.layout import Layout, Seg
from docmill.extraction.schema import FieldSpec, set_path, skeleton


def _items(layout: Layout, spec: FieldSpec, month_first: bool) -> tuple[list[dict], dict]:
    """Rows under the best header row: a row whose segments' words match two or more item
    properties' labels gives the columns; following rows are cut into those columns."""
    from rapidfuzz import fuzz

    item_specs = spec.items or []
    if not item_specs:
        return [], {}
    best_row = -1
    best_cols: dict = {}
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
