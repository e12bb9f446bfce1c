"""What the office engine converts: the formats LibreOffice reads and writes, with their
filters and families, the sniffed input types it takes, and the operations' parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from docmill.engines.base import Params


@dataclass(frozen=True)
class Format:
    ext: str
    family: str  # writer | calc | impress
    content_type: str
    filter: str  # LibreOffice export filter name
    filter_options: str = ""


FORMATS: dict[str, Format] = {f.ext: f for f in (
    Format("docx", "writer",
           "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
           "MS Word 2007 XML"),
    Format("doc", "writer", "application/msword", "MS Word 97"),
    Format("odt", "writer", "application/vnd.oasis.opendocument.text", "writer8"),
    Format("rtf", "writer", "text/rtf", "Rich Text Format"),
    Format("txt", "writer", "text/plain", "Text (encoded)", "UTF8"),
    Format("xlsx", "calc", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "Calc MS Excel 2007 XML"),
    Format("xls", "calc", "application/vnd.ms-excel", "MS Excel 97"),
    Format("ods", "calc", "application/vnd.oasis.opendocument.spreadsheet", "calc8"),
    Format("csv", "calc", "text/csv", "Text - txt - csv (StarCalc)", "44,34,76,1"),
    Format("pptx", "impress",
           "application/vnd.openxmlformats-officedocument.presentationml.presentation",
           "Impress MS PowerPoint 2007 XML"),
    Format("ppt", "impress", "application/vnd.ms-powerpoint", "MS PowerPoint 97"),
    Format("odp", "impress", "application/vnd.oasis.opendocument.presentation", "impress8"),
)}
PDF_FILTERS = {"writer": "writer_pdf_Export", "calc": "calc_pdf_Export",
               "impress": "impress_pdf_Export", "draw": "draw_pdf_Export"}
FAMILY_SERVICES = (("com.sun.star.sheet.SpreadsheetDocument", "calc"),
                   ("com.sun.star.presentation.PresentationDocument", "impress"),
                   ("com.sun.star.drawing.DrawingDocument", "draw"),
                   ("com.sun.star.text.TextDocument", "writer"))

# Sniffed input type -> the extension LibreOffice's type detection should see.
INPUT_TYPES: dict[str, str] = {f.content_type: f.ext for f in FORMATS.values()}
INPUT_TYPES.update({
    "application/rtf": "rtf",
    "text/richtext": "rtf",
    "application/vnd.ms-word": "doc",
    "application/vnd.ms-office": "",  # generic OLE: the name decides
    "application/x-ole-storage": "",
    "application/cdfv2": "",
    "application/encrypted": "",  # an encrypted OOXML package is an OLE container
    "application/zip": "",
})
OFFICE_INPUTS = frozenset(INPUT_TYPES)
CONVERT_TARGETS = {"writer": ("docx", "odt", "doc", "rtf", "txt"),
                   "calc": ("xlsx", "ods", "xls", "csv"),
                   "impress": ("pptx", "odp", "ppt")}
PDF_VERSIONS = {"pdf": 0, "pdfa-1b": 1, "pdfa-2b": 2, "pdfa-3b": 3}


class ToPdfParams(Params):
    pages: str | None = Field(None, description="Page ranges to export, e.g. '1-3,5'; all "
                              "when empty.")
    pdf_format: Literal["pdf", "pdfa-1b", "pdfa-2b", "pdfa-3b"] = Field(
        "pdf", description="Plain PDF or an archival PDF/A conformance level.")
    password: str | None = Field(None, description="Password of an encrypted document.")
    tagged: bool = Field(False, description="Write a tagged (accessible) PDF.")
    single_page_sheets: bool = Field(False, description="Spreadsheets: one page per sheet.")


class ConvertParams(Params):
    format: Literal["docx", "odt", "doc", "rtf", "txt", "xlsx", "ods", "xls", "csv", "pptx",
                    "odp", "ppt"]
    password: str | None = Field(None, description="Password of an encrypted document.")
