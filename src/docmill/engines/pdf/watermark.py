"""pdf.watermark: real text drawn by PDFium on a stamp page (standard Helvetica-Bold, or
DejaVu Sans embedded for text outside Windows-1252), placed on each page as a form XObject,
upright on the page as displayed whatever its /Rotate."""

from __future__ import annotations

import ctypes
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmill.engines.base import EngineInput, EngineResult, Progress, output_stem, parse_page_ranges
from docmill.engines.pdf.editing import Matrix, _normal_rotation, _result, _save, open_document
from docmill.engines.pdf.params import WatermarkParams
from docmill.errors import EngineFailed, InvalidInput

if TYPE_CHECKING:
    import pikepdf

STAMP_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _displayed_box(page: pikepdf.Page) -> tuple[float, float, float, float, int]:
    """(x0, y0, width, height) of the crop box in user space, and the page's rotation."""
    box = page.cropbox
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    return x0, y0, x1 - x0, y1 - y0, _normal_rotation(page)


def _display_to_user(x0: float, y0: float, width: float, height: float, rotation: int
                     ) -> Matrix:
    """Maps displayed-page coordinates (origin bottom left of the page as shown) into the
    page's user space, undoing its /Rotate (which turns the page clockwise)."""
    return {0: (1, 0, 0, 1, x0, y0),
            90: (0, 1, -1, 0, x0 + width, y0),
            180: (-1, 0, 0, -1, x0 + width, y0 + height),
            270: (0, -1, 1, 0, x0, y0 + height)}[rotation]


class StampMaker:
    """Stamp pages drawn by PDFium, one per displayed page size: the text as a real text
    object, turned about its centre and placed at the requested position."""

    def __init__(self, params: WatermarkParams) -> None:
        import pypdfium2 as pdfium

        self.params = params
        self.doc = pdfium.PdfDocument.new()
        self.font_data: Any = None  # PDFium reads the font buffer until the document is saved
        self.sizes: list[tuple[float, float]] = []
        self.font_sizes: list[float] = []
        self.font_name = self._load_font()

    def _load_font(self) -> str:
        import pypdfium2.raw as pdfium_c

        try:
            self.params.text.encode("cp1252")
        except UnicodeEncodeError:
            pass
        else:  # a standard font: nothing embedded, every reader has it
            self.font = pdfium_c.FPDFText_LoadStandardFont(self.doc.raw, b"Helvetica-Bold")
            return "Helvetica-Bold"
        path = next((Path(p) for p in STAMP_FONT_FILES if Path(p).is_file()), None)
        if path is None:
            raise InvalidInput("the watermark text has characters outside Windows-1252 and "
                               "no Unicode font (DejaVu Sans) is installed")
        data = path.read_bytes()
        self.font_data = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.font = pdfium_c.FPDFText_LoadFont(self.doc.raw, self.font_data, len(data),
                                               pdfium_c.FPDF_FONT_TRUETYPE, True)
        if not self.font:
            raise EngineFailed(f"PDFium could not load the font {path}")
        return path.stem

    def _text_object(self, size: float) -> Any:
        import pypdfium2.raw as pdfium_c

        obj = pdfium_c.FPDFPageObj_CreateTextObj(self.doc.raw, self.font, ctypes.c_float(size))
        text = (self.params.text + "\0").encode("utf-16-le")
        if not pdfium_c.FPDFText_SetText(obj, ctypes.cast(ctypes.c_char_p(text),
                                                          pdfium_c.FPDF_WIDESTRING)):
            pdfium_c.FPDFPageObj_Destroy(obj)
            raise EngineFailed("PDFium could not set the watermark text")
        red, green, blue = (int(self.params.color[i:i + 2], 16) for i in (1, 3, 5))
        # The alpha becomes the text's own /ca: the stamp is see-through in any viewer.
        pdfium_c.FPDFPageObj_SetFillColor(obj, red, green, blue,
                                          max(1, round(self.params.opacity * 255)))
        return obj

    @staticmethod
    def _bounds(obj: Any) -> tuple[float, float, float, float]:
        import pypdfium2.raw as pdfium_c

        box = [ctypes.c_float() for _ in range(4)]
        pdfium_c.FPDFPageObj_GetBounds(obj, *box)
        return box[0].value, box[1].value, box[2].value, box[3].value

    def _font_size(self, width: float, height: float, turned_w: float, turned_h: float
                   ) -> float:
        """The requested size, or one fitting the page: 80% of it for a centred stamp, a
        corner or edge one at most 48 pt and inside the margins."""
        p = self.params
        if p.font_size is not None:
            return p.font_size
        if p.position == "center":
            size = 100 * min(0.8 * width / turned_w, 0.8 * height / turned_h)
        else:
            room_w, room_h = max(width - 2 * p.margin, 1), max(height - 2 * p.margin, 1)
            size = min(100 * 0.4 * width / turned_w, 100 * 0.4 * height / turned_h,
                       100 * room_w / turned_w, 100 * room_h / turned_h, 48)
        return max(4.0, min(size, 500.0))

    def add(self, width: float, height: float) -> int:
        """The stamp page for a displayed page of this size (made once); its index."""
        import pypdfium2.raw as pdfium_c

        key = (round(width, 2), round(height, 2))
        if key in self.sizes:
            return self.sizes.index(key)
        p = self.params
        theta = math.radians(p.angle)
        cos, sin = math.cos(theta), math.sin(theta)
        probe = self._text_object(100)
        left, bottom, right, top = self._bounds(probe)
        pdfium_c.FPDFPageObj_Destroy(probe)
        turned_w = (right - left) * abs(cos) + (top - bottom) * abs(sin)  # at 100 pt
        turned_h = (right - left) * abs(sin) + (top - bottom) * abs(cos)
        size = self._font_size(width, height, turned_w, turned_h)
        obj = self._text_object(size)
        left, bottom, right, top = self._bounds(obj)
        cx, cy = (left + right) / 2, (bottom + top) / 2
        half_w, half_h = turned_w * size / 200, turned_h * size / 200
        parts = p.position.split("-")
        column = 0 if "left" in parts else 2 if "right" in parts else 1
        row = 0 if "top" in parts else 2 if "bottom" in parts else 1
        px = (p.margin + half_w, width / 2, width - p.margin - half_w)[column]
        py = (height - p.margin - half_h, height / 2, p.margin + half_h)[row]
        # Centre the text on the origin, turn it, move it to (px, py).
        pdfium_c.FPDFPageObj_Transform(obj, cos, sin, -sin, cos,
                                       -cx * cos + cy * sin + px, -cx * sin - cy * cos + py)
        page = self.doc.new_page(width, height)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)
        if not pdfium_c.FPDFPage_GenerateContent(page.raw):
            raise EngineFailed("PDFium could not draw the watermark")
        page.close()
        self.sizes.append(key)
        self.font_sizes.append(round(size, 2))
        return len(self.sizes) - 1

    def save(self) -> bytes:
        buffer = io.BytesIO()
        self.doc.save(buffer)
        self.doc.close()
        return buffer.getvalue()


def _pdf_number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def watermark(item: EngineInput, params: WatermarkParams, workdir: Path,
              progress: Progress) -> EngineResult:
    import pikepdf
    from pikepdf import Name

    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        indexes = sorted(set(parse_page_ranges(params.pages, len(pdf.pages))))
        maker = StampMaker(params)
        plan: list[tuple[int, int, Matrix]] = []
        for index in indexes:
            x0, y0, width, height, rotation = _displayed_box(pdf.pages[index])
            shown = (height, width) if rotation in (90, 270) else (width, height)
            plan.append((index, maker.add(*shown),
                         _display_to_user(x0, y0, width, height, rotation)))
        progress(20, "drew the watermark")
        # The stamps' PDF stays open until the output is written: qpdf copies the data of
        # foreign streams only then.
        with pikepdf.open(io.BytesIO(maker.save())) as stamps:
            forms = [pdf.copy_foreign(page.as_form_xobject()) for page in stamps.pages]
            for done, (index, stamp, matrix) in enumerate(plan):
                page = pdf.pages[index]
                name = page.add_resource(forms[stamp], Name.XObject, prefix="Wm")
                # The page's own drawing is wrapped in q/Q so whatever graphics state it
                # leaves behind cannot move or recolour the stamp.
                page.contents_add(pdf.make_stream(b"q\n"), prepend=True)
                cm = " ".join(_pdf_number(v) for v in matrix)
                page.contents_add(pdf.make_stream(f"\nQ\nq {cm} cm {name} Do Q\n".encode()))
                progress(20 + 60 * (done + 1) / len(plan), f"stamped page {index + 1}")
            out = workdir / f"{output_stem(item.name)}-watermarked.pdf"
            _save(opened, out, progress, 80)
        return _result(out, opened, len(indexes), pages=len(pdf.pages),
                       stamped=[i + 1 for i in indexes], font=maker.font_name,
                       font_sizes=maker.font_sizes)
