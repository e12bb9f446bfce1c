"""Opening a PDF for editing and writing it back, shared by every `tools.py` operation.

PDFium (`open_pdfium`) decides whether the file is readable and the password right, so a
damaged or encrypted document gets the same classified error as with every other `pdf.*`
operation; pikepdf (qpdf) then edits, and its repairs become the job's warnings. The
output keeps the input's encryption unless the operation says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmill.engines.base import EngineInput, EngineOutput, EngineResult, Progress
from docmill.engines.pdf.render import open_pdfium
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired

if TYPE_CHECKING:
    import pikepdf


MAX_WARNINGS = 10


Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1, 0, 0, 1, 0, 0)


@dataclass
class Opened:
    pdf: pikepdf.Pdf
    pages: int
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # qpdf's, while reading and writing

    def all_warnings(self) -> list[str]:
        found = list(self.warnings)
        if self.repairs:
            shown = "; ".join(w.split(": ", 1)[-1] for w in self.repairs[:3])
            found.insert(0, f"the PDF is damaged; {len(self.repairs)} problem(s) were "
                         f"repaired ({shown})")
        return found[:MAX_WARNINGS]

    @property
    def password_matched(self) -> str | None:
        if not self.pdf.is_encrypted:
            return None
        if self.pdf.owner_password_matched:
            return "owner"
        return "user" if self.pdf.user_password_matched else None


@contextmanager
def open_document(item: EngineInput, password: str | None) -> Iterator[Opened]:
    """PDFium decides whether the file is readable and the password right; pikepdf edits."""
    import pikepdf

    with open_pdfium(item.path, password) as doc:
        pages = len(doc)
    try:
        pdf = pikepdf.open(item.path, password=password or "")
    except pikepdf.PasswordError as exc:
        raise PasswordRequired("the PDF is encrypted: " + (
            "the password is wrong" if password else "give its password in 'password'")) from exc
    except Exception as exc:  # qpdf's errors for files PDFium could read are rare
        raise InvalidInput(f"the PDF is damaged and cannot be edited ({exc})") from exc
    try:
        if len(pdf.pages) == 0:
            raise InvalidInput("the PDF has no pages")
        yield Opened(pdf, pages, repairs=[str(w) for w in pdf.get_warnings()])
    finally:
        pdf.close()


def _save(opened: Opened, out: Path, progress: Progress, start: float, *,
          encryption: pikepdf.Encryption | bool | None = None, **options: Any) -> None:
    """Write with qpdf; the input's encryption is kept unless told otherwise."""
    pdf = opened.pdf
    if encryption is None:
        encryption = pdf.is_encrypted

    def saving(percent: int) -> None:
        progress(start + (99 - start) * percent / 100, "writing the PDF")

    try:
        pdf.save(out, encryption=encryption, progress=saving, **options)
    except Exception as exc:
        raise EngineFailed(f"cannot write the PDF ({exc})") from exc
    progress(100, "wrote the PDF")
    opened.repairs += [str(w) for w in pdf.get_warnings()]  # (each call drains qpdf's list)


def _result(out: Path, opened: Opened, processed: int, **data: Any) -> EngineResult:
    return EngineResult(outputs=[EngineOutput(out, "application/pdf")], data=data,
                        warnings=opened.all_warnings(), pages=processed)


def _normal_rotation(page: pikepdf.Page) -> int:
    try:
        value = int(page.obj.get("/Rotate", 0))
    except (TypeError, ValueError):
        value = 0
    return (round(value / 90) * 90) % 360
