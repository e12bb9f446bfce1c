"""Words and lines from a digital PDF page's text layer (PDFium's characters), no OCR.

Words are PDFium's own text split on whitespace, so joining them gives back exactly what
`pdf.to-text` returns; each word's box is the union of its characters' boxes, moved from PDF
user space (bottom-left origin, unrotated) to the page as displayed (top-left origin, the
page's `/Rotate` applied). Lines follow PDFium's line breaks, and also break where the next
character jumps to another baseline without one.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from docmill.documents import Box, Line, Word

if TYPE_CHECKING:
    import pypdfium2 as pdfium

HYPHEN_MARKS = (0xFFFE, 0x02)  # PDFium's marks for a hyphen it joined across a line end


class PageGeometry:
    """User space -> displayed page points, for one page."""

    def __init__(self, page: pdfium.PdfPage) -> None:
        left, bottom, right, top = page.get_cropbox()
        self.left, self.top = left, top
        self.raw_w, self.raw_h = right - left, top - bottom
        self.rotation = page.get_rotation() % 360
        self.width, self.height = ((self.raw_h, self.raw_w) if self.rotation in (90, 270)
                                   else (self.raw_w, self.raw_h))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """A user-space rectangle (PDF's bottom-left origin) as a displayed box."""
        u0, u1 = x0 - self.left, x1 - self.left
        v0, v1 = self.top - y1, self.top - y0
        w, h, r = self.raw_w, self.raw_h, self.rotation
        if r == 90:
            return Box(h - v1, u0, h - v0, u1)
        if r == 180:
            return Box(w - u1, h - v1, w - u0, h - v0)
        if r == 270:
            return Box(v0, w - u1, v1, w - u0)
        return Box(u0, v0, u1, v1)


def has_usable_text(textpage: pdfium.PdfTextPage, min_chars: int = 3) -> bool:
    """A page 'has text' when it holds a few visible characters that are not just spaces."""
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count < min_chars:
        return False
    seen = 0
    for i in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, i)
        if code and not chr(code).isspace() and code >= 0x20 and code not in HYPHEN_MARKS:
            seen += 1
            if seen >= min_chars:
                return True
    return False


def read_lines(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage) -> list[Line]:
    """The page's text layer as lines of words, in PDFium's text order."""
    import pypdfium2.raw as pdfium_c

    geometry = PageGeometry(page)
    count = textpage.count_chars()
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    lines: list[Line] = []
    words: list[Word] = []
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    heights: list[float] = []
    rect = pdfium_c.FS_RECTF()

    def end_word() -> None:
        if chars:
            x0 = min(b[0] for b in boxes)
            y0 = min(b[1] for b in boxes)
            x1 = max(b[2] for b in boxes)
            y1 = max(b[3] for b in boxes)
            size = sorted(heights)[len(heights) // 2] if heights else None
            words.append(Word("".join(chars), geometry.box(x0, y0, x1, y1), 1.0,
                              round(size, 2) if size else None))
            chars.clear()
            boxes.clear()
            heights.clear()

    def end_line() -> None:
        end_word()
        if words:
            lines.append(Line(list(words)))
            words.clear()

    for i in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, i)
        char = "-" if code in HYPHEN_MARKS else chr(code)
        if char in "\r\n":
            end_line()
            continue
        if code < 0x20 and not char.isspace() and code not in HYPHEN_MARKS:
            continue  # control characters PDFium's own text leaves out
        if char.isspace() or not char:
            end_word()
            continue
        pdfium_c.FPDFText_GetCharBox(textpage, i, left, right, bottom, top)
        box = (left.value, bottom.value, right.value, top.value)
        if box[2] - box[0] <= 0 and box[3] - box[1] <= 0:  # no geometry: borrow the loose box
            pdfium_c.FPDFText_GetLooseCharBox(textpage, i, rect)
            box = (rect.left, rect.bottom, rect.right, rect.top)
        if chars or words:
            # A jump to another baseline with no break PDFium told about starts a new line.
            current = geometry.box(*box)
            previous = words[-1].box if not chars else geometry.box(
                min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))
            if (current.height > 0 and previous.height > 0 and current.y_overlap(previous) < 0.2
                    and _x_overlap(current, previous) < 0.2):
                end_line()
        pdfium_c.FPDFText_GetLooseCharBox(textpage, i, rect)
        chars.append(char)
        boxes.append(box)
        heights.append(abs(rect.top - rect.bottom) / 1.15 if rect.top != rect.bottom
                       else box[3] - box[1])
        if code in HYPHEN_MARKS:
            end_line()
    end_line()
    return lines


def _x_overlap(a: Box, b: Box) -> float:
    inter = min(a.x1, b.x1) - max(a.x0, b.x0)
    short = min(a.width, b.width)
    return inter / short if short > 0 else 0.0
