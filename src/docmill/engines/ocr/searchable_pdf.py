"""Searchable PDF: the original page (image or PDF page, untouched) plus an invisible text
layer, written with pikepdf.

The text layer is what Tesseract's own PDF renderer writes: text render mode 3 (invisible)
in a Type0 font with Identity-H encoding, every character coded as its Unicode value, a
ToUnicode map back to Unicode, and every glyph mapped to one blank glyph (`GlyphLessFont`,
Tesseract's `pdf.ttf`, embedded when Debian's libtesseract ships it). Each word is stretched
horizontally (`Tz`) to its box, so selecting and searching lands on the words in the image,
and followed by a space so that text extraction keeps neighbouring words apart.

Images go in with img2pdf, which embeds JPEG (and other formats it can) byte for byte, so
the picture keeps its original quality; frames img2pdf cannot take as they are (WEBP, GIF,
BMP, multi-frame files) go in as lossless PNG. A page turned upright by orientation
detection gets a `/Rotate` instead of re-encoded pixels.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from docmill.documents import Page

if TYPE_CHECKING:
    import pikepdf

GLYPHLESS_FONT_PATHS = ("/usr/share/tesseract-ocr/5/tessdata/pdf.ttf",
                        "/usr/share/tesseract-ocr/4.00/tessdata/pdf.ttf",
                        "/usr/share/tessdata/pdf.ttf")
CHAR_WIDTH = 500  # glyph advance in 1/1000 em, the same for every character


def _tounicode() -> bytes:
    ranges = "\n".join(f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256)
                       if not 0xD8 <= hi <= 0xDF)
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            f"{256 - 8} beginbfrange\n{ranges}\nendbfrange\n"
            "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n").encode()


def _font(pdf: pikepdf.Pdf) -> pikepdf.Dictionary:
    import pikepdf

    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor, FontName=pikepdf.Name("/GlyphLessFont"), Flags=5,
        FontBBox=[0, 0, CHAR_WIDTH, 1000], ItalicAngle=0, Ascent=1000, Descent=0,
        CapHeight=1000, StemV=80)
    for path in GLYPHLESS_FONT_PATHS:
        if Path(path).is_file():
            descriptor.FontFile2 = pdf.make_stream(Path(path).read_bytes())
            break
    # every CID shows glyph 1 of GlyphLessFont (a blank glyph)
    cid_to_gid = pdf.make_stream(zlib.compress(b"\x00\x01" * 65536, 9))
    cid_to_gid.Filter = pikepdf.Name.FlateDecode
    cid_font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name("/GlyphLessFont"),
        CIDSystemInfo=pikepdf.Dictionary(Registry=pikepdf.String("Adobe"),
                                         Ordering=pikepdf.String("Identity"), Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor), DW=CHAR_WIDTH,
        CIDToGIDMap=pdf.make_indirect(cid_to_gid))
    tounicode = pdf.make_stream(zlib.compress(_tounicode(), 9))
    tounicode.Filter = pikepdf.Name.FlateDecode
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type0,
        BaseFont=pikepdf.Name("/GlyphLessFont"), Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[pdf.make_indirect(cid_font)], ToUnicode=pdf.make_indirect(tounicode)))


def _encode(text: str) -> str:
    return "".join(f"{ord(c):04X}" if ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF
                   else "FFFD" for c in text)


def text_layer(page: Page, pdf_page: pikepdf.Page, font_name: str) -> bytes:
    """Content stream drawing the page's words invisibly, in the page's user space.

    `page` boxes are in displayed points (top-left origin, the page's final /Rotate applied);
    they are mapped back to the unrotated user space of `pdf_page`."""
    left, bottom, right, top = (float(v) for v in pdf_page.cropbox)
    raw_w, raw_h = right - left, top - bottom
    rotate = int(pdf_page.obj.get("/Rotate", 0)) % 360
    # displayed (x, y) -> unrotated top-left (u, v), and the text direction in user space
    if rotate == 90:
        to_uv = lambda x, y: (y, raw_h - x)  # noqa: E731
        direction = (0.0, 1.0)
    elif rotate == 180:
        to_uv = lambda x, y: (raw_w - x, raw_h - y)  # noqa: E731
        direction = (-1.0, 0.0)
    elif rotate == 270:
        to_uv = lambda x, y: (raw_w - y, x)  # noqa: E731
        direction = (0.0, -1.0)
    else:
        to_uv = lambda x, y: (x, y)  # noqa: E731
        direction = (1.0, 0.0)
    cos, sin = direction
    parts = ["q", "BT", "3 Tr", f"/{font_name} 1 Tf"]
    for word in page.words():
        text = word.text
        if not text or word.box.width <= 0 or word.box.height <= 0:
            continue
        size = word.box.height
        baseline_y = word.box.y1 - 0.15 * size
        u, v = to_uv(word.box.x0, baseline_y)
        x, y = left + u, top - v
        natural = len(text) * CHAR_WIDTH / 1000 * size
        scale = max(1.0, min(10000.0, 100 * word.box.width / natural))
        parts.append(f"{size * cos:.3f} {size * sin:.3f} {-size * sin:.3f} {size * cos:.3f} "
                     f"{x:.3f} {y:.3f} Tm {scale:.2f} Tz <{_encode(text + ' ')}> Tj")
    parts += ["ET", "Q"]
    return ("\n".join(parts) + "\n").encode()


def add_text_layers(pdf: pikepdf.Pdf, pages: dict[int, Page]) -> None:
    """Overlay invisible text on the given pages (0-based index -> analysed page) and set
    each page's /Rotate to the rotation the analysis found."""
    import pikepdf

    font = _font(pdf)
    for index, page in pages.items():
        pdf_page = pdf.pages[index]
        if page.rotation % 360 != int(pdf_page.obj.get("/Rotate", 0)) % 360:
            pdf_page.obj.Rotate = page.rotation % 360
        if not page.words():
            continue
        name = pdf_page.add_resource(font, pikepdf.Name.Font, prefix="FDocmillOCR")
        pdf_page.contents_add(pdf.make_stream(b"q\n"), prepend=True)
        pdf_page.contents_add(pdf.make_stream(b"Q\n"))
        pdf_page.contents_add(pdf.make_stream(text_layer(page, pdf_page, str(name)[1:])))


def image_pdf(frames: list[tuple[bytes, float]]) -> bytes:
    """A PDF with one page per (image bytes, dpi), embedded without re-encoding where
    img2pdf can, each page sized by its dpi."""
    import img2pdf
    import pikepdf

    writer = pikepdf.new()
    for data, dpi in frames:
        layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
        try:
            single = img2pdf.convert(data, layout_fun=layout, rotation=img2pdf.Rotation.none)
        except Exception:  # e.g. a PNG with transparency, which img2pdf refuses
            single = img2pdf.convert(_flat_png(data), layout_fun=layout,
                                     rotation=img2pdf.Rotation.none)
        with pikepdf.open(io.BytesIO(single)) as one:
            writer.pages.extend(one.pages)
    out = io.BytesIO()
    writer.save(out)
    return out.getvalue()


def _flat_png(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        out = io.BytesIO()
        flat.save(out, "PNG")
        return out.getvalue()


def write_searchable(base_pdf: bytes | Path, pages: dict[int, Page], out: Path) -> None:
    import pikepdf

    with pikepdf.open(base_pdf if isinstance(base_pdf, Path) else io.BytesIO(base_pdf)) as pdf:
        add_text_layers(pdf, pages)
        pdf.save(out)
