"""What a worker child does before its first job."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent (the pool host) exits."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pipe to the parent still ends us
        pass


def init_worker(parent_pid: int | None = None) -> None:
    # The server handles Ctrl-C; SIGTERM stays deliverable so the pool can stop a child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request above: it will not kill us
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(message)s")
