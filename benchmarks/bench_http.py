"""What the HTTP API costs: governed submissions over a real socket, bounded and self-stopping.

Starts the real service (``exoarmur.server.serve``: uvicorn on 127.0.0.1) in
its own process over a fresh data directory, so that the clients never
compete with it for the GIL; then for each path and each client concurrency
C runs C threads, each with its own keep-alive ``httpx.Client``, that split N
requests between them and time each one. Paths:

    health    GET /v1/health: HTTP and framework only, no governor, no thread pool
    decided   POST /v1/intents, allowed, no executor bound (2 ledger events)
    executed  POST /v1/intents, allowed, run by the echo executor (4 events)
    denied    POST /v1/intents, hit by a forbid (2 events)

Every answer is checked (status code and outcome status); a wrong one aborts
the run. The data directory's configuration binds ``demo.*`` to the echo
executor and sets no rate limits. A row stops at N requests or when its time budget runs out,
whichever comes first, and the whole run stops by itself (the server gets
SIGTERM, then SIGKILL if it lingers); nothing here decides anything from a time.

    python benchmarks/bench_http.py                 # N=1000, C=1 and C=8
    python benchmarks/bench_http.py --quick         # N=40: a smoke run (what the test uses)
    python benchmarks/bench_http.py --json          # one JSON document on stdout, nothing else
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from exoarmur.home import Home, open_governor
from exoarmur.policy import PolicyBundle

#: the gate's rate limits are left out: they would (rightly) stop one agent's
#: thousands of intents a minute, and this measures the API, not the limits
CONFIG = """\
[executors]
"demo.*" = { type = "echo" }
"""
POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("never-prod-db") forbid (principal, action, resource == Target::"db/prod");
"""
PATHS = ("health", "decided", "executed", "denied")
EXPECTED = {"decided": "decided", "executed": "executed", "denied": "denied"}


@dataclass
class Row:
    key: str
    path: str
    concurrency: int
    n: int
    seconds: float
    ops: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    stopped_by_time: bool


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _request(path: str, serial: int) -> tuple[str, str, dict[str, Any] | None]:
    if path == "health":
        return "GET", "/v1/health", None
    intent: dict[str, Any] = {
        "tenant": "bench",
        "action": "demo.read" if path == "executed" else "bench.lookup",
        "target": "db/prod" if path == "denied" else f"reports/{serial}",
        "safety_class": "A0",
        "idempotency_key": f"{path}-{serial}",
    }
    return "POST", "/v1/intents", intent


def _check(path: str, answer: httpx.Response) -> None:
    if answer.status_code != 200:
        raise SystemExit(f"{path}: HTTP {answer.status_code}: {answer.text[:300]}")
    if path in EXPECTED and answer.json()["status"] != EXPECTED[path]:
        raise SystemExit(f"{path}: outcome {answer.json()['status']}, expected {EXPECTED[path]}")


def run_row(
    base: str, key: str, path: str, concurrency: int, n: int, budget: float, serial: list[int]
) -> Row:
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[BaseException] = []
    per_thread = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    start_line = threading.Barrier(concurrency + 1)
    deadline = [0.0]
    ran_out = threading.Event()

    def submitter(count: int) -> None:
        mine: list[float] = []
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                client.get("/v1/health")  # open the keep-alive connection before timing
                start_line.wait()
                for _ in range(count):
                    if time.monotonic() > deadline[0]:
                        ran_out.set()
                        break
                    with lock:
                        serial[0] += 1
                        number = serial[0]
                    method, url, body = _request(path, number)
                    began = time.perf_counter()
                    answer = client.request(method, url, json=body)
                    mine.append(time.perf_counter() - began)
                    _check(path, answer)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=submitter, args=(count,)) for count in per_thread]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + budget
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{path} C={concurrency}: {failures[0]}")
    ordered = sorted(latencies)
    return Row(
        key=f"{path.upper()}_C{concurrency}",
        path=path,
        concurrency=concurrency,
        n=len(ordered),
        seconds=round(elapsed, 4),
        ops=round(len(ordered) / elapsed, 1),
        p50_ms=round(_percentile(ordered, 0.50) * 1000, 2),
        p99_ms=round(_percentile(ordered, 0.99) * 1000, 2),
        max_ms=round(ordered[-1] * 1000, 2),
        stopped_by_time=ran_out.is_set(),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    program = (
        "from pathlib import Path\n"
        "from exoarmur.server import serve\n"
        f"serve(Path({str(home)!r}), port={port}, log_level='warning')\n"
    )
    server = subprocess.Popen([sys.executable, "-c", program])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).is_success:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the server did not start")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="exoarmur-bench-http-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(CONFIG, encoding="utf-8")
        Home(home).init()  # keeps that configuration, adds the key and the ledger
        with open_governor(home) as governor:
            governor.activate_policy(PolicyBundle.from_text(POLICY))
            _, key = governor.add_principal("bench-agent", "agent", ["bench"])
        port = _free_port()
        server = _start_server(home, port)
        rows: list[Row] = []
        try:
            base = f"http://127.0.0.1:{port}"
            serial = [0]
            run_row(base, key, "decided", 2, args.warmup, args.seconds, serial)  # warm-up
            for path in args.paths:
                for concurrency in args.concurrency:
                    row = run_row(base, key, path, concurrency, args.n, args.seconds, serial)
                    rows.append(row)
        finally:
            _stop_server(server)
    return {
        "n": args.n,
        "seconds_budget": args.seconds,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python benchmarks/bench_http.py"
        + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count() or 0,
            "python": platform.python_version(),
            "exoarmur": version("exoarmur"),
            "fastapi": version("fastapi"),
            "uvicorn": version("uvicorn"),
        },
        "scenarios": [asdict(row) for row in rows],
    }


def print_report(report: dict[str, Any]) -> None:
    console = Console(highlight=False)
    table = Table(title=f"ExoArmur HTTP API on loopback — up to N = {report['n']} per row")
    for column in ("path", "C", "requests", "req/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for row in report["scenarios"]:
        table.add_row(
            row["path"],
            str(row["concurrency"]),
            f"{row['n']:,}" + (" (time)" if row["stopped_by_time"] else ""),
            f"{row['ops']:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.2f}",
        )
    console.print(table)
    for row in report["scenarios"]:
        print(f"{row['key']}_OPS={row['ops']}")
        print(f"{row['key']}_P50_MS={row['p50_ms']}")
        print(f"{row['key']}_P99_MS={row['p99_ms']}")
        print(f"{row['key']}_N={row['n']}")
    print(f"BENCH_N={report['n']}")
    print(f"BENCH_DATE={report['date']}")


def _csv_ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive integers, e.g. 1,8")
    return values


def _csv_paths(text: str) -> list[str]:
    values = [part for part in text.split(",") if part]
    unknown = sorted(set(values) - set(PATHS))
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"paths are {', '.join(PATHS)}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="requests per row (default 1000)")
    parser.add_argument("--concurrency", type=_csv_ints, default=[1, 8], help="e.g. 1,8")
    parser.add_argument("--paths", type=_csv_paths, default=list(PATHS), help=",".join(PATHS))
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="time budget per row (default 60)"
    )
    parser.add_argument("--quick", action="store_true", help="N=40, 10 s per row: a smoke run")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--dir", default=None, help="where the temporary data directory goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.seconds = min(args.n, 40), min(args.seconds, 10.0)
    args.warmup = min(args.n, 50)
    report = measure(args)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        print_report(report)


if __name__ == "__main__":
    main()
