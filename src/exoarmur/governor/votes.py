"""Votes: rulings by the pure approval book, quorum, and the start that follows.

A vote is ruled on by :func:`~exoarmur.approvals.book.rule_on` and recorded
with a precondition on the intent's last event (optimistic concurrency), so
two approvers racing for the last vote both count and the quorum is
recorded once. The start after a quorum goes through the runner, under the
same precondition, so an approved intent starts at most once, whoever tries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..approvals.book import (
    ApprovalStatus,
    IntentState,
    Ruling,
    Vote,
    escalation_due,
    escalation_record,
    expiry_record,
    intent_state,
    is_due,
    rule_on,
)
from ..errors import Conflict, PermissionDenied
from ..gate import revoked, vote_over_limit
from ..model.decision import Outcome
from ..model.event import (
    APPROVAL_ESCALATED,
    APPROVAL_REQUESTED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    SETTLED,
    Event,
)
from ..model.intent import SYSTEM_ACTOR
from ..principals import Principal
from .drafts import Drafts, operator
from .outcomes import outcome_from_events, read_story
from .principals import Principals
from .running import MAX_ATTEMPTS, Runner
from .state import ControlState
from .switches import required_reason


@dataclass(frozen=True)
class VoteResult:
    """What a vote did: whether it counted, why, and the intent's outcome after it."""

    accepted: bool
    message: str
    status: ApprovalStatus
    outcome: Outcome
    forbidden: bool = False


class Votes:
    """Rules on votes, records rulings, expires what waited too long."""

    def __init__(
        self,
        state: ControlState,
        drafts: Drafts,
        runner: Runner,
        principals: Principals,
        *,
        refuse: Callable[[Principal, str, str], None],
        config_hash: str,
    ) -> None:
        self.state = state
        self.drafts = drafts
        self.runner = runner
        self.principals = principals
        self.refuse = refuse
        self.config_hash = config_hash

    def _story(self, tenant: str, intent_id: str) -> IntentState:
        return intent_state(read_story(self.state.ledger, tenant, intent_id))

    def vote(
        self,
        tenant: str,
        intent_id: str,
        principal: Principal,
        vote: Vote,
        reason: str,
        intent_hash: str | None = None,
    ) -> VoteResult:
        reason = required_reason(reason)
        if not principal.acts_for(tenant):
            # Say nothing about whether the intent exists in that tenant.
            self.refuse(principal, tenant, f"{vote.value} {intent_id}")
            raise PermissionDenied(f"principal {principal.name} does not act for tenant {tenant}")
        for _ in range(MAX_ATTEMPTS):
            state = self._story(tenant, intent_id)
            now = self.drafts.now()
            refusal, positions = self._inputs(tenant, principal, now)
            ruling = rule_on(
                state,
                principal,
                vote,
                reason,
                intent_hash or state.intent_hash,
                now,
                over_limit=refusal,
            )
            try:
                vote_record = {
                    "vote": vote.value,
                    "voter": principal.name,
                    "reason": reason,
                    "presented_hash": intent_hash or state.intent_hash,
                    "controls": positions,
                    "config_hash": self.config_hash,
                }
                self._record_ruling(state, principal, ruling, now, vote_record)
            except Conflict:
                continue  # the intent moved on while we ruled: rule again on the new state
            break
        else:  # pragma: no cover - needs 20 interleaved writers on one intent
            raise Conflict(f"intent {intent_id} kept changing; vote not recorded, try again")
        outcome: Outcome | None = None
        if ruling.executes:
            outcome = self.runner.start_approved(self._story(tenant, intent_id))
        return VoteResult(
            accepted=ruling.accepted,
            message=ruling.message,
            status=ruling.status,
            outcome=outcome
            or outcome_from_events(read_story(self.state.ledger, tenant, intent_id)),
            forbidden=ruling.forbidden,
        )

    def _inputs(
        self, tenant: str, principal: Principal, now: datetime
    ) -> tuple[str | None, dict[str, int]]:
        """What a vote is judged on besides the intent: the voter's standing and rate.

        Returns why the vote must be refused on those grounds (or None) and the
        positions of the logs read, which the vote records for replay.
        """
        book_size, book = self.principals.book()
        current = book.get(principal.name)
        with self.state.lock:
            controls = self.state.fold(tenant)
            positions = {"system": book_size, "tenant": controls.position}
            if current is None or current != principal:
                return revoked(principal.name), positions
            return vote_over_limit(controls, self.state.gate, principal.name, now), positions

    def _record_ruling(
        self,
        state: IntentState,
        principal: Principal,
        ruling: Ruling,
        now: datetime,
        vote_record: dict[str, Any],
    ) -> None:
        intent = state.intent
        drafts = []
        for number, (event_type, payload) in enumerate(ruling.records):
            if number == 0:
                # the vote as cast and what its ruling read: replay judges it on exactly this
                payload = payload | {"cast": vote_record}
            actor = (
                SYSTEM_ACTOR.to_canonical()
                if event_type in (INTENT_EXPIRED, INTENT_APPROVED, APPROVAL_ESCALATED)
                else operator(principal.name)
            )
            drafts.append(self.drafts.for_intent(intent, event_type, payload, actor=actor, at=now))
        self.state.append(intent.tenant, drafts, expect=(intent.intent_id, state.last_seq))

    def pending(self, tenant: str) -> list[IntentState]:
        """Intents waiting for approval (expiring and escalating the overdue ones on the way)."""
        self.expire_due(tenant)
        self.escalate_due(tenant)
        ids = self.state.ledger.store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED)
        return [self._story(tenant, i) for i in ids]

    def escalate_due(self, tenant: str, at: datetime | None = None) -> list[Event]:
        """Record ``approval.escalated`` for pending intents whose ladder's window has passed.

        ``at`` is the injected time the TTL engine's tick runs at (the clock's if None).
        """
        raised = []
        now = at or self.drafts.now()
        for intent_id in self.state.ledger.store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED):
            state = self._story(tenant, intent_id)
            if not escalation_due(state, now):
                continue
            event_type, payload = escalation_record(state)
            draft = self.drafts.for_intent(
                state.intent, event_type, payload, actor=SYSTEM_ACTOR.to_canonical(), at=now
            )
            try:
                (event,) = self.state.append(tenant, [draft], expect=(intent_id, state.last_seq))
            except Conflict:
                continue  # a vote (which escalates first) or another tick got there
            raised.append(event)
        return raised

    def expire_due(self, tenant: str) -> list[str]:
        """Record ``intent.expired`` for pending intents past their window."""
        expired = []
        now = self.drafts.now()
        for intent_id in self.state.ledger.store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED):
            state = self._story(tenant, intent_id)
            if not is_due(state, now):
                continue
            event_type, payload = expiry_record(state)
            try:
                self.state.append(
                    tenant,
                    [self.drafts.for_intent(state.intent, event_type, payload, at=now)],
                    expect=(intent_id, state.last_seq),
                )
            except Conflict:
                continue  # someone voted or expired it meanwhile; look again next time
            expired.append(intent_id)
        return expired
