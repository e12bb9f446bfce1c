"""The supervision policy around one `OfficeProcess`: check before a job, recycle after.

Before each job the process is checked (`poll()`) and pinged over UNO with a short
deadline; a dead or unresponsive instance is killed and a fresh one started. A document
whose instance dies under it (not a timeout) is tried once more on a fresh instance.
Between jobs, never during one, the instance is recycled after `office_max_conversions`
documents or when its resident memory passes `office_max_memory_mb`. The worker process has
one converter (`shared_converter()`), for the office engine and every other engine that
needs LibreOffice.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from docmill.engines.base import Progress
from docmill.engines.office.process import OfficeDied, OfficeProcess, _template_dir
from docmill.errors import EngineFailed, Timeout

log = logging.getLogger(__name__)


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
