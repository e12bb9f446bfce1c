"""Database engine and sessions.

One engine per process (the server, each worker child, the CLI). SQLite runs in WAL mode with
a busy timeout so that the API and several worker processes share one file safely.

SQLite has one writer at a time, and a writer that finds the file locked sleeps in SQLite's
busy handler for 1, 2, 5, 10, 15, 20, 25... ms before it looks again, however soon the lock
is free. With the API and every worker writing a few short transactions per job, those naps
were most of a job's latency. So Docmill's own write transactions on SQLite first queue on
an advisory lock: a thread lock inside the process, then `flock` on `<database>-writelock`
across processes, both of which wake the next writer the moment the previous one commits.
SQLite's own locking (BEGIN IMMEDIATE, busy timeout) still decides; the advisory lock only
makes the waiting fair and prompt. Readers never take it (WAL).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from docmill.settings import get_settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the lock at BEGIN: a deferred transaction that reads then writes can fail
    # with "database is locked" without waiting, an immediate one waits on busy_timeout.
    # Readers stay deferred so that polling never queues behind writers (WAL).
    readonly = conn.get_execution_options().get("docmill_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class WriteLock:
    """Serialises this process's write transactions (thread lock) and those of every process
    using the same SQLite file (`flock` on a lock file opened by this process). Re-entrant
    per thread, so a nested write transaction behaves as it would without it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mutex = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        _write_locks.add(self)

    def _forget_after_fork(self) -> None:
        # A forked child keeps its parent's lock file open: if the parent held the `flock`
        # when it died, the lock would live on until the child exits. The child uses a
        # WriteLock of its own (see `_write_lock_for`), so it simply closes this one.
        if self.fd is not None and self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1

    def _file(self) -> int | None:
        if self.fd is None and fcntl is not None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # read-only folder, say: SQLite's own locking still applies
                self.fd = -1
        return self.fd if self.fd is not None and self.fd >= 0 else None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.mutex:
            fd = self._file() if self.depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_write_locks: weakref.WeakSet[WriteLock] = weakref.WeakSet()


def _forget_write_locks() -> None:
    for lock in _write_locks:
        lock._forget_after_fork()


os.register_at_fork(after_in_child=_forget_write_locks)


def changed_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched: `Session.execute` is typed as returning a `Result`,
    though for such a statement it returns a `CursorResult`, which has the count."""
    return cast(CursorResult[Any], result).rowcount


@lru_cache
def _write_lock_for(url: str, pid: int) -> WriteLock | None:
    # Keyed by pid: a forked child must open its own lock file (flock belongs to the open
    # file, which a child would otherwise share with its parent).
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return WriteLock(f"{path}-writelock")


def write_lock() -> AbstractContextManager[None]:
    lock = _write_lock_for(get_settings().database_url, os.getpid())
    return lock.hold() if lock is not None else nullcontext()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is off so that BEGIN IMMEDIATE is ours to emit.
        event.listen(engine, "connect", lambda c, r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def _engine_for(url: str, pid: int) -> Engine:
    # Keyed by pid: a forked child must never reuse its parent's connections.
    return make_engine(url)


def get_engine() -> Engine:
    return _engine_for(get_settings().database_url, os.getpid())


@lru_cache
def _readonly_engine(engine: Engine) -> Engine:
    return engine.execution_options(docmill_readonly=True)


@lru_cache
def _sessionmaker_for(engine: Engine, readonly: bool) -> sessionmaker[Session]:
    bind = engine.execution_options(docmill_readonly=True) if readonly else engine
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def session_scope(readonly: bool = False) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error.

    `readonly=True` marks a transaction that only reads, so SQLite need not lock for it.
    """
    session = _sessionmaker_for(get_engine(), readonly)()
    try:
        with nullcontext() if readonly else write_lock(), session.begin():
            yield session
    finally:
        session.close()


@contextmanager
def connection_scope(readonly: bool = False) -> Iterator[Connection]:
    """Like `session_scope`, for Core statements: a connection in a transaction that commits
    on success and rolls back on error, without an ORM session around it (the job state
    machine's hot transitions run a few prepared statements and need nothing more)."""
    engine = get_engine()
    if readonly:
        with _readonly_engine(engine).begin() as conn:
            yield conn
    else:
        with write_lock(), engine.begin() as conn:
            yield conn
