"""What verifying costs: replay against its floor, and evidence bundles export and verify.

Replay (``exoarmur.replay``) re-decides every recorded intent from the
ledger alone and rebuilds the Merkle tree. Its *floor* is the part of that
work no verifier can skip: read every event's stored bytes in order, decode
them (``json.loads``), hash each into its RFC 9162 leaf, compare it with the
stored leaf hash and fold it into the Merkle frontier, and compare the root
with the signed checkpoint's. The floor is plain ``sqlite3``, ``json`` and
``hashlib``: it never calls into ``exoarmur`` and makes no decision. The
*Cedar-batched floor* adds the one thing replay cannot skip either: it
re-decides every decision in Cedar (``cedarpy`` directly), one batch call per
page of events; issue 11's target is replay at half of it.

Replay can be stopped by a time budget (the suite's ``--budget``): then the
rate is measured over the events it reached, the floor does exactly that many
events, and the result says so. The per-tenth rates show whether replay slows
down as it goes (a cost per event that grows with the log) or not.

Run alone, it measures one log of ``--events`` events (the suite does the
same in its ``replay`` and ``memory`` rows):

    python benchmarks/bench_replay.py --events 10000                 # events/s and the floor
    python benchmarks/bench_replay.py --events 200000 --rss          # and RSS at 10 % vs 100 %
    python benchmarks/bench_replay.py --events 10000 --against REF --rounds 3

``--rss`` replays in a child process (``bench_memory.py replay``) that reads
its RSS at every tenth of the log: flat means RSS at 100 % is within 10 % of
RSS at 10 %. ``--against`` replays the same log with the source of a git
commit (before) and with this tree's (after), alternating in one run so that
a busy machine slows both alike; it prints the best of each (and, with
``--rss``, each side's RSS).

This module never decides anything from a time.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cedarpy

from against import env_with, source_at
from exoarmur.errors import ExoArmurError
from exoarmur.evidence import export_bundle, verify_bundle_text
from exoarmur.replay import Replayer
from history import History, build_history

HERE = Path(__file__).resolve().parent


class BudgetSpent(Exception):
    """Raised from replay's progress callback when the time budget is spent."""


def _tenths(marks: list[tuple[int, float]], start: float) -> list[float]:
    """Events per second over each tenth of the events replayed (empty if fewer than 10).

    ``marks`` are (events done, time) samples in order, the last one at the end.
    """
    if not marks or marks[-1][0] < 10:
        return []
    done = marks[-1][0]
    rates = []
    previous_index, previous_time = 0, start
    for tenth in range(1, 11):
        # the latest sample at or before this tenth (samples are dense: at most 0.1 % off)
        index, moment = marks[bisect.bisect_right(marks, (done * tenth // 10, math.inf)) - 1]
        rates.append((index - previous_index) / max(moment - previous_time, 1e-9))
        previous_index, previous_time = index, moment
    return rates


def replay_run(
    history: History,
    budget_s: float,
    progress: Callable[[int], None] | None = None,
    sample: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay the history's tenant log, verifying the signed checkpoint; stop at the budget.

    ``sample(events_done)`` is called after every event (the memory benchmark
    reads RSS there). Uses :class:`exoarmur.replay.Replayer`, the object
    ``exoarmur.replay.replay`` runs, so that a budget stop keeps what was found.
    Times are sampled about a thousand times over the log, never per event: a
    list growing with the log would be counted in the memory benchmark's RSS.
    """
    ledger = history.home.ledger()
    stride = max(1, history.events // 1000)
    marks: list[tuple[int, float]] = []
    done = 0
    shown = [0]
    stopped = False
    try:
        replayer = Replayer(ledger.store, history.tenant)
        replayer.verifier = ledger.key.verifier()
        start = time.perf_counter()
        deadline = start + budget_s

        def tick(count: int) -> None:
            nonlocal done
            done += count
            now = time.perf_counter()
            if done % stride == 0 or done == history.events:
                marks.append((done, now))
                if progress is not None:
                    # a bar moved a thousand times, not once an event: its own
                    # cost would be counted as replay's (the floor has no bar)
                    progress(done - shown[0])
                    shown[0] = done
            if sample is not None:
                sample(done)
            if now > deadline and done < history.events:
                marks.append((done, now))
                raise BudgetSpent

        report = None
        try:
            report = replayer.run(tick)
        except BudgetSpent:
            stopped = True
        seconds = (marks[-1][1] if marks else time.perf_counter()) - start
        divergences = len(report.divergences) if report else len(replayer.divergences)
        verified = report.verified if report else not replayer.divergences
    finally:
        ledger.store.close()
    return {
        "events_in_log": history.events,
        "events_replayed": done,
        "complete": not stopped,
        "stopped_by_budget": stopped,
        "budget_s": budget_s,
        "seconds": seconds,
        "events_per_s": done / seconds if seconds > 0 else 0.0,
        "tenths_events_per_s": _tenths(marks, start),
        "divergences": divergences,
        "verified": verified,
        "checkpoint_verified": report.checkpoint_verified if report else None,
        "root_hash": report.root_hash if report else None,
    }


# -- the floor: no exoarmur below this line ----------------------------------


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _root(stack: list[bytes]) -> bytes:
    """RFC 9162 root from the perfect-subtree hashes of a frontier (largest first)."""
    if not stack:
        return hashlib.sha256(b"").digest()
    root = stack[-1]
    for left in reversed(stack[:-1]):
        root = hashlib.sha256(b"\x01" + left + root).digest()
    return root


def _checkpoint_root(db: Path, tenant: str) -> tuple[int, bytes] | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT size, note FROM checkpoints WHERE tenant = ? ORDER BY size DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    size, note = row
    # C2SP checkpoint body: origin, size, base64 root, then the signature lines.
    return int(size), base64.b64decode(note.split("\n")[2])


#: Cedar principal entity types by actor kind, as the policy engine names them
_PRINCIPALS = {"agent": "Agent", "service": "Service", "operator": "Operator", "system": "System"}
#: what a posture tightens when it tightens nothing (the shape policy reads)
_UNTIGHTENED = {"extra_approvals": 0, "extra_approval_classes": [], "approval_above": "A3"}


def _policies(db: Path) -> Any:
    """The Cedar policy set of the latest global activation, from its stored bytes."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT canonical FROM events WHERE tenant = '_system' AND type = 'policy.activated' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    files = json.loads(row[0])["payload"]["bundle"]["files"]
    return cedarpy.PolicySet.from_str("\n".join(files[name] for name in sorted(files)))


def _cedar_request(intent: dict[str, Any], posture: str) -> tuple[dict[str, Any], list[Any]]:
    actor = intent["actor"]
    kind = _PRINCIPALS[actor["kind"]]
    quoted = {k: json.dumps(intent[k]) for k in ("action", "target")}
    request = {
        "principal": f"{kind}::{json.dumps(actor['id'])}",
        "action": f"Action::{quoted['action']}",
        "resource": f"Target::{quoted['target']}",
        "context": {
            "action": intent["action"],
            "target": intent["target"],
            "params": intent["params"],
            "safety_class": intent["safety_class"],
            "tenant": intent["tenant"],
            "posture": posture,
            "event_time": intent["event_time"],
            "event_epoch": 0,
            "tightened": _UNTIGHTENED,
        },
    }
    entities = [
        {"uid": {"type": kind, "id": actor["id"]}, "attrs": {"kind": actor["kind"]}, "parents": []},
        {"uid": {"type": "Target", "id": intent["target"]}, "attrs": {}, "parents": []},
    ]
    return request, entities


def replay_floor(db: Path, tenant: str, count: int, decide: bool = False) -> dict[str, Any]:
    """Read, decode, leaf-hash and fold the first ``count`` events; compare with the record.

    With ``decide``, also re-decide every decision in Cedar, one batch call per
    page of events (the intents of the page's decisions, with the policies of
    the latest activation): the floor of a replay that re-decides, which issue
    11 measures replay against. Its verdicts are compared with the recorded
    ones (allow or approval against Cedar's allow) and the differences counted.
    """
    conn = sqlite3.connect(db)
    page = 1000  # as the store pages its reads
    stack: list[bytes] = []
    sizes: list[int] = []
    mismatches = 0
    verdict_mismatches = 0
    decided = 0
    done = 0
    checkpoint = _checkpoint_root(db, tenant)
    checkpoint_matches: bool | None = None
    policies = _policies(db) if decide else None
    start = time.perf_counter()
    try:
        while done < count:
            rows = conn.execute(
                "SELECT canonical, leaf_hash FROM events WHERE tenant = ? AND seq >= ? "
                "ORDER BY seq LIMIT ?",
                (tenant, done, min(page, count - done)),
            ).fetchall()
            if not rows:
                break
            intents: dict[str, dict[str, Any]] = {}
            requests: list[dict[str, Any]] = []
            entities: dict[tuple[str, str], Any] = {}
            recorded: list[bool] = []
            for canonical, stored in rows:
                record = json.loads(canonical)
                leaf = _leaf(canonical)
                if leaf != stored or record["seq"] != done:
                    mismatches += 1
                if decide and record["type"] == "intent.recorded":
                    intents[record["intent_id"]] = record["payload"]["intent"]
                elif decide and record["type"] == "decision.recorded":
                    intent = intents.pop(record["intent_id"], None)
                    if intent is not None:
                        request, ents = _cedar_request(intent, record["payload"]["posture"])
                        requests.append(request)
                        for entity in ents:
                            entities[(entity["uid"]["type"], entity["uid"]["id"])] = entity
                        verdict = record["payload"]["decision"]["verdict"]
                        recorded.append(verdict in ("allow", "require_approval"))
                # fold the leaf into the frontier: merge equal-sized subtrees
                carry, size = leaf, 1
                while sizes and sizes[-1] == size:
                    carry = hashlib.sha256(b"\x01" + stack.pop() + carry).digest()
                    size += sizes.pop()
                stack.append(carry)
                sizes.append(size)
                done += 1
                if checkpoint is not None and done == checkpoint[0]:
                    checkpoint_matches = _root(stack) == checkpoint[1]
            if requests:
                results = cedarpy.is_authorized_batch(requests, policies, list(entities.values()))
                decided += len(results)
                for result, allowed in zip(results, recorded, strict=True):
                    verdict_mismatches += (result.decision == cedarpy.Decision.Allow) != allowed
        root = _root(stack)
    finally:
        conn.close()
    seconds = time.perf_counter() - start
    return {
        "events": done,
        "seconds": seconds,
        "events_per_s": done / seconds if seconds > 0 else 0.0,
        "mismatches": mismatches,
        "root_hash": root.hex(),
        "checkpoint_matches": checkpoint_matches,
        "decided": decided,
        "verdict_mismatches": verdict_mismatches,
    }


# -- evidence bundles ---------------------------------------------------------


def evidence_run(history: History, correlation: str) -> dict[str, Any]:
    """Export one correlation's bundle from the ledger, then verify it offline from its text."""
    ledger = history.home.ledger()
    try:
        started = time.perf_counter()
        bundle = export_bundle(ledger, history.tenant, correlation)
        text = json.dumps(bundle)
        exported = time.perf_counter()
        trusted = ledger.key.verifier_key()
    finally:
        ledger.store.close()
    try:
        verdict = verify_bundle_text(text, trusted)
    except ExoArmurError as exc:  # a crash is a finding, not a benchmark result
        raise SystemExit(f"evidence: verifying the bundle raised {exc}") from None
    verified = time.perf_counter()
    if not verdict.passed:
        raise SystemExit(f"evidence: the exported bundle does not verify: {verdict.failures[:3]}")
    events = len(bundle["events"])
    export_s, verify_s = exported - started, verified - exported
    return {
        "events_in_log": history.events,
        "bundle_events": events,
        "context_events": len(bundle["context"]),
        "decisions": verdict.decisions,
        "bundle_bytes": len(text.encode()),
        "export_s": export_s,
        "verify_s": verify_s,
        "export_events_per_s": events / export_s if export_s > 0 else 0.0,
        "verify_events_per_s": events / verify_s if verify_s > 0 else 0.0,
        "passed": verdict.passed,
    }


# -- run alone: one log, this tree's replay against another commit's ----------------

_TIMED = """
import sys, time
from pathlib import Path
from exoarmur.home import Home
from exoarmur.replay import Replayer
ledger = Home(Path(sys.argv[1])).ledger()
replayer = Replayer(ledger.store, sys.argv[2])
replayer.verifier = ledger.key.verifier()
start = time.perf_counter()
report = replayer.run()
took = time.perf_counter() - start
assert report.verified, report.divergences[:3]
print(took)
"""


def timed_replay(home: Path, tenant: str, source: Path | None) -> float:
    """Seconds one replay of ``home``'s log takes in a fresh process (``source``: another src)."""
    done = subprocess.run(
        [sys.executable, "-c", _TIMED, str(home), tenant],
        env=env_with(source),
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def replay_rss(home: Path, events: int, budget_s: float, source: Path | None) -> dict[str, Any]:
    """``bench_memory.py replay`` in a child: RSS at the baseline and at every tenth."""
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "bench_memory.py"),
            "replay",
            "--home",
            str(home),
            "--n",
            str(events),
            "--budget",
            str(budget_s),
        ],
        cwd=HERE,
        env=env_with(source),
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def rss_summary(found: dict[str, Any]) -> dict[str, Any]:
    """RSS at 10 % and at 100 % of the log, and their ratio (the target: at most 1.10)."""
    rss = found["rss_mib"]
    first, last = rss.get("10"), rss.get("100")
    return {
        "events_replayed": found["done"],
        "complete": found["complete"],
        "rss_10_mib": first,
        "rss_100_mib": last,
        "peak_mib": found["peak_mib"],
        "rss_100_over_10": last / first if first and last else None,
        "flat": found["flat"],
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Build one log; replay it (each side, alternating, with --against); the floor once."""
    history = build_history(work / "h", args.events)
    sides: dict[str, Path | None] = {"after": None}
    if args.against:
        sides = {"before": source_at(args.against, work / "before"), "after": None}
    best: dict[str, float] = {}
    floors: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for side, source in sides.items():
            took = timed_replay(history.home.path, history.tenant, source)
            best[side] = min(best.get(side, took), took)
        # the floors in the same rounds, so that the machine's load is alike for all
        for name, decide in (("floor", False), ("cedar", True)):
            found = replay_floor(history.home.ledger_path, history.tenant, history.events, decide)
            if name not in floors or found["seconds"] < floors[name]["seconds"]:
                floors[name] = found
    floor, cedar = floors["floor"], floors["cedar"]
    found: dict[str, Any] = {
        "events": history.events,
        "rounds": args.rounds,
        "reference": args.against,
        "floor_events_per_s": round(floor["events_per_s"]),
        "cedar_floor_events_per_s": round(cedar["events_per_s"]),
        "cedar_floor_verdict_mismatches": cedar["verdict_mismatches"],
    }
    for side in sides:
        rate = history.events / best[side]
        found[f"replay_events_per_s_{side}"] = round(rate)
        found[f"replay_over_floor_{side}"] = round(rate / floor["events_per_s"], 3)
        found[f"replay_over_cedar_floor_{side}"] = round(rate / cedar["events_per_s"], 3)
    if args.rss:
        for side, source in sides.items():
            found[f"rss_{side}"] = rss_summary(
                replay_rss(history.home.path, history.events, args.budget, source)
            )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events in the log")
    parser.add_argument("--against", metavar="REF", help="git commit to compare with (before)")
    parser.add_argument("--rounds", type=int, default=3, help="replays per side (best kept)")
    parser.add_argument("--rss", action="store_true", help="RSS at 10 %% vs 100 %% of the log")
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds per RSS replay")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1 or args.budget <= 0:
        parser.error("--events and --rounds must be at least 1, --budget positive")
    with tempfile.TemporaryDirectory() as work:
        found = measure(args, Path(work))
    print(json.dumps(found, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
