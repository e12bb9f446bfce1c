"""One headless `soffice.bin` and the UNO bridge to it (`OfficeProcess`).

Started directly (not through the `soffice` script and `oosplash`, which would put another
process in between) in its own process group with `PR_SET_PDEATHSIG=SIGKILL`, so when the
runner's job timeout kills the worker child the office process dies with it; every instance
has its own pipe name and its own throw-away user profile (seeded from a per-worker
template), so two workers never share state, and stale profile folders of dead workers are
swept at start. The process is what `converter.py`'s supervisor (engines/supervisor.py)
checks, watches, retries and recycles: `OfficeProcess` is its `Supervised`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from docmill.engines.base import Progress
from docmill.engines.office.bridge import (
    _family,
    _is_bridge_error,
    _load_error_message,
    _make_interaction_handler,
    _props,
    _uno_message,
    load_uno,
    program_dir,
)
from docmill.engines.supervisor import ProcessDied, pid_alive, rss_bytes, spawn
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired

log = logging.getLogger(__name__)


PROFILE_PREFIX = "docmill-lo-"


def sweep_stale_profiles(root: Path) -> None:
    """Remove profile folders left behind by workers that were killed."""
    for entry in root.glob(f"{PROFILE_PREFIX}*"):
        try:
            owner = int(entry.name[len(PROFILE_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner != os.getpid() and not pid_alive(owner):
            shutil.rmtree(entry, ignore_errors=True)


def _template_dir() -> Path:
    """An initialised profile kept per worker process, copied for every new instance."""
    return Path(tempfile.gettempdir()) / f"{PROFILE_PREFIX}{os.getpid()}-template"


class OfficeDied(ProcessDied):
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

    # -- lifecycle --

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def launched(self) -> bool:
        return self.proc is not None

    @property
    def jobs(self) -> int:
        return self.conversions

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return self.alive() and self.ping()

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
        def start_soffice() -> subprocess.Popen[bytes]:
            return spawn(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd=self.profile)

        self.started_at = time.monotonic()
        self.proc = start_soffice()
        restarted = False
        self.conversions = 0
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
                    self.proc = start_soffice()
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
        return rss_bytes(self.pid) if self.alive() else 0

    # -- work --

    def convert(self, source: Path, target: Path, *, export_filter: str | None,
                family_filters: dict[str, str] | None, filter_data: dict[str, Any],
                filter_options: str, password: str | None, import_filter: str | None,
                import_options: str, progress: Progress) -> dict[str, Any]:
        """Load `source`, store it to `target`; returns {"family", "warnings"}.

        Either `export_filter` names the filter, or `family_filters` maps the loaded
        document's family (writer/calc/impress/draw) to one. Raises `OfficeDied` when the
        process dies under the document (the supervisor's watchdog may have killed it).
        """
        uno = load_uno()
        handler = _make_interaction_handler(uno)
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
            if doc is not None:
                try:
                    doc.close(True)
                except Exception:
                    try:
                        doc.dispose()
                    except Exception:
                        pass

    def _raise_if_dead(self, exc: Exception | None) -> None:
        if not self.alive() or (exc is not None and _is_bridge_error(exc)):
            raise OfficeDied(_uno_message(exc) if exc else "LibreOffice died") from exc

    @staticmethod
    def _raise_for_handler(handler: Any, password: str | None) -> None:
        if handler.password_asked:
            raise PasswordRequired(
                "the document is encrypted: " + ("the password is wrong" if password else
                                                 "give its password in the 'password' "
                                                 "parameter"))


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
