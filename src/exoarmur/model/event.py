"""Ledger events: what every step of the pipeline leaves behind.

An event's canonical bytes (RFC 8785, see ``encoding``) are its Merkle leaf;
they include the sequence number so that a leaf names its own position. The
store assigns ``seq`` inside the append transaction and is the one caller of
:func:`event_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ..encoding import canonical_bytes, content_hash, format_time, parse_time
from ..jsontext import loads_recorded

# Event types written by the spine. Later rooms add their own.
INTENT_RECORDED: Final = "intent.recorded"
DECISION_RECORDED: Final = "decision.recorded"
EXECUTION_STARTED: Final = "execution.started"
EXECUTION_FINISHED: Final = "execution.finished"
EXECUTION_OUTCOME_UNKNOWN: Final = "execution.outcome_unknown"

RUN_STARTED: Final = "run.started"
POLICY_ACTIVATED: Final = "policy.activated"

# The approval book.
APPROVAL_REQUESTED: Final = "approval.requested"
APPROVAL_GRANTED: Final = "approval.granted"
APPROVAL_REJECTED: Final = "approval.rejected"
APPROVAL_REFUSED: Final = "approval.refused"
INTENT_APPROVED: Final = "intent.approved"
INTENT_REJECTED: Final = "intent.rejected"
INTENT_EXPIRED: Final = "intent.expired"
#: an escalation ladder's rung: the quorum raised because approval did not come in time
APPROVAL_ESCALATED: Final = "approval.escalated"
#: an approval's terminal states: once one is recorded, nothing changes the intent's verdict
SETTLED: Final = (INTENT_APPROVED, INTENT_REJECTED, INTENT_EXPIRED)

# The safety gate and its controls.
GATE_BLOCKED: Final = "gate.blocked"
EXECUTION_BLOCKED: Final = "execution.blocked"
EXECUTION_RETRY: Final = "execution.retry"
KILLSWITCH_ENGAGED: Final = "killswitch.engaged"
KILLSWITCH_RELEASED: Final = "killswitch.released"
POSTURE_SET: Final = "posture.set"
POSTURE_EXPIRED: Final = "posture.expired"
CONFIG_SNAPSHOT: Final = "config.snapshot"

# The checkpoint signing key (system log): which key signs, and its rotations.
KEY_RECORDED: Final = "key.recorded"
KEY_ROTATED: Final = "key.rotated"

# Principals and access (system log).
PRINCIPAL_ADDED: Final = "principal.added"
PRINCIPAL_REVOKED: Final = "principal.revoked"
#: a principal's new API key; its previous key stops at the time recorded with it
PRINCIPAL_KEY_ROTATED: Final = "principal.key_rotated"
ACCESS_REFUSED: Final = "access.refused"
#: refusals of one window counted, not recorded one by one (bounded audit of strangers)
ACCESS_REFUSED_COUNTED: Final = "access.refused.counted"
#: the settings an HTTP service runs with (grace, refusal budget), once per distinct settings
SERVICE_CONFIGURED: Final = "service.configured"

# Observations and beliefs (tenant logs): each recorded once, whoever redelivers it.
OBSERVATION_RECORDED: Final = "observation.recorded"
BELIEF_FORMED: Final = "belief.formed"

# Defensive memory (advice only): a recommendation, and its application by a person.
MEMORY_RECOMMENDATION: Final = "memory.recommendation"
MEMORY_RECOMMENDATION_APPLIED: Final = "memory.recommendation.applied"

# Webhooks (system log): each attempt at a delivery, recorded before the next is made.
WEBHOOK_DELIVERED: Final = "webhook.delivered"
WEBHOOK_FAILED: Final = "webhook.failed"
WEBHOOK_GAVE_UP: Final = "webhook.gave_up"
# Slack (system log): which Slack user votes as which principal, made by an admin.
SLACK_USER_BOUND: Final = "slack.user_bound"
SLACK_USER_UNBOUND: Final = "slack.user_unbound"
# Slack (system log): an approval message posted with the bot token, and each edit of it.
SLACK_MESSAGE_POSTED: Final = "slack.message_posted"
SLACK_MESSAGE_UPDATED: Final = "slack.message_updated"

#: The log of events that belong to no tenant (runs; later, global controls).
#: Tenant names cannot start with "_", so no tenant can reach it.
SYSTEM_LOG: Final = "_system"

EVENT_FORMAT: Final = "exoarmur.event/v1"


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before the store gives it a position."""

    event_id: str
    tenant: str
    type: str
    correlation_id: str
    event_time: datetime
    process_time: datetime
    actor: dict[str, str]
    payload: dict[str, Any]
    intent_id: str | None = None
    #: set on ``intent.recorded`` only: the store keeps (tenant, key) unique
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A recorded event: a draft with its sequence number, bytes and leaf hash."""

    seq: int
    event_id: str
    tenant: str
    type: str
    correlation_id: str
    event_time: datetime
    process_time: datetime
    actor: dict[str, str]
    payload: dict[str, Any]
    intent_id: str | None
    canonical: bytes = field(repr=False)
    leaf_hash: bytes = field(repr=False)

    @classmethod
    def from_canonical(cls, canonical: bytes, leaf_hash: bytes) -> Event:
        data = loads_recorded(canonical)
        return cls(
            seq=data["seq"],
            event_id=data["event_id"],
            tenant=data["tenant"],
            type=data["type"],
            correlation_id=data["correlation_id"],
            event_time=parse_time(data["event_time"]),
            process_time=parse_time(data["process_time"]),
            actor=data["actor"],
            payload=data["payload"],
            intent_id=data.get("intent_id"),
            canonical=canonical,
            leaf_hash=leaf_hash,
        )

    @classmethod
    def at(cls, draft: EventDraft, seq: int, canonical: bytes, leaf_hash: bytes) -> Event:
        """The event ``draft`` became at position ``seq``, with its bytes and leaf hash."""
        return cls(
            seq=seq,
            event_id=draft.event_id,
            tenant=draft.tenant,
            type=draft.type,
            correlation_id=draft.correlation_id,
            event_time=draft.event_time,
            process_time=draft.process_time,
            actor=draft.actor,
            payload=draft.payload,
            intent_id=draft.intent_id,
            canonical=canonical,
            leaf_hash=leaf_hash,
        )

    def to_json(self) -> dict[str, Any]:
        """The event as plain JSON for display and export (its canonical content)."""
        data: dict[str, Any] = loads_recorded(self.canonical)
        return data


def intent_key(actor_id: str, idempotency_key: str) -> str:
    """The store-level key of an intent: its idempotency key, scoped to the actor.

    Two agents of one tenant choosing the same key never meet: neither can
    reach the other's outcome, and each one's intent is recorded. Neither
    part may hold whitespace, so this has exactly one space and no other
    key form (unscoped keys of older ledgers, internal keys) can equal it.
    """
    return f"{actor_id} {idempotency_key}"


def intent_id_key(intent_id: str) -> str:
    """The store-level key that keeps an intent id unique within its tenant.

    Carried by the intent's ``decision.recorded`` (written exactly once per
    intent, in the same atomic append as ``intent.recorded``), so every
    store refuses a second intent with the same id even across processes.
    Two spaces: no actor-scoped key can take its place.
    """
    return f"intent id {intent_id}"


def idempotency_key_of(
    event_type: str, payload: dict[str, Any], intent_id: str | None = None
) -> str | None:
    """The store-level uniqueness key an event of this type carries, if any.

    One definition for the pipeline that writes and for copies and imports
    that rebuild a ledger. Internal keys contain a space or a colon prefix that
    no intent's key can take the place of: intents' keys are their own field.
    """
    if event_type == INTENT_RECORDED:
        intent = payload["intent"]
        return intent_key(str(intent["actor"]["id"]), str(intent["idempotency_key"]))
    if event_type == DECISION_RECORDED and intent_id is not None:
        return intent_id_key(intent_id)
    if event_type == PRINCIPAL_ADDED:
        return f"principal {payload['name']}"
    if event_type == PRINCIPAL_REVOKED:
        return f"revoke {payload['name']}"
    if event_type == PRINCIPAL_KEY_ROTATED:
        return f"rotate {payload['name']} {payload['key_id']}"
    if event_type == OBSERVATION_RECORDED:
        return f"observation {payload['observation']['observation_id']}"
    if event_type == BELIEF_FORMED:
        return f"belief {payload['belief']['belief_id']}"
    if event_type == RUN_STARTED:
        return "run:" + content_hash(payload)
    if event_type == SERVICE_CONFIGURED:
        return "service:" + content_hash(payload)
    # one record per recommendation and one application of it, whoever races to write
    if event_type == MEMORY_RECOMMENDATION:
        return f"memory recommendation {payload['recommendation']['recommendation_id']}"
    if event_type == MEMORY_RECOMMENDATION_APPLIED:
        return f"memory applied {payload['recommendation_id']}"
    if event_type in (WEBHOOK_DELIVERED, WEBHOOK_GAVE_UP):
        return f"webhook settled {payload['delivery_id']}"
    if event_type == WEBHOOK_FAILED:
        return f"webhook failed {payload['delivery_id']} {payload['attempt']}"
    if event_type == SLACK_MESSAGE_POSTED:
        return f"slack posted {payload['tenant']} {payload['intent_id']}"
    if event_type == SLACK_MESSAGE_UPDATED:
        return f"slack updated {payload['tenant']} {payload['intent_id']} {payload['through_seq']}"
    return None


def draft_of(event: Event) -> EventDraft:
    """The draft that, appended at the same position, gives back ``event``'s bytes."""
    return EventDraft(
        event_id=event.event_id,
        tenant=event.tenant,
        type=event.type,
        correlation_id=event.correlation_id,
        event_time=event.event_time,
        process_time=event.process_time,
        actor=event.actor,
        payload=event.payload,
        intent_id=event.intent_id,
        idempotency_key=idempotency_key_of(event.type, event.payload, event.intent_id),
    )


def event_record(draft: EventDraft, seq: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": EVENT_FORMAT,
        "seq": seq,
        "event_id": draft.event_id,
        "tenant": draft.tenant,
        "type": draft.type,
        "correlation_id": draft.correlation_id,
        "event_time": format_time(draft.event_time),
        "process_time": format_time(draft.process_time),
        "actor": draft.actor,
        "payload": draft.payload,
    }
    if draft.intent_id is not None:
        record["intent_id"] = draft.intent_id
    return record


#: the top-level keys of an event record that sort after ``seq`` (RFC 8785 order)
_AFTER_SEQ = ("tenant", "type")


def event_parts(draft: EventDraft) -> tuple[bytes, bytes]:
    """The canonical bytes of ``draft``'s record before and after its ``seq``.

    The record is an object whose keys RFC 8785 sorts, and ``seq`` is the
    only field the position decides, so the bytes at any position are these
    two parts around it (:func:`event_bytes_at`). A store computes them once,
    in the submitter's thread, and its single writer only joins them.
    """
    record = event_record(draft, 0)
    del record["seq"]
    tail = {key: record.pop(key) for key in _AFTER_SEQ}
    return canonical_bytes(record)[:-1], canonical_bytes(tail)[1:]


def event_bytes_at(parts: tuple[bytes, bytes], seq: int) -> bytes:
    """The canonical bytes of a record from its :func:`event_parts` at position ``seq``."""
    head, tail = parts
    return b'%b,"seq":%d,%b' % (head, seq, tail)


def event_bytes(draft: EventDraft, seq: int) -> bytes:
    """The canonical bytes of ``draft`` recorded at position ``seq``: its Merkle leaf."""
    return event_bytes_at(event_parts(draft), seq)
