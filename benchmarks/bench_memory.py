"""Peak memory while governing and while replaying, one child process per measurement.

Run by the suite as ``python bench_memory.py govern|replay --home DIR ...``;
prints one JSON document. Each measurement is its own process, so that what
the suite did before (and the allocator's leftovers) is not counted.

Resident set size (RSS) is read after setting up (the baseline) and at
every tenth of the run; the peak is the kernel's high-water mark for this
process (``VmHWM``; ``getrusage`` where there is no ``/proc``). Flat means:
RSS at the end is within 10 % (and at least 5 MiB) of RSS at the first
tenth. A measurement that runs out of its time budget stops and says how
far it got; the tenths it did not reach are absent.

This module never decides anything from a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from exoarmur.home import Home, open_governor
from history import TENANT, History, block

MIB = 1024 * 1024


def rss_bytes() -> int | None:
    """This process's resident set size now (None where it cannot be read)."""
    try:
        import psutil  # optional: the portable way

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The high-water mark of this process's own RSS.

    On Linux, ``VmHWM`` of this process's memory: ``getrusage``'s ``ru_maxrss``
    survives ``execve`` and so would count the parent's RSS at ``fork``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


class Samples:
    """RSS at the baseline and at each tenth of ``total`` units of work."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.baseline = rss_bytes()
        self.tenths: dict[int, int | None] = {}
        self._next = 1

    def __call__(self, done: int) -> None:
        while self._next <= 10 and done * 10 >= self._next * self.total:
            self.tenths[self._next * 10] = rss_bytes()
            self._next += 1

    def result(self, done: int, seconds: float, stopped: bool) -> dict[str, Any]:
        mib = {pct: (v / MIB if v is not None else None) for pct, v in self.tenths.items()}
        # VmHWM is updated lazily by the kernel: never report a peak below a sample.
        sampled = [v for v in (self.baseline, *self.tenths.values()) if v is not None]
        peak = max([peak_rss_bytes(), *sampled])
        first, last = mib.get(10), mib.get(100)
        growth = (last - first) if first is not None and last is not None else None
        flat = None if growth is None or first is None else growth <= max(5.0, 0.10 * first)
        return {
            "target": self.total,
            "done": done,
            "complete": not stopped,
            "stopped_by_budget": stopped,
            "seconds": seconds,
            "baseline_mib": self.baseline / MIB if self.baseline is not None else None,
            "rss_mib": {str(pct): v for pct, v in sorted(mib.items())},
            "peak_mib": peak / MIB,
            "growth_10_to_100_mib": growth,
            "flat": flat,
        }


def govern(home: Path, n: int, budget_s: float, tick: Callable[[int], None]) -> dict[str, Any]:
    """Govern ``n`` intents (executed, decided, denied in turn) on the home's durable ledger."""
    with open_governor(home) as governor:
        for intent in block(-1):  # first-call costs (imports, Cedar, pydantic) before the baseline
            governor.submit(intent)
        samples = Samples(n)
        started = time.perf_counter()
        deadline = started + budget_s
        done = 0
        stopped = False
        while done < n:
            for intent in block(done // 3):
                if done >= n:
                    break
                governor.submit(intent)
                done += 1
                samples(done)
            tick(done)
            if time.perf_counter() > deadline and done < n:
                stopped = True
                break
        seconds = time.perf_counter() - started
        events = governor.ledger.size(TENANT)
    result = samples.result(done, seconds, stopped)
    result["events_in_log"] = events
    result["actions_per_s"] = done / seconds if seconds > 0 else 0.0
    return result


def replay(home: Path, events: int, budget_s: float, tick: Callable[[int], None]) -> dict[str, Any]:
    """Replay the home's tenant log (built beforehand by the suite) under a budget."""
    from bench_replay import replay_run

    samples = Samples(events)
    history = History(Home(home), TENANT, events, 0, 0)
    replayed = 0

    def progress(count: int) -> None:
        nonlocal replayed
        replayed += count
        tick(replayed)

    outcome = replay_run(history, budget_s, progress=progress, sample=samples)
    result = samples.result(
        outcome["events_replayed"], outcome["seconds"], outcome["stopped_by_budget"]
    )
    result.update(
        events_in_log=events,
        events_per_s=outcome["events_per_s"],
        divergences=outcome["divergences"],
    )
    tick(outcome["events_replayed"])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("what", choices=("govern", "replay"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True, help="intents to govern / events to replay")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds before stopping")
    args = parser.parse_args(argv)

    reported = [0.0]

    def tick(done: int) -> None:
        # Progress for the parent on stderr, a few lines a second at most.
        now = time.monotonic()
        if now - reported[0] >= 0.25 or done >= args.n:
            reported[0] = now
            print(f"PROGRESS {done}", file=sys.stderr, flush=True)

    if args.what == "govern":
        result = govern(args.home, args.n, args.budget, tick)
    else:
        result = replay(args.home, args.n, args.budget, tick)
    result["what"] = args.what
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
