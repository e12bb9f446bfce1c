"""One supervisor for the programs engines drive: LibreOffice, Chromium, Ghostscript.

Those programs crash and hang on hostile documents, so every engine that hands a document to
one gets the same care:

- **set-up** (`spawn`): the child gets its own process group, so a kill takes its helpers
  along, and `PR_SET_PDEATHSIG=SIGKILL`, so it dies with the worker even when the runner's
  job timeout SIGKILLs the worker (`prctl` is resolved in the parent: the forked child of a
  threaded worker must not `dlopen`);
- **check before a job** (`Supervisor.ensure_ready`): a missing process is started; one that
  is dead or does not answer (`healthy()`) is killed and replaced; a start that fails is
  tried once more;
- **watchdog during it** (`Watchdog`): past the job's time limit the process group is
  SIGKILLed, the call blocked on it fails at once, and `run` raises `TimedOut`;
- **one retry after a crash**: a process that dies under a job (not by the watchdog) is
  replaced and, if the adapter asks for it, the job runs once more on the fresh one; a
  crash it does not retry (or a second one) raises `Crashed`;
- **recycle**: between jobs, never during one, a process that did `max_jobs` jobs or grew
  past `max_memory_mb` of resident memory is stopped; the next job starts a fresh one.

A long-lived program is supervised through the small `Supervised` interface; its adapter
(`office/process.py`, `html/chromium.py`) implements it and turns `TimedOut` and `Crashed`
into its own errors. A one-shot program (Ghostscript in `pdf/pdfa.py`) uses `spawn`,
`Watchdog` and `kill_group` alone. `stop_all()` stops every supervised program of this
process (worker shutdown). Gotenberg's process supervisor follows the same plan.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# --- set-up of a child process -------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_prctl: Any = None


def load_prctl() -> Any:
    """libc's prctl, or False off Linux. Resolved in the parent, before any fork."""
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # not Linux
            _prctl = False
    return _prctl


def child_setup(parent: int) -> None:
    """In the forked child before exec: die with `parent`, even if it is SIGKILLed."""
    if _prctl:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start `args` in a process group of its own, dying with this process."""
    load_prctl()
    parent = os.getpid()
    return subprocess.Popen(args, start_new_session=True,  # noqa: PLW1509 - prctl in the child
                            preexec_fn=lambda: child_setup(parent), **popen)


def kill_group(pid: int | None) -> None:
    """SIGKILL `pid`'s process group if it leads one, else `pid` alone; from any thread."""
    if not pid:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rss_bytes(pid: int | None) -> int:
    """Resident memory of `pid` (0 when unknown)."""
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Watchdog:
    """Calls `kill` (in a timer thread) if the block still runs after `seconds`; `None`
    never fires."""

    def __init__(self, seconds: float | None, kill: Callable[[], None], what: str = "") -> None:
        self.fired = False
        self.seconds = seconds
        self._kill = kill
        self._what = what
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        log.warning("%s: past its time limit of %g s; killing it", self._what or "a child",
                    self.seconds or 0)
        self._kill()

    def __enter__(self) -> Watchdog:
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


# --- supervising a long-lived program ------------------------------------------------------


class Supervised(Protocol):
    """What an adapter tells the supervisor about its program."""

    @property
    def pid(self) -> int | None:
        """The process the watchdog kills (with its group); None before a start."""

    @property
    def launched(self) -> bool:
        """Started and not stopped or killed since (it may have died meanwhile)."""

    @property
    def jobs(self) -> int:
        """Jobs done since the start, as the adapter counts them (recycling reads it)."""

    def start(self) -> None:
        """Start the program and wait until it answers; raise if it cannot."""

    def alive(self) -> bool:
        """The process still runs (cheap: no round trip)."""

    def healthy(self) -> bool:
        """Alive and answering (a round trip with a deadline)."""

    def stop(self) -> None:
        """Ask the program to quit, then make sure it is gone; safe to call twice."""

    def kill(self) -> None:
        """Kill the program at once and clean up after it; safe to call twice."""


class ProcessDied(Exception):
    """An adapter's way to say its program died under the job (the supervisor also checks
    `alive()` after any failure)."""


class TimedOut(Exception):
    """The watchdog killed the program: the job ran past `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"past the time limit of {seconds:g} s")
        self.seconds = seconds


class Crashed(Exception):
    """The program died under the job (after `attempts` tries); `cause` is the job's error."""

    def __init__(self, attempts: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.attempts = attempts
        self.cause = cause


@dataclass
class Outcome(Generic[T]):
    value: T
    retried: bool  # the first try crashed; this is the second, on a fresh process


_supervisors: weakref.WeakSet[Supervisor] = weakref.WeakSet()


class Supervisor:
    """Runs jobs on one `Supervised` program, one at a time: checked before, watched during,
    retried once after a crash (if `retry_after_crash`), recycled after."""

    def __init__(self, process: Supervised, *, name: str, max_jobs: int = 0,
                 max_memory_mb: int = 0, retry_after_crash: bool = True,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.process = process
        self.name = name
        self.max_jobs = max_jobs  # 0: never recycled for its job count
        self.max_memory_bytes = max_memory_mb * 1024 * 1024  # 0: nor for its size
        self.retry_after_crash = retry_after_crash
        self.on_stop = on_stop
        self.restarts = 0
        self.lock = threading.RLock()
        _supervisors.add(self)

    # -- between jobs --

    def ensure_ready(self, on_start: Callable[[], None] | None = None) -> None:
        """A live, answering program, or a new one."""
        with self.lock:
            process = self.process
            if process.launched and not process.healthy():
                log.warning("%s: pid %s is dead or not answering; replacing it", self.name,
                            process.pid)
                self.replace()
            if not process.launched:
                if on_start is not None:
                    on_start()
                try:
                    process.start()
                except Exception as exc:  # killed while starting, say: one more try
                    log.warning("%s: start failed (%s); trying again", self.name, exc)
                    self.replace()
                    process.start()

    def recycle_reason(self) -> str | None:
        process = self.process
        if self.max_jobs and process.jobs >= self.max_jobs:
            return f"after {process.jobs} jobs"
        if self.max_memory_bytes:
            size = rss_bytes(process.pid)
            if size > self.max_memory_bytes:
                return f"at {size // (1024 * 1024)} MB"
        return None

    def recycle_if_due(self) -> None:
        """Retire a program that did enough work or grew too big (a dead one is cleaned up)."""
        with self.lock:
            process = self.process
            if not process.launched:
                return
            if not process.alive():
                process.kill()
                return
            reason = self.recycle_reason()
            if reason:
                log.info("%s: recycling pid %s %s", self.name, process.pid, reason)
                process.stop()

    def replace(self) -> None:
        """Kill the program (the next check starts a new one)."""
        self.process.kill()
        self.restarts += 1

    # -- a job --

    def run(self, task: Callable[[], T], *, timeout_s: float | None = None,
            on_start: Callable[[], None] | None = None,
            on_retry: Callable[[], None] | None = None) -> Outcome[T]:
        """`task()` on a checked program, under a watchdog of `timeout_s`.

        Raises `TimedOut` when the watchdog fired (the program is replaced), `Crashed` when
        the program died under the task and was not (or no longer) to be retried, and the
        task's own error otherwise. Recycling is due after every job, whatever its end."""
        with self.lock:
            try:
                for attempt in (1, 2):
                    self.ensure_ready(on_start)
                    watchdog = Watchdog(timeout_s, self._kill_now, self.name)
                    try:
                        with watchdog:
                            value = task()
                        return Outcome(value, retried=attempt == 2)
                    except Exception as exc:
                        if watchdog.fired:
                            self.replace()
                            raise TimedOut(timeout_s or 0) from exc
                        if not (isinstance(exc, ProcessDied) or not self.process.alive()):
                            raise
                        log.warning("%s: pid %s died under a job (%s)", self.name,
                                    self.process.pid, exc)
                        self.replace()
                        if attempt == 2 or not self.retry_after_crash:
                            raise Crashed(attempt, exc) from exc
                        if on_retry is not None:
                            on_retry()
                raise AssertionError("unreachable")
            finally:
                self.recycle_if_due()

    def _kill_now(self) -> None:
        kill_group(self.process.pid)

    def stop(self) -> None:
        with self.lock:
            self.process.stop()
            if self.on_stop is not None:
                self.on_stop()


def stop_all() -> None:
    """Worker shutdown: every supervised program of this process stopped."""
    for supervisor in list(_supervisors):
        try:
            supervisor.stop()
        except Exception:
            log.exception("%s: stopping failed", supervisor.name)
