"""The approval book: quorum, expiry and separation of duties, as pure rules."""

from .book import (
    Approval,
    ApprovalStatus,
    IntentState,
    Ruling,
    Vote,
    approval_request,
    intent_state,
    is_due,
    rule_on,
)

__all__ = [
    "Approval",
    "ApprovalStatus",
    "IntentState",
    "Ruling",
    "Vote",
    "approval_request",
    "intent_state",
    "is_due",
    "rule_on",
]
