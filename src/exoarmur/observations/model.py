"""Observations: what a telemetry source says it saw, validated like an intent.

Pure. An observation names its source, its subject (an identity, endpoint,
workload or service), a kind, free attributes and the time the source saw
it. Its id is the caller's, or derived from its canonical content, so the
same observation delivered twice has one id and is recorded once.
Validation refuses unknown fields, oversized documents, repeated keys and
non-JSON numbers, naming the field and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from ..encoding import canonical_bytes, content_hash, format_time, parse_time
from ..errors import InputError, JSONTextError, ObservationError
from ..jsontext import loads
from ..model.event import BELIEF_FORMED, OBSERVATION_RECORDED
from ..model.intent import TOKEN_PATTERN, json_depth

DETECTORS_CONFIGURED: Final = "detectors.configured"
SHADOW_CREATED: Final = "shadow.created"
SHADOW_UPDATED: Final = "shadow.updated"
SHADOW_CLOSED: Final = "shadow.closed"
SHADOW_EVENTS: Final = (SHADOW_CREATED, SHADOW_UPDATED, SHADOW_CLOSED)

SUBJECT_KINDS: Final = ("identity", "endpoint", "workload", "service")
#: the attribute through which a source says which other identifiers name the same subject
CORRELATED: Final = "correlated_ids"
MAX_CORRELATED: Final = 32
#: largest accepted document (one observation, or a batch), before parsing
MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
MAX_OBSERVATION_BYTES: Final = 64 * 1024
MAX_ATTRIBUTES_BYTES: Final = 16 * 1024
MAX_ATTRIBUTES_DEPTH: Final = 16
MAX_BATCH: Final = 1000
__all__ = ["BELIEF_FORMED", "OBSERVATION_RECORDED"]  # re-exported beside the shadow kinds
_FIELDS: Final = ("observation_id", "source", "subject", "kind", "attributes", "event_time")
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class Subject:
    kind: str
    id: str

    @property
    def text(self) -> str:
        """``kind:id``, the form intents' targets and containment scopes use."""
        return f"{self.kind}:{self.id}"

    def to_canonical(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


@dataclass(frozen=True)
class Observation:
    observation_id: str
    source: str
    subject: Subject
    kind: str
    attributes: dict[str, Any]
    event_time: datetime

    def to_canonical(self) -> dict[str, Any]:
        return {"observation_id": self.observation_id, **_content(self)}

    @property
    def correlated(self) -> tuple[str, ...]:
        """The identifiers the source says name this subject too (``kind:id``)."""
        return tuple(self.attributes.get(CORRELATED, ()))

    @classmethod
    def from_canonical(cls, value: dict[str, Any]) -> Observation:
        subject = value["subject"]
        return cls(
            value["observation_id"],
            value["source"],
            Subject(subject["kind"], subject["id"]),
            value["kind"],
            dict(value["attributes"]),
            parse_time(value["event_time"]),
        )


def _content(observation: Observation) -> dict[str, Any]:
    return {
        "source": observation.source,
        "subject": observation.subject.to_canonical(),
        "kind": observation.kind,
        "attributes": observation.attributes,
        "event_time": format_time(observation.event_time),
    }


def derived_id(observation: Observation) -> str:
    """The id of an observation given without one: a hash of its canonical content."""
    return "obs-" + content_hash(_content(observation))[7:39]


def _token(value: object, field: str, longest: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise ObservationError(f"{field}: must be a string of 1-{longest} characters")
    # unprintable characters (C1 controls, bidi overrides) would repaint an operator's terminal
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ObservationError(
            f"{field}: does not match the pattern {TOKEN_PATTERN} (printable, no whitespace)"
        )
    return value


def parse_identifier(value: object, field: str) -> str:
    """A ``kind:id`` identifier with a known subject kind."""
    text = _token(value, field, 512)
    kind, sep, ident = text.partition(":")
    if not sep or kind not in SUBJECT_KINDS or not ident:
        raise ObservationError(
            f"{field}: must be kind:id with kind one of {', '.join(SUBJECT_KINDS)}"
        )
    return text


def _subject(value: object) -> Subject:
    if not isinstance(value, dict):
        raise ObservationError('subject: must be an object {"kind", "id"}')
    extra = sorted(set(value) - {"kind", "id"})
    if extra:
        raise ObservationError(f"subject.{extra[0]}: unknown field (not part of a subject)")
    kind = value.get("kind")
    if kind not in SUBJECT_KINDS:
        raise ObservationError(f"subject.kind: must be one of {', '.join(SUBJECT_KINDS)}")
    return Subject(str(kind), _token(value.get("id"), "subject.id", 256))


def _attributes(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ObservationError("attributes: must be a JSON object")
    if json_depth(value, MAX_ATTRIBUTES_DEPTH) > MAX_ATTRIBUTES_DEPTH:
        raise ObservationError(f"attributes: nested deeper than {MAX_ATTRIBUTES_DEPTH} levels")
    try:
        size = len(canonical_bytes(value))
    except InputError as exc:
        raise ObservationError(f"attributes: must be a JSON object: {exc}") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise ObservationError(
            f"attributes: canonical size {size} bytes exceeds the limit of "
            f"{MAX_ATTRIBUTES_BYTES} bytes"
        )
    correlated = value.get(CORRELATED)
    if correlated is not None:
        if not isinstance(correlated, list) or len(correlated) > MAX_CORRELATED:
            raise ObservationError(
                f"attributes.{CORRELATED}: must be a list of at most {MAX_CORRELATED} kind:id"
            )
        found = [
            parse_identifier(c, f"attributes.{CORRELATED}.{n}") for n, c in enumerate(correlated)
        ]
        value = value | {CORRELATED: sorted(set(found))}
    return value


def _event_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ObservationError("event_time: must be an RFC 3339 timestamp string with an offset")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ObservationError(
            "event_time: must be an RFC 3339 timestamp with an offset (e.g. 2026-01-01T00:00:00Z)"
        ) from None


def parse_observation(data: object, where: str = "") -> Observation:
    """A checked observation from parsed JSON; ObservationError naming the field otherwise."""
    try:
        return _parse(data)
    except ObservationError as exc:
        if not where:
            raise
        raise ObservationError(f"{where}{exc}") from None


def _parse(data: object) -> Observation:
    if not isinstance(data, dict):
        raise ObservationError(f"observation: must be a JSON object, not {type(data).__name__}")
    extra = sorted(set(data) - set(_FIELDS))
    if extra:
        raise ObservationError(f"{extra[0]}: unknown field (not part of an observation)")
    for name in ("source", "subject", "kind", "event_time"):
        if name not in data:
            raise ObservationError(f"{name}: is required")
    kind = _token(data["kind"], "kind", 128)
    if not set(kind) <= _KIND_CHARS:
        raise ObservationError("kind: only lower-case letters, digits, '.', '_' and '-'")
    observation = Observation(
        "",
        _token(data["source"], "source", 256),
        _subject(data["subject"]),
        kind,
        _attributes(data.get("attributes", {})),
        _event_time(data["event_time"]),
    )
    given = data.get("observation_id")
    ident = derived_id(observation) if given is None else _token(given, "observation_id", 128)
    observation = replace(observation, observation_id=ident)
    size = len(canonical_bytes(observation.to_canonical()))
    if size > MAX_OBSERVATION_BYTES:
        raise ObservationError(
            f"observation: canonical size {size} bytes exceeds {MAX_OBSERVATION_BYTES}"
        )
    return observation


def parse_batch(raw: bytes | str) -> list[Observation]:
    """One observation, a JSON list of them, or JSON lines; all checked before any is recorded."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_DOCUMENT_BYTES:
        raise ObservationError(
            f"observation: document of {size} bytes exceeds {MAX_DOCUMENT_BYTES}"
        )
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        documents: list[Any] = [loads(raw)]
        lines = False
    except JSONTextError as whole:
        rows = [(n, row) for n, row in enumerate(text.splitlines(), start=1) if row.strip()]
        if len(rows) < 2:
            raise ObservationError(str(whole)) from None
        documents, lines = [], True
        for number, row in rows:
            try:
                documents.append(loads(row))
            except JSONTextError as exc:
                raise ObservationError(f"line {number}: {exc}") from None
    if not lines and isinstance(documents[0], list):
        documents = documents[0]
        where = "{}."
    else:
        where = "line {}: " if lines else ""
    if not documents:
        raise ObservationError("observation: the batch is empty")
    if len(documents) > MAX_BATCH:
        raise ObservationError(
            f"observation: a batch holds at most {MAX_BATCH}, not {len(documents)}"
        )
    base = 1 if lines else 0
    return [
        parse_observation(d, where.format(n + base) if where else "")
        for n, d in enumerate(documents)
    ]
