"""Fixed-window request counting in this process's memory (one API process per deployment):
how often one key (an API key, a client address) may do one thing per window."""

from __future__ import annotations

import math
import threading
import time


class FixedWindow:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[float, int]] = {}

    def take(self, key: str, limit: int, window_s: int) -> tuple[bool, float]:
        """Count one use of `key`: (allowed, seconds until the window resets). A refused
        use is not counted."""
        now = time.time()
        start = math.floor(now / window_s) * window_s
        with self.lock:
            began, count = self.windows.get(key, (start, 0))
            if began != start:
                began, count = start, 0
            if count < limit:
                self.windows[key] = (began, count + 1)
                return True, began + window_s - now
            if len(self.windows) > 10_000:
                self.windows = {k: v for k, v in self.windows.items() if v[0] == start}
        return False, began + window_s - now
