"""The golden demo: the canonical governance story, told once and proven.

An agent asks to delete production data; policy denies it before any side
effect; the audit trail holds the intent and the decision; a proof bundle
of the stream is exported, written and verified offline; the stream is
replayed from the ledger and its decision re-derived.

Run with a seeded clock and id generator (seed 0), so the stream's events,
and therefore its replay hash, are the same in every run and every home.
The replay hash (see :mod:`exoarmur.replay.engine`) covers the stream's
leaf hashes and re-derived decisions, not the home's key or log origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .evidence import export_bundle, verify_bundle
from .home import Home, open_governor
from .model.decision import OutcomeStatus
from .model.event import EXECUTION_STARTED
from .replay.engine import replay_ledger

STREAM = "canonical-truth-reconstruction-demo"
TENANT = "demo"
SEED = 0
INTENT = {
    "tenant": TENANT,
    "actor": {"id": "agent-7", "kind": "agent"},
    "action": "db.table.drop",
    "target": "prod/customers",
    "safety_class": "A3",
    "idempotency_key": STREAM,
    "correlation_id": STREAM,
}


@dataclass(frozen=True)
class GoldenRun:
    """What the golden demo did and found."""

    status: OutcomeStatus
    executed: bool
    audit_trail: tuple[str, ...]
    bundle_path: Path
    bundle_verified: bool
    replay_verified: bool
    replay_hash: str

    @property
    def passed(self) -> bool:
        denied = self.status == OutcomeStatus.DENIED and not self.executed
        return denied and self.bundle_verified and self.replay_verified

    def markers(self) -> dict[str, str]:
        return {
            "DEMO_RESULT": "DENIED" if self.status == OutcomeStatus.DENIED else "NOT_DENIED",
            "ACTION_EXECUTED": str(self.executed).lower(),
            "AUDIT_STREAM_ID": STREAM,
            "REPLAY_VERDICT": "PASS" if self.replay_verified and self.bundle_verified else "FAIL",
        }


def run_golden(where: Home | Path, bundle_path: Path | None = None) -> GoldenRun:
    """Tell the story in a home (made if missing) and write its proof bundle."""
    home = where if isinstance(where, Home) else Home(where)
    if not home.exists():
        home.init()
    with open_governor(home, seed=SEED) as governor:
        outcome = governor.submit(dict(INTENT))
        ledger = governor.ledger
        events = ledger.store.events_for_correlation(TENANT, STREAM)
        bundle = export_bundle(ledger, TENANT, STREAM)
        verifier_key = ledger.key.verifier_key()
        replay = replay_ledger(ledger.store, STREAM, tenant=TENANT, verifier=ledger.verifier)
    target = bundle_path or home.path / "bundles" / f"{STREAM}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    verdict = verify_bundle(json.loads(target.read_text(encoding="utf-8")), verifier_key)
    return GoldenRun(
        status=outcome.status,
        executed=any(e.type == EXECUTION_STARTED for e in events),
        audit_trail=tuple(f"{e.seq} {e.type}" for e in events),
        bundle_path=target,
        bundle_verified=verdict.passed,
        replay_verified=not replay.failures,
        replay_hash=replay.replay_hash,
    )


def print_golden(run: GoldenRun) -> None:
    """The demo's lines, in the order Core's users look for them."""
    print(f"Intent: {INTENT['action']} on {INTENT['target']} (class {INTENT['safety_class']})")
    print("Audit trail:")
    for entry in run.audit_trail:
        print(f"  {entry}")
    print(f"Proof bundle written: {run.bundle_path}")
    print(f"Proof bundle replay hash: {run.replay_hash}")
    for name, value in run.markers().items():
        print(f"{name}={value}")
