"""Debian's pyuno in the virtualenv, and the UNO vocabulary the office engine speaks.

`load_uno()` imports `uno` from LibreOffice's program folder without letting the system's
dist-packages shadow the virtualenv; `_make_interaction_handler` answers every question
LibreOffice would ask a person (password prompts, package repair); the rest turns UNO
values and errors into what the engine reports.
"""

from __future__ import annotations

import builtins
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from docmill.engines.office.formats import FAMILY_SERVICES
from docmill.errors import EngineFailed

log = logging.getLogger(__name__)


PROGRAM_DIRS = ("/usr/lib/libreoffice/program", "/opt/libreoffice/program")
UNO_PY_DIRS = ("/usr/lib/python3/dist-packages",)


_uno: Any = None


def program_dir() -> Path:
    from docmill.settings import get_settings

    configured = get_settings().office_program_dir
    for candidate in ([configured] if configured else []) + list(PROGRAM_DIRS):
        if candidate and (Path(candidate) / "soffice.bin").exists():
            return Path(candidate)
    raise EngineFailed("LibreOffice is not installed (no soffice.bin in "
                       f"{', '.join(PROGRAM_DIRS)}): run scripts/setup.sh, or use the core "
                       "container image (the slim one has no LibreOffice)")


def load_uno() -> Any:
    """Import Debian's `uno` module into this (virtualenv) interpreter.

    Only LibreOffice's program folder goes on sys.path (it holds `pyuno.so`); `uno.py` and
    `unohelper.py` are loaded by file name, so nothing else from the system's dist-packages
    can shadow the virtualenv's packages.
    """
    global _uno
    if _uno is not None:
        return _uno
    program = str(program_dir())
    if program not in sys.path:
        sys.path.append(program)
    original_import = builtins.__import__
    for name in ("uno", "unohelper"):
        if name in sys.modules:
            continue
        for folder in (program, *UNO_PY_DIRS):
            path = Path(folder) / f"{name}.py"
            if path.exists():
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except Exception:
                    del sys.modules[name]
                    raise
                break
        else:
            raise EngineFailed(f"python3-uno is not installed ({name}.py not found)")
    import uno  # noqa: PLC0415

    # uno.py replaces builtins.__import__ with a hook that turns every failed import into a
    # plain ImportError (never ModuleNotFoundError), which breaks libraries that probe for
    # optional modules (tqdm, imported by RapidOCR in the same worker). Docmill never uses
    # `from com.sun.star... import`, so Python's own import goes back in place.
    builtins.__import__ = original_import
    _uno = uno
    return uno


def _props(uno: Any, **values: Any) -> tuple[Any, ...]:
    out = []
    for name, value in values.items():
        prop = uno.createUnoStruct("com.sun.star.beans.PropertyValue")
        prop.Name, prop.Value = name, value
        out.append(prop)
    return tuple(out)


def _uno_type_name(value: Any) -> str:
    cls = type(value)
    return str(getattr(cls, "__pyunostruct__", None) or getattr(value, "typeName", "")
               or cls.__name__)


def _make_interaction_handler(uno: Any) -> Any:
    """An XInteractionHandler answering for the absent user (built lazily: needs unohelper).

    Requests are told apart by the answers they offer, not by `getRequest()`: pyuno cannot
    turn the exception a request carries into a Python object under Python 3.11 (it fails
    setting `args`). A password prompt offers XInteractionPassword; a damaged package asks
    yes/no (approve = repair) without an abort; everything else is aborted.
    """
    import unohelper  # noqa: PLC0415

    xhandler = uno.getClass("com.sun.star.task.XInteractionHandler")

    class Handler(unohelper.Base, xhandler):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.password_asked = 0
            self.repaired = False
            self.questions = 0

        def handle(self, request: Any) -> None:
            try:
                self._answer(request)
            except Exception:  # never let a Python error become a stuck dialog
                log.exception("office: interaction handler failed")

        def _answer(self, request: Any) -> None:
            offered: dict[str, Any] = {}
            for cont in request.getContinuations():
                for type_ in cont.getTypes():
                    name = type_.typeName.rsplit(".", 1)[-1]
                    if name.startswith("XInteraction"):
                        offered.setdefault(name[len("XInteraction"):].rstrip("2"), cont)
            self.questions += 1
            if "Password" in offered:
                self.password_asked += 1
                choice = offered.get("Abort")
            elif "Abort" not in offered and "Approve" in offered and "Disapprove" in offered:
                self.repaired = True  # "the file is corrupt; repair it?"
                choice = offered["Approve"]
            else:
                choice = (offered.get("Abort") or offered.get("Disapprove")
                          or offered.get("Approve"))
            if choice is not None:
                choice.select()

    return Handler()


def _family(doc: Any) -> str:
    for service, family in FAMILY_SERVICES:
        if doc.supportsService(service):
            return family
    return "writer"


def _uno_message(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    message = getattr(exc, "Message", None) or str(exc)
    return f"{_uno_type_name(exc).rsplit('.', 1)[-1]}: {message}".strip()


def _is_bridge_error(exc: BaseException) -> bool:
    name = _uno_type_name(exc)
    return "DisposedException" in name or "Binary URP bridge" in str(exc)


def _load_error_message(exc: BaseException) -> str:
    detail = getattr(exc, "Message", "") or str(exc)
    return ("LibreOffice could not open the document: it is damaged or not in the format its "
            f"type suggests ({_uno_type_name(exc).rsplit('.', 1)[-1]}"
            f"{': ' + detail.strip() if detail.strip() else ''})")
