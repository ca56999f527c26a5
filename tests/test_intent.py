"""Intent validation: every bad input names its field and its rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exoarmur.errors import IntentError
from exoarmur.model.intent import (
    MAX_INTENT_BYTES,
    MAX_PARAMS_BYTES,
    ActionIntent,
    derive_idempotency_key,
    parse_intent,
    parse_intent_json,
)
from samples import intent


def test_a_valid_intent_parses() -> None:
    request = parse_intent(intent())
    assert request.tenant == "acme"
    assert request.intent_id is None


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"tenant": "Acme"}, "tenant", "pattern"),
        ({"tenant": ""}, "tenant", "at least 1"),
        ({"action": "fs read"}, "action", "pattern"),
        ({"action": "1fs.read"}, "action", "pattern"),
        ({"target": "has space"}, "target", "pattern"),
        ({"safety_class": "A9"}, "safety_class", "'A0', 'A1', 'A2' or 'A3'"),
        ({"params": [1, 2]}, "params", "dictionary"),
        ({"params": {"x": float("nan")}}, "params", "RFC 8785"),
        ({"actor": {"id": "a", "kind": "robot"}}, "actor.kind", "'agent'"),
        ({"actor": {"id": "a", "role": "x"}}, "actor.role", "unknown field"),
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time", "timezone"),
        ({"intent_id": "not-a-ulid"}, "intent_id", "pattern"),
        ({"intent_id": "80000000000000000000000000"}, "intent_id", "largest ULID"),
        ({"intent_id": "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"}, "intent_id", "largest ULID"),
        ({"idempotency_key": ""}, "idempotency_key", "at least 1"),
    ],
)
def test_bad_fields_are_named_with_their_rule(
    change: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(IntentError) as caught:
        parse_intent(intent(**change))
    fields = dict(caught.value.problems)
    assert field in fields, caught.value.problems
    assert rule in fields[field]
    assert field in str(caught.value)


@pytest.mark.parametrize("missing", ["tenant", "actor", "action", "target", "safety_class"])
def test_missing_required_fields_are_named(missing: str) -> None:
    data = intent()
    del data[missing]
    with pytest.raises(IntentError, match=f"{missing}: is required"):
        parse_intent(data)


def test_oversized_params_are_refused_with_the_limit() -> None:
    with pytest.raises(IntentError, match=rf"exceeds the limit of {MAX_PARAMS_BYTES}"):
        parse_intent(intent(params={"blob": "x" * MAX_PARAMS_BYTES}))


def test_oversized_documents_are_refused_before_parsing() -> None:
    with pytest.raises(IntentError, match="exceeds"):
        parse_intent_json(b" " * (MAX_INTENT_BYTES + 1))


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"[]", b"42", b"null"])
def test_malformed_documents_name_the_intent(raw: bytes) -> None:
    with pytest.raises(IntentError, match=r"^intent: "):
        parse_intent_json(raw)


def test_derived_key_ignores_intent_id_but_not_content() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    a = parse_intent(intent(intent_id="01KDVDNA00E9J26YC765WVR3F0"))
    b = parse_intent(intent())
    c = parse_intent(intent(target="reports/q4.txt"))
    assert derive_idempotency_key(a, at) == derive_idempotency_key(b, at)
    assert derive_idempotency_key(a, at) != derive_idempotency_key(c, at)
    assert derive_idempotency_key(a, at) != derive_idempotency_key(a, at.replace(second=1))


@given(
    params=st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8), st.booleans(), st.none()
        ),
        max_size=5,
    )
)
def test_recorded_intents_round_trip_through_canonical_form(params: dict[str, Any]) -> None:
    recorded = ActionIntent(
        intent_id="01KDVDNA00E9J26YC765WVR3F0",
        idempotency_key="k-1",
        correlation_id="c-1",
        event_time=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        **dict(intent(params=params).items()),
    )
    again = ActionIntent.from_canonical(json.loads(json.dumps(recorded.to_canonical())))
    assert again == recorded
    assert again.intent_hash() == recorded.intent_hash()
