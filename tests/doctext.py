"""Reading documents back for the conversion tests: the text of a source document with the
format's own Python library, the text and page count of a PDF with pypdfium2, and a crude
"enough of the source's words are in the output" check that survives line breaks,
hyphenation and column layout."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pypdfium2 as pdfium


def pdf_pages_text(data: bytes | Path) -> list[str]:
    doc = pdfium.PdfDocument(data if isinstance(data, Path) else io.BytesIO(data))
    try:
        texts = []
        for page in doc:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return texts
    finally:
        doc.close()


def docx_text(path: Path | io.BytesIO) -> str:
    import docx

    document = docx.Document(path)
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    for section in document.sections:
        for part in (section.header, section.footer):
            if not part.is_linked_to_previous:
                parts.extend(p.text for p in part.paragraphs)
    return "\n".join(parts)


def odf_text(path: Path | io.BytesIO) -> str:
    from odf import teletype, text
    from odf.opendocument import load

    document = load(path)
    parts = [teletype.extractText(p) for p in document.getElementsByType(text.P)]
    parts += [teletype.extractText(h) for h in document.getElementsByType(text.H)]
    return "\n".join(parts)


def xlsx_text(path: Path | io.BytesIO) -> str:
    import openpyxl

    workbook = openpyxl.load_workbook(path, data_only=True)
    return "\n".join(str(cell) for sheet in workbook if sheet.sheet_state == "visible"
                     for row in sheet.iter_rows(values_only=True) for cell in row
                     if cell is not None)


def pptx_text(path: Path | io.BytesIO) -> str:
    with zipfile.ZipFile(path) as package:
        slides = [n for n in package.namelist() if re.match(r"ppt/slides/slide\d+\.xml$", n)]
        return "\n".join(" ".join(re.findall(r"<a:t>([^<]*)</a:t>", package.read(n).decode()))
                         for n in slides)


def source_text(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".docx":
        return docx_text(path)
    if ext in (".odt", ".ods", ".odp"):
        return odf_text(path)
    if ext == ".xlsx":
        return xlsx_text(path)
    if ext == ".pptx":
        return pptx_text(path)
    raise ValueError(ext)


def words(text: str, min_len: int = 4) -> list[str]:
    return [w for w in re.findall(r"[^\W\d_]+", text) if len(w) >= min_len]


def squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.replace("\u00ad", "")).lower()


def coverage(source: str, output: str) -> float:
    """Share of the source's words (4+ letters) found in the output, ignoring layout."""
    wanted = words(source)
    if not wanted:
        return 1.0
    haystack = squash(output)
    return sum(squash(w) in haystack for w in wanted) / len(wanted)
