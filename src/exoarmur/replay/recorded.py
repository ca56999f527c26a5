"""Recorded intents read back without validating them a second time.

An intent was validated before it was recorded, and its recorded hash is
over its canonical bytes: an intent whose bytes still hash to that value is
the very intent that passed, so replay builds it without running the
validators again (about a quarter of the cost of parsing it). One whose
bytes do not is parsed and validated in full, so that what is wrong with it
is reported.
"""

from __future__ import annotations

from typing import Any

from ..encoding import content_hash, parse_time
from ..model.intent import ActionIntent, Actor, SafetyClass


def recorded_intent(payload: dict[str, Any]) -> tuple[ActionIntent, str]:
    """An ``intent.recorded`` payload's intent and the hash of its canonical bytes."""
    fields = payload["intent"]
    computed = content_hash(fields)
    if computed != payload.get("intent_hash") or not isinstance(fields, dict):
        return ActionIntent.from_canonical(fields), computed
    actor = fields["actor"]
    intent = ActionIntent.model_construct(
        **{
            **fields,
            "actor": Actor.model_construct(**actor),
            "safety_class": SafetyClass(fields["safety_class"]),
            "event_time": parse_time(fields["event_time"]),
        }
    )
    return intent, computed
