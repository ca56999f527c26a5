"""Timing shared by the peer drivers: the same loop and percentiles as the suite's.

Runs inside a peer's own virtual environment, so it imports nothing from
ExoArmur (the peer's import names may be the same as ours).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
