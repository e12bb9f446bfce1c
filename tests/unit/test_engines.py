"""Engines called directly, no server: results checked against pypdfium2, pypdf and Pillow
reading the same inputs, progress checked for shape, errors checked for their class."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops

from docmill.engines.base import EngineInput, parse_page_ranges
from docmill.engines.image import ConvertParams, ImageEngine, ToPdfParams
from docmill.engines.pdf.render import (
    MergeParams,
    PdfEngine,
    SplitParams,
    ToImageParams,
    ToTextParams,
)
from docmill.errors import InvalidInput, PasswordRequired

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server import DATA

PDF = DATA / "pdf"


class Recorder:
    """A progress callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, percent: float, message: str) -> None:
        self.calls.append((percent, message))

    def check(self, *, ends_at: float | None = 100) -> None:
        values = [p for p, _ in self.calls]
        assert values, "no progress reported"
        assert all(0 <= v <= 100 for v in values), values
        assert values == sorted(values), values
        assert all(isinstance(m, str) and m for _, m in self.calls)
        if ends_at is not None:
            assert values[-1] == pytest.approx(ends_at)


def pdf_input(path: Path, content_type: str = "application/pdf") -> EngineInput:
    return EngineInput(path, path.name, content_type)


def image_input(path: Path) -> EngineInput:
    with Image.open(path) as image:
        return EngineInput(path, path.name, Image.MIME[image.format])


def pdfium_texts(source: Path | bytes, password: str | None = None) -> list[str]:
    doc = pdfium.PdfDocument(source, password=password)
    try:
        texts = []
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n").replace("\ufffe", "-\n"))
            textpage.close()
        return texts
    finally:
        doc.close()


@pytest.fixture
def pdf_engine() -> PdfEngine:
    engine = PdfEngine()
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def image_engine() -> ImageEngine:
    engine = ImageEngine()
    engine.start()
    yield engine
    engine.stop()


# --- parse_page_ranges -----------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "count", "expected"), [
    (None, 3, [0, 1, 2]),
    ("", 3, [0, 1, 2]),
    ("  ", 3, [0, 1, 2]),
    ("all", 2, [0, 1]),
    ("ALL", 2, [0, 1]),
    ("1", 1, [0]),
    ("1-3,5,8-", 10, [0, 1, 2, 4, 7, 8, 9]),
    ("-3", 10, [0, 1, 2]),
    ("8-", 8, [7]),
    (" 2 - 4 ", 10, [1, 2, 3]),
    ("3,1", 5, [2, 0]),          # order as asked
    ("2,2", 5, [1, 1]),          # repeats kept
    ("4-4", 5, [3]),
    ("5-10", 7, [4, 5, 6]),      # an open-ended tail is clipped to the document
    ("1-", 1, [0]),
])
def test_parse_page_ranges(spec, count, expected):
    assert parse_page_ranges(spec, count) == expected


@pytest.mark.parametrize(("spec", "count", "mentions"), [
    ("0", 5, "'0'"),
    ("0-2", 5, "'0-2'"),
    ("3-1", 5, "'3-1'"),
    ("-", 5, "'-'"),
    ("a", 5, "'a'"),
    ("1-2-3", 5, "'1-2-3'"),
    ("1;2", 5, "'1;2'"),
    ("1,,2", 5, "''"),
    ("1.5", 5, "'1.5'"),
    ("6", 5, "5-page"),
    ("6-9", 5, "5-page"),
    ("1", 0, "0-page"),
])
def test_parse_page_ranges_errors(spec, count, mentions):
    with pytest.raises(InvalidInput) as caught:
        parse_page_ranges(spec, count)
    assert mentions in caught.value.message


# --- pdf.to-text -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["multicolumn.pdf", "google-doc-document.pdf",
                                  "habibi-rotated.pdf", "minimal-document.pdf",
                                  "pdflatex-4-pages.pdf", "libreoffice-form.pdf"])
def test_to_text(pdf_engine, tmp_path, name):
    progress = Recorder()
    result = pdf_engine.run("pdf.to-text", [pdf_input(PDF / name)], ToTextParams(), tmp_path,
                            progress)
    expected = pdfium_texts(PDF / name)
    assert [p["text"] for p in result.data["pages"]] == expected
    assert result.pages == len(expected)
    assert result.outputs[0].path.read_text(encoding="utf-8").split("\f") == expected
    progress.check()
    assert len(progress.calls) == len(expected)


def test_to_text_agrees_with_pypdf_on_hyphenation(pdf_engine, tmp_path):
    """pypdf prints a hyphenated line end as '-\\n'; the engine now does too, where PDFium
    alone gives the non-character U+FFFE."""
    path = PDF / "multicolumn.pdf"
    result = pdf_engine.run("pdf.to-text", [pdf_input(path)], ToTextParams(pages="1"),
                            tmp_path, Recorder())
    ours = result.data["pages"][0]["text"]
    theirs = pypdf.PdfReader(path).pages[0].extract_text()
    breaks = [w for w in theirs.split() if w.endswith("-") and len(w) > 2]
    assert len(breaks) >= 3
    assert "\ufffe" not in ours
    for word in breaks:
        assert f"{word}\n" in ours


# --- pdf.to-image ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "params"), [
    ("habibi-rotated.pdf", {"dpi": 50}),
    ("pdflatex-4-pages.pdf", {"dpi": 150, "pages": "1,4", "format": "jpeg"}),
    ("google-doc-document.pdf", {"dpi": 96, "format": "tiff"}),
    ("crazyones-pdfa.pdf", {"scale": 0.33, "format": "webp"}),
])
def test_to_image(pdf_engine, tmp_path, name, params):
    path = PDF / name
    progress = Recorder()
    result = pdf_engine.run("pdf.to-image", [pdf_input(path)], ToImageParams(**params),
                            tmp_path, progress)
    doc = pdfium.PdfDocument(path)
    indexes = parse_page_ranges(params.get("pages"), len(doc))
    scale = params.get("scale") or params["dpi"] / 72
    assert len(result.outputs) == len(indexes) == result.pages
    for output, index in zip(result.outputs, indexes, strict=True):
        width, height = doc[index].get_size()
        with Image.open(output.path) as image:
            assert image.size == (round(width * scale), round(height * scale))
            assert Image.MIME[image.format] == output.content_type
    progress.check()
    doc.close()


def test_to_image_refuses_huge_pages(pdf_engine, tmp_path):
    with pytest.raises(InvalidInput, match="pixels"):
        pdf_engine.run("pdf.to-image", [pdf_input(PDF / "minimal-document.pdf")],
                       ToImageParams(dpi=1200, scale=20), tmp_path, Recorder())


# --- pdf.merge / pdf.split -------------------------------------------------------------------

def test_merge(pdf_engine, tmp_path):
    paths = [PDF / "pdflatex-4-pages.pdf", PDF / "habibi-rotated.pdf", PDF / "minimal-document.pdf"]
    progress = Recorder()
    result = pdf_engine.run("pdf.merge", [pdf_input(p) for p in paths], MergeParams(), tmp_path,
                            progress)
    merged = result.outputs[0].path
    assert pdfium_texts(merged) == [t for p in paths for t in pdfium_texts(p)]
    rotations = [page.rotation for page in pypdf.PdfReader(merged).pages]
    expected = [page.rotation for p in paths for page in pypdf.PdfReader(p).pages]
    assert rotations == expected  # rotated pages stay rotated
    progress.check(ends_at=90)


@pytest.mark.parametrize(("params", "groups"), [
    ({"ranges": "1-2,3-4"}, [[0, 1], [2, 3]]),
    ({"ranges": "4,1-2"}, [[3], [0, 1]]),
    ({"ranges": "3-"}, [[2, 3]]),
    ({"every": 3}, [[0, 1, 2], [3]]),
    ({"every": 10}, [[0, 1, 2, 3]]),
    ({}, [[0], [1], [2], [3]]),
])
def test_split(pdf_engine, tmp_path, params, groups):
    path = PDF / "pdflatex-outline.pdf"
    source = pdfium_texts(path)
    progress = Recorder()
    result = pdf_engine.run("pdf.split", [pdf_input(path)], SplitParams(**params), tmp_path,
                            progress)
    assert [pdfium_texts(o.path) for o in result.outputs] == [[source[i] for i in g]
                                                              for g in groups]
    assert [p["pages"] for p in result.data["parts"]] == [[i + 1 for i in g] for g in groups]
    assert len({o.path.name for o in result.outputs}) == len(groups)
    progress.check()


def test_split_range_past_the_end(pdf_engine, tmp_path):
    with pytest.raises(InvalidInput, match="4-page"):
        pdf_engine.run("pdf.split", [pdf_input(PDF / "pdflatex-outline.pdf")],
                       SplitParams(ranges="1-2,5"), tmp_path, Recorder())


# --- PDF errors ------------------------------------------------------------------------------

ENCRYPTED = DATA / "malformed" / "libreoffice-writer-password.pdf"


@pytest.mark.parametrize(("operation", "params"), [
    ("pdf.to-text", ToTextParams), ("pdf.to-image", ToImageParams), ("pdf.split", SplitParams),
])
def test_password(pdf_engine, tmp_path, operation, params):
    with pytest.raises(PasswordRequired, match="password"):
        pdf_engine.run(operation, [pdf_input(ENCRYPTED)], params(), tmp_path, Recorder())
    with pytest.raises(PasswordRequired, match="wrong"):
        pdf_engine.run(operation, [pdf_input(ENCRYPTED)], params(password="nope"), tmp_path,
                       Recorder())
    result = pdf_engine.run(operation, [pdf_input(ENCRYPTED)], params(password="openpassword"),
                            tmp_path, Recorder())
    assert result.outputs
    if operation == "pdf.to-text":
        assert [p["text"] for p in result.data["pages"]] == pdfium_texts(ENCRYPTED, "openpassword")


def test_merge_of_encrypted_pdf_asks_for_password(pdf_engine, tmp_path):
    with pytest.raises(PasswordRequired):
        pdf_engine.run("pdf.merge", [pdf_input(PDF / "minimal-document.pdf"), pdf_input(ENCRYPTED)],
                       MergeParams(), tmp_path, Recorder())


@pytest.mark.parametrize("operation", ["pdf.to-text", "pdf.to-image", "pdf.split"])
@pytest.mark.parametrize("name", ["qpdf-bad1.pdf", "qpdf-bad-direct-root.pdf",
                                  "qpdf-fuzz-16214.pdf"])
def test_unreadable_pdf(pdf_engine, tmp_path, operation, name):
    params = {"pdf.to-text": ToTextParams, "pdf.to-image": ToImageParams,
              "pdf.split": SplitParams}[operation]()
    with pytest.raises(InvalidInput, match="damaged") as caught:
        pdf_engine.run(operation, [pdf_input(DATA / "malformed" / name)], params, tmp_path,
                       Recorder())
    assert type(caught.value) is InvalidInput


@pytest.mark.parametrize("name", ["qpdf-bad-jpeg.pdf", "qpdf-bad-token-startxref.pdf",
                                  "qpdf-broken-lzw.pdf", "qpdf-damaged-stream.pdf",
                                  "qpdf-eof-reading-token.pdf"])
def test_recoverable_pdf(pdf_engine, tmp_path, name):
    path = DATA / "malformed" / name
    result = pdf_engine.run("pdf.to-text", [pdf_input(path)], ToTextParams(), tmp_path, Recorder())
    assert [p["text"] for p in result.data["pages"]] == pdfium_texts(path)
    result = pdf_engine.run("pdf.to-image", [pdf_input(path)], ToImageParams(dpi=20), tmp_path,
                            Recorder())
    assert len(result.outputs) == len(pdfium_texts(path))


# --- image.to-pdf ----------------------------------------------------------------------------

def _save(image: Image.Image, path: Path, fmt: str, **kwargs) -> Path:
    image.save(path, fmt, **kwargs)
    return path


def _page_colour(pdf: Path, index: int = 0) -> tuple[int, ...]:
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[index].render(scale=1).to_pil().convert("RGB")
        return image.getpixel((image.width // 2, image.height // 2))
    finally:
        doc.close()


def test_to_pdf_default_page_size(image_engine, tmp_path):
    receipt = DATA / "receipts" / "sroie_002.jpg"
    progress = Recorder()
    result = image_engine.run("image.to-pdf", [image_input(receipt)], ToPdfParams(), tmp_path,
                              progress)
    page = pypdf.PdfReader(result.outputs[0].path).pages[0]
    with Image.open(receipt) as image:
        dpi = image.info["dpi"]
        assert float(page.mediabox.width) == pytest.approx(image.width * 72 / dpi[0], abs=0.01)
        assert float(page.mediabox.height) == pytest.approx(image.height * 72 / dpi[1], abs=0.01)
    progress.check(ends_at=80)


@pytest.mark.parametrize(("name", "make", "fmt", "colour"), [
    # half-transparent red over white paper is pink, not dark red or black
    ("rgba.png", lambda: Image.new("RGBA", (60, 40), (255, 0, 0, 128)), "PNG", (255, 127, 127)),
    ("rgba.tiff", lambda: Image.new("RGBA", (60, 40), (255, 0, 0, 128)), "TIFF", (255, 127, 127)),
    ("clear.png", lambda: Image.new("RGBA", (60, 40), (0, 0, 0, 0)), "PNG", (255, 255, 255)),
    ("grey16.png", lambda: Image.new("I;16", (60, 40), 40000), "PNG", (156, 156, 156)),
    ("palette.gif", lambda: Image.new("RGB", (60, 40), (0, 0, 255)).convert("P"), "GIF",
     (0, 0, 255)),
    ("cmyk.jpg", lambda: Image.new("CMYK", (60, 40), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
    ("photo.webp", lambda: Image.new("RGB", (60, 40), (0, 128, 0)), "WEBP", (0, 128, 0)),
])
def test_to_pdf_image_kinds(image_engine, tmp_path, name, make, fmt, colour):
    source = _save(make(), tmp_path / name, fmt)
    out = tmp_path / "out"
    out.mkdir()
    result = image_engine.run("image.to-pdf", [image_input(source)], ToPdfParams(), out, Recorder())
    got = _page_colour(result.outputs[0].path)
    assert all(abs(a - b) <= 3 for a, b in zip(got, colour, strict=True)), (got, colour)
    page = pypdf.PdfReader(result.outputs[0].path).pages[0]
    ratio = float(page.mediabox.width) / float(page.mediabox.height)
    assert ratio == pytest.approx(60 / 40, rel=1e-3)


@pytest.mark.parametrize("weasyprint_loaded", [False, True])
def test_to_pdf_unreadable_image(image_engine, tmp_path, weasyprint_loaded):
    if weasyprint_loaded:  # it makes Pillow accept truncated images process-wide
        import weasyprint  # noqa: F401
    path = tmp_path / "cut.png"
    path.write_bytes(_save(Image.new("RGB", (50, 50), (1, 2, 3)), tmp_path / "x.png", "PNG")
                     .read_bytes()[:60])
    with pytest.raises(InvalidInput, match=r"cut\.png"):
        image_engine.run("image.to-pdf", [EngineInput(path, "cut.png", "image/png")],
                         ToPdfParams(), tmp_path, Recorder())


# --- image.convert ---------------------------------------------------------------------------

def _tiff(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def test_convert_every_frame(image_engine, tmp_path):
    frames = [Image.new("RGB", (50 + 10 * i, 30 + 5 * i), (40 * i, 255 - 40 * i, 7))
              for i in range(5)]
    source = tmp_path / "scan.tif"
    source.write_bytes(_tiff(frames))
    out = tmp_path / "out"
    out.mkdir()
    progress = Recorder()
    result = image_engine.run("image.convert", [EngineInput(source, source.name, "image/tiff")],
                              ConvertParams(format="png"), out, progress)
    assert len(result.outputs) == len(frames) == result.pages
    for output, frame in zip(result.outputs, frames, strict=True):
        with Image.open(output.path) as image:
            assert image.size == frame.size
            assert ImageChops.difference(image.convert("RGB"), frame).getbbox() is None
    assert [(i["width"], i["height"]) for i in result.data["images"]] == [f.size for f in frames]
    progress.check()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "tiff", "gif", "bmp"])
@pytest.mark.parametrize(("mode", "colour", "expected"), [
    ("CMYK", (0, 255, 0, 0), (255, 0, 255)),          # magenta
    ("RGBA", (0, 0, 0, 0), None),                     # fully transparent
    ("I;16", 40000, (156, 156, 156)),                 # 16-bit grey: 40000 / 256
    ("P", 0, (0, 0, 0)),
    ("LA", (100, 255), (100, 100, 100)),
])
def test_convert_modes(image_engine, tmp_path, fmt, mode, colour, expected):
    source_format = {"CMYK": "JPEG", "RGBA": "PNG", "I;16": "PNG", "P": "GIF", "LA": "PNG"}[mode]
    source = _save(Image.new(mode, (40, 30), colour), tmp_path / f"in.{source_format.lower()}",
                   source_format)
    out = tmp_path / "out"
    out.mkdir()
    result = image_engine.run("image.convert", [image_input(source)], ConvertParams(format=fmt),
                              out, Recorder())
    (output,) = result.outputs
    with Image.open(output.path) as image:
        assert image.size == (40, 30)
        assert Image.MIME[image.format] == output.content_type
        if image.mode.startswith("I"):  # PNG and TIFF keep all 16 bits
            assert image.getpixel((20, 15)) == colour
            return
        pixel = image.convert("RGBA").getpixel((20, 15))
    if expected is None:  # transparency kept where the format has it, else white paper
        if pixel[3] == 0:
            return
        expected = (255, 255, 255)
    assert pixel[3] == 255
    tolerance = 6 if fmt in ("jpeg", "webp") else 1
    rgb = pixel[:3]  # the alpha is checked above
    assert all(abs(a - b) <= tolerance
               for a, b in zip(rgb, expected, strict=True)), (pixel, expected)


def _patch_tiff_frame_size(content: bytes, frame: int, size: int) -> bytes:
    """Rewrite ImageWidth/ImageLength of one IFD of a little-endian TIFF."""
    data = bytearray(content)
    assert data[:4] == b"II*\x00"
    offset, index = struct.unpack_from("<I", data, 4)[0], 0
    while offset:
        count = struct.unpack_from("<H", data, offset)[0]
        for entry in range(count):
            at = offset + 2 + 12 * entry
            tag, kind = struct.unpack_from("<HH", data, at)
            if index == frame and tag in (256, 257):
                struct.pack_into("<H" if kind == 3 else "<I", data, at + 8, size)
        offset = struct.unpack_from("<I", data, offset + 2 + 12 * count)[0]
        index += 1
    return bytes(data)


@pytest.mark.parametrize("operation", ["image.convert", "image.to-pdf"])
def test_decompression_bomb_in_a_later_frame(image_engine, tmp_path, operation):
    """Pillow checks only the first frame's size when it opens a file; a TIFF whose second
    frame declares 60000 x 60000 pixels must be refused as bad input, not decoded."""
    source = tmp_path / "bomb.tif"
    content = _tiff([Image.new("L", (10, 10)), Image.new("L", (100, 100))])
    source.write_bytes(_patch_tiff_frame_size(content, 1, 60000))
    with Image.open(source) as image:  # what Pillow itself says about the file
        assert image.size == (10, 10)
        image.seek(1)
        assert image.size == (60000, 60000)
    params = ConvertParams(format="png") if operation == "image.convert" else ToPdfParams()
    with pytest.raises(InvalidInput, match=r"too large|decompression bomb"):
        image_engine.run(operation, [EngineInput(source, "bomb.tif", "image/tiff")], params,
                         tmp_path, Recorder())


def test_convert_unreadable_image(image_engine, tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InvalidInput, match=r"fake\.png"):
        image_engine.run("image.convert", [EngineInput(path, "fake.png", "image/png")],
                         ConvertParams(format="jpeg"), tmp_path, Recorder())


@pytest.mark.parametrize("params, expected", [
    ({"width": 300, "height": 300}, (232, 300)),          # letter page fitted into the box
    ({"width": 306}, (306, 396)),                         # one side given: the other follows
    ({"width": 300, "height": 300, "keep_proportions": False}, (300, 300)),
])
def test_pdf_to_image_fits_the_requested_pixel_box(tmp_path, params, expected):
    from docmill.engines.pdf.render import PdfEngine, ToImageParams

    page = tmp_path / "letter.pdf"
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.write(page)
    result = PdfEngine().run("pdf.to-image", [EngineInput(page, "letter.pdf", "application/pdf")],
                             ToImageParams(format="png", **params), tmp_path, lambda *a: None)
    with Image.open(result.outputs[0].path) as image:
        assert image.size == expected
