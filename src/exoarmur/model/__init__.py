"""Typed records: intents, decisions, outcomes and events. No I/O here."""

from .decision import Decision, Outcome, OutcomeStatus, Verdict
from .event import Event, EventDraft
from .intent import (
    ActionIntent,
    Actor,
    IntentRequest,
    SafetyClass,
    parse_intent,
    parse_intent_json,
)

__all__ = [
    "ActionIntent",
    "Actor",
    "Decision",
    "Event",
    "EventDraft",
    "IntentRequest",
    "Outcome",
    "OutcomeStatus",
    "SafetyClass",
    "Verdict",
    "parse_intent",
    "parse_intent_json",
]
