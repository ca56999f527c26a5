"""What canonical bytes cost per event: ``canonical_bytes``, the verifier's reading, an action.

The events are the first governed block of a benchmark history (intent,
decision, execution started and finished, a denial...): the values the hot
path turns into bytes, and the texts a verifier reads back. Each is timed in
a child process with this tree's source and, with ``--against``, a git
commit's, alternating round after round so that a busy machine slows both
alike; the median of the rounds is printed. The floor is orjson alone on the
same values: ``orjson.dumps(event, option=OPT_SORT_KEYS)``, and for the
reading ``orjson.loads(text)`` dumped again and compared with the text. Beside
them, the CPU time of one governed action (durable SQLite, one submitter,
the history's blocks of three intents), where canonical bytes are one cost
among many.

    python benchmarks/bench_canonical.py --against REF [--rounds 5]

This module never decides anything from a time: it only reports them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import orjson

from against import source_at
from exoarmur.ledger.sqlite import SqliteStore
from history import build_history

_TIME = """
import json, sys, timeit
from exoarmur.encoding import canonical_bytes
from exoarmur.evidence.verify import _canonical_event
events = json.load(open(sys.argv[1]))
texts = [canonical_bytes(e).decode() for e in events]
def best(call):
    loops = 2000
    total = min(timeit.repeat(lambda: [call(x) for x in events], number=loops, repeat=5))
    return total / loops / len(events) * 1e6
write = best(canonical_bytes)
events = texts
read = best(_canonical_event)
print(write, read)
"""


_ACTIONS = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from history import block, make_home
from exoarmur.home import open_governor
home = make_home(Path(sys.argv[1]))
with open_governor(home.path, seed=7) as governor:
    for number in range(220):
        if number == 20:  # after a warm-up
            cpu = time.process_time()
        for intent in block(number):
            governor.submit(intent)
    cpu = time.process_time() - cpu
print(cpu / 600 * 1e6)
"""


def _events(work: Path) -> list[dict[str, object]]:
    history = build_history(work / "h", 12)
    store = SqliteStore(history.home.ledger_path)
    try:
        return [json.loads(e.canonical) for e in store.events(history.tenant)][:12]
    finally:
        store.close()


def _timed(source: Path | None, events: Path) -> tuple[float, float, float]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, "-c", _TIME, str(events)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    write, read = done.stdout.split()
    home = Path(tempfile.mkdtemp(dir=events.parent)) / "home"
    done = subprocess.run(
        [sys.executable, "-c", _ACTIONS, str(home), str(Path(__file__).parent)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(write), float(read), float(done.stdout)


def _floor(events: list[dict[str, object]]) -> tuple[float, float]:
    texts = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in events]
    loops = 2000

    def per_event(call: object, items: list[object]) -> float:
        total = min(
            timeit.repeat(lambda: [call(x) for x in items], number=loops, repeat=5)  # type: ignore[operator]
        )
        return total / loops / len(items) * 1e6

    write = per_event(lambda e: orjson.dumps(e, option=orjson.OPT_SORT_KEYS), list(events))
    read = per_event(
        lambda t: orjson.dumps(orjson.loads(t), option=orjson.OPT_SORT_KEYS) == t, list(texts)
    )
    return write, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REF", help="git commit to compare with (before)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        events = _events(work)
        path = work / "events.json"
        path.write_text(json.dumps(events))
        sides: dict[str, Path | None] = {"after": None}
        if args.against:
            sides = {"before": source_at(args.against, work / "before"), "after": None}
        found: dict[str, list[tuple[float, float, float]]] = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, source in sides.items():
                found[side].append(_timed(source, path))
        floor = _floor(events)
    print(f"{len(events)} events, median of {args.rounds} rounds, µs per event or action")
    for side, rounds in found.items():
        write, read, action = (statistics.median(r[i] for r in rounds) for i in range(3))
        print(
            f"{side:>7}: canonical_bytes {write:.2f} µs, verifier's event reading {read:.2f} µs, "
            f"CPU per governed action {action:,.0f} µs"
        )
    if "before" in found:
        ratios = [a[2] / b[2] for a, b in zip(found["after"], found["before"], strict=True)]
        ratio = statistics.median(ratios)
        print(f"  CPU per action, after ÷ before, median of the rounds: {ratio:.2f}×")
    print(f"  floor: orjson.dumps {floor[0]:.2f} µs, orjson.loads, dumps, == {floor[1]:.2f} µs")


if __name__ == "__main__":
    main()
