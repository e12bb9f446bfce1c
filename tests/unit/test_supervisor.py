"""engines/supervisor.py with real child processes: a small Python program that answers
pings and does timed work over a pipe stands in for LibreOffice or Chromium. The watchdog
kills a job past its time, a process is recycled after N jobs or over its memory cap, a crash
is retried once on a fresh process, a dead or frozen one is replaced before the next job, and
every child dies with its parent (its own process group, PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from docmill.engines.supervisor import (
    Crashed,
    ProcessDied,
    Supervisor,
    TimedOut,
    Watchdog,
    kill_group,
    spawn,
    stop_all,
)

CHILD = textwrap.dedent("""
    import sys, time
    kept = []
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "ping":
            print("pong", flush=True)
        elif command == "work":
            time.sleep(float(argument))
            print("done", flush=True)
        elif command == "grow":
            kept.append(bytearray(int(argument) * 1024 * 1024))
            print("done", flush=True)
""")


class PingChild:
    """A `Supervised` program: one Python child answering over its stdin/stdout."""

    def __init__(self, refuse_starts: int = 0) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.jobs = 0
        self.starts = 0
        self.refuse_starts = refuse_starts

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def launched(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        if self.refuse_starts:
            self.refuse_starts -= 1
            raise RuntimeError("refused to start")
        self.proc = spawn([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
        self.jobs = 0
        self.starts += 1
        assert self.ask("ping", 30) == "pong"

    def ask(self, command: str, timeout: float) -> str | None:
        """The child's answer, "" when it died, None when it said nothing in time."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        answer: list[str] = []
        try:
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return ""
        reader = threading.Thread(target=lambda: answer.append(proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        return answer[0].strip() if answer else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return self.alive() and self.ask("ping", 1.0) == "pong"

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            kill_group(proc.pid)
            proc.wait(timeout=10)

    def work(self, seconds: float) -> int:
        pid = self.pid
        if self.ask(f"work {seconds}", seconds + 30) != "done":
            raise ProcessDied("the child stopped answering")
        self.jobs += 1
        assert pid is not None
        return pid


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def child():
    made: list[Supervisor] = []

    def make(**options) -> tuple[PingChild, Supervisor]:
        process = PingChild(options.pop("refuse_starts", 0))
        supervisor = Supervisor(process, name="test", **options)
        made.append(supervisor)
        return process, supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_watchdog_kills_a_job_past_its_time(child):
    process, supervisor = child()
    supervisor.ensure_ready()
    victim = process.pid
    started = time.monotonic()
    with pytest.raises(TimedOut) as raised:
        supervisor.run(lambda: process.work(60), timeout_s=0.5)
    assert time.monotonic() - started < 10 and raised.value.seconds == 0.5
    assert gone(victim) and not process.launched and supervisor.restarts == 1
    assert supervisor.run(lambda: process.work(0), timeout_s=5).value not in (None, victim)


def test_recycled_after_n_jobs(child):
    process, supervisor = child(max_jobs=2)
    first = supervisor.run(lambda: process.work(0)).value
    assert supervisor.run(lambda: process.work(0)).value == first
    assert not process.launched and gone(first)  # recycled after the job, not during it
    assert supervisor.run(lambda: process.work(0)).value != first
    assert process.starts == 2 and supervisor.restarts == 0  # a recycle is no restart


def test_recycled_past_its_memory_cap(child):
    process, supervisor = child(max_memory_mb=200)

    def grow(mb: int) -> int:
        assert process.ask(f"grow {mb}", 30) == "done"
        process.jobs += 1
        return process.pid or 0

    small = supervisor.run(lambda: grow(1)).value
    assert process.pid == small  # well under the cap: kept
    supervisor.run(lambda: grow(300))
    assert not process.launched and gone(small)


def test_a_crash_is_retried_once_on_a_fresh_process(child):
    process, supervisor = child()
    supervisor.ensure_ready()
    victim = process.pid
    retried: list[bool] = []

    def work() -> int:
        if process.pid == victim:
            os.kill(victim, signal.SIGKILL)
        return process.work(0)

    outcome = supervisor.run(work, on_retry=lambda: retried.append(True))
    assert outcome.retried and retried == [True]
    assert outcome.value != victim and gone(victim) and supervisor.restarts == 1

    def always_dies() -> int:
        os.kill(process.pid or 0, signal.SIGKILL)
        return process.work(0)

    with pytest.raises(Crashed) as raised:
        supervisor.run(always_dies)
    assert raised.value.attempts == 2 and isinstance(raised.value.cause, ProcessDied)
    assert supervisor.run(lambda: process.work(0)).value  # and the next job has a process


def test_no_retry_when_the_adapter_says_so(child):
    process, supervisor = child(retry_after_crash=False)
    supervisor.ensure_ready()

    def dies() -> int:
        os.kill(process.pid or 0, signal.SIGKILL)
        return process.work(0)

    with pytest.raises(Crashed) as raised:
        supervisor.run(dies)
    assert raised.value.attempts == 1 and process.starts == 1


def test_a_task_error_keeps_the_process(child):
    process, supervisor = child()
    pid = supervisor.run(lambda: process.work(0)).value

    def refuses() -> None:
        raise ValueError("a bad document")

    with pytest.raises(ValueError, match="a bad document"):
        supervisor.run(refuses)
    assert process.pid == pid and supervisor.restarts == 0


def test_checked_before_a_job_dead_or_frozen_is_replaced(child):
    process, supervisor = child()
    first = supervisor.run(lambda: process.work(0)).value
    os.kill(first, signal.SIGKILL)
    process.proc.wait()  # type: ignore[union-attr]
    second = supervisor.run(lambda: process.work(0)).value
    assert second != first and supervisor.restarts == 1
    os.kill(second, signal.SIGSTOP)  # alive, but it answers no ping
    started = time.monotonic()
    third = supervisor.run(lambda: process.work(0)).value
    assert third not in (first, second) and gone(second) and supervisor.restarts == 2
    assert time.monotonic() - started < 15


def test_a_failed_start_is_tried_once_more(child):
    process, supervisor = child(refuse_starts=1)
    assert supervisor.run(lambda: process.work(0)).value == process.pid
    assert process.starts == 1 and supervisor.restarts == 1
    _, supervisor2 = child(refuse_starts=2)
    with pytest.raises(RuntimeError, match="refused"):
        supervisor2.ensure_ready()


def test_stop_all_stops_every_supervised_process(child):
    one, first = child()
    two, second = child()
    pids = [first.run(lambda: one.work(0)).value, second.run(lambda: two.work(0)).value]
    stop_all()
    assert not one.launched and not two.launched and all(gone(pid) for pid in pids)


def test_a_one_shot_child_has_its_own_group_and_the_watchdog_kills_all_of_it():
    shell = spawn(["sh", "-c", "sleep 600 & sleep 600; wait"])
    try:
        assert os.getpgid(shell.pid) == shell.pid != os.getpgid(0)
        deadline = time.monotonic() + 10
        while len(psutil.Process(shell.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        helpers = [p.pid for p in psutil.Process(shell.pid).children()]
        assert len(helpers) == 2
        with Watchdog(0.3, lambda: kill_group(shell.pid), "sh") as dog:
            shell.wait(timeout=10)
        assert dog.fired and shell.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in helpers)
    finally:
        kill_group(shell.pid)
        shell.wait()
    with Watchdog(5, lambda: None) as quiet:
        pass
    assert not quiet.fired


def test_a_child_dies_with_its_parent(tmp_path: Path):
    """PR_SET_PDEATHSIG: a parent SIGKILLed (as the runner's job timeout kills a worker)
    takes its children along."""
    script = textwrap.dedent("""
        import time
        from docmill.engines.supervisor import spawn
        child = spawn(["sleep", "600"])
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())
    assert not gone(orphan)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while not gone(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(orphan)
