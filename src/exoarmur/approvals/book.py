"""The approval book: pure rules over one intent's recorded events.

``intent_state`` folds an intent's events into where it stands;
``rule_on`` takes a vote (approve or reject, by an authenticated principal,
bound to an intent hash, at a recorded time) and says what to record. No
I/O, no clock: the same events and the same vote give the same ruling, so a
replay re-derives every approval outcome.

The rules, in the order they are checked:

1. only a pending intent takes votes; past its deadline it is expired
   (recorded), and never runs;
2. the voter must be an approver (operator or admin) of the intent's tenant;
3. the requesting actor never approves its own intent;
4. a vote binds to the intent's hash: a vote for another hash never counts;
5. one principal counts once;
6. one rejection rejects;
7. the intent is approved when distinct approvals reach the quorum.

An escalation ladder (policy's ``@escalate_after`` + ``@escalate_quorum``)
raises the quorum once its window has passed with no quorum: a vote at or
after that time is ruled on the raised quorum, and the raise is recorded
first (``approval.escalated``), like an expiry; the TTL engine's tick
records it too when nobody votes. It only ever raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ..encoding import format_time, parse_time
from ..model.decision import Decision
from ..model.event import (
    APPROVAL_ESCALATED,
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    APPROVAL_REQUESTED,
    DECISION_RECORDED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    Event,
)
from ..model.intent import ActionIntent
from ..principals import Principal


class ApprovalStatus(StrEnum):
    NOT_REQUIRED = "not_required"  #: the decision was allow or deny
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Vote(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Approval:
    approver: str
    vote: Vote
    reason: str
    intent_hash: str
    event_time: datetime
    seq: int


@dataclass(frozen=True)
class IntentState:
    intent: ActionIntent
    intent_hash: str
    decision: Decision
    status: ApprovalStatus
    quorum: int
    deadline: datetime | None
    approvals: tuple[Approval, ...]
    #: seq of the intent's last event: the precondition of the next append
    last_seq: int
    #: (raised quorum, from when) of its escalation ladder, if its request has one
    escalation: tuple[int, datetime] | None = None

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.approver for a in self.approvals if a.vote == Vote.APPROVE)


def intent_state(events: list[Event]) -> IntentState:
    """Where an intent stands, from its events (in ledger order)."""
    by_type: dict[str, Event] = {}
    approvals: list[Approval] = []
    for event in events:
        by_type.setdefault(event.type, event)
        if event.type in (APPROVAL_GRANTED, APPROVAL_REJECTED):
            approvals.append(
                Approval(
                    approver=event.payload["approver"],
                    vote=Vote.APPROVE if event.type == APPROVAL_GRANTED else Vote.REJECT,
                    reason=event.payload["reason"],
                    intent_hash=event.payload["intent_hash"],
                    event_time=event.event_time,
                    seq=event.seq,
                )
            )
    recorded, decided = by_type[INTENT_RECORDED], by_type[DECISION_RECORDED]
    decision = Decision.from_canonical(decided.payload["decision"])
    requested = by_type.get(APPROVAL_REQUESTED)
    escalation = None
    if requested is None:
        status = ApprovalStatus.NOT_REQUIRED
        quorum, deadline = 0, None
    else:
        quorum = int(requested.payload["quorum"])
        deadline = parse_time(requested.payload["deadline"])
        ladder = requested.payload.get("escalate")
        if ladder is not None:
            escalation = (int(ladder["quorum"]), parse_time(ladder["at"]))
        if APPROVAL_ESCALATED in by_type:
            quorum = max(quorum, int(by_type[APPROVAL_ESCALATED].payload["quorum"]))
        if INTENT_APPROVED in by_type:
            status = ApprovalStatus.APPROVED
        elif INTENT_REJECTED in by_type:
            status = ApprovalStatus.REJECTED
        elif INTENT_EXPIRED in by_type:
            status = ApprovalStatus.EXPIRED
        else:
            status = ApprovalStatus.PENDING
    return IntentState(
        intent=ActionIntent.from_canonical(recorded.payload["intent"]),
        intent_hash=recorded.payload["intent_hash"],
        decision=decision,
        status=status,
        quorum=quorum,
        deadline=deadline,
        approvals=tuple(approvals),
        last_seq=events[-1].seq,
        escalation=escalation,
    )


def approval_request(
    decision: Decision, decided_at: datetime, default_window: int
) -> dict[str, Any]:
    """The ``approval.requested`` payload for a decision that requires approval."""
    window = int(decision.obligations.get("approval_window", default_window))
    request: dict[str, Any] = {
        "quorum": int(decision.obligations["approval"]),
        "window_seconds": window,
        "deadline": format_time(decided_at + timedelta(seconds=window)),
    }
    if "escalate_after" in decision.obligations:
        after = int(decision.obligations["escalate_after"])
        request["escalate"] = {
            "after_seconds": after,
            "quorum": int(decision.obligations["escalate_quorum"]),
            "at": format_time(decided_at + timedelta(seconds=after)),
        }
    return request


@dataclass(frozen=True)
class Ruling:
    """What a vote leads to: events to record, and whether the vote counted."""

    accepted: bool
    message: str
    #: (event type, payload) pairs to append, in order
    records: tuple[tuple[str, dict[str, Any]], ...]
    status: ApprovalStatus
    #: the refusal is a permission problem (HTTP 403) rather than a state one (409)
    forbidden: bool = False
    #: the vote ruled on ("approve" or "reject"), recorded with the ruling
    vote: str = ""

    @property
    def executes(self) -> bool:
        return self.accepted and self.status == ApprovalStatus.APPROVED


def _refuse(
    state: IntentState, principal: Principal, vote: Vote, why: str, *, forbidden: bool = False
) -> Ruling:
    payload = {"approver": principal.name, "vote": vote.value, "refused": why}
    return Ruling(False, why, ((APPROVAL_REFUSED, payload),), state.status, forbidden)


def is_due(state: IntentState, now: datetime) -> bool:
    """A pending intent whose approval window has closed."""
    return (
        state.status == ApprovalStatus.PENDING
        and state.deadline is not None
        and now > state.deadline
    )


def escalation_due(state: IntentState, now: datetime) -> bool:
    """A pending intent whose ladder's window has passed with its quorum not yet raised."""
    return (
        state.status == ApprovalStatus.PENDING
        and state.escalation is not None
        and now >= state.escalation[1]
        and state.quorum < state.escalation[0]
    )


def escalation_record(state: IntentState) -> tuple[str, dict[str, Any]]:
    assert state.escalation is not None
    raised, at = state.escalation
    return APPROVAL_ESCALATED, {"quorum": raised, "from": state.quorum, "at": format_time(at)}


def escalated(state: IntentState) -> IntentState:
    assert state.escalation is not None
    return replace(state, quorum=max(state.quorum, state.escalation[0]))


def expiry_record(state: IntentState) -> tuple[str, dict[str, Any]]:
    assert state.deadline is not None
    return (
        INTENT_EXPIRED,
        {
            "deadline": format_time(state.deadline),
            "approvals": list(state.approvers),
            "quorum": state.quorum,
        },
    )


def _rule(
    state: IntentState,
    principal: Principal,
    vote: Vote,
    reason: str,
    intent_hash: str,
    now: datetime,
    over_limit: str | None,
) -> Ruling:
    tenant = state.intent.tenant
    if is_due(state, now):
        closed = format_time(state.deadline) if state.deadline is not None else "its deadline"
        why = f"the approval window closed at {closed}; the intent expired"
        refused = _refuse(state, principal, vote, why)
        return Ruling(False, why, (expiry_record(state), *refused.records), ApprovalStatus.EXPIRED)
    if state.status != ApprovalStatus.PENDING:
        return _refuse(state, principal, vote, f"the intent is {state.status.value}, not pending")
    if not principal.may_approve(tenant):
        return _refuse(
            state,
            principal,
            vote,
            f"principal {principal.name} (role {principal.role}) "
            f"may not approve in tenant {tenant}",
            forbidden=True,
        )
    if principal.name == state.intent.actor.id:
        return _refuse(
            state,
            principal,
            vote,
            f"{principal.name} requested this intent and may not approve it",
            forbidden=True,
        )
    if intent_hash != state.intent_hash:
        return _refuse(
            state,
            principal,
            vote,
            f"the vote is bound to {intent_hash}, the intent's hash is {state.intent_hash}",
        )
    if over_limit is not None:
        return _refuse(state, principal, vote, over_limit, forbidden=True)
    if principal.name in state.approvers:
        return _refuse(state, principal, vote, f"{principal.name} has already approved")
    payload = {"approver": principal.name, "reason": reason, "intent_hash": intent_hash}
    if vote == Vote.REJECT:
        return Ruling(
            True,
            f"rejected by {principal.name}",
            (
                (APPROVAL_REJECTED, payload),
                (INTENT_REJECTED, {"rejected_by": principal.name, "reason": reason}),
            ),
            ApprovalStatus.REJECTED,
        )
    approvers = (*state.approvers, principal.name)
    records: list[tuple[str, dict[str, Any]]] = [
        (APPROVAL_GRANTED, payload | {"count": len(approvers), "quorum": state.quorum})
    ]
    if len(approvers) >= state.quorum:
        records.append((INTENT_APPROVED, {"approvers": list(approvers), "quorum": state.quorum}))
        return Ruling(True, "quorum reached", tuple(records), ApprovalStatus.APPROVED)
    return Ruling(
        True,
        f"{len(approvers)} of {state.quorum} approvals",
        tuple(records),
        ApprovalStatus.PENDING,
    )


def rule_on(
    state: IntentState,
    principal: Principal,
    vote: Vote,
    reason: str,
    intent_hash: str,
    now: datetime,
    over_limit: str | None = None,
) -> Ruling:
    """Rule on one vote. Pure: the caller records ``ruling.records``.

    ``over_limit``, when given, is why the voter may not vote now on
    grounds outside the intent (revoked, or its rate of votes exhausted):
    the vote is refused.
    """
    if not is_due(state, now) and escalation_due(state, now):
        # The ladder's rung is recorded before the ruling it changes.
        ruling = _rule(escalated(state), principal, vote, reason, intent_hash, now, over_limit)
        ruling = replace(ruling, records=(escalation_record(state), *ruling.records))
    else:
        ruling = _rule(state, principal, vote, reason, intent_hash, now, over_limit)
    return replace(ruling, vote=vote.value)
