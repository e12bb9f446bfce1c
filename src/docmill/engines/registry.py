"""Which engines exist, which operations they offer, and their warm instances.

Engine classes are listed here once. Instances are created lazily, one per process, and
started on first use (or at worker boot via `warm_up`), so a worker child keeps its engines
warm across jobs and the API process never loads one.

Engine modules import their heavy libraries (Pillow, pypdf, PDFium, pikepdf, img2pdf...)
inside the functions that use them, so the API process, which only reads the operation
catalog (`operations()`: names, parameter models, accepted types), never loads them
(tests/unit/test_lazy_imports.py holds it to that).
"""

from __future__ import annotations

from functools import cache

from docmill.engines.base import Engine, Operation
from docmill.errors import InvalidInput


@cache
def engine_classes() -> tuple[type[Engine], ...]:
    from docmill.engines.archive import ArchiveEngine
    from docmill.engines.html.spreadsheet import SpreadsheetEngine
    from docmill.engines.html.to_pdf import HtmlEngine
    from docmill.engines.image import ImageEngine
    from docmill.engines.ocr.pipeline import OcrEngine
    from docmill.engines.office.engine import OfficeEngine
    from docmill.engines.pdf.render import PdfEngine
    from docmill.settings import get_settings

    classes: list[type[Engine]] = [PdfEngine, ImageEngine, OfficeEngine, HtmlEngine,
                                   SpreadsheetEngine, OcrEngine, ArchiveEngine]
    from docmill.engines.html.printing import HtmlPrintEngine

    classes.append(HtmlPrintEngine)
    from docmill.engines.pdf.tools import PdfToolsEngine

    classes.append(PdfToolsEngine)
    from docmill.engines.extract.fields import ExtractEngine
    from docmill.engines.extract.identify import IdentifyEngine

    classes += [ExtractEngine, IdentifyEngine]
    if get_settings().enable_diagnostics:
        from docmill.engines.diagnostic import DiagnosticEngine

        classes.append(DiagnosticEngine)
    return tuple(classes)


@cache
def operations() -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    for cls in engine_classes():
        for op in cls.operations:
            ops[op.name] = op
    return ops


def get_operation(name: str) -> Operation:
    try:
        return operations()[name]
    except KeyError:
        known = ", ".join(sorted(operations()))
        raise InvalidInput(f"unknown operation {name!r}; this server offers: {known}") from None


_instances: dict[str, Engine] = {}


def engine_for(operation: Operation) -> Engine:
    instance = _instances.get(operation.engine)
    if instance is None:
        cls = next(c for c in engine_classes() if c.name == operation.engine)
        instance = cls()
        instance.start()
        _instances[operation.engine] = instance
    return instance


def warm_up() -> None:
    for op in operations().values():
        engine_for(op)


def stop_all() -> None:
    """Worker shutdown: every warm engine stopped, and every program a supervisor still runs
    in this process (the LibreOffice the spreadsheet and PDF/A engines may have started
    without the office engine, say)."""
    from docmill.engines import supervisor

    for instance in _instances.values():
        instance.stop()
    _instances.clear()
    supervisor.stop_all()
