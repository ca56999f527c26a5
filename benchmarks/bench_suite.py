"""`exoarmur benchmark`: ExoArmur beside its floors and its peers, in one run, as ratios.

Measurements (``--only`` picks some, by name):

    pipeline   governed actions, durable SQLite: allow at C=1, 8, 32 and 64, deny at
               C=1 and 8, each row followed by its floor (batched at C > 1) (bench_pipeline.py)
    approvals  submit, two operators approve, the action runs (bench_approvals.py)
    containment  a Door Net plan (4 steps, two operators approve) beside its four single
               containment actions, same run, same home (bench_containment.py)
    replay     replay verification of a 100,000-event log beside its floor (bench_replay.py)
    evidence   evidence bundle of a 10,000-event correlation: export, then verify offline
    memory     peak RSS governing 100,000 actions, and replaying 1,000,000 events,
               each in a child process, with RSS at 10 %, 50 %, 100 % (bench_memory.py)
    peers      exoarmur-core 2.1.0, the Agent Governance Toolkit and tracekit-ai (its
               signer, in both durability modes, at C=1, 8 and 32), each in its own
               virtual environment, on the closest equivalent workload (peers.py)

``--determinism-load --runs N --concurrency C`` runs the determinism load
instead (bench_determinism.py) and ends with ``STATUS: PASS`` or ``STATUS: FAIL``.

Every ratio compares numbers measured in this run on this machine. Targets
are reported (met or missed), never enforced: this script decides nothing
from a time, and its exit code says only whether it ran. benchmarks/README.md
says what every floor and peer does and does not do.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import bench_pipeline
from bench_approvals import approvals_run
from bench_containment import SINGLES, containment_run, make_containment_home
from bench_determinism import determinism_load
from bench_replay import evidence_run, replay_floor, replay_run
from history import build_history, make_home
from peers import PEERS, describe, run_peer

HERE = Path(__file__).resolve().parent
SUITE_START = "<!-- suite:start -->"
SUITE_END = "<!-- suite:end -->"
DETERMINISM_START = "<!-- determinism:start -->"
DETERMINISM_END = "<!-- determinism:end -->"
MEASUREMENTS = ("pipeline", "approvals", "containment", "replay", "evidence", "memory", "peers")

DEFAULT_SIZES = {
    "pipeline_n": 3000,
    "approvals_n": 300,
    "containment_n": 300,
    "replay_events": 100_000,
    "evidence_events": 10_000,
    "memory_actions": 100_000,
    "memory_events": 1_000_000,
    "peer_n": 10_000,
    "determinism_intents": 40,
}
QUICK_SIZES = {
    "pipeline_n": 48,
    "approvals_n": 6,
    "containment_n": 6,
    "replay_events": 400,
    "evidence_events": 200,
    "memory_actions": 90,
    "memory_events": 800,
    "peer_n": 300,
    "determinism_intents": 8,
}
DEFAULT_BUDGET_S = 180.0
CORRELATION = "incident-42"
PIPELINE_PATHS = ("allow", "deny")
PIPELINE_CONCURRENCY = (1, 8, 32, 64)
#: the rows measured: allow at every concurrency (group commit and batched
#: deciding show there), deny at the first two
PIPELINE_PLAN = tuple(
    (path, c)
    for path in PIPELINE_PATHS
    for c in (PIPELINE_CONCURRENCY if path == "allow" else PIPELINE_CONCURRENCY[:2])
)


# -- options ------------------------------------------------------------------


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MEASUREMENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown measurement {unknown[0] if unknown else text!r} "
            f"(one or more of: {', '.join(MEASUREMENTS)})"
        )
    return names


def _size(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if name not in DEFAULT_SIZES or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"--size takes NAME=POSITIVE_INTEGER with NAME one of {', '.join(DEFAULT_SIZES)}"
        )
    return name, int(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (what the tests use)")
    parser.add_argument("--only", type=_names, default=list(MEASUREMENTS), help="e.g. replay,peers")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--plot", type=Path, default=None, help="draw latencies and throughput")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (no installs)")
    parser.add_argument("--write-readme", action="store_true", help="regenerate README tables")
    parser.add_argument(
        "--size", type=_size, action="append", default=[], help="override one size, NAME=N"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="seconds each long measurement (replay, memory) may run before it stops",
    )
    parser.add_argument("--repeat", type=int, default=1, help="pipeline runs per row")
    parser.add_argument("--dir", type=Path, default=None, help="durable ledgers (default TMPDIR)")
    parser.add_argument(
        "--memory-dir", type=Path, default=None, help="memory runs' ledgers (default /dev/shm)"
    )
    parser.add_argument(
        "--peers-dir", type=Path, default=None, help="peers' virtual environments (kept)"
    )
    parser.add_argument("--determinism-load", action="store_true")
    parser.add_argument("--runs", type=int, default=None, help="determinism load: fresh homes")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="determinism load: submitters"
    )
    args = parser.parse_args(argv)
    args.sizes = dict(QUICK_SIZES if args.quick else DEFAULT_SIZES) | dict(args.size)
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    if args.concurrency is None:
        args.concurrency = 2 if args.quick else 4
    if min(args.runs, args.concurrency, args.repeat) < 1 or args.budget <= 0:
        parser.error("--runs, --concurrency and --repeat must be at least 1, --budget positive")
    if args.no_peers and "peers" in args.only:
        args.only = [n for n in args.only if n != "peers"]
    return args


def _peers_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "exoarmur-bench" / "peers"


def _memory_dir(given: Path | None, fallback: Path) -> Path:
    """tmpfs when there is one: RSS does not depend on fsync, and governing 100,000
    actions on a disk that syncs every append would spend the budget waiting."""
    if given is not None:
        return given
    shm = Path("/dev/shm")  # noqa: S108 - a fixed system mount, not a guessable temp file
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else fallback


# -- measurements ---------------------------------------------------------------


def measure_pipeline(
    args: argparse.Namespace, workdir: Path, progress: Progress
) -> tuple[list[bench_pipeline.Scenario], dict[str, Any]]:
    n = args.sizes["pipeline_n"]
    plan = [(bench_pipeline.PATHS[p], c) for p, c in PIPELINE_PLAN]
    (workdir / "pipeline").mkdir()
    scenarios = bench_pipeline.measure(workdir / "pipeline", plan, n, args.repeat, progress)
    report = bench_pipeline.new_report(args.command, n, args.repeat, PIPELINE_CONCURRENCY, workdir)
    report["scenarios"] = [s.to_json() for s in scenarios]
    # The allow path once more with the ledger on tmpfs, where fsync costs nothing:
    # the CPU cost of governance alone, the fairer side-by-side with in-memory peers.
    report["tmpfs_scenarios"] = []
    if bench_pipeline.filesystem(args.memory_dir) == "tmpfs":
        where = Path(tempfile.mkdtemp(prefix="exoarmur-pipeline-", dir=args.memory_dir))
        try:
            plan = [(bench_pipeline.PATHS["allow"], 1)]
            tmpfs = bench_pipeline.measure(where, plan, n, args.repeat, progress, "tmpfs ")
        finally:
            shutil.rmtree(where, ignore_errors=True)
        report["tmpfs_scenarios"] = [s.to_json() for s in tmpfs]
    return scenarios, report


def _ticker(progress: Progress, task: Any, base: int = 0) -> Callable[[int], None]:
    """A callback adding counts to a task; ``base`` is where it starts."""
    done = [base]

    def tick(count: int) -> None:
        done[0] += count
        progress.update(task, completed=done[0])

    return tick


def measure_approvals(
    args: argparse.Namespace, workdir: Path, progress: Progress
) -> dict[str, Any]:
    n = args.sizes["approvals_n"]
    task = progress.add_task("approvals", total=n)
    home = make_home(workdir / "approvals")
    return approvals_run(home.path, n, lambda done: progress.update(task, completed=done))


def measure_containment(
    args: argparse.Namespace, workdir: Path, progress: Progress
) -> dict[str, Any]:
    n = args.sizes["containment_n"]
    task = progress.add_task("containment", total=n * (1 + len(SINGLES)))
    home = make_containment_home(workdir / "containment")
    return containment_run(home.path, n, _ticker(progress, task))


def measure_replay(args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    events = args.sizes["replay_events"]
    build = progress.add_task("replay: build log", total=events)
    started = time.perf_counter()
    history = build_history(workdir / "replay", events, progress=_ticker(progress, build))
    built = time.perf_counter() - started
    task = progress.add_task("replay", total=history.events)
    result = replay_run(history, args.budget, progress=_ticker(progress, task))
    progress.stop_task(task)  # a budget stop leaves the bar short; its clock stops here
    if result["divergences"]:
        raise SystemExit(
            f"replay: {result['divergences']} divergences on a history the pipeline wrote or "
            "stamped; the benchmark would measure a broken log"
        )
    floor = replay_floor(history.home.ledger_path, history.tenant, result["events_replayed"])
    if floor["mismatches"] or floor["events"] != result["events_replayed"]:
        raise SystemExit(f"replay floor: {floor['mismatches']} events do not match their leaves")
    if result["complete"] and floor["root_hash"] != result["root_hash"]:
        raise SystemExit("replay floor: its root differs from replay's; the floor is wrong")
    cedar = replay_floor(
        history.home.ledger_path, history.tenant, result["events_replayed"], decide=True
    )
    if cedar["verdict_mismatches"]:
        raise SystemExit(f"replay's Cedar floor: {cedar['verdict_mismatches']} verdicts differ")
    return result | {
        "governed_events": history.governed,
        "stamped_events": history.stamped,
        "build_s": built,
        "floor": floor,
        "floor_events_per_s": floor["events_per_s"],
        "ratio": result["events_per_s"] / floor["events_per_s"],
        "cedar_floor_events_per_s": cedar["events_per_s"],
    }


def measure_evidence(args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    events = args.sizes["evidence_events"]
    task = progress.add_task("evidence: build log", total=events)
    history = build_history(
        workdir / "evidence", events, correlation=CORRELATION, progress=_ticker(progress, task)
    )
    task = progress.add_task("evidence: export+verify", total=1)
    result = evidence_run(history, CORRELATION)
    progress.update(task, completed=1)
    return result


def _child(what: str, home: Path, n: int, budget: float, progress: Progress, task: Any) -> Any:
    """Run one memory measurement in a child process, following its progress lines."""
    command = [
        sys.executable,
        str(HERE / "bench_memory.py"),
        what,
        "--home",
        str(home),
        "--n",
        str(n),
        "--budget",
        str(budget),
    ]
    with subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stderr is not None
        assert child.stdout is not None
        other: list[str] = []
        for line in child.stderr:
            if line.startswith("PROGRESS "):
                progress.update(task, completed=int(line.split()[1]))
            else:
                other.append(line.rstrip())
        out = child.stdout.read()
        code = child.wait()
    progress.stop_task(task)
    if code != 0:
        raise SystemExit(f"memory {what}: the child failed (exit {code}): {' | '.join(other[-5:])}")
    return json.loads(out.strip().splitlines()[-1])


def measure_memory(args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    where = Path(tempfile.mkdtemp(prefix="exoarmur-memory-", dir=args.memory_dir))
    try:
        actions = args.sizes["memory_actions"]
        home = make_home(where / "govern")
        task = progress.add_task("memory: govern", total=actions)
        governed = _child("govern", home.path, actions, args.budget, progress, task)
        governed["filesystem"] = bench_pipeline.filesystem(where)
        events = args.sizes["memory_events"]
        build = progress.add_task("memory: build log", total=events)
        history = build_history(where / "replay", events, progress=_ticker(progress, build))
        task = progress.add_task("memory: replay", total=history.events)
        replayed = _child("replay", history.home.path, history.events, args.budget, progress, task)
        replayed["filesystem"] = governed["filesystem"]
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return {"govern": governed, "replay": replayed}


def measure_peers(args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    results = {}
    # a durable peer writes on the filesystem our durable ledgers are on
    (workdir / "peers").mkdir()
    for peer in PEERS:
        task = progress.add_task(f"peer: {peer.key}", total=1)
        n = args.sizes[peer.size]
        results[peer.key] = run_peer(peer, args.peers_dir, n, data_dir=workdir / "peers")
        progress.update(task, completed=1)
    return results


def skipped(peer: Any, reason: str) -> dict[str, Any]:
    return describe(peer) | {"status": "skipped", "reason": reason}


# -- ratios and targets ------------------------------------------------------------


def _row(scenarios: Sequence[bench_pipeline.Scenario], path: str, c: int) -> Any:
    return next((s for s in scenarios if s.path == path and s.concurrency == c), None)


def _ops(row: Any) -> float | None:
    return row.ops if row is not None else None


def _peer_ops(peers: dict[str, Any], key: str, row: str) -> tuple[float | None, str]:
    """A peer row's rate, or None and why it has none."""
    peer = peers.get(key, {})
    if peer.get("status") != "ok":
        return None, f"{key}: {peer.get('reason', 'not run')}"
    measured = peer.get("rows", {}).get(row)
    if measured is None:
        return None, f"{key}: no {row} row"
    return measured["ops"], ""


#: how a wanted value reads, by the comparison that meets it
_WANTED = {"≥": "≥ {}×", "≤": "≤ {}×", "<": "< {} s"}

#: where the first rows come from, and the sizes its time and memory targets are stated at
#: (a smaller run reports the figure without a verdict)
ISSUE = "issue 11"
EVIDENCE_TARGET_EVENTS = 10_000
MEMORY_TARGET_EVENTS = 1_000_000


def targets(
    scenarios: Sequence[bench_pipeline.Scenario], results: dict[str, Any]
) -> list[dict[str, Any]]:
    """The targets, as numbers measured in this run: issue 11's table first, in its order
    (``now`` is where each row stood when the issue was written), then the earlier ones."""
    found: list[dict[str, Any]] = []

    def add(
        name: str,
        ours: float | None,
        theirs: float | None,
        wanted: float | None,
        note: str = "",
        *,
        now: str = "—",
        compare: str = "≥",
        unit: str = "/s",
        judged: bool = True,
    ) -> None:
        """``theirs`` None with ``compare`` "<": the target is on ``ours`` itself (a time);
        ``judged`` False: measured at another size than the target's, so no verdict."""
        ratio = ours / theirs if ours and theirs else None
        measured = ours if compare == "<" else ratio
        met = None
        if measured is not None and wanted is not None and judged:
            met = {"≥": measured >= wanted, "≤": measured <= wanted, "<": measured < wanted}[
                compare
            ]
        found.append(
            {
                "target": name,
                "brief": ISSUE if now != "—" else "earlier",
                "now": now,
                "ours": ours,
                "theirs": theirs,
                "unit": unit,
                "ratio": measured if compare != "<" else None,
                "measured": measured,
                "compare": compare,
                "wanted": wanted,
                "wanted_text": "—" if wanted is None else _WANTED[compare].format(f"{wanted:g}"),
                "met": met,
                "note": note,
            }
        )

    peers = results.get("peers", {})
    one, eight, many = (_row(scenarios, "allow", c) for c in (1, 8, 32))
    core_ops, why_core = _peer_ops(peers, "exoarmur-core", "allow")
    add(
        "allow C=32 (SQLite, fsync) ÷ exoarmur-core allow (in memory)",
        _ops(many),
        core_ops,
        2.0,
        why_core,
        now="~0.32×",
    )
    fsync_ops, why_fsync = _peer_ops(peers, "tracekit-ai", "fsync_allow_c8")
    add(
        "allow C=8 ÷ tracekit-ai C=8, fsync before reply (equal durability)",
        _ops(eight),
        fsync_ops,
        2.0,
        why_fsync,
        now="1.25–1.5× (by hand)",
    )
    write_ops, why_write = _peer_ops(peers, "tracekit-ai", "write_allow_c8")
    add(
        "allow C=8 ÷ tracekit-ai C=8, its default (synced ≤ 5 ms after reply)",
        _ops(eight),
        write_ops,
        None,
        why_write or "less durable than ours: reported, no target",
        now="not measured",
    )
    for c in (1, 32):  # the same, at the other ends, reported beside it
        for mode, what in (("fsync", "fsync before reply"), ("write", "its default")):
            theirs, why = _peer_ops(peers, "tracekit-ai", f"{mode}_allow_c{c}")
            add(
                f"allow C={c} ÷ tracekit-ai C={c}, {what}",
                _ops(_row(scenarios, "allow", c)),
                theirs,
                None,
                why or "reported, no target",
                now="not measured",
            )
    add(
        "allow C=32 ÷ allow C=1 (group commit scaling)",
        _ops(many),
        _ops(one),
        4.0,
        now="1.29×",
    )
    add("allow C=1 ÷ its floor", _ops(one), one.floor_ops if one else None, 0.8, now="0.51×")
    add(
        "allow C=32 ÷ its batched floor",
        _ops(many),
        many.floor_ops if many else None,
        0.8,
        "Cedar batches + executemany, in as many transactions as the pipeline committed",
        now="0.35×",
    )
    replay = results.get("replay")
    stopped = bool(replay and replay["stopped_by_budget"])
    budget_note = "; stopped by budget, over the events reached" if replay and stopped else ""
    add(
        "replay ÷ its Cedar-batched floor",
        replay["events_per_s"] if replay else None,
        replay.get("cedar_floor_events_per_s") if replay else None,
        0.5,
        "the floor reads, decodes, hashes and re-decides every decision in one Cedar batch"
        " per page" + budget_note,
        now="0.068× (of the hash-only floor)",
    )
    add(
        "replay ÷ its hash-only floor",
        replay["events_per_s"] if replay else None,
        replay["floor_events_per_s"] if replay else None,
        None,
        "the floor reads, decodes and hashes: reported, no target" + budget_note,
        now="0.068×",
    )
    evidence = results.get("evidence")
    events = evidence["bundle_events"] if evidence else 0
    add(
        f"evidence bundle of {EVIDENCE_TARGET_EVENTS:,} events: offline verify",
        evidence["verify_s"] if evidence else None,
        None,
        1.0,
        ""
        if not evidence or events >= EVIDENCE_TARGET_EVENTS
        else f"measured on {events:,} events: no verdict",
        now="3.9 s",
        compare="<",
        unit=" s",
        judged=events >= EVIDENCE_TARGET_EVENTS,
    )
    replayed = results.get("memory", {}).get("replay")
    rss = replayed["rss_mib"] if replayed else {}
    full = bool(replayed and replayed["complete"] and replayed["done"] >= MEMORY_TARGET_EVENTS)
    note = ""
    if replayed and not full:
        note = f"{replayed['done']:,} of {replayed['target']:,} events replayed: no verdict"
    add(
        f"RSS replaying {MEMORY_TARGET_EVENTS:,} events: at 100 % ÷ at 10 %",
        rss.get("100"),
        rss.get("10"),
        1.1,
        note,
        now="grows ~35 bytes/event",
        compare="≤",
        unit=" MiB",
        judged=full,
    )

    # earlier briefs' targets, and the rows beside them worth a ratio
    add("allow C=1 ÷ exoarmur-core allow (in memory)", _ops(one), core_ops, 5.0, why_core)
    agt_ops, why_agt = _peer_ops(peers, "agent-governance-toolkit", "allow")
    add("allow C=1 ÷ AGT policy + audit allow", _ops(one), agt_ops, 1.0, why_agt)
    tmpfs = results.get("pipeline", {}).get("tmpfs_scenarios", [])
    if tmpfs:
        note = "ledger on tmpfs: no fsync cost; not the target's durable path"
        add("allow C=1 (tmpfs) ÷ exoarmur-core allow", tmpfs[0]["ops"], core_ops, 5.0, note)
        add("allow C=1 (tmpfs) ÷ AGT policy + audit allow", tmpfs[0]["ops"], agt_ops, 1.0, note)
    for s in scenarios:
        if s.path == "allow" and s.concurrency in (1, 32):
            continue  # issue 11's rows above
        # at C > 1 the floor is the batched floor: Cedar batches and executemany
        # in as many transactions as the pipeline committed
        floor = "its floor" if s.concurrency == 1 else "its batched floor"
        add(f"{s.path} C={s.concurrency} ÷ {floor}", s.ops, s.floor_ops, 0.5)
    return found


# -- output ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else (f"{value:.3f}" if value < 1 else f"{value:.2f}")


def ours_path(compared_with: str) -> tuple[str, int]:
    """Our row a peer row is compared with: "allow" (at C=1) or "allow C=8"."""
    path, _, c = compared_with.partition(" C=")
    return path, int(c) if c else 1


def _measure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{_f(value)}/s" if unit == "/s" else f"{value:,.{2 if unit == ' s' else 1}f}{unit}"


def _measured(target: dict[str, Any]) -> str:
    value = target["measured"]
    if value is None:
        return "—"
    return f"{value:.2f} s" if target["compare"] == "<" else f"{value:.3f}×"


def verdict(target: dict[str, Any]) -> str:
    if target["met"] is not None:
        return "met" if target["met"] else "missed"
    if target["wanted"] is None:
        return "reported"
    return "not measured" if target["measured"] is None else "no verdict"


def sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table of the report as (title, header, rows): one source for terminal and README."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    results = report["results"]
    rows: list[list[str]] = []
    for s in results.get("pipeline", {}).get("scenarios", []):
        rows.append(
            [
                f"ExoArmur {s['path']}, C={s['concurrency']}",
                "SQLite, fsync",
                _f(s["ops"]),
                _ms(s["p50_ms"]),
                _ms(s["p99_ms"]),
                _ms(s["p999_ms"]),
                f"floor {_f(s['floor_ops'])}/s",
                f"{s['ratio']:.2f}",
            ]
        )
    for s in results.get("pipeline", {}).get("tmpfs_scenarios", []):
        rows.append(
            [
                f"ExoArmur {s['path']}, C={s['concurrency']}",
                "SQLite on tmpfs",
                _f(s["ops"]),
                _ms(s["p50_ms"]),
                _ms(s["p99_ms"]),
                _ms(s["p999_ms"]),
                f"floor {_f(s['floor_ops'])}/s (tmpfs)",
                f"{s['ratio']:.2f}",
            ]
        )
    approvals = results.get("approvals")
    if approvals:
        rows.append(
            [
                "ExoArmur approval flow (submit + 2 votes + run)",
                "SQLite, fsync",
                _f(approvals["flows_per_s"], 1),
                _ms(approvals["p50_ms"]),
                _ms(approvals["p99_ms"]),
                _ms(approvals["p999_ms"]),
                "—",
                "—",
            ]
        )
    scenarios = results.get("pipeline", {}).get("scenarios", [])
    for key, peer in results.get("peers", {}).items():
        if peer["status"] != "ok":
            rows.append([key, "—", peer["status"], "", "", "", peer["reason"], ""])
            continue
        for row, ours_row in peer["compared_with"].items():
            measured = peer["rows"].get(row)
            if measured is None:
                rows.append([f"{key} {row}", "—", "not reported", "", "", "", "", ""])
                continue
            path, c = ours_path(ours_row)
            ours = next(
                (s["ops"] for s in scenarios if s["path"] == path and s["concurrency"] == c), None
            )
            rows.append(
                [
                    f"{key} {row}",
                    measured.get("ledger", "in memory"),
                    _f(measured["ops"]),
                    _ms(measured["p50_ms"]),
                    _ms(measured["p99_ms"]),
                    _ms(measured["p999_ms"]),
                    f"ExoArmur {path} C={c} ÷ this",
                    f"{ours / measured['ops']:.3f}" if ours else "—",
                ]
            )
    if rows:
        header = ["governed path", "ledger", "actions/s", "p50 ms", "p99 ms", "p99.9 ms"]
        out.append(("Governed actions", [*header, "compared with", "ratio"], rows))
    peer_rows = [
        [key, peer.get("per_call", ""), "; ".join(peer["does_less"])]
        for key, peer in results.get("peers", {}).items()
    ]
    if peer_rows:
        header = ["peer", "what one timed call does", "what it does not do that ours does"]
        out.append(("Peers, per call", header, peer_rows))

    containment = results.get("containment")
    if containment:
        plan = containment["door_net"]
        flows = [(f"Door Net plan ({plan['steps']} steps)", plan)]
        flows += [(f"single {name}", row) for name, row in containment["singles"].items()]
        containment_rows = [
            [
                what,
                str(row["votes"]),
                _f(row["events_per_flow"], 1),
                _f(row["per_s"], 1),
                _ms(row["p50_ms"]),
                _ms(row["p99_ms"]),
                _ms(row["p999_ms"]),
            ]
            for what, row in flows
        ]
        header = ["containment flow (submit + votes + run)", "votes", "events"]
        header += ["flows/s", "p50 ms", "p99 ms", "p99.9 ms"]
        out.append(("Containment (SQLite, fsync)", header, containment_rows))

    verify_rows = []
    replay = results.get("replay")
    if replay:
        tenths = replay["tenths_events_per_s"]
        trend = f"{_f(tenths[0])} → {_f(tenths[-1])}" if tenths else "—"
        reached = f"{replay['events_replayed']:,} of {replay['events_in_log']:,}"
        if replay["stopped_by_budget"]:
            reached += f" (budget {replay['budget_s']:.0f} s)"
        verify_rows.append(
            [
                "replay (re-decide + Merkle + checkpoint)",
                reached,
                _f(replay["events_per_s"]),
                f"floor {_f(replay['floor_events_per_s'])}/s",
                f"{replay['ratio']:.3f}",
                f"first → last tenth: {trend} events/s",
            ]
        )
    evidence = results.get("evidence")
    if evidence:
        verify_rows.append(
            [
                "evidence bundle export",
                f"{evidence['bundle_events']:,} events",
                _f(evidence["export_events_per_s"]),
                f"{evidence['export_s']:.2f} s",
                "—",
                f"bundle {evidence['bundle_bytes'] / 1e6:.1f} MB",
            ]
        )
        verify_rows.append(
            [
                "evidence bundle verify (offline)",
                f"{evidence['bundle_events']:,} events",
                _f(evidence["verify_events_per_s"]),
                f"{evidence['verify_s']:.2f} s",
                "—",
                f"{evidence['decisions']:,} decisions re-decided",
            ]
        )
    if verify_rows:
        header = ["verification", "events", "events/s", "floor or time", "ratio", "note"]
        out.append(("Verification", header, verify_rows))

    memory = results.get("memory")
    if memory:
        memory_rows = []
        for label, m in (("governing", memory["govern"]), ("replaying", memory["replay"])):
            unit = "actions" if label == "governing" else "events"
            reached = f"{m['done']:,} of {m['target']:,} {unit}"
            if m["stopped_by_budget"]:
                reached += " (budget)"
            rss = m["rss_mib"]
            memory_rows.append(
                [
                    label,
                    reached,
                    _f(m["baseline_mib"], 1),
                    _f(rss.get("10"), 1),
                    _f(rss.get("50"), 1),
                    _f(rss.get("100"), 1),
                    _f(m["peak_mib"], 1),
                    {True: "flat", False: "grows", None: "—"}[m["flat"]],
                ]
            )
        header = ["peak RSS while", "run", "start MiB", "10 %", "50 %", "100 %", "peak MiB", ""]
        out.append(("Memory (child process per row)", header, memory_rows))

    target_rows = [
        [
            t["target"],
            t["brief"],
            t["now"],
            t["wanted_text"],
            _measure(t["ours"], t["unit"]),
            _measure(t["theirs"], t["unit"]),
            _measured(t),
            verdict(t),
            t["note"],
        ]
        for t in report.get("targets", [])
    ]
    if target_rows:
        header = ["target (measured in this run)", "from", "now", "wanted", "ours", "theirs"]
        header += ["measured", "verdict", "note"]
        out.append(("Targets", header, target_rows))
    return out


def render(console: Console, report: dict[str, Any]) -> None:
    m = report["machine"]
    console.print(
        f"[bold]ExoArmur benchmark[/] — {report['date']}, {m['cpu']}, {m['cores']} cores; "
        f"Python {m['python']}, exoarmur {m['exoarmur']}, SQLite {m['sqlite']} on {m['filesystem']}"
    )
    for title, header, rows in sections(report):
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 or i == len(header) - 1 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    sizes = ", ".join(f"{k} = {v:,}" for k, v in report["sizes"].items())
    lines = [
        f"Measured {report['date']} with `{report['command']}` "
        f"(sizes: {sizes}; budget {report['budget_s']:.0f} s per long measurement).",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable)",
        f"- {m['platform']}; durable ledgers on {m['filesystem']}, "
        f"memory runs on {report['memory_filesystem']}",
        f"- Python {m['python']}, exoarmur {m['exoarmur']}, cedarpy {m['cedarpy']}, "
        f"SQLite {m['sqlite']}",
    ]
    for key, peer in report["results"].get("peers", {}).items():
        if peer["status"] == "ok":
            lines.append(
                f"- peer {key} {peer['version']} ({peer['requirement']}, virtual environment "
                f"{peer['environment']} by the suite)"
            )
        else:
            lines.append(f"- peer {key}: unavailable — {peer['reason']}")
    for title, header, rows in sections(report):
        lines += ["", f"**{title}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append(
            "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |"
        )
        lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def key_values(report: dict[str, Any], scenarios: Sequence[bench_pipeline.Scenario]) -> list[str]:
    results = report["results"]
    lines = [f"SUITE_DATE={report['date']}"]
    if "pipeline" in results:
        lines += bench_pipeline.key_values(results["pipeline"], scenarios)[3:]
    if "approvals" in results:
        lines.append(f"APPROVALS_FLOWS_PER_S={results['approvals']['flows_per_s']:.2f}")
        lines.append(f"APPROVALS_P99_MS={results['approvals']['p99_ms']:.3f}")
    if "containment" in results:
        c = results["containment"]
        rows = [("DOOR_NET", c["door_net"])] + [(k.upper(), v) for k, v in c["singles"].items()]
        for name, row in rows:
            lines.append(f"CONTAINMENT_{name}_PER_S={row['per_s']:.2f}")
            lines.append(f"CONTAINMENT_{name}_P50_MS={row['p50_ms']:.3f}")
            lines.append(f"CONTAINMENT_{name}_P99_MS={row['p99_ms']:.3f}")
    if "replay" in results:
        r = results["replay"]
        lines += [
            f"REPLAY_EVENTS={r['events_replayed']}",
            f"REPLAY_EVENTS_PER_S={r['events_per_s']:.1f}",
            f"REPLAY_FLOOR_EVENTS_PER_S={r['floor_events_per_s']:.1f}",
            f"REPLAY_RATIO={r['ratio']:.4f}",
            f"REPLAY_COMPLETE={str(r['complete']).lower()}",
        ]
    if "evidence" in results:
        e = results["evidence"]
        lines += [
            f"EVIDENCE_EXPORT_S={e['export_s']:.3f}",
            f"EVIDENCE_VERIFY_S={e['verify_s']:.3f}",
        ]
    if "memory" in results:
        for what, m in results["memory"].items():
            lines.append(f"MEMORY_{what.upper()}_PEAK_MIB={m['peak_mib']:.1f}")
    for key, peer in results.get("peers", {}).items():
        name = key.upper().replace("-", "_")
        if peer["status"] != "ok":
            lines.append(f"PEER_{name}=unavailable")
            continue
        for row, measured in peer["rows"].items():
            lines.append(f"PEER_{name}_{row.upper()}_OPS={measured['ops']:.1f}")
    return lines


def plot(path: Path, report: dict[str, Any], latencies: dict[str, list[float]]) -> str | None:
    """Latency distributions and throughput bars; None when done, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "--plot needs matplotlib, which is not installed: "
            "pip install 'exoarmur[plot]' (or pip install matplotlib)"
        )
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    for label, values in latencies.items():
        ordered = sorted(v * 1e3 for v in values)
        if ordered:
            fraction = [(i + 1) / len(ordered) for i in range(len(ordered))]
            left.plot(ordered, fraction, label=label)
    left.set_xscale("log")
    left.set_xlabel("latency per call (ms, log scale)")
    left.set_ylabel("fraction of calls at or below")
    left.set_title("Latency distribution")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    bars: list[tuple[str, float]] = []
    results = report["results"]
    for s in results.get("pipeline", {}).get("scenarios", []):
        bars.append((f"{s['path']} C={s['concurrency']}", s["ops"]))
        bars.append((f"floor {s['path']} C={s['concurrency']}", s["floor_ops"]))
    for key, peer in results.get("peers", {}).items():
        if peer["status"] == "ok":
            for row, measured in peer["rows"].items():
                bars.append((f"{key} {row}", measured["ops"]))
    if bars:
        names, values = zip(*bars, strict=True)
        colours = [
            "tab:blue"
            if not n.startswith(("floor", *(peer.key for peer in PEERS)))
            else "tab:gray"
            if n.startswith("floor")
            else "tab:orange"
            for n in names
        ]
        right.barh(names, values, color=colours)
        right.set_xscale("log")
        right.invert_yaxis()
    right.set_xlabel("actions per second (log scale)")
    right.set_title("Throughput: ExoArmur (blue), floors (grey), peers (orange)")
    figure.suptitle(f"ExoArmur benchmark, {report['date']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def _strip_latencies(value: Any) -> Any:
    """The report without per-call latency lists (kept for the plot, too long for JSON)."""
    if isinstance(value, dict):
        return {k: _strip_latencies(v) for k, v in value.items() if k != "latencies_s"}
    if isinstance(value, list):
        return [_strip_latencies(v) for v in value]
    return value


# -- the run ----------------------------------------------------------------------------


def run_determinism(args: argparse.Namespace, out: Console, err: Console) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="exoarmur-determinism-", dir=args.dir) as tmp,
        bench_pipeline.new_progress(err) as progress,
    ):
        task = progress.add_task("determinism runs", total=args.runs)
        result = determinism_load(
            Path(tmp),
            args.runs,
            args.concurrency,
            args.sizes["determinism_intents"],
            lambda done: progress.update(task, completed=done),
        )
    intents = result["intents_per_submitter"]
    result["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["command"] = args.command
    status = f"STATUS: {result['status']}"
    if args.write_readme:
        text = (
            f"Measured {result['date']} with `{result['command']}`: {result['runs']} runs × "
            f"{result['concurrency']} concurrent submitters × {intents} intents each, "
            f"a fresh home per run: **{result['distinct_roots']} distinct root(s), "
            f"{status}**.\n\n"
            + "".join(f"- run {n}: `{root}`\n" for n, root in enumerate(result["roots"]))
        )
        bench_pipeline.write_readme(text, DETERMINISM_START, DETERMINISM_END)
        err.print(f"wrote {bench_pipeline.README}")
    if args.json:
        print(json.dumps(result, indent=2))
        err.print(status)
    else:
        out.print(
            f"{result['runs']} runs × {result['concurrency']} concurrent submitters × "
            f"{intents} intents each, fresh home per run"
        )
        out.print(f"runs side by side in {result['processes']} worker process(es), one per core")
        for run, root in enumerate(result["roots"]):
            out.print(f"run {run}: root {root}")
        print(f"DISTINCT_ROOTS={result['distinct_roots']}")
        # ExoArmur-Core's block, line for line: an execution is a run, a hash a run's root
        print("DETERMINISM")
        print(f"Concurrency: {result['concurrency']}")
        print(f"Executions: {result['runs']}")
        print(f"Unique Hashes: {result['distinct_roots']}")
        print(status)
    return 0 if result["status"] == "PASS" else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.command = shlex.join(["exoarmur", "benchmark", *(sys.argv[1:] if argv is None else argv)])
    out = Console() if Console().is_terminal else Console(width=160)
    err = Console(stderr=True)
    if args.determinism_load:
        return run_determinism(args, out, err)
    args.peers_dir = _peers_dir(args.peers_dir)
    results: dict[str, Any] = {}
    scenarios: list[bench_pipeline.Scenario] = []
    elapsed: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="exoarmur-suite-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        args.memory_dir = _memory_dir(args.memory_dir, workdir)
        steps: dict[str, Callable[[argparse.Namespace, Path, Progress], Any]] = {
            "approvals": measure_approvals,
            "containment": measure_containment,
            "replay": measure_replay,
            "evidence": measure_evidence,
            "memory": measure_memory,
            "peers": measure_peers,
        }
        with bench_pipeline.new_progress(err) as progress:
            for name in MEASUREMENTS:
                if name not in args.only:
                    continue
                started = time.perf_counter()
                if name == "pipeline":
                    scenarios, results["pipeline"] = measure_pipeline(args, workdir, progress)
                else:
                    results[name] = steps[name](args, workdir, progress)
                elapsed[name] = time.perf_counter() - started
        report: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": args.command,
            "quick": args.quick,
            "only": args.only,
            "sizes": {k: v for k, v in args.sizes.items() if k != "determinism_intents"},
            "budget_s": args.budget,
            "machine": bench_pipeline.machine_info(workdir),
            "memory_filesystem": bench_pipeline.filesystem(args.memory_dir),
            "elapsed_s": elapsed,
            "results": results,
        }
    if args.no_peers:
        results["peers"] = {peer.key: skipped(peer, "--no-peers") for peer in PEERS}
    report["targets"] = targets(scenarios, results)
    latencies = {
        f"ExoArmur {s.path} C={s.concurrency}": [x for p, _ in s.runs for x in p.latencies]
        for s in scenarios
        if s.concurrency == 1
    }
    if "approvals" in results:
        latencies["ExoArmur approval flow"] = results["approvals"]["latencies_s"]
    if "containment" in results:
        latencies["ExoArmur Door Net plan"] = results["containment"]["door_net"]["latencies_s"]
    for key, peer in results.get("peers", {}).items():
        if peer["status"] == "ok":
            for row, measured in peer["rows"].items():
                if row in ("allow", "deny") or measured.get("concurrency") == 1:
                    latencies[f"{key} {row}"] = measured["latencies_s"]
    clean = _strip_latencies(report)
    if args.json:
        print(json.dumps(clean, indent=2))
    else:
        render(out, clean)
        for line in key_values(clean, scenarios):
            print(line)
    if args.plot is not None:
        problem = plot(args.plot, clean, latencies)
        if problem:
            err.print(f"[red]{problem}[/]")
            return 2
        err.print(f"wrote {args.plot}")
    if args.write_readme:
        bench_pipeline.write_readme(markdown(clean), SUITE_START, SUITE_END)
        if scenarios:
            bench_pipeline.write_readme(bench_pipeline.markdown(results["pipeline"], scenarios))
        err.print(f"wrote {bench_pipeline.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
