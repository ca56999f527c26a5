"""The intent: one proposed action, frozen once recorded.

``IntentRequest`` is what a caller sends (ids, keys and times optional);
``ActionIntent`` is what the pipeline records, every field filled. An
intent's hash is what approvals bind to, so it is computed from canonical
bytes only (see ``encoding``), never from a model dump.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..encoding import canonical_bytes, content_hash, format_time, parse_time
from ..errors import InputError, IntentError, JSONTextError
from ..jsontext import loads

#: Largest accepted canonical size of ``params``. Documented in the README.
MAX_PARAMS_BYTES = 64 * 1024
#: Largest accepted intent document, before parsing.
MAX_INTENT_BYTES = 256 * 1024
#: Deepest accepted nesting of objects and lists in ``params``: deeper JSON is
#: within the size limits yet would overflow recursive encoders downstream.
MAX_PARAMS_DEPTH = 64


def json_depth(value: Any, stop_above: int = MAX_PARAMS_DEPTH) -> int:
    """How deeply lists and objects nest in ``value`` (iterative, stops early)."""
    deepest = 0
    stack = [(value, 1)]
    while stack and deepest <= stop_above:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ACTION_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)*$"
# Printable, no whitespace or control characters: these end up in Cedar
# entity ids, log lines and file names.
MAX_ULID = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
TOKEN_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"  # noqa: S105 - a pattern, not a secret


class SafetyClass(StrEnum):
    """How much harm an action can do: A0 read-only … A3 irreversible or high-risk."""

    A0 = "A0"
    A1 = "A1"
    A2 = "A2"
    A3 = "A3"


ActorKind = Literal["agent", "service", "operator", "system"]


class Actor(BaseModel):
    """Who proposes or does something: a principal id and its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256, pattern=TOKEN_PATTERN)
    kind: ActorKind = "agent"

    def to_canonical(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind}


SYSTEM_ACTOR = Actor(id="exoarmur", kind="system")


class _IntentFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    tenant: str = Field(min_length=1, max_length=63, pattern=TENANT_PATTERN)
    actor: Actor
    action: str = Field(min_length=1, max_length=128, pattern=ACTION_PATTERN)
    target: str = Field(min_length=1, max_length=1024, pattern=TOKEN_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)
    safety_class: SafetyClass

    @field_validator("params")
    @classmethod
    def _params_are_bounded_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value) > MAX_PARAMS_DEPTH:
            raise ValueError(f"nested deeper than {MAX_PARAMS_DEPTH} levels")
        try:
            size = len(canonical_bytes(value))
        except InputError as exc:
            raise ValueError(f"must be a JSON object: {exc}") from None
        if size > MAX_PARAMS_BYTES:
            raise ValueError(
                f"canonical size {size} bytes exceeds the limit of {MAX_PARAMS_BYTES} bytes"
            )
        return value


class IntentRequest(_IntentFields):
    """What a caller proposes. Optional fields are filled in at ingest."""

    intent_id: str | None = Field(default=None, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=TOKEN_PATTERN
    )
    correlation_id: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=TOKEN_PATTERN
    )
    event_time: datetime | None = None

    @field_validator("event_time", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # pydantic would also take a number (seconds since 1970) or a date alone.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("must be an ISO 8601 timestamp string with an offset")
        return value

    @field_validator("intent_id")
    @classmethod
    def _in_ulid_range(cls, value: str | None) -> str | None:
        # 26 base-32 digits hold 130 bits; a ULID is 128, so the first digit is 0-7.
        if value is not None and value[0] > "7":
            raise ValueError(f"is beyond the largest ULID {MAX_ULID} (its first character is 0-7)")
        return value

    @field_validator("event_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("must carry a timezone offset (e.g. 2026-01-01T00:00:00Z)")
        try:
            value.astimezone(UTC)
        except OverflowError:
            # 0001-01-01T00:00:00+14:00 is a valid text whose UTC instant is before year 1.
            raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None
        return value

    def source_content(self, event_time: datetime) -> dict[str, Any]:
        """What the source said: the basis of a derived idempotency key.

        Excludes ``intent_id`` (assigned on our side, differs per delivery) so
        that a redelivery of the same source event derives the same key.
        """
        content: dict[str, Any] = {
            "tenant": self.tenant,
            "actor": self.actor.to_canonical(),
            "action": self.action,
            "target": self.target,
            "params": self.params,
            "safety_class": self.safety_class.value,
            "event_time": format_time(event_time),
        }
        if self.correlation_id is not None:
            content["correlation_id"] = self.correlation_id
        return content


class ActionIntent(_IntentFields):
    """A recorded intent: every field filled, frozen."""

    intent_id: str = Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")
    idempotency_key: str = Field(min_length=1, max_length=256, pattern=TOKEN_PATTERN)
    correlation_id: str = Field(min_length=1, max_length=256, pattern=TOKEN_PATTERN)
    event_time: datetime

    def to_canonical(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "tenant": self.tenant,
            "actor": self.actor.to_canonical(),
            "action": self.action,
            "target": self.target,
            "params": self.params,
            "safety_class": self.safety_class.value,
            "idempotency_key": self.idempotency_key,
            "correlation_id": self.correlation_id,
            "event_time": format_time(self.event_time),
        }

    @classmethod
    def from_canonical(cls, value: dict[str, Any]) -> ActionIntent:
        data = dict(value)
        data["event_time"] = parse_time(data["event_time"])
        return cls.model_validate(data)

    def intent_hash(self) -> str:
        """``sha256:<hex>`` of the canonical intent: what an approval binds to."""
        return content_hash(self.to_canonical())


def derive_idempotency_key(request: IntentRequest, event_time: datetime) -> str:
    return content_hash(request.source_content(event_time))


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "intent"
        rule = error["msg"]
        if error["type"] == "string_pattern_mismatch":
            rule = f"does not match the pattern {error['ctx']['pattern']}"
        elif error["type"] == "extra_forbidden":
            rule = "unknown field (not part of an intent)"
        elif error["type"] == "missing":
            rule = "is required"
        elif error["type"] == "value_error":
            rule = str(error["ctx"]["error"])
        problems.append((field, rule))
    return problems


def parse_intent(data: object) -> IntentRequest:
    """Validate a caller's intent (already-parsed JSON). Raises :class:`IntentError`."""
    if not isinstance(data, dict):
        raise IntentError([("intent", f"must be a JSON object, not {type(data).__name__}")])
    try:
        return IntentRequest.model_validate(data)
    except ValidationError as exc:
        raise IntentError(_problems(exc)) from None


def parse_intent_json(raw: bytes | str) -> IntentRequest:
    """Validate a caller's intent given as JSON text. Raises :class:`IntentError`."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_INTENT_BYTES:
        raise IntentError([("intent", f"document of {size} bytes exceeds {MAX_INTENT_BYTES}")])
    try:
        data = loads(raw)
    except JSONTextError as exc:
        raise IntentError([(exc.field or "intent", exc.rule)]) from None
    return parse_intent(data)
