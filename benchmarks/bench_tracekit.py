"""ExoArmur's allow path and tracekit-ai's signer, measured in turn, round after round.

``exoarmur benchmark`` measures each row once, a minute or more apart; on a
machine shared with other work the load moves in between (three runs of the
suite on 2026-11-30 put the equal-durability ratio at C=8 at 0.59×, 1.12× and
1.57×). This script alternates instead: each round measures ExoArmur's allow
path (durable SQLite, as the suite's pipeline rows, without their floor) at
every concurrency and tracekit-ai (``peer_drivers/tracekit_ai.py``: a fresh
signer per durability mode) at the same concurrencies, the two in turn and
in the other order the next round, and reports every round's ratios and
their medians::

    python benchmarks/bench_tracekit.py                       # 5 rounds, N = 3,000, C = 1,8,32
    python benchmarks/bench_tracekit.py --rounds 3 --write-readme

The peer is installed as the suite installs it (``peers.py``, into
``--peers-dir``). Decides nothing from a time: the exit code says only
whether it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_pipeline
from peers import PEERS, run_peer

START_MARK = "<!-- tracekit:start -->"
END_MARK = "<!-- tracekit:end -->"
TRACEKIT = next(peer for peer in PEERS if peer.key == "tracekit-ai")
MODES = ("fsync", "write")


def ratios(rounds: Sequence[dict[str, Any]]) -> dict[str, dict[int, list[float]]]:
    """mode -> C -> ExoArmur's allow rate ÷ tracekit-ai's, one per round."""
    found: dict[str, dict[int, list[float]]] = {mode: {} for mode in MODES}
    for measured in rounds:
        for mode in MODES:
            for c, ops in measured["tracekit"][mode].items():
                found[mode].setdefault(int(c), []).append(measured["ours"][c] / ops)
    return found


def medians(rounds: Sequence[dict[str, Any]]) -> dict[str, dict[int, float]]:
    return {
        mode: {c: statistics.median(values) for c, values in by_c.items()}
        for mode, by_c in ratios(rounds).items()
    }


def _tracekit(peers_dir: Path, n: int, where: Path, levels: Sequence[int]) -> dict[str, Any]:
    levels_arg = ",".join(str(c) for c in levels)
    found = run_peer(TRACEKIT, peers_dir, n, data_dir=where, extra=["--concurrency", levels_arg])
    if found["status"] != "ok":
        raise SystemExit(f"tracekit-ai: {found['reason']}")
    rows = found["rows"]
    named = {mode: {c: rows[f"{mode}_allow_c{c}"] for c in levels} for mode in MODES}
    return {
        "version": found["version"],
        "rows": {mode: {c: row["ops"] for c, row in by_c.items()} for mode, by_c in named.items()},
        "cpu_ms": {mode: {c: _cpu(row) for c, row in by_c.items()} for mode, by_c in named.items()},
    }


def _cpu(row: dict[str, Any]) -> dict[str, float | None]:
    return {"client": row.get("client_cpu_ms"), "signer": row.get("signer_cpu_ms")}


def _ours(
    where: Path, n: int, levels: Sequence[int], number: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Rates, and CPU milliseconds per action of this process (all of ExoArmur's work is here)."""
    found, cpu = {}, {}
    for c in levels:
        started = time.process_time()
        result = bench_pipeline.run_pipeline(
            where / f"{number}-c{c}.db", bench_pipeline.PATHS["allow"], n, c, lambda _: None
        )
        cpu[c] = (time.process_time() - started) / n * 1e3
        found[c] = result.ops
    return found, cpu


def measure(args: argparse.Namespace) -> dict[str, Any]:
    where = Path(tempfile.mkdtemp(prefix="exoarmur-tracekit-", dir=args.dir))
    rounds = []
    version = None
    try:
        bench_pipeline.warm_up(where)
        for number in range(args.rounds):
            # the other order every other round, so that a drifting load favours neither
            first_ours = number % 2 == 0
            ours = _ours(where, args.n, args.concurrency, number) if first_ours else None
            theirs = _tracekit(args.peers_dir, args.n, where, args.concurrency)
            if ours is None:
                ours = _ours(where, args.n, args.concurrency, number)
            version = theirs["version"]
            rounds.append({"first": "ExoArmur" if first_ours else "tracekit-ai"})
            rounds[-1] |= {"ours": ours[0], "tracekit": theirs["rows"]}
            rounds[-1] |= {"ours_cpu_ms": ours[1], "tracekit_cpu_ms": theirs["cpu_ms"]}
            print(f"round {number + 1} of {args.rounds}: {json.dumps(rounds[-1])}", file=sys.stderr)
        machine = bench_pipeline.machine_info(where)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": args.command,
        "n": args.n,
        "machine": machine,
        "tracekit_version": version,
        "rounds": rounds,
        "medians": medians(rounds),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}`: N = {report['n']:,} calls a "
        f"row, {len(report['rounds'])} rounds, tracekit-ai {report['tracekit_version']}; "
        f"{m['cpu']}, {m['cores']} cores, ledgers and signer data on {m['filesystem']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}.",
        "",
        "| round (first) | C | ExoArmur allow /s | tracekit-ai fsync before reply /s | ratio "
        "| tracekit-ai default /s | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, measured in enumerate(report["rounds"], 1):
        for c, ours in measured["ours"].items():
            fsync, write = measured["tracekit"]["fsync"][c], measured["tracekit"]["write"][c]
            lines.append(
                f"| {number} ({measured['first']}) | {c} | {ours:,.0f} | {fsync:,.0f} "
                f"| {ours / fsync:.2f}× | {write:,.0f} | {ours / write:.2f}× |"
            )
    for c, fsync in report["medians"]["fsync"].items():
        write = report["medians"]["write"][c]
        lines.append(f"| **median** | {c} | | | **{fsync:.2f}×** | | **{write:.2f}×** |")
    cpu = cpu_medians(report["rounds"])
    if cpu:
        lines += [
            "",
            "CPU milliseconds per call, median over the rounds (ExoArmur: its one process; "
            "tracekit-ai: the client process and the signer process, user + system time):",
            "",
            "| C | ExoArmur | tracekit-ai fsync: client + signer | tracekit-ai default: "
            "client + signer |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for c, row in cpu.items():
            lines.append(
                f"| {c} | {row['ours']:.2f} | {row['fsync_client']:.2f} + "
                f"{row['fsync_signer']:.2f} | {row['write_client']:.2f} + "
                f"{row['write_signer']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def cpu_medians(rounds: Sequence[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """C -> median CPU ms per call of each side; empty when a round has no signer figure."""
    if not all("ours_cpu_ms" in r for r in rounds):
        return {}
    found: dict[int, dict[str, float]] = {}
    for c in rounds[0]["ours_cpu_ms"]:
        row = {"ours": statistics.median(r["ours_cpu_ms"][c] for r in rounds)}
        for mode in MODES:
            for side in ("client", "signer"):
                values = [r["tracekit_cpu_ms"][mode][c][side] for r in rounds]
                if any(v is None for v in values):
                    return {}
                row[f"{mode}_{side}"] = statistics.median(values)
        found[c] = row
    return found


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("--concurrency takes positive integers, e.g. 1,8,32")
    return levels


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=bench_pipeline.DEFAULT_N, help="calls a row")
    parser.add_argument("--concurrency", type=_levels, default=[1, 8, 32])
    parser.add_argument("--dir", type=Path, default=None, help="ledgers and signer data")
    parser.add_argument("--peers-dir", type=Path, default=None, help="peers' environments")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--write-readme", action="store_true", help="regenerate its table")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.n < 1:
        parser.error("--rounds and --n must be at least 1")
    if args.peers_dir is None:  # where the suite keeps them
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        args.peers_dir = cache / "exoarmur-bench" / "peers"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    args.command = shlex.join(["python", "benchmarks/bench_tracekit.py", *given])
    report = measure(args)
    text = markdown(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text)
    if args.write_readme:
        bench_pipeline.write_readme(text, START_MARK, END_MARK)
        print(f"wrote {bench_pipeline.README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
