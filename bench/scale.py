"""Scale benchmark: the same batch of small jobs, embedded (SQLite, local pool) vs distributed
(PostgreSQL + Celery on Redis + S3 on SeaweedFS), and what each job costs the database and the
broker in the distributed deployment.

The batch: N (`--jobs`, default 500) `pdf.to-text` jobs on minimal-document.pdf, submitted by
`--clients` (8) threads with httpx (multipart `POST /v1/jobs`, no wait), then every job awaited
with `GET /v1/jobs/{id}?wait=30` until terminal. Every job must end SUCCESS.

* (a) **embedded**: one `docmill serve`, SQLite, `DOCMILL_WORKERS=2` local pool processes.
* (b) **distributed**: one `docmill serve --no-workers` API process, 2 `docmill worker`
  processes with Celery concurrency 1 each (`DOCMILL_WORKERS=1`), PostgreSQL (fresh database),
  a private `redis-server` on a free port (so INFO commandstats counts only this deployment),
  SeaweedFS S3.

Latency per job = the job's `finished_at` (server clock, same machine) minus the client's clock
just before its POST. jobs/s = N / (last `finished_at` - first POST).

Per-job cost in (b), from counters read before and after the batch:
* PostgreSQL `pg_stat_database` of the deployment's own database: xact_commit, xact_rollback,
  tup_inserted / tup_updated / tup_deleted / tup_returned / tup_fetched. pg_stat_statements is
  used for statement counts only if it is loaded (`shared_preload_libraries`); otherwise not.
  PostgreSQL flushes backend statistics lazily (up to ~10 s after a backend goes idle), so each
  snapshot is taken after a settle pause.
* Redis `INFO commandstats`: total calls, and per command.
Background traffic (sweeper, Celery heartbeats/broker polling) is measured over an idle window
before the batch and reported both included ("gross") and subtracted ("net").

Also measured, for the capacity model: `pgbench -N` (simple write transactions) on a throwaway
database on the same PostgreSQL, if pgbench is installed.

    .venv/bin/python bench/scale.py [--jobs 500] [--clients 8] [--idle 15] [--skip-pgbench]

Results go to bench/results/scale.json and bench/results/scale.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import DATA, PG_ADMIN_URL, DocmillServer, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OPERATION = "pdf.to-text"
DOCUMENT = DATA / "pdf" / "minimal-document.pdf"
SETTLE_S = 12.0  # > PostgreSQL's idle stats flush interval (10 s)
console = Console()


# --- helpers --------------------------------------------------------------------------------

def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def multipart_body(path: Path) -> tuple[bytes, str]:
    boundary = f"docmillbench{uuid.uuid4().hex}"
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"operation\"\r\n\r\n"
        f"{OPERATION}\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{path.name}\"\r\nContent-Type: application/pdf\r\n\r\n".encode(),
        path.read_bytes(),
        f"\r\n--{boundary}--\r\n".encode(),
    ])
    return body, f"multipart/form-data; boundary={boundary}"


# --- counters -------------------------------------------------------------------------------

PG_COLUMNS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
              "tup_returned", "tup_fetched", "blks_hit", "blks_read")


def pg_snapshot(database_url: str) -> dict[str, float]:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {', '.join(PG_COLUMNS)} FROM pg_stat_database "
                           "WHERE datname = %s", (name,)).fetchone()
        stmts = None
        try:
            stmts = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                (name,)).fetchone()[0]
        except Exception:  # noqa: BLE001 - extension not loaded
            pass
    snap = {col: float(val) for col, val in zip(PG_COLUMNS, row, strict=True)}
    if stmts is not None:
        snap["statements"] = float(stmts)
    return snap


def pg_statements_available() -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        libs = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    return "pg_stat_statements" in libs


_redis_clients: dict[str, Any] = {}


def redis_snapshot(url: str) -> dict[str, float]:
    """One persistent connection, so each snapshot adds exactly one INFO call of its own to the
    counters; `delta` takes it off again."""
    import redis

    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url)
        _redis_clients[url].ping()
    stats = _redis_clients[url].info("commandstats")
    out = {name.removeprefix("cmdstat_"): float(v["calls"]) for name, v in stats.items()}
    out["_total"] = sum(out.values())
    return out


def redis_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    out = delta(after, before)
    out["info"] = out.get("info", 0.0) - 1  # our own snapshot's INFO
    out["_total"] -= 1
    return out


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


class PrivateRedis:
    """A throwaway redis-server on a free port: INFO commandstats is server-wide, and the
    shared Redis on 6379 also serves other test runs."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(root)],
            stdout=open(root / "redis.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- the batch ------------------------------------------------------------------------------

def run_batch(server: DocmillServer, n: int, clients: int) -> dict[str, Any]:
    body, ctype = multipart_body(DOCUMENT)
    headers = {"Authorization": f"Bearer {server.keys['bench']}", "Content-Type": ctype}
    # warm-up: one job end to end (engine import, connections)
    with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as c:
        r = c.post("/v1/jobs?wait=30", content=body)
        r.raise_for_status()
        assert r.json()["status"] == "SUCCESS", r.json()

    submitted: list[tuple[str, float]] = []
    finished: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(share: int) -> None:
        mine: list[tuple[str, float]] = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=60,
                          trust_env=False) as c:
            c.get("/v1/operations")  # open the connection before the clock starts
            barrier.wait()
            for _ in range(share):
                t0 = time.time()
                try:
                    r = c.post("/v1/jobs", content=body)
                    r.raise_for_status()
                    mine.append((r.json()["id"], t0))
                except Exception as exc:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(f"submit: {type(exc).__name__}: {exc}")
            with lock:
                submitted.extend(mine)
            for job_id, t0 in mine:
                try:
                    while True:
                        r = c.get(f"/v1/jobs/{job_id}", params={"wait": 30})
                        r.raise_for_status()
                        job = r.json()
                        if job["status"] in ("SUCCESS", "ERROR", "CANCELLED", "EXPIRED"):
                            break
                    with lock:
                        finished[job_id] = {"t0": t0, "done": time.time(), **job}
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        errors.append(f"wait {job_id}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in shares]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.time()
    load_before = load()
    for t in threads:
        t.join()
    client_wall = time.time() - start
    load_after = load()
    bad = [j for j in finished.values() if j["status"] != "SUCCESS"]
    if errors or bad or len(finished) != n:
        raise RuntimeError(f"{len(errors)} errors, {len(bad)} not SUCCESS, {len(finished)}/{n} "
                           f"finished; first: {(errors or [str(b) for b in bad] or [''])[0]}")
    lat = [(parse_ts(j["finished_at"]) - j["t0"]) * 1000 for j in finished.values()]
    last_finish = max(parse_ts(j["finished_at"]) for j in finished.values())
    last_submit = max(t0 for _, t0 in submitted)
    wall = last_finish - start
    attempts = sum(j["attempts"] for j in finished.values())
    return {
        "jobs": n, "clients": clients,
        "wall_s": round(wall, 3), "client_wall_s": round(client_wall, 3),
        "submit_phase_s": round(last_submit - start, 3),
        "submit_per_s": round(n / max(last_submit - start, 1e-9), 1),
        "jobs_per_s": round(n / wall, 2),
        "p50_ms": round(percentile(lat, 50), 1), "p95_ms": round(percentile(lat, 95), 1),
        "p99_ms": round(percentile(lat, 99), 1), "max_ms": round(max(lat), 1),
        "attempts_total": attempts,
        "load_avg_before": load_before, "load_avg_after": load_after,
    }


def make_server(tmp: Path, backend: str, **kw: Any) -> DocmillServer:
    server = DocmillServer(tmp / backend, backend=backend, **kw)
    server.cli("migrate")
    server.create_key("bench")
    return server


def run_embedded(tmp: Path, n: int, clients: int) -> dict[str, Any]:
    server = make_server(tmp, "sqlite", extra_env={"DOCMILL_WORKERS": "2",
                                                     "DOCMILL_SWEEP_INTERVAL_S": "30"})
    try:
        server.start()
        result = run_batch(server, n, clients)
    finally:
        server.destroy()
    result["setup"] = "1 x `docmill serve`, SQLite (WAL), DOCMILL_WORKERS=2 local pool"
    return result


def run_distributed(tmp: Path, n: int, clients: int, idle_s: float) -> dict[str, Any]:
    from services import SeaweedS3

    seaweed = SeaweedS3(tmp / "seaweed")
    redis_srv = PrivateRedis(tmp / "redis")
    server = None
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        server = make_server(tmp, "distributed", s3_env=seaweed.env(bucket),
                             broker_url=redis_srv.url, distributed_workers=2,
                             extra_env={"DOCMILL_WORKERS": "1", "DOCMILL_SWEEP_INTERVAL_S": "30"})
        server.start()
        # Idle window: background database and broker traffic with no jobs.
        time.sleep(SETTLE_S)
        pg0, rd0, t0 = pg_snapshot(server.database_url), redis_snapshot(redis_srv.url), time.time()
        time.sleep(idle_s)
        pg1, rd1, t1 = pg_snapshot(server.database_url), redis_snapshot(redis_srv.url), time.time()
        result = run_batch(server, n, clients)
        time.sleep(SETTLE_S)
        result["load_avg_after_settle"] = load()
        pg2, rd2, t2 = pg_snapshot(server.database_url), redis_snapshot(redis_srv.url), time.time()
    finally:
        if server is not None:
            server.destroy()
        redis_srv.stop()
        seaweed.stop()
    idle_window, run_window = t1 - t0, t2 - t1
    pg_idle, pg_run = delta(pg1, pg0), delta(pg2, pg1)
    rd_idle, rd_run = redis_delta(rd1, rd0), redis_delta(rd2, rd1)
    n_all = n + 1  # the warm-up job ran inside the measured window too

    def per_job(run: dict[str, float], idle: dict[str, float]) -> dict[str, dict[str, float]]:
        out = {}
        for key, value in run.items():
            background = idle.get(key, 0.0) / idle_window * run_window
            out[key] = {"gross": round(value / n_all, 2),
                        "net": round((value - background) / n_all, 2),
                        "idle_per_s": round(idle.get(key, 0.0) / idle_window, 2)}
        return out

    redis_cmds = {k: v for k, v in per_job(rd_run, rd_idle).items()
                  if k == "_total" or v["gross"] >= 0.05 or v["idle_per_s"] > 0}
    result.update({
        "setup": ("1 x `docmill serve --no-workers` + 2 x `docmill worker` (Celery concurrency 1 "
                  "each), PostgreSQL 15, private redis-server (broker), SeaweedFS S3"),
        "window_s": {"idle": round(idle_window, 1), "run": round(run_window, 1)},
        "jobs_in_window": n_all,
        "pg_per_job": per_job(pg_run, pg_idle),
        "pg_stat_statements": "statements" in pg_run,
        "redis_per_job": dict(sorted(redis_cmds.items(), key=lambda kv: -kv[1]["gross"])),
    })
    return result


def run_pgbench(tmp: Path, seconds: int = 10, clients: int = 4) -> dict[str, Any] | None:
    if not shutil.which("pgbench"):
        return None
    import psycopg

    name = f"docmill_pgbench_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", f"{base}/{name}"], check=True,
                       capture_output=True, text=True, timeout=120)
        la = load()
        out = subprocess.run(["pgbench", "-N", "-T", str(seconds), "-c", str(clients), "-j", "2",
                              f"{base}/{name}"], check=True, capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    tps = None
    latency = None
    for line in out.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split("=")[1].split()[0])
        if line.startswith("latency average"):
            latency = float(line.split("=")[1].split()[0])
    return {"command": f"pgbench -N -T {seconds} -c {clients} -j 2 (scale 1)",
            "tps": tps, "latency_avg_ms": latency, "load_avg_before": la,
            "statements_per_tx": "BEGIN; UPDATE pgbench_accounts; SELECT; "
                                 "INSERT pgbench_history; END"}


# --- capacity model --------------------------------------------------------------------------

def capacity(res: dict[str, Any]) -> dict[str, Any]:
    """On paper: how many jobs/s one PostgreSQL carries, from measured per-job transactions and
    pgbench's simple-write TPS on this machine."""
    d = res["distributed"]
    tx_per_job = d["pg_per_job"]["xact_commit"]["net"] + d["pg_per_job"]["xact_rollback"]["net"]
    pgb = res.get("pgbench") or {}
    tps = pgb.get("tps")
    assumed = tps is None
    if assumed:
        tps = 5000.0
    ceiling = tps / tx_per_job if tx_per_job > 0 else None
    return {"tx_per_job": round(tx_per_job, 2), "pg_simple_write_tps": tps,
            "pg_tps_assumed": assumed, "jobs_per_s_ceiling": round(ceiling, 1) if ceiling else None}


# --- report ---------------------------------------------------------------------------------

def build_table(res: dict[str, Any]) -> Table:
    a, b = res["embedded"], res["distributed"]
    table = Table(title=f"{res['jobs']} x {OPERATION}, {res['clients']} client threads")
    for col in ("setup", "jobs/s", "p50 ms", "p95 ms", "p99 ms", "submit/s", "load avg (1,5,15)"):
        table.add_column(col)
    for label, r in (("(a) embedded SQLite, 2 workers", a),
                     ("(b) distributed, 2 Celery workers", b)):
        table.add_row(label, f"{r['jobs_per_s']:.1f}", f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}",
                      f"{r['p99_ms']:.0f}", f"{r['submit_per_s']:.0f}",
                      " ".join(map(str, r["load_avg_after"])))
    ratio = res["ratio_b_over_a"]
    table.add_row("ratio (b)/(a)", f"{ratio['jobs_per_s']:.2f}", f"{ratio['p50']:.2f}",
                  f"{ratio['p95']:.2f}", "", "", "")
    return table


def markdown(res: dict[str, Any]) -> str:
    a, b, ratio, cap = res["embedded"], res["distributed"], res["ratio_b_over_a"], res["capacity"]
    m = res["machine"]
    lines = [
        "# Scale: embedded vs distributed, and the per-job cost of database and broker",
        "",
        f"{res['jobs']} `{OPERATION}` jobs (minimal-document.pdf), {res['clients']} client "
        f"threads: multipart `POST /v1/jobs`, then `GET /v1/jobs/{{id}}?wait=30` per job. "
        f"Latency = server `finished_at` - client time before the POST. "
        f"{m['cpus']} CPUs, {m['python']}, {res['date']}. Shared noisy machine: "
        f"load average (1/5/15 min) at start {m['load_avg_start']}, at end {m['load_avg_end']}.",
        "",
        "| setup | jobs/s | p50 ms | p95 ms | p99 ms | submits/s | load avg after |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in (("(a) embedded, SQLite, 2 local workers", a),
                     ("(b) distributed, PG + Celery/Redis + S3, 2 workers x 1", b)):
        lines.append(f"| {label} | {r['jobs_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
                     f"| {r['p99_ms']:.0f} | {r['submit_per_s']:.0f} | "
                     f"{' / '.join(map(str, r['load_avg_after']))} |")
    lines += [f"| **ratio (b)/(a)** | **{ratio['jobs_per_s']:.2f}** | {ratio['p50']:.2f} | "
              f"{ratio['p95']:.2f} | | | |", "",
              "## Per-job cost in the distributed run (measured)", "",
              f"Counters read before and after the batch (window {b['window_s']['run']} s, "
              f"{b['jobs_in_window']} jobs incl. one warm-up); background traffic measured over "
              f"an idle window of {b['window_s']['idle']} s with no jobs and subtracted for "
              f"*net*. The sweeper ran with its default 30 s interval. "
              f"pg_stat_statements loaded: {'yes' if b['pg_stat_statements'] else 'no'} "
              "(so no per-statement counts; transactions and tuples from pg_stat_database).", "",
              "| PostgreSQL (pg_stat_database) | per job, gross | per job, net | idle per s |",
              "|---|---|---|---|"]
    for key, v in b["pg_per_job"].items():
        lines.append(f"| {key} | {v['gross']} | {v['net']} | {v['idle_per_s']} |")
    lines += ["",
              "| Redis command (INFO commandstats) | per job, gross | per job, net | idle per s |",
              "|---|---|---|---|"]
    for key, v in b["redis_per_job"].items():
        name = "**total**" if key == "_total" else key
        lines.append(f"| {name} | {v['gross']} | {v['net']} | {v['idle_per_s']} |")
    pgb = res.get("pgbench")
    lines += ["", "## Capacity on paper", ""]
    if pgb:
        lines.append(f"Measured: `{pgb['command']}` on a throwaway database on the same "
                     f"PostgreSQL: **{pgb['tps']:.0f} TPS**, latency {pgb['latency_avg_ms']} ms "
                     f"(load average before: {pgb['load_avg_before']}).")
    else:
        lines.append(f"pgbench not available: assumed {cap['pg_simple_write_tps']:.0f} TPS.")
    if cap["jobs_per_s_ceiling"]:
        lines.append(f"With {cap['tx_per_job']} transactions per job (net, measured), one "
                     f"PostgreSQL like this one saturates at about "
                     f"**{cap['jobs_per_s_ceiling']:.0f} jobs/s** on transactions alone. See "
                     "docs/operations.md, \"Capacity model\".")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", "-n", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle", type=float, default=15.0, help="idle window, seconds")
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument("--only", choices=("embedded", "distributed"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="docmill-scale-"))
    res: dict[str, Any] = {
        "jobs": args.jobs, "clients": args.clients, "operation": OPERATION,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_start": load()},
    }
    try:
        if args.only != "distributed":
            console.print("[bold](a) embedded, SQLite, 2 workers…")
            res["embedded"] = run_embedded(tmp, args.jobs, args.clients)
            console.print(res["embedded"])
        if args.only != "embedded":
            console.print("[bold](b) distributed, 2 Celery workers…")
            res["distributed"] = run_distributed(tmp, args.jobs, args.clients, args.idle)
            console.print({k: v for k, v in res["distributed"].items()
                           if k not in ("pg_per_job", "redis_per_job")})
        if not args.skip_pgbench:
            console.print("[bold]pgbench -N…")
            res["pgbench"] = run_pgbench(tmp)
            console.print(res["pgbench"])
    finally:
        for client in _redis_clients.values():
            client.close()
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"]["load_avg_end"] = load()
    if args.only:
        console.print_json(json.dumps(res))
        return 0
    a, b = res["embedded"], res["distributed"]
    res["ratio_b_over_a"] = {"jobs_per_s": round(b["jobs_per_s"] / a["jobs_per_s"], 3),
                             "p50": round(b["p50_ms"] / a["p50_ms"], 3),
                             "p95": round(b["p95_ms"] / a["p95_ms"], 3)}
    res["capacity"] = capacity(res)
    console.print(build_table(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "scale.md").write_text(markdown(res))
    console.print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
