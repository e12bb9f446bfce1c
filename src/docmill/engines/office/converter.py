"""The supervision of the worker's `OfficeProcess`, by engines/supervisor.py.

Before each job the process is checked (`poll()`) and pinged over UNO with a short
deadline; a dead or unresponsive instance is killed and a fresh one started. A watchdog
kills it when one document runs past `office_document_timeout_s` (the job fails `timeout`).
A document whose instance dies under it (not a timeout) is tried once more on a fresh
instance: the crash may have been the previous document's doing, or someone killed the
process. Between jobs, never during one, the instance is recycled after
`office_max_conversions` documents or when its resident memory passes
`office_max_memory_mb`. The worker process has one converter (`shared_converter()`), for the
office engine and every other engine that needs LibreOffice.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from docmill.engines.base import Progress
from docmill.engines.office.process import OfficeProcess, _template_dir
from docmill.engines.supervisor import Crashed, Supervisor, TimedOut
from docmill.errors import EngineFailed, Timeout


def _settings() -> Any:
    from docmill.settings import get_settings

    return get_settings()


class OfficeConverter:
    """One supervised `OfficeProcess` and the errors its failures become.

    Usable without the engine (the spreadsheet engine and the benchmarks call it).
    """

    def __init__(self) -> None:
        s = _settings()
        self.document_timeout_s = s.office_document_timeout_s
        self.office = OfficeProcess(s.office_start_timeout_s)
        self.supervisor = Supervisor(
            self.office, name="office", max_jobs=s.office_max_conversions,
            max_memory_mb=s.office_max_memory_mb, retry_after_crash=True,
            on_stop=lambda: shutil.rmtree(_template_dir(), ignore_errors=True))

    @property
    def max_conversions(self) -> int:
        return self.supervisor.max_jobs

    @max_conversions.setter
    def max_conversions(self, value: int) -> None:
        self.supervisor.max_jobs = value

    @property
    def max_memory(self) -> int:
        """Bytes."""
        return self.supervisor.max_memory_bytes

    @max_memory.setter
    def max_memory(self, value: int) -> None:
        self.supervisor.max_memory_bytes = value

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    def ensure_ready(self, progress: Progress) -> None:
        """A live, answering instance, or a new one."""
        self.supervisor.ensure_ready(lambda: progress(2, "starting office"))

    def recycle_if_due(self) -> None:
        """Between jobs: retire an instance that did enough work or grew too big."""
        self.supervisor.recycle_if_due()

    def convert(self, source: Path, target: Path, progress: Progress, **options: Any
                ) -> dict[str, Any]:
        """Convert on a checked instance, retried once on a fresh one after a crash."""
        try:
            outcome = self.supervisor.run(
                lambda: self.office.convert(source, target, progress=progress, **options),
                timeout_s=self.document_timeout_s,
                on_start=lambda: progress(2, "starting office"),
                on_retry=lambda: progress(5, "restarting office after a crash"))
        except TimedOut as exc:
            raise Timeout(f"LibreOffice took longer than {self.document_timeout_s:g} s on "
                          "this document and was stopped") from exc
        except Crashed as exc:
            raise EngineFailed(f"LibreOffice crashed on this document twice ({exc.cause})"
                               ) from exc
        info = outcome.value
        if outcome.retried:
            info["warnings"].append("LibreOffice crashed on the first try; converted on a "
                                    "fresh instance")
        return info

    def stop(self) -> None:
        self.supervisor.stop()


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
