"""Imported only by the multiprocessing forkserver (its preload), never by the server.

The forkserver and the workers it forks leave the server's process group and ignore SIGTERM,
so a SIGTERM sent to the whole group (a terminal, an init system) reaches only the server,
which then drains its running jobs within the grace period instead of losing them. The
forkserver still exits when the server does (it watches its pipe to the server), and each
worker dies with the forkserver (see worker_boot), so a killed server leaves no orphans.
"""

from __future__ import annotations

import gc
import os
import signal

import docmill.dispatch.runner  # noqa: F401 - preload: workers fork with it imported
from docmill.engines.registry import engine_classes

engine_classes()  # imports every engine module once, here, instead of in each worker
# Move what is loaded so far out of the collector's reach: a collection in a worker would
# otherwise write to every object header and un-share the forkserver's pages (copy-on-write).
gc.collect()
gc.freeze()

os.setpgrp()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
