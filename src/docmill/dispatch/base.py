"""The dispatcher interface: how job ids reach workers.

The database is the source of truth; a dispatcher only moves ids. `notify` is a hint that a
job was just enqueued (to start it without waiting for a poll); a dispatcher that loses a
hint still finds the job by polling or by the lease sweeper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Dispatcher(ABC):
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, grace_s: float) -> None:
        """Stop taking work; let running jobs finish within `grace_s`, then give them back."""

    @abstractmethod
    def notify(self, job_id: str) -> None:
        """A job was enqueued."""

    def cancel(self, job_id: str) -> None:
        """A job was deleted: stop running it if it is running here (best effort)."""

    def housekeeping(self) -> None:
        """Periodic repair work, called by the sweeper (e.g. re-sending lost messages)."""

    def describe(self) -> dict[str, object]:
        """What an operator sees of this dispatcher (`GET /v1/queue`)."""
        return {"dispatcher": "none", "workers_here": 0}


class NullDispatcher(Dispatcher):
    """`serve --no-workers`: jobs wait in the database for workers elsewhere."""

    def start(self) -> None:
        pass

    def stop(self, grace_s: float) -> None:
        pass

    def notify(self, job_id: str) -> None:
        pass
