"""Recovery benchmark: stop a server with N small jobs in flight, restart it, count the damage.

For each scenario (database backend x how the server is stopped), against a real
`docmill serve` subprocess (temp data folder, free port, SQLite or a fresh PostgreSQL database):

1. queue N jobs on an API-only server (`DOCMILL_WORKERS=0`), from several client threads,
   interleaved: `diag.sleep` (0.2 s, echoes its input) and `pdf.to-text` of a one-page PDF,
   after one reference `pdf.to-text` job whose text every later one must equal; queueing
   first keeps the mix at the stop independent of how fast the machine takes uploads;
2. restart it with `--workers` workers; once a share of the N (`--kill-at`) is done and some
   are PROCESSING, stop it:
   * **SIGKILL**: the server's process group at once, a crash (the pool host and workers, in
     groups of their own, exit with it);
   * **SIGTERM**: the server process only, as `kill <pid>` or `docker stop` (with Docmill as
     the container's PID 1) would; it should drain its running jobs within
     `DOCMILL_SHUTDOWN_GRACE_S` and release the rest to the queue;
   * **SIGTERM-group** (`--signals termgroup`, not run by default): SIGTERM to the whole
     process group, as systemd's default `KillMode=control-group` does: the workers get it
     too;
3. read the job states the stop left behind straight from the database, restart the server
   on the same data folder and database, and poll the database until every job is terminal;
4. read every job through the API and download every output.

Figures per scenario:

* **drain**: seconds from the restart (the new process being spawned) to all N jobs
  terminal; also from the moment the server answered `/readyz`, and the moments the new
  workers claimed and finished their first job (cold workers import their engines then);
* **reclaim**: for jobs left PROCESSING by the stop, seconds from the restart to the last of
  them being requeued (event in `job_events`) and to the last of them being terminal;
* **lost**: jobs never terminal within `--drain-timeout`, unknown to the API, or SUCCESS
  without a downloadable output equal to the expected one (the echoed input, or the reference
  job's text);
* **duplicated**: jobs with more than one SUCCESS transition in `job_events` (or more than one
  terminal transition, or more output rows than one run writes);
* **ERROR**: jobs that ended ERROR, by error code;
* **attempts**: histogram of `jobs.attempts` (a release on graceful shutdown gives its attempt
  back) and of claims (PROCESSING transitions: how many times the work was started);
* **stray outputs**: `output-<attempt>` blob folders of attempts that did not win (a worker
  killed between storing its outputs and recording success leaves them behind).

Targets: 0 lost, 0 duplicated.

    .venv/bin/python bench/recovery.py [-n 200] [--backends sqlite,postgres]
                                       [--signals kill,term[,termgroup]] [--workers 8]
                                       [--src path/to/docmill/src]

Results go to bench/results/recovery.json and bench/results/recovery.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import DATA, DocmillServer  # noqa: E402 - after the sys.path entry above

RESULTS = ROOT / "bench" / "results"
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "termgroup": signal.SIGTERM}
SIGNAL_NAMES = {"kill": "SIGKILL", "term": "SIGTERM", "termgroup": "SIGTERM-group"}
TERMINAL = ("SUCCESS", "ERROR")
console = Console(width=None if sys.stdout.isatty() else 220)

# The few columns read here, declared apart from docmill's models so that the benchmark can
# read the database of any Docmill version it runs (see --src).
_meta = MetaData()
Job = Table("jobs", _meta, Column("id", String, primary_key=True), Column("org_id", String),
            Column("status", String), Column("attempts", Integer), Column("error_code", String),
            Column("finished_at", DateTime)).c
JobEvent = Table("job_events", _meta, Column("id", Integer, primary_key=True),
                 Column("job_id", String), Column("status", String), Column("at", DateTime),
                 Column("detail", Text)).c
JobFile = Table("job_files", _meta, Column("id", Integer, primary_key=True),
                Column("job_id", String), Column("role", String)).c


# --- helpers --------------------------------------------------------------------------------

def machine_info(src: Path) -> dict[str, Any]:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True,
                                   check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = os.cpu_count() or 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "."], cwd=src, check=False,
                                    text=True, capture_output=True).stdout.strip())
        # uncommitted changes: a fingerprint, so that a run can be matched to a working tree
        diff = subprocess.run(["git", "diff", "HEAD", "--", "."], cwd=src, capture_output=True,
                              check=True).stdout if dirty else b""
    except (OSError, subprocess.CalledProcessError):
        commit, dirty, diff = "unknown", False, b""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu": cpu_model,
        "nproc": nproc,
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "src": str(src),
        "commit": commit + ("+dirty" if dirty else ""),
        "uncommitted_diff_sha256": hashlib.sha256(diff).hexdigest()[:16] if dirty else None,
    }


def status_counts(db: Engine, ids: list[str] | None = None) -> dict[str, int]:
    query = select(Job.status, func.count()).group_by(Job.status)
    if ids is not None:
        query = query.where(Job.id.in_(ids))
    with db.connect() as conn:
        return {status: n for status, n in conn.execute(query).all()}


def histogram(values: list[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(collections.Counter(values).items())}


def utc(at: dt.datetime) -> dt.datetime:
    """SQLite gives naive datetimes (Docmill stores UTC); PostgreSQL gives aware ones."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def rel(at: dt.datetime | None, origin: float) -> float | None:
    return None if at is None else round(utc(at).timestamp() - origin, 3)


class Jobs:
    """Submitting the N jobs (multipart, the PDF read once) from several client threads."""

    def __init__(self, server: DocmillServer, source: Path, diag_seconds: float) -> None:
        self.server = server
        self.source = source
        self.payload = source.read_bytes()
        self.kinds = {
            "diag": ("diag.sleep", {"seconds": diag_seconds, "steps": 2}),
            "text": ("pdf.to-text", {}),
        }

    def submit(self, client: httpx.Client, kind: str, wait: float = 0) -> dict[str, Any]:
        operation, params = self.kinds[kind]
        response = client.post("/v1/jobs", params={"wait": wait} if wait else None,
                               data={"operation": operation, "params": json.dumps(params)},
                               files={"file": (self.source.name, self.payload,
                                               "application/pdf")})
        if response.status_code not in (200, 202):
            raise RuntimeError(f"submit {operation}: HTTP {response.status_code} "
                               f"{response.text[:300]}")
        return response.json()

    def submit_all(self, plan: list[str], clients: int) -> dict[str, str]:
        """Submit `plan` (a kind per job); returns job id -> kind."""
        local = threading.local()
        made: list[httpx.Client] = []
        lock = threading.Lock()

        def one(kind: str) -> tuple[str, str]:
            if not hasattr(local, "client"):
                local.client = self.server.client("bench")
                with lock:
                    made.append(local.client)
            return self.submit(local.client, kind)["id"], kind

        try:
            with ThreadPoolExecutor(max_workers=clients) as pool:
                return dict(pool.map(one, plan))
        finally:
            for client in made:
                client.close()


def log_errors(text: str) -> dict[str, int]:
    """The exception line ending each traceback in the server log (all its runs), counted;
    for chained exceptions, the last one."""
    found: collections.Counter[str] = collections.Counter()
    in_traceback = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            found[line.strip()[:200]] += 1
            in_traceback = False
    for chained in ("The above exception was the direct cause of the following exception:",
                    "During handling of the above exception, another exception occurred:"):
        found.pop(chained, None)
    return dict(found.most_common())


def stop_server(srv: DocmillServer, how: str, timeout: float) -> None:
    """`kill`: SIGKILL to the process group; `term`: SIGTERM to the server process only;
    `termgroup`: SIGTERM to the whole group (what systemd's default KillMode=control-group
    or `kill -TERM -<pgid>` do: the workers get it too). Leftovers are SIGKILLed after."""
    if how != "termgroup":
        srv.stop(SIGNALS[how], timeout=timeout)
        return
    assert srv.process is not None
    try:
        os.killpg(srv.process.pid, signal.SIGTERM)
        srv.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        try:
            os.killpg(srv.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        srv.process.wait(timeout=10)


# --- one scenario ---------------------------------------------------------------------------

def run_scenario(backend: str, how: str, args: argparse.Namespace, source: Path,
                 workdir: Path) -> dict[str, Any]:
    srv = DocmillServer(workdir / f"{backend}-{how}", backend=backend, extra_env={
        "DOCMILL_ENABLE_DIAGNOSTICS": "true",
        "DOCMILL_WORKERS": "0",  # first an API-only server that queues the N jobs
        "DOCMILL_SHUTDOWN_GRACE_S": str(args.grace),
        "DOCMILL_MAX_ATTEMPTS": str(args.max_attempts),
    })
    db: Engine | None = None
    try:
        srv.cli("migrate")
        srv.create_key("bench", admin=True)
        db = create_engine(srv.database_url)
        submitter = Jobs(srv, source, args.diag_seconds)
        diag_every = max(1, round(1 / args.diag_share)) if args.diag_share > 0 else 0
        plan = ["diag" if diag_every and i % diag_every == 0 else "text" for i in range(args.jobs)]

        # -- queue the N jobs on an API-only server (so that the mix at the stop does not hang
        #    on how fast this machine accepts uploads compared with how fast it runs jobs) --
        srv.start()
        with srv.client("bench") as client:  # first in the queue: its text is the reference
            reference_id = submitter.submit(client, "text")["id"]
        t_submit = time.monotonic()
        kinds = submitter.submit_all(plan, args.clients)
        submit_s = time.monotonic() - t_submit
        ids = list(kinds)
        if len(ids) != args.jobs:
            raise RuntimeError(f"submitted {len(ids)} of {args.jobs} jobs")
        srv.stop(signal.SIGTERM)

        # -- a server with workers takes them; stop it once enough are done ----------------
        srv.extra_env["DOCMILL_WORKERS"] = str(args.workers)
        t_work = time.monotonic()
        srv.start()
        target = int(args.jobs * args.kill_at)
        deadline = time.monotonic() + 120
        while True:
            before = status_counts(db, ids)
            done = sum(before.get(s, 0) for s in TERMINAL)
            if (done >= target and before.get("PROCESSING", 0) > 0) or done == len(ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"never reached {target} done with some PROCESSING: {before}")
            time.sleep(0.01)
        run_before_stop_s = time.monotonic() - t_work
        t_stop = time.monotonic()
        stop_server(srv, how, timeout=args.grace + 60)
        stop_s = time.monotonic() - t_stop
        after_stop = status_counts(db, ids)
        with db.connect() as conn:
            left_processing = [r[0] for r in conn.execute(
                select(Job.id).where(Job.id.in_(ids), Job.status == "PROCESSING")).all()]

        # -- restart and wait for every job to be terminal -----------------------------------
        restart_wall = time.time()
        t_restart = time.monotonic()
        srv.start()
        ready_s = time.monotonic() - t_restart
        drain_s: float | None = None
        deadline = t_restart + args.drain_timeout
        while time.monotonic() < deadline:
            counts = status_counts(db, ids)
            if sum(counts.get(s, 0) for s in TERMINAL) == len(ids):
                drain_s = time.monotonic() - t_restart
                break
            time.sleep(0.05)
        final = status_counts(db, ids)

        # -- what the database says ---------------------------------------------------------
        with db.connect() as conn:
            jobs = {r.id: r for r in conn.execute(
                select(Job.id, Job.status, Job.attempts, Job.error_code, Job.finished_at)
                .where(Job.id.in_(ids))).all()}
            events = conn.execute(
                select(JobEvent.job_id, JobEvent.status, JobEvent.at, JobEvent.detail)
                .where(JobEvent.job_id.in_(ids)).order_by(JobEvent.id)).all()
            outputs = collections.Counter(r[0] for r in conn.execute(
                select(JobFile.job_id).where(JobFile.job_id.in_(ids),
                                             JobFile.role == "output")).all())
            (org_id,) = conn.execute(select(Job.org_id).where(Job.id == ids[0])).one()
        successes = collections.Counter(e.job_id for e in events if e.status == "SUCCESS")
        terminals = collections.Counter(e.job_id for e in events if e.status in TERMINAL)
        claims = collections.Counter(e.job_id for e in events if e.status == "PROCESSING")
        duplicated = sorted({j for j, n in successes.items() if n > 1}
                            | {j for j, n in terminals.items() if n > 1}
                            | {j for j, n in outputs.items() if n > 1})
        requeues = [e for e in events if e.status == "ENQUEUED"
                    and utc(e.at).timestamp() >= restart_wall and e.job_id in left_processing]
        reclaim_s = max((rel(e.at, restart_wall) for e in requeues), default=None)
        interrupted_done_s = max((rel(jobs[j].finished_at, restart_wall)
                                  for j in left_processing if jobs.get(j) is not None
                                  and jobs[j].finished_at is not None), default=None)
        after = [e for e in events if utc(e.at).timestamp() >= restart_wall]
        first_claim_s = min((rel(e.at, restart_wall) for e in after
                             if e.status == "PROCESSING"), default=None)
        first_success_s = min((rel(e.at, restart_wall) for e in after
                                if e.status == "SUCCESS"), default=None)
        requeues_why = collections.Counter(
            (e.detail or "").split(": ")[0] + (": " + e.detail.split(": ")[1]
                                               if e.detail.startswith("worker error") else "")
            for e in events if e.status == "ENQUEUED" and e.detail != "submitted")
        errors = collections.Counter(j.error_code for j in jobs.values() if j.status == "ERROR")

        # -- what a client sees: every job through the API, every output downloaded ---------
        lost: dict[str, str] = {}
        for job_id in ids:
            if job_id not in jobs:
                lost[job_id] = "missing from the database"
            elif jobs[job_id].status not in TERMINAL:
                lost[job_id] = f"still {jobs[job_id].status} after {args.drain_timeout:g} s"
        with srv.client("bench") as client:
            reference = client.get(f"/v1/jobs/{reference_id}").json()
            if reference["status"] != "SUCCESS":
                raise RuntimeError(f"the reference job ended {reference['status']}: "
                                   f"{reference.get('error')}")
            reference_text = client.get(reference["files"][0]["url"]).content
            if not reference_text.strip():
                raise RuntimeError("the reference job's text is empty")
            for job_id in ids:
                if job_id in lost:
                    continue
                response = client.get(f"/v1/jobs/{job_id}")
                if response.status_code != 200:
                    lost[job_id] = f"GET answered {response.status_code}"
                    continue
                view = response.json()
                if view["status"] != "SUCCESS":
                    continue  # ERROR is counted apart
                if len(view["files"]) != 1:
                    lost[job_id] = f"SUCCESS with {len(view['files'])} output files"
                    continue
                body = client.get(view["files"][0]["url"])
                expected = submitter.payload if kinds[job_id] == "diag" else reference_text
                if body.status_code != 200:
                    lost[job_id] = f"output download answered {body.status_code}"
                elif body.content != expected:
                    lost[job_id] = "output differs from the expected one"

        # -- blob folders of attempts that did not win ---------------------------------------
        stray = 0
        for job_id in ids:
            folder = srv.root / "blobs" / org_id / job_id
            winner = f"output-{jobs[job_id].attempts}" if job_id in jobs and \
                jobs[job_id].status == "SUCCESS" else None
            if folder.is_dir():
                stray += sum(1 for p in folder.iterdir()
                             if p.name.startswith("output-") and p.name != winner)

        log_text = (srv.root / "server.log").read_text(errors="replace")
        remaining = after_stop.get("ENQUEUED", 0) + after_stop.get("PROCESSING", 0)
        work_s = (drain_s - ready_s) if drain_s is not None else None
        return {
            "backend": backend,
            "signal": SIGNAL_NAMES[how],
            "jobs": len(ids),
            "mix": dict(collections.Counter(kinds.values())),
            "grace_s": args.grace,
            "submit_s": round(submit_s, 3),
            "run_before_stop_s": round(run_before_stop_s, 3),
            "at_signal": before,
            "stop_s": round(stop_s, 3),
            "after_stop": after_stop,
            "left_processing": len(left_processing),
            "remaining_at_restart": remaining,
            "ready_s": round(ready_s, 3),
            "drain_s": round(drain_s, 3) if drain_s is not None else None,
            "drain_after_ready_s": round(work_s, 3) if work_s is not None else None,
            "drain_jobs_per_s": round(remaining / work_s, 1) if work_s else None,
            "reclaim_s": reclaim_s,
            "first_claim_s": first_claim_s,
            "first_success_s": first_success_s,
            "interrupted_terminal_s": interrupted_done_s,
            "final": final,
            "lost": len(lost),
            "lost_jobs": lost,
            "duplicated": len(duplicated),
            "duplicated_jobs": {j: {"success_events": successes[j], "terminal_events":
                                    terminals[j], "output_rows": outputs[j]} for j in duplicated},
            "error": sum(errors.values()),
            "error_codes": dict(errors),
            "requeued": dict(requeues_why.most_common()),
            "attempts_histogram": histogram([j.attempts for j in jobs.values()]),
            "claims_histogram": histogram([claims[j] for j in ids]),
            "stray_output_folders": stray,
            "log_errors": (found_errors := log_errors(log_text)),
            "log_tracebacks": sum(found_errors.values()),
        }
    finally:
        if db is not None:
            db.dispose()
        if not args.keep:
            srv.destroy()
        else:
            srv.stop(signal.SIGKILL)


# --- report -------------------------------------------------------------------------------

def fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def states(counts: dict[str, int]) -> str:
    order = ("ENQUEUED", "PROCESSING", "SUCCESS", "ERROR")
    return " / ".join(str(counts.get(s, 0)) for s in order)


def hist(h: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in h.items())


COLUMNS = [
    ("scenario", lambda r: f"{r['backend']} {r['signal']}"),
    ("at signal E/P/S/X", lambda r: states(r["at_signal"])),
    ("stop s", lambda r: fmt(r["stop_s"])),
    ("after stop E/P/S/X", lambda r: states(r["after_stop"])),
    ("ready s", lambda r: fmt(r["ready_s"])),
    ("drain s", lambda r: fmt(r["drain_s"])),
    ("reclaim s", lambda r: fmt(r["reclaim_s"])),
    ("1st claim s", lambda r: fmt(r["first_claim_s"])),
    ("1st done s", lambda r: fmt(r["first_success_s"])),
    ("lost", lambda r: str(r["lost"])),
    ("dup", lambda r: str(r["duplicated"])),
    ("ERROR", lambda r: str(r["error"])),
    ("attempts", lambda r: hist(r["attempts_histogram"])),
    ("claims", lambda r: hist(r["claims_histogram"])),
    ("requeued", lambda r: "; ".join(f"{k}: {v}" for k, v in r["requeued"].items()) or "-"),
    ("stray out", lambda r: str(r["stray_output_folders"])),
]


def build_table(res: dict[str, Any]) -> RichTable:
    table = RichTable(title=f"Docmill recovery: N={res['jobs']} jobs in flight, "
                        f"{res['workers']} workers (E/P/S/X = ENQUEUED/PROCESSING/SUCCESS/ERROR)")
    for name, _ in COLUMNS:
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for row in res["scenarios"]:
        table.add_row(*(f(row) for _, f in COLUMNS))
    return table


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = res["scenarios"]
    lost = sum(r["lost"] for r in rows)
    dup = sum(r["duplicated"] for r in rows)
    lines = [
        "# Recovery benchmark",
        "",
        f"N={res['jobs']} small jobs in flight ({res['mix'].get('diag', 0)} `diag.sleep` + "
        f"{res['mix'].get('text', 0)} `pdf.to-text`), the server stopped once "
        f"{res['kill_at']:.0%} of them were done and some were PROCESSING, then restarted on the "
        f"same data; run with `.venv/bin/python bench/recovery.py {' '.join(res['argv'])}`."
        .replace("  ", " ").rstrip(),
        "",
        f"- date: {m['date']}",
        (f"- machine: {m['cpu']}, nproc {m['nproc']}, {m['os']} ({m['host']}); load average "
        f"{'/'.join(map(str, m['loadavg_1_5_15']))} (1/5/15 min) before the run, "
        f"{'/'.join(map(str, res['loadavg_after']))} after"),
        f"- Python {m['python']}; Docmill from `{m['src']}`, commit {m['commit']}"
        + (f" (uncommitted diff sha256 {m['uncommitted_diff_sha256']}...)"
           if m.get("uncommitted_diff_sha256") else ""),
        (f"- server: `docmill serve`, local dispatcher, {res['workers']} worker processes, "
        f"`DOCMILL_SHUTDOWN_GRACE_S={res['grace_s']:g}`, max attempts {res['max_attempts']}; "
        f"jobs: `diag.sleep` {res['diag_seconds']:g} s (echoes its input) and `pdf.to-text` of "
        f"`{res['input']}`; {res['clients']} submitting clients"),
        ("- SIGKILL goes to the server's process group (the pool host and its workers follow "
        "it); SIGTERM to the "
        "server process only; SIGTERM-group (if run) to the whole process group"),
        "",
        ("States are ENQUEUED / PROCESSING / SUCCESS / ERROR among the N jobs. *drain* is from "
        "spawning the new server to all N terminal; *reclaim* from the same moment to the last "
        "job left PROCESSING by the stop being requeued; *1st claim* / *1st done* from the same "
        "moment to the first job claimed / finished by the new server's workers; histograms are "
        "value:jobs (attempts is `jobs.attempts`, claims the PROCESSING transitions in "
        "`job_events`, i.e. how many times the work was started)."),
        "",
        ("| scenario | at signal | stop s | after stop | ready s | drain s | drain after ready s "
        "| reclaim s | 1st claim s | 1st done s | lost | duplicated | ERROR | attempts | claims "
        "| requeued (why: jobs) | stray outputs |"),
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} {r['signal']} | {states(r['at_signal'])} | {fmt(r['stop_s'])} | "
            f"{states(r['after_stop'])} | {fmt(r['ready_s'])} | {fmt(r['drain_s'])} | "
            f"{fmt(r['drain_after_ready_s'])} | {fmt(r['reclaim_s'])} | "
            f"{fmt(r['first_claim_s'])} | {fmt(r['first_success_s'])} | {r['lost']} | "
            f"{r['duplicated']} | {r['error']} | {hist(r['attempts_histogram'])} | "
            f"{hist(r['claims_histogram'])} | "
            f"{'; '.join(f'{k}: {v}' for k, v in r['requeued'].items()) or '-'} | "
            f"{r['stray_output_folders']} |")
    lines += [
        "",
        (f"Targets: 0 lost ({'met' if lost == 0 else f'**not met: {lost}**'}), 0 duplicated "
        f"({'met' if dup == 0 else f'**not met: {dup}**'})."),
        "",
    ]
    notes = res.get("notes") or []
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def observations(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for r in rows:
        name = f"{r['backend']} {r['signal']}"
        if r["lost"]:
            notes.append(f"{name}: {r['lost']} lost: " + "; ".join(
                f"{j[:8]} {why}" for j, why in list(r["lost_jobs"].items())[:5]))
        if r["duplicated"]:
            notes.append(f"{name}: {r['duplicated']} duplicated: {r['duplicated_jobs']}")
        if r["error"]:
            notes.append(f"{name}: {r['error']} ended ERROR: {r['error_codes']}")
        if r["signal"].startswith("SIGTERM") and r["after_stop"].get("PROCESSING", 0):
            notes.append(f"{name}: the graceful stop left {r['after_stop']['PROCESSING']} "
                         "jobs PROCESSING (they should have finished or been released)")
        if r["signal"].startswith("SIGTERM"):
            rerun = sum(n for k, n in r["claims_histogram"].items() if int(k) > 1)
            if rerun:
                notes.append(f"{name}: {rerun} jobs were started twice: their run was cut by "
                             "the graceful stop and redone after the restart")
            if r["stop_s"] >= r["grace_s"]:
                notes.append(f"{name}: the graceful stop took {r['stop_s']:.1f} s, the whole "
                             f"grace period ({r['grace_s']:g} s)")
        spent = {why: n for why, n in r["requeued"].items() if why != "released on shutdown"}
        if r["signal"].startswith("SIGTERM") and spent:
            notes.append(f"{name}: a graceful stop spent attempts (requeued as {spent}) "
                         "instead of releasing the jobs")
        if r["stray_output_folders"]:
            notes.append(f"{name}: {r['stray_output_folders']} output folders of losing attempts "
                         "left in the blob store")
        if r["first_claim_s"] is not None and r["first_claim_s"] - r["ready_s"] > 2:
            notes.append(f"{name}: the new workers claimed their first job "
                         f"{r['first_claim_s'] - r['ready_s']:.1f} s after /readyz and finished "
                         f"it {r['first_success_s'] - r['first_claim_s']:.1f} s later (cold "
                         "start): most of the drain time")
        if r["log_tracebacks"]:
            notes.append(f"{name}: {r['log_tracebacks']} tracebacks in the server log: "
                         + "; ".join(f"{n} x `{line}`" for line, n in r["log_errors"].items()))
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=200, help="jobs in flight (N)")
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="comma list of sqlite, postgres")
    parser.add_argument("--signals", default="kill,term",
                        help="comma list of kill (SIGKILL to the process group), term (SIGTERM "
                        "to the server process), termgroup (SIGTERM to the process group)")
    parser.add_argument("--workers", type=int, default=8,
                        help="DOCMILL_WORKERS (diag jobs sleep, so more than the CPUs is fine)")
    parser.add_argument("--clients", type=int, default=8, help="submitting client threads")
    parser.add_argument("--diag-share", type=float, default=0.5,
                        help="share of diag.sleep jobs in the mix (rest pdf.to-text)")
    parser.add_argument("--diag-seconds", type=float, default=0.2)
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="stop the server once this share of the N jobs is done")
    parser.add_argument("--grace", type=float, default=10, help="DOCMILL_SHUTDOWN_GRACE_S")
    parser.add_argument("--max-attempts", type=int, default=3, help="DOCMILL_MAX_ATTEMPTS")
    parser.add_argument("--drain-timeout", type=float, default=90,
                        help="jobs not terminal this long after the restart count as lost")
    parser.add_argument("--input", type=Path, default=DATA / "pdf" / "minimal-document.pdf")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="Docmill source folder the servers run from (put first on their "
                        "PYTHONPATH); default: this checkout's")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for recovery.json/.md")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--keep", action="store_true",
                        help="keep the data folders (and PostgreSQL databases) for inspection")
    args = parser.parse_args()

    backends = [b for b in args.backends.split(",") if b]
    hows = [h for h in args.signals.split(",") if h]
    for b in backends:
        if b not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {b!r}")
    for h in hows:
        if h not in SIGNALS:
            parser.error(f"unknown signal {h!r} (kill, term, termgroup)")
    source = args.input.resolve()
    src = args.src.resolve()
    if not (src / "docmill" / "cli.py").is_file():
        parser.error(f"{src} is not a Docmill source folder (no docmill/cli.py)")
    # DocmillServer passes this process's environment (minus DOCMILL_*) to `docmill serve`.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(src), *filter(None, [os.environ.get("PYTHONPATH")])])
    workdir = Path(tempfile.mkdtemp(prefix="docmill-recovery-"))
    machine = machine_info(src)
    rows = []
    t0 = time.monotonic()
    for backend in backends:
        for how in hows:
            console.print(f"[bold]{backend} {SIGNAL_NAMES[how]}[/]: {args.jobs} jobs ...")
            row = run_scenario(backend, how, args, source, workdir)
            console.print(f"  at signal {row['at_signal']}, after stop {row['after_stop']}, "
                          f"drain {fmt(row['drain_s'], ' s')}, lost {row['lost']}, "
                          f"duplicated {row['duplicated']}, ERROR {row['error']}")
            rows.append(row)
    total_s = time.monotonic() - t0
    res: dict[str, Any] = {
        "machine": machine,
        "argv": sys.argv[1:],
        "jobs": args.jobs,
        "mix": dict(collections.Counter(rows[0]["mix"])) if rows else {},
        "workers": args.workers,
        "clients": args.clients,
        "diag_seconds": args.diag_seconds,
        "kill_at": args.kill_at,
        "grace_s": args.grace,
        "max_attempts": args.max_attempts,
        "input": source.name,
        "total_s": round(total_s, 1),
        "scenarios": rows,
    }
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["notes"] = observations(rows)
    res["targets"] = {"lost": sum(r["lost"] for r in rows) == 0,
                      "duplicated": sum(r["duplicated"] for r in rows) == 0}
    console.print(build_table(res))
    for note in res["notes"]:
        console.print(f"[yellow]! {note}[/]")
    console.print(f"total {total_s:.0f} s; data in {workdir}" if args.keep else
                  f"total {total_s:.0f} s")
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "recovery.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
        (args.out / "recovery.md").write_text(markdown(res))
        console.print(f"wrote {args.out / 'recovery.json'} and {args.out / 'recovery.md'}")
    return 0 if all(res["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
