"""How evidence bundles and packs scale: export and offline verification of one stream.

One correlation holds the whole tenant log (``history.build_history``), at
a few sizes; each size is exported as a bundle and as a pack, and each is
verified from its bytes. Time per event that grows with the size is a cost
that is not linear (a lookup by scanning, say). Issue 11 asks for a
10k-event verification under one second.

    python benchmarks/bench_evidence_pack.py [--sizes 2500,5000,10000] [--profile]
    python benchmarks/bench_evidence_pack.py --against REF [--rounds 3]

``--against`` verifies the same bundle and pack bytes with the source of a
git commit (before) and with this tree's (after), alternating in one run so
that a busy machine slows both alike, and prints the best of each.

This module never decides anything from a time: it only reports them.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from against import env_with, source_at
from bench_replay import replay_floor
from exoarmur.evidence import export_bundle, export_pack, pack_bytes, verify_bundle_text
from history import build_history

CORRELATION = "bench-evidence-pack"


def measure(path: Path, events: int) -> dict[str, Any]:
    history = build_history(path, events, correlation=CORRELATION)
    ledger = history.home.ledger()
    try:
        key = ledger.key.verifier_key()
        start = time.perf_counter()
        bundle = json.dumps(export_bundle(ledger, history.tenant, CORRELATION)).encode()
        bundle_export = time.perf_counter() - start
        start = time.perf_counter()
        pack = pack_bytes(export_pack(ledger, history.tenant, CORRELATION))
        pack_export = time.perf_counter() - start
    finally:
        ledger.store.close()
    timings: dict[str, Any] = {"events": history.events}
    for name, data in (("bundle", bundle), ("pack", pack)):
        start = time.perf_counter()
        verdict = verify_bundle_text(data, key)
        took = time.perf_counter() - start
        if not verdict.passed:
            raise SystemExit(f"{name} of {events} events does not verify: {verdict.failures[:3]}")
        timings[f"{name}_verify_s"] = round(took, 3)
        timings[f"{name}_verify_us_per_event"] = round(took / history.events * 1e6, 1)
    timings["bundle_export_s"] = round(bundle_export, 3)
    timings["pack_export_s"] = round(pack_export, 3)
    return timings


_VERIFY = """
import sys, time
from exoarmur.evidence import verify_bundle_text
data, key = open(sys.argv[1], "rb").read(), sys.argv[2]
start, cpu = time.perf_counter(), time.process_time()
verdict = verify_bundle_text(data, key)
took, cpu = time.perf_counter() - start, time.process_time() - cpu
assert verdict.passed, verdict.failures[:3]
print(took, cpu)
"""


_REPLAY = """
import sys, time
from exoarmur.home import Home
from exoarmur.replay import Replayer
ledger = Home(__import__("pathlib").Path(sys.argv[1])).ledger()
replayer = Replayer(ledger.store, sys.argv[2])
replayer.verifier = ledger.key.verifier()
start, cpu = time.perf_counter(), time.process_time()
report = replayer.run()
took, cpu = time.perf_counter() - start, time.process_time() - cpu
assert report.verified
print(took, cpu)
"""


def _run_with(source: Path | None, script: str, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of the measured call (CPU: what others' load disturbs least)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env_with(source),
        check=True,
        capture_output=True,
        text=True,
    )
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def compare(reference: str, events: int, rounds: int) -> dict[str, Any]:
    """Verify one bundle and one pack with ``reference``'s source and this tree's, alternating."""
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        before = source_at(reference, root)
        history = build_history(root / "h", events, correlation=CORRELATION)
        ledger = history.home.ledger()
        try:
            key = ledger.key.verifier_key()
            files = {
                "bundle": json.dumps(export_bundle(ledger, history.tenant, CORRELATION)).encode(),
                "pack": pack_bytes(export_pack(ledger, history.tenant, CORRELATION)),
            }
        finally:
            ledger.store.close()
        best: dict[str, float] = {}
        for name, data in files.items():
            (root / name).write_bytes(data)
        runs = {f"{name}_verify": (_VERIFY, str(root / name), key) for name in files}
        runs["replay"] = (_REPLAY, str(history.home.path), history.tenant)
        for _ in range(rounds):
            for name, (script, *args) in runs.items():
                for side, source in (("before", before), ("after", None)):
                    took, cpu = _run_with(source, script, *args)
                    for label, value in ((f"{name}_s_{side}", took), (f"{name}_cpu_s_{side}", cpu)):
                        best[label] = min(best.get(label, value), value)
        floor = replay_floor(history.home.ledger_path, history.tenant, history.events)
    found: dict[str, Any] = {"events": history.events, "reference": reference}
    for name in runs:
        before, after = best[f"{name}_s_before"], best[f"{name}_s_after"]
        found[f"{name}_s_before"] = round(before, 3)
        found[f"{name}_s_after"] = round(after, 3)
        found[f"{name}_speedup"] = round(before / after, 2)
        for side in ("before", "after"):
            found[f"{name}_cpu_s_{side}"] = round(best[f"{name}_cpu_s_{side}"], 3)
    floor_rate = floor["events_per_s"]
    for side in ("before", "after"):
        rate = history.events / best[f"replay_s_{side}"]
        found[f"replay_events_per_s_{side}"] = round(rate)
        found[f"replay_over_floor_{side}"] = round(rate / floor_rate, 3)
    found["replay_floor_events_per_s"] = round(floor_rate)
    return found


def table(found: dict[str, Any]) -> str:
    """:func:`compare`'s figures as the Markdown table benchmarks/README.md holds."""
    events = f"{found['events']:,}"
    rows = [
        "| measurement (best of the rounds, same run) | before | after | after ÷ before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, what in (("bundle_verify", "bundle verify"), ("pack_verify", "pack verify")):
        for kind, key in (("", "s"), (" (CPU)", "cpu_s")):
            before, after = found[f"{name}_{key}_before"], found[f"{name}_{key}_after"]
            rows.append(
                f"| {what}{kind}, {events} events | {before:.2f} s | {after:.2f} s "
                f"| {after / before:.2f}× |"
            )
    before, after = found["replay_events_per_s_before"], found["replay_events_per_s_after"]
    rows.append(
        f"| replay, {events} events | {before:,} events/s | {after:,} events/s "
        f"| {after / before:.2f}× |"
    )
    rows.append(
        f"| replay ÷ hash-only floor ({found['replay_floor_events_per_s']:,} events/s) "
        f"| {found['replay_over_floor_before']:.3f}× | {found['replay_over_floor_after']:.3f}× | |"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    parser.add_argument("--against", metavar="REF", help="git commit to compare with (before)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --against")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.against:
        for size in sizes:
            found = compare(args.against, size, args.rounds)
            print(json.dumps(found, sort_keys=True))
            print(table(found))
        return
    with tempfile.TemporaryDirectory() as work:
        for number, size in enumerate(sizes):
            where = Path(work) / f"h{number}"
            if args.profile and size == max(sizes):
                profile = cProfile.Profile()
                result = profile.runcall(measure, where, size)
                pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
            else:
                result = measure(where, size)
            print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
