"""The geometry the extractor works on: every line of a read `Document` as a `Seg`, grouped
into visual rows (segments whose heights overlap), with "right of" and "below" lookups.

Rows are rebuilt here rather than taken from the layout's blocks because a label and its
value often land in different blocks or table cells ("Invoice Date:" | "03/20/2023"), while
they always share a row or a column on the page.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from docmill.documents import Box, Document, Word


@dataclass
class Seg:
    text: str
    page: int
    box: Box
    words: list[Word]
    offsets: list[tuple[int, int]]  # each word's [start, end) in text
    index: int = 0  # reading order in the document
    row: int = -1  # visual row id (document-wide, top to bottom per page)
    page_height: float = 1.0

    @property
    def confidence(self) -> float:
        return sum(w.confidence for w in self.words) / len(self.words) if self.words else 0.0

    def span_box(self, start: int, end: int) -> Box:
        boxes = [w.box for w, (a, b) in zip(self.words, self.offsets, strict=True)
                 if a < end and b > start]
        return Box.union(boxes) if boxes else self.box

    def span_confidence(self, start: int, end: int) -> float:
        confs = [w.confidence for w, (a, b) in zip(self.words, self.offsets, strict=True)
                 if a < end and b > start]
        return sum(confs) / len(confs) if confs else self.confidence

    def word_start(self, i: int) -> int:
        return self.offsets[i][0] if i < len(self.offsets) else len(self.text)

    @property
    def rel_y(self) -> float:
        return self.box.cy / self.page_height if self.page_height else 0.0


def _seg(words: list[Word], page: int, height: float) -> Seg:
    """One line's segment. Its text is NFKC-normalised: RapidOCR's multilingual model reads
    brackets and colons on Latin text as full-width forms ("BHD （126926-H）"), which no
    pattern or label would otherwise match."""
    parts, offsets, pos = [], [], 0
    for w in words:
        text = unicodedata.normalize("NFKC", w.text)
        parts.append(text)
        offsets.append((pos, pos + len(text)))
        pos += len(text) + 1
    return Seg(" ".join(parts), page, Box.union(w.box for w in words), list(words), offsets,
               page_height=height)


@dataclass
class Layout:
    segs: list[Seg]
    rows: list[list[Seg]] = field(default_factory=list)  # each row left to right
    page_count: int = 0
    _by_page: dict[int, list[Seg]] = field(default_factory=dict)

    @classmethod
    def of(cls, document: Document) -> Layout:
        segs: list[Seg] = []
        for page in document.pages:
            for line in page.lines():
                words = [w for w in line.words if w.text.strip()]
                if words:
                    segs.append(_seg(words, page.number, page.height))
        for i, s in enumerate(segs):
            s.index = i
        layout = cls(segs, page_count=len(document.pages))
        layout._group_rows()
        for s in segs:
            layout._by_page.setdefault(s.page, []).append(s)
        return layout

    def _group_rows(self) -> None:
        rows: list[list[Seg]] = []
        for page in sorted({s.page for s in self.segs}):
            on_page = sorted((s for s in self.segs if s.page == page), key=lambda s: s.box.cy)
            current: list[Seg] = []
            ref: Box | None = None
            for s in on_page:
                if ref is not None and s.box.y_overlap(ref) >= 0.5:
                    current.append(s)  # the row keeps its first box: rows never drift
                else:
                    if current:
                        rows.append(current)
                    current, ref = [s], s.box
            if current:
                rows.append(current)
        for r, row in enumerate(rows):
            row.sort(key=lambda s: s.box.x0)
            for s in row:
                s.row = r
        self.rows = rows

    def right_of(self, seg: Seg, limit: int = 4) -> list[Seg]:
        """Segments to the right on the same visual row; when the row has none, those whose
        centre is within 0.6 line heights, nearest first (a photo is rarely level)."""
        height = max(seg.box.height, 1.0)
        same = [s for s in self.rows[seg.row] if s is not seg and s.box.x0 >= seg.box.x1 - 2]
        if same:
            return same[:limit]
        near = [s for s in self._by_page.get(seg.page, []) if s is not seg and
                s.box.x0 >= seg.box.x1 - 2 and abs(s.box.cy - seg.box.cy) <= 0.6 * height]
        near.sort(key=lambda s: (abs(s.box.cy - seg.box.cy), s.box.x0))
        return near[:limit]

    def below(self, seg: Seg, x0: float | None = None, limit: int = 1,
              max_gap: float = 2.6) -> list[Seg]:
        """Segments under `seg` (from x0 on, default its left edge) that overlap it
        horizontally, nearest first, each within max_gap line heights of the previous."""
        left = seg.box.x0 if x0 is None else x0
        out: list[Seg] = []
        last = seg.box
        height = max(seg.box.height, 1.0)
        for row in self.rows[seg.row + 1:]:
            if row[0].page != seg.page:
                break
            gap = min(s.box.y0 for s in row) - last.y1
            if gap > max_gap * height:
                break
            hits = [s for s in row if min(s.box.x1, seg.box.x1) - max(s.box.x0, left) >
                    0.3 * min(s.box.width, max(seg.box.x1 - left, 1))]
            if hits:
                best = min(hits, key=lambda s: abs(s.box.x0 - left))
                out.append(best)
                last = best.box
                if len(out) >= limit:
                    break
        return out
