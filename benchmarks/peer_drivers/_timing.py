"""Timing shared by the peer drivers: the same loop and percentiles as the suite's.

Runs inside a peer's own virtual environment, so it imports nothing from
ExoArmur (the peer's import names may be the same as ours).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

WARMUP = 200


def _percentile(sorted_values: list[float], q: float) -> float:
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def timed(
    name: str, n: int, one: Callable[[int], Any], check: Callable[[Any], bool]
) -> dict[str, Any]:
    """``one(i)`` n times after a warm-up; every result must pass ``check``."""
    for i in range(WARMUP):
        if not check(one(-1 - i)):
            raise SystemExit(f"{name}: wrong outcome during warm-up")
    latencies = []
    wrong = 0
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        result = one(i)
        latencies.append(time.perf_counter() - t0)
        if not check(result):
            wrong += 1
    seconds = time.perf_counter() - started
    if wrong:
        raise SystemExit(f"{name}: {wrong} of {n} outcomes were wrong")
    latencies.sort()
    return {
        "n": n,
        "seconds": seconds,
        "ops": n / seconds,
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "p999_ms": _percentile(latencies, 0.999) * 1e3,
        "latencies_s": latencies,
    }


def timed_concurrent(
    name: str, n: int, callers: Sequence[Callable[[int], Any]], check: Callable[[Any], bool]
) -> dict[str, Any]:
    """n calls shared out over one thread per caller, started together, as the suite's
    submitters are: thread k makes calls k, k + C, k + 2C, ... with ``callers[k]``.

    The rate is n over the time from the start to the last thread's end; the
    latencies are those of every call. Warm-up is the caller's (each of its
    clients has its own connection to set up).
    """
    concurrency = len(callers)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    finished = [0.0] * concurrency
    wrong: list[str] = []
    start = threading.Barrier(concurrency + 1)

    def submitter(slot: int) -> None:
        mine, one = latencies[slot], callers[slot]
        start.wait()
        try:
            for i in range(slot, n, concurrency):
                t0 = time.perf_counter()
                result = one(i)
                mine.append(time.perf_counter() - t0)
                if not check(result):
                    wrong.append(f"call {i}: {result!r}"[:300])
        except Exception as exc:  # reported below: a broken run must not print a rate
            wrong.append(f"submitter {slot}: {type(exc).__name__}: {exc}"[:300])
        finished[slot] = time.perf_counter()

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if wrong:
        raise SystemExit(f"{name}: {len(wrong)} of {n} calls went wrong, e.g. {wrong[0]}")
    seconds = max(finished) - began
    every = sorted(x for slot in latencies for x in slot)
    return {
        "n": n,
        "concurrency": concurrency,
        "seconds": seconds,
        "ops": n / seconds,
        "p50_ms": _percentile(every, 0.50) * 1e3,
        "p99_ms": _percentile(every, 0.99) * 1e3,
        "p999_ms": _percentile(every, 0.999) * 1e3,
        "latencies_s": every,
    }
