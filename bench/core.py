"""Core benchmark: small real jobs through the native API vs the same work done in-process.

What it measures, on one machine, against a real `docmill serve` subprocess (temp data folder,
free port, the default local worker pool):

* **bare**: pypdfium2 called directly in this process, N times: open the PDF, read the page
  text with `get_textpage().get_text_bounded()`, close. This is the floor: the work itself.
* **API latency**: single jobs one after another, each a multipart `POST /v1/jobs?wait=30`
  that answers with the finished job; latency is submit to SUCCESS as the client sees it.
* **API throughput**: N jobs from several concurrent clients (threads, one keep-alive
  connection each), each doing the same `POST ?wait=30`; jobs/s is N over the wall time,
  latencies are the same submit-to-SUCCESS times under load.
* **idle memory** of the server: the server process plus all its descendants (pool host,
  pool workers) after start and one warm-up job, as summed RSS, USS and PSS (PSS shares
  pages fairly between the processes that map them, RSS counts them once per process; the
  pool is forked from the server, so most of its pages are the server's).

Every API answer is checked: status SUCCESS and the same text the bare call read.

    .venv/bin/python bench/core.py [-n 500] [--clients 16] [--latency-jobs 200]

Results go to bench/results/core.json and bench/results/core.md.
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pypdfium2 as pdfium
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import DATA, DocmillServer  # noqa: E402 - after the sys.path entry above

RESULTS = ROOT / "bench" / "results"
OPERATION = "pdf.to-text"
TARGET_JOBS_PER_S = 100.0
TARGET_P50_OVERHEAD_MS = 30.0
TARGET_IDLE_MB = 150.0
console = Console()


# --- helpers --------------------------------------------------------------------------------

def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank-with-interpolation percentile of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarise(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "jobs": len(ms),
        "wall_s": round(wall_s, 4),
        "jobs_per_s": round(len(ms) / wall_s, 2) if wall_s > 0 else 0.0,
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def bare_text(path: Path) -> list[str]:
    doc = pdfium.PdfDocument(path)
    try:
        out = []
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            out.append(textpage.get_text_bounded().replace("\r\n", "\n"))
            textpage.close()
            page.close()
        return out
    finally:
        doc.close()


def multipart_body(path: Path) -> tuple[bytes, str]:
    """The job's multipart body, built once so that the client spends little CPU per job."""
    boundary = f"docmillbench{uuid.uuid4().hex}"
    parts = [
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"operation\"\r\n\r\n"
        f"{OPERATION}\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{path.name}\"\r\nContent-Type: application/pdf\r\n\r\n".encode(),
        path.read_bytes(),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def memory_of(pid: int) -> dict[str, Any]:
    """Summed RSS / USS / PSS of a process and all its descendants, in MB, plus each one."""
    procs = []
    totals = {"rss_mb": 0.0, "uss_mb": 0.0, "pss_mb": 0.0}
    for proc in tree(pid):
        try:
            info = proc.memory_full_info()
            row = {"pid": proc.pid, "role": role_of(proc, pid),
                   "rss_mb": info.rss / 2**20, "uss_mb": info.uss / 2**20,
                   "pss_mb": getattr(info, "pss", info.uss) / 2**20}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for key in totals:
            totals[key] += row[key]
        procs.append({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()})
    return {**{k: round(v, 1) for k, v in totals.items()},
            "resident_mb": distinct_resident_mb([p["pid"] for p in procs]), "processes": procs}


def distinct_resident_mb(pids: list[int]) -> float | None:
    """Resident memory of a group of processes with every physical page counted once: what
    the tree really occupies in RAM, where summed RSS counts a page shared by four processes
    four times. Read from /proc/PID/pagemap (page frame numbers need root: None without)."""
    frames: set[int] = set()
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for line in maps:
                    start, end = (int(x, 16) for x in line.split()[0].split("-"))
                    if start >= 0xFFFF_FFFF_FFFF_F000 or "[vsyscall]" in line:
                        continue
                    pagemap.seek(start // page * 8)
                    entries = array.array("Q", pagemap.read((end - start) // page * 8))
                    frames.update(e & 0x7F_FFFF_FFFF_FFFF for e in entries if e >> 63)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    if frames and frames <= {0}:
        return None  # not root: the kernel hides frame numbers
    return round(len(frames) * page / 2**20, 1)


def role_of(proc: psutil.Process, server_pid: int) -> str:
    if proc.pid == server_pid:
        return "server"
    cmd = " ".join(proc.cmdline())
    if "resource_tracker" in cmd:
        return "resource tracker"
    if proc.ppid() == server_pid:
        return "pool host" if proc.children() else "child"
    return "worker"  # forked by the pool host


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the server process and of its descendants."""
    split = {"api": 0.0, "children": 0.0}
    for proc in tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        split["api" if proc.pid == pid else "children"] += times.user + times.system
    return split


def machine_info() -> dict[str, Any]:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                                    text=True, capture_output=True, check=False).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "pypdfium2": importlib.metadata.version("pypdfium2"),
        "commit": commit + ("+dirty" if dirty else ""),
    }


# --- the three measurements ----------------------------------------------------------------

def run_bare(path: Path, n: int) -> tuple[dict[str, float], list[str]]:
    expected = bare_text(path)  # warm-up (library load, page cache)
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        bare_text(path)
        latencies.append(time.perf_counter() - t0)
    return summarise(latencies, time.perf_counter() - start), expected


class Submitter:
    def __init__(self, server: DocmillServer, path: Path, expected: list[str]) -> None:
        self.url = f"{server.url}/v1/jobs?wait=30"
        self.headers = {"Authorization": f"Bearer {server.keys['bench']}"}
        self.body, content_type = multipart_body(path)
        self.headers["Content-Type"] = content_type
        self.bare = expected
        self.expected: list[str] | None = None
        self.matches_bare = False

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=60, trust_env=False, headers=self.headers)

    def one(self, client: httpx.Client) -> float:
        t0 = time.perf_counter()
        response = client.post(self.url, content=self.body)
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        job = response.json()
        if job["status"] != "SUCCESS":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
        texts = [p["text"] for p in job["result"]["pages"]]
        if self.expected is None:  # the first job sets what every later one must return
            self.expected = texts
            self.matches_bare = texts == self.bare
        elif texts != self.expected:
            raise RuntimeError(f"job {job['id']} returned different text")
        return elapsed


def run_latency(sub: Submitter, n: int) -> dict[str, float]:
    latencies = []
    with sub.client() as client:
        for _ in range(5):  # warm the connection and both workers
            sub.one(client)
        start = time.perf_counter()
        for _ in range(n):
            latencies.append(sub.one(client))
        wall = time.perf_counter() - start
    return summarise(latencies, wall)


def run_throughput(sub: Submitter, n: int, clients: int, server_pid: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [n]
    ready = threading.Barrier(clients + 1)

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def worker() -> None:
        with sub.client() as client:
            sub.one(client)  # open the connection before the clock starts
            ready.wait()
            while take():
                try:
                    elapsed = sub.one(client)
                except Exception as exc:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    cpu0, own0 = cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    cpu1, own1 = cpu_seconds(server_pid), time.process_time()
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} jobs failed, first: {errors[0]}")
    result: dict[str, Any] = summarise(latencies, wall)
    api, children = cpu1["api"] - cpu0["api"], cpu1["children"] - cpu0["children"]
    result["clients"] = clients
    result["server_cpu_ms_per_job"] = round((api + children) * 1000 / n, 3)
    result["api_process_cpu_ms_per_job"] = round(api * 1000 / n, 3)
    result["worker_processes_cpu_ms_per_job"] = round(children * 1000 / n, 3)
    result["client_cpu_ms_per_job"] = round((own1 - own0) * 1000 / n, 3)
    result["server_cpu_util"] = round((api + children) / wall, 2)
    result["machine_load_avg_1m"] = round(os.getloadavg()[0], 2)
    return result


# --- report -------------------------------------------------------------------------------

def _rows(res: dict[str, Any], label: str = "") -> list[tuple[str, str, str, str, str]]:
    """The comparison table's rows: label, jobs/s, p50, p95, p99."""
    bare, lat, thr, r = res["bare"], res["api_latency"], res["api_throughput"], res["ratios"]
    tag = f" ({label})" if label else ""

    def stats(x: dict[str, float]) -> tuple[str, str, str]:
        return f"{x['p50_ms']:.2f}", f"{x['p95_ms']:.2f}", f"{x['p99_ms']:.2f}"

    return [
        (f"bare pypdfium2, 1 process{tag}", f"{bare['jobs_per_s']:.0f}", *stats(bare)),
        (f"API, sequential POST ?wait=30{tag}", f"{lat['jobs_per_s']:.1f}", *stats(lat)),
        (f"API, {thr['clients']} concurrent clients{tag}", f"{thr['jobs_per_s']:.1f}",
         *stats(thr)),
        (f"ratio API/bare, sequential{tag}", f"{r['seq_jobs_per_s']:.4f}", f"{r['p50']:.1f}x",
         f"{r['p95']:.1f}x", ""),
        (f"ratio API/bare, concurrent{tag}", f"{r['concurrent_jobs_per_s']:.4f}", "", "", ""),
        (f"API - bare, sequential{tag}", "", f"+{r['p50_overhead_ms']:.2f}",
         f"+{r['p95_overhead_ms']:.2f}", ""),
    ]


def _all_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    before = res.get("before")
    if not before:
        return _rows(res)
    return [*_rows(res, "after"), *_rows(before, "before")]


def build_table(res: dict[str, Any]) -> Table:
    thr = res["api_throughput"]
    table = Table(title=f"Docmill core benchmark: {OPERATION}, {res['input']} "
                        f"(N={thr['jobs']}, {thr['clients']} clients, {res['backend']})")
    for col in ("", "jobs/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="left" if not col else "right")
    for row in _all_rows(res):
        table.add_row(*row)
    return table


def markdown(res: dict[str, Any]) -> str:
    m, lat, thr, mem = (res["machine"], res["api_latency"], res["api_throughput"],
                        res["memory_idle"])
    r, t = res["ratios"], res["targets"]
    before = res.get("before")

    def ok(flag: bool) -> str:
        return "met" if flag else "**not met**"

    lines = [
        "# Core benchmark",
        "",
        (f"`{OPERATION}` of `{res['input']}` (1 page): jobs through the native API vs the same "
         f"pypdfium2 calls in one process. Run with `.venv/bin/python bench/core.py "
         f"{' '.join(res['argv'])}`.").replace(" `.", "`."),
        "",
        f"- date: {m['date']}",
        (f"- machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB RAM, {m['os']} "
         f"({m['host']}), shared with other work: 1-minute load average "
         f"{res['load_avg_before']} before and {thr['machine_load_avg_1m']} after the run"),
        f"- Python {m['python']}, pypdfium2 {m['pypdfium2']}, commit {m['commit']}",
        (f"- server: `docmill serve`, {res['backend']}, {res['workers']} worker processes; "
         f"client on the same machine: {lat['jobs']} sequential jobs for latency, then "
         f"{thr['clients']} threads x {thr['jobs']} jobs for throughput, the median of "
         f"{len(res['throughput_rounds'])} rounds (jobs/s of each round: "
         f"{', '.join(f'{x:.1f}' for x in res['throughput_rounds'])})"),
        "",
        "| | jobs/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
        *[f"| {' | '.join(row)} |" for row in _all_rows(res)],
        "",
    ]
    if before:
        lines += [
            (f"Before: {before['machine']['commit']} measured {before['machine']['date']} with "
             f"the same script and machine (load average {before.get('load_avg_before', '?')})."),
            "",
        ]
    lines += [
        (f"Server CPU per job under load: {thr['server_cpu_ms_per_job']:.2f} ms "
         f"(API process {thr['api_process_cpu_ms_per_job']:.2f} + worker processes "
         f"{thr['worker_processes_cpu_ms_per_job']:.2f}; {thr['server_cpu_util']:.2f} cores "
         f"busy); the benchmark client itself used {thr['client_cpu_ms_per_job']:.2f} ms per "
         f"job of the same CPUs."
         + (f" Before: {before['api_throughput']['server_cpu_ms_per_job']:.2f} ms."
            if before else "")),
        "",
        "Idle server memory (after start and one warm-up job), server + all descendants:",
        "",
        "| process | RSS MB | USS MB | PSS MB |",
        "|---|---:|---:|---:|",
        *[(f"| {p['role']} ({p['pid']}) | {p['rss_mb']:.1f} | {p['uss_mb']:.1f} | "
           f"{p['pss_mb']:.1f} |") for p in mem["processes"]],
        (f"| **total** | **{mem['rss_mb']:.1f}** | **{mem['uss_mb']:.1f}** | "
         f"**{mem['pss_mb']:.1f}** |"),
        *([(f"| total before | {before['memory_idle']['rss_mb']:.1f} | "
            f"{before['memory_idle']['uss_mb']:.1f} | {before['memory_idle']['pss_mb']:.1f} |")]
          if before else []),
        "",
        (f"Resident memory of the whole tree with each physical page counted once (from "
         f"/proc/PID/pagemap; summed RSS counts a page shared by N processes N times): "
         f"**{mem.get('resident_mb')} MB**"
         + (f" (before: {before['memory_idle'].get('resident_mb')} MB)" if before else "")
         + f"; after the load runs: {res['memory_after_load'].get('resident_mb')} MB resident, "
         f"PSS {res['memory_after_load']['pss_mb']} MB."),
        "",
        "Targets:",
        "",
        (f"- throughput >= {TARGET_JOBS_PER_S:.0f} jobs/s on SQLite: {thr['jobs_per_s']:.1f} "
         f"({ok(t['throughput'])})"),
        (f"- p50 within {TARGET_P50_OVERHEAD_MS:.0f} ms of the bare call: "
         f"+{r['p50_overhead_ms']:.2f} ms ({ok(t['latency'])})"),
        (f"- idle memory < {TARGET_IDLE_MB:.0f} MB: resident (pages counted once) "
         f"{mem.get('resident_mb')} MB ({ok(t['memory_resident'])}), PSS {mem['pss_mb']:.1f} MB "
         f"({ok(t['memory_pss'])}); summed RSS {mem['rss_mb']:.1f} MB counts shared pages once "
         f"per process"),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=500, help="jobs for throughput and bare")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--latency-jobs", type=int, default=200,
                        help="sequential jobs for the latency measurement")
    parser.add_argument("--input", type=Path, default=DATA / "pdf" / "minimal-document.pdf",
                        help="a 1-page PDF")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="DOCMILL_WORKERS for the server (default: CPU count, as serve)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for core.json/.md")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--keep", action="store_true", help="keep the server's data folder")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds; the median one is reported (shared machines "
                             "are noisy)")
    parser.add_argument("--before", type=Path, default=None,
                        help="a core.json of an earlier run (e.g. of the code before a change) "
                             "to show side by side")
    args = parser.parse_args()

    path = args.input.resolve()
    console.print(f"bare pypdfium2: {args.jobs} x {OPERATION} of {path.name} ...")
    bare, expected = run_bare(path, args.jobs)

    tmp = Path(tempfile.mkdtemp(prefix="docmill-bench-"))
    # The server runs with production defaults except for what the harness needs.
    server = DocmillServer(tmp / "server", backend=args.backend, extra_env={
        "DOCMILL_WORKERS": str(args.workers),
        "DOCMILL_POLL_INTERVAL_S": "0.5",
        "DOCMILL_SWEEP_INTERVAL_S": "30",
    })
    try:
        server.cli("migrate")
        server.create_key("bench")
        server.start()
        assert server.process is not None
        sub = Submitter(server, path, expected)
        with sub.client() as client:
            sub.one(client)  # warm-up job: workers imported pypdfium2, connections opened
        time.sleep(1.0)  # let the server settle
        memory = memory_of(server.process.pid)
        console.print(f"idle server memory: PSS {memory['pss_mb']} MB, RSS {memory['rss_mb']} MB"
                      f", USS {memory['uss_mb']} MB over {len(memory['processes'])} processes")
        load_before = round(os.getloadavg()[0], 2)
        console.print(f"load average before the API runs: {load_before}")
        console.print(f"API latency: {args.latency_jobs} sequential jobs ...")
        latency = run_latency(sub, args.latency_jobs)
        rounds = []
        for number in range(args.rounds):
            console.print(f"API throughput, round {number + 1} of {args.rounds}: {args.jobs} "
                          f"jobs from {args.clients} clients ...")
            rounds.append(run_throughput(sub, args.jobs, args.clients, server.process.pid))
            console.print(f"  {rounds[-1]['jobs_per_s']} jobs/s")
        throughput = sorted(rounds, key=lambda x: x["jobs_per_s"])[len(rounds) // 2]
        memory_after = memory_of(server.process.pid)
    except Exception:
        console.print(server.log_tail())
        raise
    finally:
        server.destroy()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    ratios = {
        "seq_jobs_per_s": round(latency["jobs_per_s"] / bare["jobs_per_s"], 5),
        "concurrent_jobs_per_s": round(throughput["jobs_per_s"] / bare["jobs_per_s"], 5),
        "p50": round(latency["p50_ms"] / bare["p50_ms"], 2),
        "p95": round(latency["p95_ms"] / bare["p95_ms"], 2),
        "p50_overhead_ms": round(latency["p50_ms"] - bare["p50_ms"], 3),
        "p95_overhead_ms": round(latency["p95_ms"] - bare["p95_ms"], 3),
    }
    results = {
        "machine": machine_info(),
        "argv": sys.argv[1:],
        "operation": OPERATION,
        "input": path.name,
        "backend": args.backend,
        "workers": args.workers,
        "bare": bare,
        "api_latency": latency,
        "api_throughput": throughput,
        "throughput_rounds": [x["jobs_per_s"] for x in rounds],
        "load_avg_before": load_before,
        "ratios": ratios,
        "text_matches_bare": sub.matches_bare,
        "memory_idle": memory,
        "memory_after_load": {k: v for k, v in memory_after.items() if k != "processes"},
        "targets": {
            "throughput": throughput["jobs_per_s"] >= TARGET_JOBS_PER_S,
            "latency": ratios["p50_overhead_ms"] <= TARGET_P50_OVERHEAD_MS,
            "memory_pss": memory["pss_mb"] < TARGET_IDLE_MB,
            "memory_resident": (memory["resident_mb"] or float("inf")) < TARGET_IDLE_MB,
        },
    }
    if args.before:
        results["before"] = {k: v for k, v in json.loads(args.before.read_text()).items()
                             if k != "before"}
    console.print(build_table(results))
    console.print(f"idle memory: RSS {memory['rss_mb']} MB, USS {memory['uss_mb']} MB, "
                  f"PSS {memory['pss_mb']} MB; server CPU {throughput['server_cpu_ms_per_job']}"
                  f" ms/job (API {throughput['api_process_cpu_ms_per_job']}, workers "
                  f"{throughput['worker_processes_cpu_ms_per_job']}); load average "
                  f"{throughput['machine_load_avg_1m']}; targets: {results['targets']}")
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "core.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "core.md").write_text(markdown(results))
        console.print(f"wrote {args.out / 'core.json'} and {args.out / 'core.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
