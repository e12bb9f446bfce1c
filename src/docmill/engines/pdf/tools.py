"""The pikepdf engine: PDF tools that edit a document's structure (rotate, compress, protect
and unprotect, watermark, PDF/A, extract and delete pages, metadata), one module each.

Every input is first opened with PDFium through `open_pdfium` (render.py), so a damaged or
encrypted document gets the same classified error (`InvalidInput`, `PasswordRequired`) as
with every other `pdf.*` operation, even where qpdf alone would have patched up a file no
viewer can show. The editing itself is pikepdf (qpdf): it rewrites only what changes, keeps
outlines, forms, tags and XMP metadata, and repairs small damage (reported in the job's
warnings); `editing.py` opens and writes for every operation.

Encryption: an encrypted input opens with its user or owner password in `password`. Its
output keeps the input's encryption (same passwords, same permissions) for every operation
but `pdf.unprotect` (which removes it), `pdf.protect` (which replaces it) and `pdf.to-pdfa`
(PDF/A forbids encryption). Changing a document's protection needs its password, even when
it opens without one (an owner password that only restricts permissions).

The operations: `pages.py` (rotate, extract, delete pages, metadata), `protection.py`,
`compress.py`, `watermark.py` (real text drawn by PDFium, placed as a form XObject) and
`pdfa.py` (Ghostscript when installed, else LibreOffice's PDF import through the worker's
LibreOffice; the result must declare PDF/A in its XMP metadata or the job fails); their
parameters are in `params.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from docmill.engines.base import Engine, EngineInput, EngineResult, Operation, Params, Progress
from docmill.engines.pdf.compress import compress
from docmill.engines.pdf.pages import delete_pages, extract, metadata, rotate
from docmill.engines.pdf.params import (
    CompressParams,
    DeletePagesParams,
    ExtractParams,
    MetadataParams,
    ProtectParams,
    RotateParams,
    ToPdfaParams,
    UnprotectParams,
    WatermarkParams,
)
from docmill.engines.pdf.pdfa import to_pdfa
from docmill.engines.pdf.protection import protect, unprotect
from docmill.engines.pdf.render import PDF
from docmill.engines.pdf.watermark import watermark

Handler = Callable[[EngineInput, Any, Path, Progress], EngineResult]


class PdfToolsEngine(Engine):
    name = "pdftools"
    operations = (
        Operation("pdf.rotate", "Rotate pages by 90, 180 or 270 degrees.",
                  RotateParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.compress", "Make a PDF smaller: downsample and JPEG-recompress "
                  "images, recompress streams losslessly.",
                  CompressParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.protect", "Encrypt a PDF (AES-256) with user/owner passwords and "
                  "permissions.", ProtectParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.unprotect", "Remove a PDF's encryption, given its password.",
                  UnprotectParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.watermark", "Stamp text on pages (size, opacity, angle, position).",
                  WatermarkParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.to-pdfa", "Convert a PDF to archival PDF/A-1b, 2b or 3b.",
                  ToPdfaParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.extract", "Keep only the given pages, in the order given.",
                  ExtractParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.delete-pages", "Remove the given pages.",
                  DeletePagesParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.metadata", "Set the title, author, subject and keywords.",
                  MetadataParams, PDF, ("pdf",), engine="pdftools"),
    )
    handlers: ClassVar[dict[str, Handler]] = {
        "pdf.rotate": rotate, "pdf.compress": compress, "pdf.protect": protect,
        "pdf.unprotect": unprotect, "pdf.watermark": watermark, "pdf.to-pdfa": to_pdfa,
        "pdf.extract": extract, "pdf.delete-pages": delete_pages, "pdf.metadata": metadata,
    }

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        return self.handlers[operation](inputs[0], params, workdir, progress)
