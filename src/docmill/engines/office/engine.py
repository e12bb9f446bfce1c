"""Office documents to PDF and between office formats, with LibreOffice driven over UNO.

One headless `soffice.bin` per worker process, started on the first office job in that
process and reused across jobs (`OfficeProcess`). The worker talks to it in-process through
Debian's pyuno over a private named pipe; every instance has its own pipe name and its own
throw-away user profile, so two workers never share state.

Supervision, because LibreOffice does crash and hang on hostile documents:

- before each job the process is checked (`poll()`) and pinged over UNO with a short deadline;
  a dead or unresponsive instance is killed and a fresh one started, so a crash on one
  document never costs the next job more than a restart (about a second);
- a watchdog kills the instance when one document runs past `office_document_timeout_s`;
  the blocked UNO call then fails at once (the pipe closes), the job fails with `Timeout`,
  and the next job gets a new instance;
- between jobs, never during one, the instance is recycled after
  `office_max_conversions` documents or when its resident memory passes
  `office_max_memory_mb`;
- `soffice.bin` is started directly (not through the `soffice` script and `oosplash`, which
  would put another process in between) in its own process group with
  `PR_SET_PDEATHSIG=SIGKILL`, so when the runner's job timeout kills the worker child the
  office process dies with it; stale profile folders of dead workers are swept at start.

Documents are loaded hidden, read-only, with macros never executed and links never updated,
through an interaction handler that answers every question LibreOffice would ask a person:
password prompts become `PasswordRequired`, a damaged package is repaired (with a warning),
anything else is declined.
"""

from __future__ import annotations

import builtins
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
)
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired, Timeout

log = logging.getLogger(__name__)

PROGRAM_DIRS = ("/usr/lib/libreoffice/program", "/opt/libreoffice/program")
UNO_PY_DIRS = ("/usr/lib/python3/dist-packages",)
PROFILE_PREFIX = "docmill-lo-"

# --- formats ---------------------------------------------------------------------------------


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


# --- pyuno -----------------------------------------------------------------------------------

_uno: Any = None


def program_dir() -> Path:
    from docmill.settings import get_settings

    configured = get_settings().office_program_dir
    for candidate in ([configured] if configured else []) + list(PROGRAM_DIRS):
        if candidate and (Path(candidate) / "soffice.bin").exists():
            return Path(candidate)
    raise EngineFailed("LibreOffice is not installed (no soffice.bin in "
                       f"{', '.join(PROGRAM_DIRS)}); run scripts/setup.sh")


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


# --- the supervised soffice process ----------------------------------------------------------

_PR_SET_PDEATHSIG = 1


_prctl: Any = None


def _load_prctl() -> Any:
    """Resolved in the parent: the forked child of a threaded worker must not dlopen."""
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # not Linux
            _prctl = False
    return _prctl


def _child_setup(parent: int) -> None:
    """In the forked child before exec: die with the worker, even if it is SIGKILLed."""
    if _prctl:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_profiles(root: Path) -> None:
    """Remove profile folders left behind by workers that were killed."""
    for entry in root.glob(f"{PROFILE_PREFIX}*"):
        try:
            owner = int(entry.name[len(PROFILE_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner != os.getpid() and not _pid_alive(owner):
            shutil.rmtree(entry, ignore_errors=True)


def _template_dir() -> Path:
    """An initialised profile kept per worker process, copied for every new instance."""
    return Path(tempfile.gettempdir()) / f"{PROFILE_PREFIX}{os.getpid()}-template"


class OfficeDied(Exception):
    """The office process died or stopped answering while working on a document."""


class OfficeProcess:
    """One headless LibreOffice and the UNO bridge to it."""

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: Path | None = None
        self.pipe = ""
        self.desktop: Any = None
        self.context: Any = None
        self.conversions = 0
        self.started_at = 0.0
        self.killed_by_watchdog = False

    # -- lifecycle --

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        uno = load_uno()
        program = program_dir()
        tmp = Path(tempfile.gettempdir())
        sweep_stale_profiles(tmp)
        token = f"{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.profile = tmp / f"{PROFILE_PREFIX}{token}"
        template = _template_dir()
        if template.is_dir():  # initialised by an earlier start in this worker: skip a restart
            shutil.copytree(template, self.profile, symlinks=True)
        else:
            self.profile.mkdir(mode=0o700)
            _write_profile_defaults(self.profile)
        self.pipe = f"docmill-{token}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DOCMILL_"))}
        env.update({
            "SAL_USE_VCLPLUGIN": "svp",  # headless rendering, no display needed
            "HOME": str(self.profile),
            # Anything a document links to over HTTP goes to a closed local port.
            "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
            "no_proxy": "", "NO_PROXY": "",
        })
        args = [str(program / "soffice.bin"), "--headless", "--invisible", "--nologo",
                "--norestore", "--nodefault", "--nolockcheck", "--nofirststartwizard",
                f"-env:UserInstallation={self.profile.as_uri()}",
                f"--accept=pipe,name={self.pipe};urp;StarOffice.ComponentContext"]
        parent = os.getpid()
        _load_prctl()

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=self.profile, start_new_session=True,
                preexec_fn=lambda: _child_setup(parent))  # noqa: PLW1509 - prctl runs in the child

        self.started_at = time.monotonic()
        self.proc = spawn()
        restarted = False
        self.conversions = 0
        self.killed_by_watchdog = False
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", local)
        url = f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext"
        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                if code == 81 and not restarted:
                    # A fresh profile makes LibreOffice initialise it and ask for a restart
                    # (oosplash would do this for the `soffice` script); start it again.
                    restarted = True
                    if not template.exists():
                        try:
                            shutil.copytree(self.profile, template, symlinks=True)
                        except OSError:
                            shutil.rmtree(template, ignore_errors=True)
                    self.proc = spawn()
                    continue
                self.kill()
                raise EngineFailed(f"LibreOffice exited at start (code {code})")
            try:
                self.context = resolver.resolve(url)
                self.desktop = self.context.ServiceManager.createInstanceWithContext(
                    "com.sun.star.frame.Desktop", self.context)
                log.info("office: started soffice pid %s in %.1f s", self.proc.pid,
                         time.monotonic() - self.started_at)
                return
            except Exception as exc:  # NoConnectException until the pipe is up
                last = exc
                time.sleep(0.05)
        self.kill()
        raise EngineFailed(f"LibreOffice did not start within {self.start_timeout_s:g} s "
                           f"({last})")

    def kill(self) -> None:
        """Kill the whole process group and remove the profile; safe to call twice."""
        proc, self.proc = self.proc, None
        self.desktop = self.context = None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("office: soffice pid %s did not die", proc.pid)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def stop(self) -> None:
        """Ask LibreOffice to quit, then make sure it is gone."""
        if self.alive() and self.desktop is not None:
            done = threading.Event()

            def terminate() -> None:
                try:
                    self.desktop.terminate()
                except Exception:
                    pass
                done.set()

            threading.Thread(target=terminate, daemon=True).start()
            done.wait(3)
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
        self.kill()

    def ping(self, timeout: float = 5.0) -> bool:
        """A cheap UNO round trip with a deadline; False if dead or not answering."""
        if not self.alive() or self.desktop is None:
            return False
        answered = threading.Event()
        ok: list[bool] = []

        def call() -> None:
            try:
                self.desktop.getComponents()  # one round trip through the bridge
                ok.append(True)
            except Exception:
                ok.append(False)
            answered.set()

        threading.Thread(target=call, daemon=True, name="office-ping").start()
        return answered.wait(timeout) and ok == [True]

    def rss_bytes(self) -> int:
        if not self.alive() or self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    # -- work --

    def convert(self, source: Path, target: Path, *, export_filter: str | None,
                family_filters: dict[str, str] | None, filter_data: dict[str, Any],
                filter_options: str, password: str | None, import_filter: str | None,
                import_options: str, timeout_s: float,
                progress: Progress) -> dict[str, Any]:
        """Load `source`, store it to `target`; returns {"family", "warnings"}.

        Either `export_filter` names the filter, or `family_filters` maps the loaded
        document's family (writer/calc/impress/draw) to one.
        """
        uno = load_uno()
        handler = _make_interaction_handler(uno)
        watchdog = threading.Timer(timeout_s, self._watchdog_fire)
        watchdog.daemon = True
        watchdog.start()
        doc = None
        try:
            load: dict[str, Any] = {
                "Hidden": True, "ReadOnly": True, "MacroExecutionMode": 0,
                "UpdateDocMode": 0, "RepairPackage": False, "InteractionHandler": handler,
            }
            if password:
                load["Password"] = password
            if import_filter:
                load["FilterName"] = import_filter
                if import_options:
                    load["FilterOptions"] = import_options
            progress(10, "loading document")
            try:
                doc = self.desktop.loadComponentFromURL(source.as_uri(), "_blank", 0,
                                                        _props(uno, **load))
            except Exception as exc:
                self._raise_if_dead(exc)
                self._raise_for_handler(handler, password)
                raise InvalidInput(_load_error_message(exc)) from exc
            if doc is None:
                self._raise_if_dead(None)
                self._raise_for_handler(handler, password)
                raise InvalidInput("LibreOffice could not open the document: it is damaged "
                                   "or not in the format its type suggests")
            family = _family(doc)
            progress(40, f"converting {family} document")
            if export_filter is None:
                assert family_filters is not None
                if family not in family_filters:
                    raise InvalidInput(f"a {family} document cannot be converted this way")
                export_filter = family_filters[family]
            store: dict[str, Any] = {"FilterName": export_filter, "Overwrite": True}
            if filter_data:
                store["FilterData"] = uno.Any("[]com.sun.star.beans.PropertyValue",
                                              _props(uno, **filter_data))
            if filter_options:
                store["FilterOptions"] = filter_options
            progress(55, f"exporting {target.suffix.lstrip('.')}")
            try:
                doc.storeToURL(target.as_uri(), _props(uno, **store))
            except Exception as exc:
                self._raise_if_dead(exc)
                if "PageRange" in filter_data:
                    raise InvalidInput(f"the page range {filter_data['PageRange']!r} selects "
                                       "no page of the document") from exc
                raise EngineFailed(f"LibreOffice could not export the document: "
                                   f"{_uno_message(exc)}") from exc
            self.conversions += 1
            warnings = []
            if handler.repaired:
                warnings.append("the document was damaged; LibreOffice repaired it")
            return {"family": family, "warnings": warnings}
        finally:
            watchdog.cancel()
            if doc is not None:
                try:
                    doc.close(True)
                except Exception:
                    try:
                        doc.dispose()
                    except Exception:
                        pass

    def _watchdog_fire(self) -> None:
        log.warning("office: document timeout, killing soffice pid %s", self.pid)
        self.killed_by_watchdog = True
        proc = self.proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _raise_if_dead(self, exc: Exception | None) -> None:
        if self.killed_by_watchdog:
            raise OfficeDied("timeout") from exc
        if not self.alive() or (exc is not None and _is_bridge_error(exc)):
            raise OfficeDied(_uno_message(exc) if exc else "LibreOffice died") from exc

    @staticmethod
    def _raise_for_handler(handler: Any, password: str | None) -> None:
        if handler.password_asked:
            raise PasswordRequired(
                "the document is encrypted: " + ("the password is wrong" if password else
                                                 "give its password in the 'password' "
                                                 "parameter"))


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


def _write_profile_defaults(profile: Path) -> None:
    """Seed the private profile: no updates, no network lookups, no linked content."""
    user = profile / "user"
    user.mkdir(parents=True, exist_ok=True)
    items = [
        ("/org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel", "int", "3"),
        ("/org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks",
         "boolean", "true"),
        ("/org.openoffice.Office.Common/Misc", "UseLocking", "boolean", "false"),
        ("/org.openoffice.Office.Common/Misc", "FirstRun", "boolean", "false"),
        ("/org.openoffice.Office.Common/Misc", "ShowTipOfTheDay", "boolean", "false"),
        ("/org.openoffice.Office.Common/Save/Document", "CreateBackup", "boolean", "false"),
        ("/org.openoffice.Office.Recovery/RecoveryInfo", "Enabled", "boolean", "false"),
        ("/org.openoffice.Office.Recovery/AutoSave", "Enabled", "boolean", "false"),
        ("/org.openoffice.Inet/Settings", "ooInetProxyType", "int", "0"),
        ("/org.openoffice.Office.Writer/Content/Update", "Link", "int", "2"),
        ("/org.openoffice.Office.Calc/Content/Update", "Link", "int", "2"),
    ]
    body = "\n".join(
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
        f'<value>{value}</value></prop></item>'
        for path, name, _type, value in items)
    (user / "registrymodifications.xcu").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"{body}\n</oor:items>\n", encoding="utf-8")


# --- the engine ------------------------------------------------------------------------------


def _settings() -> Any:
    from docmill.settings import get_settings

    return get_settings()


class OfficeConverter:
    """The supervision policy around one `OfficeProcess`: check before, recycle after.

    Usable without the engine (the spreadsheet engine and the benchmarks call it).
    """

    def __init__(self) -> None:
        s = _settings()
        self.max_conversions = s.office_max_conversions
        self.max_memory = s.office_max_memory_mb * 1024 * 1024
        self.document_timeout_s = s.office_document_timeout_s
        self.office = OfficeProcess(s.office_start_timeout_s)
        self.restarts = 0
        self.lock = threading.Lock()

    def ensure_ready(self, progress: Progress) -> None:
        """A live, answering instance, or a new one."""
        if self.office.proc is not None and not (self.office.alive() and self.office.ping()):
            log.warning("office: soffice pid %s is dead or not answering; replacing it",
                        self.office.pid)
            self.office.kill()
            self.restarts += 1
        if self.office.proc is None:
            progress(2, "starting office")
            try:
                self.office.start()
            except EngineFailed as exc:  # killed while starting, say: one more try
                log.warning("office: start failed (%s); trying again", exc.message)
                self.office.kill()
                self.restarts += 1
                self.office.start()

    def recycle_if_due(self) -> None:
        """Between jobs: retire an instance that did enough work or grew too big."""
        if self.office.proc is None:
            return
        if not self.office.alive():
            self.office.kill()
            return
        rss = self.office.rss_bytes()
        if self.office.conversions >= self.max_conversions or rss > self.max_memory:
            log.info("office: recycling soffice pid %s after %d conversions, %d MB",
                     self.office.pid, self.office.conversions, rss // (1024 * 1024))
            self.office.stop()

    def convert(self, source: Path, target: Path, progress: Progress, **options: Any
                ) -> dict[str, Any]:
        """Convert on a checked instance. If the instance dies under the document (not a
        timeout), the document is tried once more on a fresh one: the crash may have been
        the previous document's doing, or someone killed the process."""
        with self.lock:
            try:
                for attempt in (1, 2):
                    self.ensure_ready(progress)
                    try:
                        info = self.office.convert(source, target,
                                                   timeout_s=self.document_timeout_s,
                                                   progress=progress, **options)
                        if attempt == 2:
                            info["warnings"].append("LibreOffice crashed on the first try; "
                                                    "converted on a fresh instance")
                        return info
                    except OfficeDied as exc:
                        timed_out = self.office.killed_by_watchdog
                        log.warning("office: soffice pid %s died on %s (%s)", self.office.pid,
                                    source.name, "timeout" if timed_out else exc)
                        self.office.kill()
                        self.restarts += 1
                        if timed_out:
                            raise Timeout(f"LibreOffice took longer than "
                                          f"{self.document_timeout_s:g} s on this document "
                                          "and was stopped") from exc
                        if attempt == 2:
                            raise EngineFailed("LibreOffice crashed on this document twice "
                                               f"({exc})") from exc
                        progress(5, "restarting office after a crash")
                raise AssertionError("unreachable")
            finally:
                self.recycle_if_due()

    def stop(self) -> None:
        self.office.stop()
        shutil.rmtree(_template_dir(), ignore_errors=True)


_shared: OfficeConverter | None = None


def shared_converter() -> OfficeConverter:
    """This worker process's one converter (one `soffice.bin`), made on first use: the
    office engine converts on it, and so do the spreadsheet engine's XLS output and
    PDF/A's LibreOffice route."""
    global _shared
    if _shared is None:
        _shared = OfficeConverter()
    return _shared


def shutdown() -> None:
    """Engines' `stop`: stop this process's LibreOffice if it has one."""
    if _shared is not None:
        _shared.stop()


def staged_input(item: EngineInput, workdir: Path) -> Path:
    """The input under a name whose extension LibreOffice's type detection trusts."""
    ext = INPUT_TYPES.get(item.content_type.split(";")[0].strip().lower(), "")
    suffix = Path(item.name).suffix.lower().lstrip(".")
    if not ext or (ext == "txt" and suffix == "csv"):
        ext = suffix if suffix in FORMATS else ext
    ext = ext or "bin"
    _check_container(item, ext)
    staged = workdir / f"input-{uuid.uuid4().hex[:8]}.{ext}"
    try:
        os.link(item.path, staged)
    except OSError:
        shutil.copyfile(item.path, staged)
    return staged


ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PACKAGE_FORMATS = {"docx", "xlsx", "pptx", "odt", "ods", "odp"}


def _check_container(item: EngineInput, ext: str) -> None:
    """OOXML and ODF files are ZIP packages (or, encrypted, OLE containers). Anything else
    would reach LibreOffice's type detection, which happily imports random bytes as text."""
    if ext not in PACKAGE_FORMATS:
        return
    with open(item.path, "rb") as handle:
        head = handle.read(8)
    if not (head.startswith(ZIP_MAGIC) or head == OLE_MAGIC):
        raise InvalidInput(f"{item.name} is not a valid {ext} file: it is not a ZIP package "
                           "(damaged, or another format under this name)")


class OfficeEngine(Engine):
    name = "office"
    operations = (
        Operation("office.to-pdf", "Convert a word-processing, spreadsheet or presentation "
                  "document (doc, docx, odt, rtf, txt, xls, xlsx, ods, csv, ppt, pptx, odp) "
                  "to PDF or PDF/A with LibreOffice.",
                  ToPdfParams, OFFICE_INPUTS, ("pdf",), engine="office"),
        Operation("office.convert", "Convert between office formats within a family: "
                  "docx/odt/doc/rtf/txt, xlsx/ods/xls/csv, pptx/odp/ppt.",
                  ConvertParams, OFFICE_INPUTS,
                  tuple(ext for exts in CONVERT_TARGETS.values() for ext in exts),
                  engine="office"),
    )

    def start(self) -> None:
        """Nothing heavy here: LibreOffice starts with the first office job in the worker
        (a missing installation fails that job with a clear message, not the worker)."""
        try:
            program_dir()
        except EngineFailed as exc:
            log.warning("office: %s", exc.message)

    def stop(self) -> None:
        shutdown()

    def get_converter(self) -> OfficeConverter:
        return shared_converter()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        source = inputs[0]
        staged = staged_input(source, workdir)
        stem = output_stem(source.name)
        import_filter, import_options = _import_filter(staged)
        if operation == "office.to-pdf":
            assert isinstance(params, ToPdfParams)
            target = workdir / f"{stem}.pdf"
            filter_data: dict[str, Any] = {"SelectPdfVersion": PDF_VERSIONS[params.pdf_format]}
            if params.pages:
                filter_data["PageRange"] = _lo_page_range(params.pages)
            if params.tagged or params.pdf_format != "pdf":
                filter_data["UseTaggedPDF"] = True
            if params.single_page_sheets:
                filter_data["SinglePageSheets"] = True
            info = self.get_converter().convert(
                staged, target, progress, export_filter=None, family_filters=PDF_FILTERS,
                filter_data=filter_data, filter_options="", password=params.password,
                import_filter=import_filter, import_options=import_options)
            pages = _pdf_pages(target)
            if pages == 0:
                raise InvalidInput(f"the page range {params.pages!r} selects no page of the "
                                   "document" if params.pages else
                                   "LibreOffice produced an empty PDF")
            progress(98, "exported pdf")
            return EngineResult(outputs=[EngineOutput(target, "application/pdf")],
                                data={"pages": pages, "family": info["family"],
                                      "pdf_format": params.pdf_format},
                                warnings=info["warnings"], pages=pages)
        assert isinstance(params, ConvertParams)
        fmt = FORMATS[params.format]
        target = workdir / f"{stem}.{fmt.ext}"
        info = self.get_converter().convert(
            staged, target, progress, export_filter=None,
            family_filters={fmt.family: fmt.filter}, filter_data={},
            filter_options=fmt.filter_options, password=params.password,
            import_filter=import_filter, import_options=import_options)
        if not target.exists() or target.stat().st_size == 0:
            raise EngineFailed(f"LibreOffice wrote no {fmt.ext} file")
        progress(98, f"exported {fmt.ext}")
        return EngineResult(outputs=[EngineOutput(target, fmt.content_type)],
                            data={"format": fmt.ext, "family": info["family"]},
                            warnings=info["warnings"], pages=1)


def _import_filter(path: Path) -> tuple[str | None, str]:
    """Text inputs get an explicit import filter: type detection would guess otherwise."""
    ext = path.suffix.lstrip(".")
    if ext == "csv":
        return "Text - txt - csv (StarCalc)", "44,34,76,1,,0,false,true"
    if ext == "txt":
        return "Text (encoded)", "UTF8"
    return None, ""


def _lo_page_range(spec: str) -> str:
    """Validate '1-3,5,8-' and write it the way LibreOffice's PageRange takes it."""
    parts = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        start, dash, end = part.partition("-")
        start, end = start.strip(), end.strip()
        if not (start or end) or (start and not start.isdigit()) or (end and not end.isdigit()):
            raise InvalidInput(f"invalid page range {part!r}; use e.g. 1-3,5,8-")
        if start and int(start) < 1 or (start and end and int(end) < int(start)):
            raise InvalidInput(f"invalid page range {part!r}")
        parts.append(f"{start or 1}-{end}" if dash else start)
    if not parts:
        raise InvalidInput("the page range is empty")
    return ";".join(parts)


def _pdf_pages(path: Path) -> int:
    import pypdfium2 as pdfium  # noqa: PLC0415

    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise EngineFailed(f"LibreOffice wrote an unreadable PDF ({exc})") from exc
    try:
        return len(doc)
    finally:
        doc.close()
