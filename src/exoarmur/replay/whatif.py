"""What-if: the recorded intents under a candidate policy bundle.

"Would my new policy have blocked last week's incident, and what would it
have broken?" Every recorded intent is decided again, on the control state
and time it was recorded with, by the candidate bundle instead of the one
in force; intents whose verdict or reasons would change are reported.
Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import NotFound
from ..ledger.store import LedgerStore
from ..model.decision import Decision
from ..model.event import INTENT_RECORDED
from ..model.intent import ActionIntent
from ..policy import PolicyEngine
from .verify import Replayer


@dataclass(frozen=True)
class Change:
    intent_id: str
    actor: str
    action: str
    target: str
    safety_class: str
    event_time: str
    old_verdict: str
    new_verdict: str
    old_reasons: tuple[str, ...]
    new_reasons: tuple[str, ...]

    @property
    def transition(self) -> str:
        if self.old_verdict == self.new_verdict:
            return f"{self.old_verdict}, other reasons"
        return f"{self.old_verdict}→{self.new_verdict}"

    def to_json(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "safety_class": self.safety_class,
            "event_time": self.event_time,
            "old": {"verdict": self.old_verdict, "reasons": list(self.old_reasons)},
            "new": {"verdict": self.new_verdict, "reasons": list(self.new_reasons)},
        }


@dataclass(frozen=True)
class WhatIfReport:
    tenant: str
    candidate_hash: str
    intents: int
    changes: tuple[Change, ...]

    @property
    def summary(self) -> dict[str, int]:
        return dict(sorted(Counter(c.transition for c in self.changes).items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "candidate_policy_hash": self.candidate_hash,
            "intents": self.intents,
            "changed": len(self.changes),
            "summary": self.summary,
            "changes": [c.to_json() for c in self.changes],
        }


def whatif(
    store: LedgerStore,
    tenant: str,
    candidate: PolicyEngine,
    *,
    since: datetime | None = None,
    correlation: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> WhatIfReport:
    replayer = Replayer(store, tenant, correlation=correlation, candidate=candidate)
    replayer.run(progress)
    changes = tuple(
        Change(
            intent_id=intent.intent_id,
            actor=intent.actor.id,
            action=intent.action,
            target=intent.target,
            safety_class=intent.safety_class.value,
            event_time=intent.event_time.isoformat(),
            old_verdict=old.verdict.value,
            new_verdict=new.verdict.value,
            old_reasons=old.reasons,
            new_reasons=new.reasons,
        )
        for intent, old, new in replayer.changes
        if since is None or intent.event_time >= since
    )
    return WhatIfReport(tenant, candidate.policy_hash, replayer.counts["decisions"], changes)


@dataclass(frozen=True)
class Redecision:
    """One recorded intent decided again by a candidate bundle, changed or not."""

    intent: ActionIntent
    recorded: Decision
    redecided: Decision
    candidate_hash: str

    @property
    def changed(self) -> bool:
        return (self.recorded.verdict, self.recorded.reasons) != (
            self.redecided.verdict,
            self.redecided.reasons,
        )


def redecide(
    store: LedgerStore, tenant: str, intent_id: str, candidate: PolicyEngine
) -> Redecision:
    """What-if for one intent: its recorded decision and ``candidate``'s, on the same state.

    Replays the intent's correlation (the control state and time it was
    decided on come from the ledger); nothing is written.
    """
    story = store.events_for_intent(tenant, intent_id)
    if not story or story[0].type != INTENT_RECORDED:
        raise NotFound(f"no intent {intent_id} in tenant {tenant}")
    replayer = Replayer(store, tenant, correlation=story[0].correlation_id, candidate=candidate)
    replayer.run(None)
    for intent, recorded, redecided in replayer.redecided:
        if intent.intent_id == intent_id:
            return Redecision(intent, recorded, redecided, candidate.policy_hash)
    # intent.recorded and decision.recorded are one append: a recorded intent has its decision
    raise NotFound(f"intent {intent_id}: no decision to decide again")  # pragma: no cover
