"""The quickstart demo: a handful of intents governed end to end.

Runs against a real data directory (SQLite, signed checkpoints), then checks
its own work the way a reviewer would: the ledger re-verifies from its
bytes, the checkpoint signature verifies with the public key, and every
event's inclusion proof verifies against the checkpoint's root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .executors import EchoExecutor
from .ledger.checkpoint import open_checkpoint
from .model.decision import Outcome, OutcomeStatus
from .model.event import SYSTEM_LOG
from .pipeline import Governor

DEMO_TENANT = "demo"

_AGENT = {"id": "agent-7", "kind": "agent"}

# Each step carries the idempotency key an agent framework would give its tool
# call, so running the demo again in the same home changes nothing.
SCENARIO: tuple[dict[str, Any], ...] = (
    {
        "idempotency_key": "quickstart-1",
        "action": "demo.file.read",
        "target": "reports/q3.txt",
        "safety_class": "A0",
        "params": {"bytes": 4096},
    },
    {
        "idempotency_key": "quickstart-2",
        "action": "demo.dir.list",
        "target": "reports/",
        "safety_class": "A0",
    },
    {
        "idempotency_key": "quickstart-3",
        "action": "demo.file.delete",
        "target": "reports/q3.txt",
        "safety_class": "A2",
        "params": {"recursive": False},
    },
    {
        "idempotency_key": "quickstart-4",
        "action": "demo.service.restart",
        "target": "svc/payments",
        "safety_class": "A1",
    },
    {
        "idempotency_key": "quickstart-5",
        "action": "inventory.lookup",
        "target": "host/db-01",
        "safety_class": "A0",
    },
)


@dataclass(frozen=True)
class DemoReport:
    outcomes: tuple[Outcome, ...]
    duplicate: Outcome
    tree_size: int
    root_hash: str
    checkpoint_note: str
    checkpoint_verified: bool
    proofs_verified: bool
    ledger_problems: tuple[str, ...]

    def count(self, *statuses: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def passed(self) -> bool:
        return (
            self.checkpoint_verified
            and self.proofs_verified
            and not self.ledger_problems
            and self.duplicate.duplicate
        )

    def markers(self) -> dict[str, str]:
        allowed = (OutcomeStatus.EXECUTED, OutcomeStatus.DECIDED, OutcomeStatus.FAILED)
        return {
            "DEMO_RESULT": "PASS" if self.passed else "FAIL",
            "ACTIONS_ALLOWED": str(self.count(*allowed)),
            "ACTIONS_DENIED": str(self.count(OutcomeStatus.DENIED)),
            "ACTIONS_EXECUTED": str(self.count(OutcomeStatus.EXECUTED)),
            "ACTIONS_DUPLICATE_IGNORED": "1" if self.duplicate.duplicate else "0",
            "TREE_SIZE": str(self.tree_size),
            "ROOT_HASH": self.root_hash,
            "CHECKPOINT_VERIFIED": str(self.checkpoint_verified).lower(),
            "PROOFS_VERIFIED": str(self.proofs_verified).lower(),
        }


def run_quickstart(governor: Governor) -> DemoReport:
    if governor.executors.executor_for("demo.file.read") is None:
        governor.executors.bind("demo.*", EchoExecutor())
    outcomes = []
    for step in SCENARIO:
        outcomes.append(governor.submit({"tenant": DEMO_TENANT, "actor": _AGENT, **step}))
    # At-least-once delivery: the first intent arrives again, same id and key.
    first = governor.ledger.store.events_for_intent(DEMO_TENANT, outcomes[0].intent_id)[0]
    duplicate = governor.submit(first.payload["intent"])

    ledger = governor.ledger
    # the system log too: the home the demo leaves behind verifies whole, never unanchored
    ledger.current_checkpoint(SYSTEM_LOG)
    signed = ledger.current_checkpoint(DEMO_TENANT)
    try:
        checkpoint = open_checkpoint(signed.note, ledger.verifier)
        checkpoint_verified = checkpoint.root_hash == ledger.root(DEMO_TENANT, checkpoint.size)
    except Exception:  # a failed verification is the finding
        checkpoint_verified = False
        checkpoint = signed.checkpoint
    proofs_verified = all(
        ledger.inclusion(DEMO_TENANT, seq, checkpoint.size).verify(checkpoint.root_hash)
        for seq in range(checkpoint.size)
    )
    verification = ledger.verify(DEMO_TENANT)
    return DemoReport(
        outcomes=tuple(outcomes),
        duplicate=duplicate,
        tree_size=checkpoint.size,
        root_hash=checkpoint.root_hash.hex(),
        checkpoint_note=signed.note,
        checkpoint_verified=checkpoint_verified,
        proofs_verified=proofs_verified,
        ledger_problems=verification.problems,
    )
