"""How evidence bundles and packs scale: export and offline verification of one stream.

One correlation holds the whole tenant log (``history.build_history``), at
a few sizes; each size is exported as a bundle and as a pack, and each is
verified from its bytes. Time per event that grows with the size is a cost
that is not linear (a lookup by scanning, say). Issue 11 asks for a
10k-event verification under one second.

    python benchmarks/bench_evidence_pack.py [--sizes 2500,5000,10000] [--profile]

This module never decides anything from a time: it only reports them.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
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
