"""What verifying costs: replay against its floor, and evidence bundles export and verify.

Replay (``exoarmur.replay``) re-decides every recorded intent from the
ledger alone and rebuilds the Merkle tree. Its *floor* is the part of that
work no verifier can skip: read every event's stored bytes in order, decode
them (``json.loads``), hash each into its RFC 9162 leaf, compare it with the
stored leaf hash and fold it into the Merkle frontier, and compare the root
with the signed checkpoint's. The floor is plain ``sqlite3``, ``json`` and
``hashlib``: it never calls into ``exoarmur`` and makes no decision.

Replay can be stopped by a time budget (the suite's ``--budget``): then the
rate is measured over the events it reached, the floor does exactly that many
events, and the result says so. The per-tenth rates show whether replay slows
down as it goes (a cost per event that grows with the log) or not.

This module never decides anything from a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exoarmur.errors import ExoArmurError
from exoarmur.evidence import export_bundle, verify_bundle_text
from exoarmur.replay import Replayer
from history import History


class BudgetSpent(Exception):
    """Raised from replay's progress callback when the time budget is spent."""


def _tenths(marks: list[float], start: float) -> list[float]:
    """Events per second over each tenth of the events replayed (empty if fewer than 10)."""
    n = len(marks)
    if n < 10:
        return []
    rates = []
    previous_index, previous_time = 0, start
    for tenth in range(1, 11):
        index = n * tenth // 10
        moment = marks[index - 1]
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
    """
    ledger = history.home.ledger()
    marks: list[float] = []
    stopped = False
    try:
        replayer = Replayer(ledger.store, history.tenant)
        replayer.verifier = ledger.key.verifier()
        start = time.perf_counter()
        deadline = start + budget_s

        def tick(count: int) -> None:
            now = time.perf_counter()
            marks.append(now)
            if progress is not None:
                progress(count)
            if sample is not None:
                sample(len(marks))
            if now > deadline and len(marks) < history.events:
                raise BudgetSpent

        report = None
        try:
            report = replayer.run(tick)
        except BudgetSpent:
            stopped = True
        seconds = (marks[-1] if marks else time.perf_counter()) - start
        divergences = len(report.divergences) if report else len(replayer.divergences)
        verified = report.verified if report else not replayer.divergences
    finally:
        ledger.store.close()
    done = len(marks)
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


def replay_floor(db: Path, tenant: str, count: int) -> dict[str, Any]:
    """Read, decode, leaf-hash and fold the first ``count`` events; compare with the record."""
    conn = sqlite3.connect(db)
    page = 1000  # as the store pages its reads
    stack: list[bytes] = []
    sizes: list[int] = []
    mismatches = 0
    done = 0
    checkpoint = _checkpoint_root(db, tenant)
    checkpoint_matches: bool | None = None
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
            for canonical, stored in rows:
                record = json.loads(canonical)
                leaf = _leaf(canonical)
                if leaf != stored or record["seq"] != done:
                    mismatches += 1
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
