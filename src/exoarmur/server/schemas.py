"""The HTTP API's bodies: what goes over the wire, as precise pydantic models.

Responses are built from the governor's records (events, intents, approval
states, outcomes); times are the ledger's own text (``format_time``), so
what a client reads is byte for byte what the ledger holds. ``Outcome`` and
``Decision`` are the model's own records: ``exoarmur submit --json`` prints
the same JSON the API returns.

The intent a client submits is deliberately not a model here: the body is
read as raw JSON and validated by :func:`exoarmur.model.intent.parse_intent`,
the one validator every interface shares. :func:`intent_submission_schema`
only documents it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ..approvals import ApprovalStatus, IntentState, Vote
from ..encoding import format_time
from ..model.decision import Decision, Outcome
from ..model.event import Event
from ..model.intent import IntentRequest, SafetyClass
from ..pipeline import MAX_POSTURE_TTL, MAX_REASON_CHARS
from ..principals import Principal

#: ``sha256:`` and 64 lower-case hex digits: an intent hash as the ledger records it
INTENT_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Request(_Body):
    """A request body: unknown fields are refused (lone surrogates pydantic refuses itself)."""


# -- errors -------------------------------------------------------------------


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID = "invalid"
    TOO_MANY_REQUESTS = "too_many_requests"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


class FieldProblem(_Body):
    """One thing wrong with a request: the field at fault and the rule it broke."""

    field: str | None = Field(
        description="Dotted path of the field at fault (e.g. `actor.id`); null for the whole body."
    )
    rule: str


class ErrorBody(_Body):
    """Every error answer has this shape."""

    error: ErrorCode
    message: str = Field(description="One line, for the person reading it.")
    detail: list[FieldProblem] = Field(
        default_factory=list, description="Field and rule per problem (400 and 422)."
    )


# -- records ------------------------------------------------------------------


class EventRecord(_Body):
    """One ledger event: its canonical content and its Merkle leaf hash."""

    format: str
    seq: int = Field(description="Position in the tenant's log: the Merkle leaf index.")
    event_id: str
    tenant: str
    type: str
    correlation_id: str
    event_time: str
    process_time: str
    actor: dict[str, str]
    payload: dict[str, Any]
    intent_id: str | None = None
    leaf_hash: str = Field(description="SHA-256(0x00 ‖ canonical bytes), hex.")

    @classmethod
    def of(cls, event: Event) -> EventRecord:
        data = event.to_json()
        return cls(
            format=data["format"],
            seq=event.seq,
            event_id=event.event_id,
            tenant=event.tenant,
            type=event.type,
            correlation_id=event.correlation_id,
            event_time=data["event_time"],
            process_time=data["process_time"],
            actor=dict(event.actor),
            payload=event.payload,
            intent_id=event.intent_id,
            leaf_hash=event.leaf_hash.hex(),
        )


class ActorRecord(_Body):
    id: str
    kind: str


class IntentRecord(_Body):
    """A recorded intent, every field filled, as the ledger holds it."""

    intent_id: str
    tenant: str
    actor: ActorRecord
    action: str
    target: str
    params: dict[str, Any]
    safety_class: SafetyClass
    idempotency_key: str
    correlation_id: str
    event_time: str


class ApprovalVote(_Body):
    approver: str
    vote: Vote
    reason: str
    intent_hash: str
    event_time: str


class ApprovalRecord(_Body):
    """Where an intent stands in the approval book."""

    status: ApprovalStatus
    quorum: int = Field(description="Distinct approvals needed; 0 when none are required.")
    deadline: str | None = Field(description="When the approval window closes (UTC).")
    approvers: list[str]
    votes: list[ApprovalVote]

    @classmethod
    def of(cls, state: IntentState) -> ApprovalRecord:
        return cls(
            status=state.status,
            quorum=state.quorum,
            deadline=format_time(state.deadline) if state.deadline else None,
            approvers=list(state.approvers),
            votes=[
                ApprovalVote(
                    approver=a.approver,
                    vote=a.vote,
                    reason=a.reason,
                    intent_hash=a.intent_hash,
                    event_time=format_time(a.event_time),
                )
                for a in state.approvals
            ],
        )


def intent_record(state: IntentState) -> IntentRecord:
    return IntentRecord.model_validate(state.intent.to_canonical())


class PendingIntent(_Body):
    """An intent waiting for approval: what to approve, and the hash to bind the vote to."""

    tenant: str
    intent_id: str
    intent_hash: str
    intent: IntentRecord
    decision: Decision
    approval: ApprovalRecord

    @classmethod
    def of(cls, state: IntentState) -> PendingIntent:
        return cls(
            tenant=state.intent.tenant,
            intent_id=state.intent.intent_id,
            intent_hash=state.intent_hash,
            intent=intent_record(state),
            decision=state.decision,
            approval=ApprovalRecord.of(state),
        )


class PendingList(_Body):
    tenant: str
    pending: list[PendingIntent]


class Story(_Body):
    """The whole story of one intent, from the ledger."""

    intent: IntentRecord
    intent_hash: str
    outcome: Outcome
    approval: ApprovalRecord
    events: list[EventRecord]


# -- votes --------------------------------------------------------------------


class VoteRequest(_Request):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS, description="Why (recorded).")
    intent_hash: str | None = Field(
        default=None,
        pattern=INTENT_HASH_PATTERN,
        description="Bind the vote to exactly this intent (from the pending list or the story); "
        "default: the recorded intent's hash.",
    )


class VoteAnswer(_Body):
    accepted: bool
    message: str
    approval_status: ApprovalStatus
    outcome: Outcome


# -- actions the caller carries out -----------------------------------------


class StartAnswer(_Body):
    """The go-ahead: ``execution.started`` is durable; carry the action out, then report."""

    outcome: Outcome
    event: EventRecord


class OutcomeReport(_Request):
    """How a caller-executed action ended."""

    status: Literal["succeeded", "failed"]
    result: Any = Field(
        default=None, description="What it returned (any JSON), when it succeeded; recorded."
    )
    error: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REASON_CHARS,
        description="Why it failed (required when it failed).",
    )


# -- kill switches and posture -----------------------------------------------


class KillSwitchRequest(_Request):
    action: Literal["engage", "release"]
    scope: str = Field(
        min_length=1,
        max_length=512,
        description="`global`, `tenant:<t>`, `action:<pattern>` (every tenant) "
        "or `tenant:<t>/action:<pattern>`.",
    )
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class ControlAnswer(_Body):
    """The control event that was recorded."""

    event: EventRecord


class KillSwitchList(_Body):
    tenant: str | None = Field(description="The tenant asked about; null for every tenant.")
    killswitches: list[dict[str, Any]] = Field(description="Engaged switches that apply.")


class PostureRequest(_Request):
    posture: Literal["normal", "heightened", "lockdown"]
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)
    # Strict: JSON true is not one second, nor "600" six hundred.
    ttl_seconds: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_POSTURE_TTL,
        description="Return to the previous posture after this long; default: until changed.",
    )


class PostureAnswer(_Body):
    tenant: str
    posture: dict[str, Any]
    event: EventRecord | None = Field(default=None, description="The change, when one was made.")


# -- the ledger ---------------------------------------------------------------


class EventPage(_Body):
    tenant: str
    tree_size: int = Field(description="Events in the log when the page was read.")
    events: list[EventRecord]
    next_after_seq: int | None = Field(
        description="Pass as `after_seq` for the next page; null when this page reached the end."
    )


class CheckpointRecord(_Body):
    """A signed tree head (C2SP tlog-checkpoint signed note) covering the whole log."""

    tenant: str
    origin: str
    tree_size: int
    root_hash: str = Field(description="Hex.")
    note: str = Field(description="The signed note, exactly as signed.")
    verifier_key: str = Field(
        description="The key that checks it (`name+keyid+base64`); pin it out of band."
    )


class InclusionProofRecord(_Body):
    """Same JSON as `exoarmur prove inclusion --json`."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]
    root_hash: str


class ConsistencyProofRecord(_Body):
    """Same JSON as `exoarmur prove consistency --json`."""

    old_size: int
    new_size: int
    hashes: list[str]
    old_root: str
    new_root: str


# -- the service --------------------------------------------------------------


class Health(_Body):
    status: Literal["ok"]
    version: str


class ReadinessCheck(_Body):
    name: str
    ok: bool
    detail: str


class Readiness(_Body):
    ready: bool
    checks: list[ReadinessCheck]


class WhoAmI(_Body):
    name: str
    role: str
    tenants: list[str]
    key_id: str

    @classmethod
    def of(cls, principal: Principal) -> WhoAmI:
        return cls(
            name=principal.name,
            role=principal.role,
            tenants=list(principal.tenants),
            key_id=principal.key_id,
        )


_PROBLEM_TEXT = {
    400: "The body is not JSON.",
    401: "No, or an invalid or revoked, API key (recorded).",
    403: "Authenticated, but not allowed (recorded).",
    404: "Not found in a tenant you act for.",
    409: "Refused by the intent's state (recorded).",
    413: "The body is larger than the limit.",
    415: "The body is not sent as `Content-Type: application/json`.",
    422: "Not valid: each problem names the field and the rule.",
    429: "Too many requests in flight: retry after `Retry-After` seconds.",
    500: "An unexpected error (logged; no details are sent).",
    503: "The store or the policy is unavailable: retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
_CHALLENGE = {
    "WWW-Authenticate": {"description": '`Bearer realm="exoarmur"`', "schema": {"type": "string"}}
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error answers (all :class:`ErrorBody`)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _PROBLEM_TEXT[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        elif status == 401:
            entry["headers"] = _CHALLENGE
        documented[status] = entry
    return documented


#: the request body of ``POST /v1/intents`` (its schema is added to the components by the app)
INTENT_SUBMISSION: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IntentSubmission"}}},
}


def intent_submission_schema() -> dict[str, Any]:
    """JSON schema of the submitted intent: ``IntentRequest`` with ``actor`` optional.

    Self-contained (its ``$defs`` inlined), for the OpenAPI document only.
    """
    raw = IntentRequest.model_json_schema()
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema: dict[str, Any] = inline(raw)
    schema["title"] = "IntentSubmission"
    schema["required"] = [name for name in schema["required"] if name != "actor"]
    schema["description"] = (
        "One proposed action (see the README's intent table). `actor` may be omitted: "
        "it is the authenticated principal, and a different `actor.id` is refused (403)."
    )
    return schema
