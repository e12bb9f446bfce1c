"""The one internal representation of a read document, and its serializers.

A `Document` is pages -> blocks -> lines -> words, every list in human reading order. Every
box is `(x0, y0, x1, y1)` in **PDF points (1/72 inch) of the page as displayed**: origin at
the top-left corner, y growing downwards, the page's `/Rotate` (or the orientation fix of a
scan) already applied. A page also records the resolution its image was read at (`dpi`), so
pixel boxes are `pt * dpi / 72`; faces that want another unit (expert.ai's 100 dpi pixels)
convert from points with `Box.scaled`.

Blocks carry a `type`: title, text, header, footer, table (with rows, columns and cells) -
the vocabulary the expert.ai face needs, and a superset-free one so other faces can map it.

Serializers here: native JSON (`to_dict`), plain text in reading order (`to_text`) and hOCR
(`to_hocr`). The searchable PDF lives in `engines/ocr/searchable_pdf.py` because it needs the
page images.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

BlockType = Literal["title", "text", "header", "footer", "table"]
Source = Literal["text-layer", "ocr", "empty"]


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    def scaled(self, factor: float) -> Box:
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor)

    def rounded(self, digits: int = 2) -> list[float]:
        return [round(self.x0, digits), round(self.y0, digits), round(self.x1, digits),
                round(self.y1, digits)]

    def as_ints(self, factor: float = 1.0) -> tuple[int, int, int, int]:
        return (round(self.x0 * factor), round(self.y0 * factor), round(self.x1 * factor),
                round(self.y1 * factor))

    @staticmethod
    def union(boxes: list[Box] | Iterator[Box]) -> Box:
        boxes = list(boxes)
        if not boxes:
            return Box(0, 0, 0, 0)
        return Box(min(b.x0 for b in boxes), min(b.y0 for b in boxes),
                   max(b.x1 for b in boxes), max(b.y1 for b in boxes))

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def y_overlap(self, other: Box) -> float:
        """Vertical overlap as a fraction of the shorter box's height."""
        inter = min(self.y1, other.y1) - max(self.y0, other.y0)
        short = min(self.height, other.height)
        return inter / short if short > 0 else 0.0


@dataclass
class Word:
    text: str
    box: Box
    confidence: float = 1.0  # 0..1; words read from a text layer are certain
    font_size: float | None = None  # points, when the text layer tells it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "bbox": self.box.rounded(),
                               "confidence": round(self.confidence, 4)}
        if self.font_size is not None:
            out["font_size"] = round(self.font_size, 2)
        return out


@dataclass
class Line:
    words: list[Word]
    box: Box | None = None

    def __post_init__(self) -> None:
        if self.box is None:
            self.box = Box.union(w.box for w in self.words)

    @property
    def bbox(self) -> Box:
        assert self.box is not None
        return self.box

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def font_size(self) -> float:
        """The text size: the text layer's font size, else the line's height."""
        sizes = sorted(w.font_size for w in self.words if w.font_size)
        return sizes[len(sizes) // 2] if sizes else self.bbox.height

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": self.bbox.rounded(), "text": self.text,
                "words": [w.to_dict() for w in self.words]}


@dataclass
class Cell:
    row: int  # 0-based
    column: int  # 0-based
    lines: list[Line]
    box: Box
    row_span: int = 1
    col_span: int = 1
    is_header: bool = False

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "row_span": self.row_span,
                "col_span": self.col_span, "is_header": self.is_header,
                "bbox": self.box.rounded(), "text": self.text,
                "lines": [line.to_dict() for line in self.lines]}


@dataclass
class Table:
    rows: int
    columns: int
    cells: list[Cell]  # row-major

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns,
                "cells": [c.to_dict() for c in self.cells]}


@dataclass
class Block:
    type: BlockType
    lines: list[Line] = field(default_factory=list)
    table: Table | None = None
    box: Box | None = None

    def __post_init__(self) -> None:
        if self.box is None:
            self.box = Box.union(line.bbox for line in self.all_lines())

    @property
    def bbox(self) -> Box:
        assert self.box is not None
        return self.box

    def all_lines(self) -> list[Line]:
        """Every line of the block in reading order (a table's cells row by row)."""
        if self.table is not None:
            return [line for cell in self.table.cells for line in cell.lines]
        return self.lines

    @property
    def text(self) -> str:
        if self.table is not None:
            rows: dict[int, list[str]] = {}
            for cell in self.table.cells:
                rows.setdefault(cell.row, []).append(cell.text.replace("\n", " "))
            return "\n".join("\t".join(rows[r]) for r in sorted(rows))
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "bbox": self.bbox.rounded(), "text": self.text}
        if self.table is not None:
            out["table"] = self.table.to_dict()
        else:
            out["lines"] = [line.to_dict() for line in self.lines]
        return out


@dataclass
class Page:
    number: int  # 1-based
    width: float  # points, as displayed
    height: float
    source: Source
    blocks: list[Block] = field(default_factory=list)
    rotation: int = 0  # degrees clockwise applied to show the page upright (/Rotate or OSD fix)
    dpi: float | None = None  # resolution of the image that was read (None: text layer)
    engine: str | None = None  # OCR engine that read it
    languages: list[str] = field(default_factory=list)
    skew: float = 0.0  # degrees the scan was tilted counter-clockwise (straightened before OCR)
    image_size: tuple[int, int] | None = None  # pixels of the image read, upright
    error: str | None = None  # set when the page could not be analysed

    def lines(self) -> list[Line]:
        return [line for block in self.blocks for line in block.all_lines()]

    def words(self) -> list[Word]:
        return [w for line in self.lines() for w in line.words]

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks if block.text)

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.number, "width": round(self.width, 2),
                "height": round(self.height, 2), "units": "pt", "rotation": self.rotation,
                "dpi": self.dpi, "source": self.source, "engine": self.engine,
                "languages": self.languages, "skew": round(self.skew, 2),
                "image_size": list(self.image_size) if self.image_size else None,
                "error": self.error, "text": self.text,
                "blocks": [b.to_dict() for b in self.blocks]}


def _box(values: list[float]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return Box(x0, y0, x1, y1)


def _line_from(data: dict[str, Any]) -> Line:
    words = [Word(str(w["text"]), _box(w["bbox"]), float(w.get("confidence", 1.0)),
                  w.get("font_size")) for w in data["words"]]
    return Line(words, _box(data["bbox"]))


def _block_from(data: dict[str, Any]) -> Block:
    table = None
    if data.get("table"):
        t = data["table"]
        table = Table(int(t["rows"]), int(t["columns"]), [
            Cell(int(c["row"]), int(c["column"]), [_line_from(x) for x in c["lines"]],
                 _box(c["bbox"]), int(c.get("row_span", 1)), int(c.get("col_span", 1)),
                 bool(c.get("is_header", False))) for c in t["cells"]])
    return Block(data["type"], [_line_from(x) for x in data.get("lines") or []], table,
                 _box(data["bbox"]))


def _page_from(data: dict[str, Any]) -> Page:
    size = data.get("image_size")
    return Page(int(data["page"]), float(data["width"]), float(data["height"]),
                data.get("source", "ocr"), [_block_from(b) for b in data.get("blocks") or []],
                int(data.get("rotation", 0)), data.get("dpi"), data.get("engine"),
                list(data.get("languages") or []), float(data.get("skew", 0.0)),
                (int(size[0]), int(size[1])) if size else None, data.get("error"))


@dataclass
class Document:
    pages: list[Page]
    metadata: dict[str, str] = field(default_factory=dict)  # PDF Info dictionary, if any

    def words(self) -> list[Word]:
        return [w for p in self.pages for w in p.words()]

    def to_dict(self) -> dict[str, Any]:
        return {"format": "docmill.document/1",
                "units": "pt (1/72 inch), origin top-left of the page as displayed",
                "metadata": self.metadata, "page_count": len(self.pages),
                "pages": [p.to_dict() for p in self.pages]}

    @classmethod
    def from_dict(cls, data: object) -> Document:
        """The inverse of `to_dict` (what an `ocr.read` job stored), for documents kept to
        train on. Raises ValueError on anything that is not such a document."""
        if not isinstance(data, dict) or data.get("format") != "docmill.document/1":
            raise ValueError("not a docmill.document/1 document")
        try:
            return cls([_page_from(p) for p in data["pages"]],
                       dict(data.get("metadata") or {}))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed document ({type(exc).__name__}: {exc})") from exc

    def to_text(self) -> str:
        """Plain text in reading order: blocks separated by a blank line, pages by a form feed."""
        return "\f".join(p.text for p in self.pages)

    def to_hocr(self, title: str = "document") -> str:
        """hOCR 1.2: ocr_page / ocr_carea (ocr_table for tables) / ocr_par / ocr_line /
        ocrx_word, bboxes in pixels of the page image read (in points for text-layer pages
        with no image, at 72 dpi)."""
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
               '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
               '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
               "<head>", f"<title>{html.escape(title)}</title>",
               '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>',
               '<meta name="ocr-system" content="docmill"/>',
               '<meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line '
               'ocrx_word ocrp_wconf ocr_table ocr_header ocr_footer"/>',
               "</head>", "<body>"]
        counter = {"block": 0, "par": 0, "line": 0, "word": 0}

        def nid(kind: str) -> str:
            counter[kind] += 1
            return f"{kind}_{counter[kind]}"

        for page in self.pages:
            factor = (page.dpi or 72) / 72
            w, h = round(page.width * factor), round(page.height * factor)
            props = [f"bbox 0 0 {w} {h}", f"ppageno {page.number - 1}"]
            if page.dpi:
                props.append(f"scan_res {round(page.dpi)} {round(page.dpi)}")
            out.append(f'<div class="ocr_page" id="page_{page.number}" '
                       f'title="{"; ".join(props)}">')
            for block in page.blocks:
                bx = " ".join(map(str, block.bbox.as_ints(factor)))
                css = {"table": "ocr_table", "header": "ocr_header",
                       "footer": "ocr_footer"}.get(block.type, "ocr_carea")
                out.append(f'<div class="{css}" id="{nid("block")}" title="bbox {bx}" '
                           f'data-type="{block.type}">')
                groups = ([c.lines for c in block.table.cells] if block.table
                          else [block.lines])
                for lines in groups:
                    if not lines:
                        continue
                    pbx = " ".join(map(str, Box.union(ln.bbox for ln in lines).as_ints(factor)))
                    out.append(f'<p class="ocr_par" id="{nid("par")}" title="bbox {pbx}">')
                    for line in lines:
                        lbx = " ".join(map(str, line.bbox.as_ints(factor)))
                        out.append(f'<span class="ocr_line" id="{nid("line")}" '
                                   f'title="bbox {lbx}">')
                        for word in line.words:
                            wbx = " ".join(map(str, word.box.as_ints(factor)))
                            conf = round(word.confidence * 100)
                            out.append(f'<span class="ocrx_word" id="{nid("word")}" '
                                       f'title="bbox {wbx}; x_wconf {conf}">'
                                       f"{html.escape(word.text)}</span>")
                        out.append("</span>")
                    out.append("</p>")
                out.append("</div>")
            out.append("</div>")
        out += ["</body>", "</html>", ""]
        return "\n".join(out)
