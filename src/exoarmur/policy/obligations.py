"""Obligations: what a determining policy asks of an allowed action.

They are Cedar annotations on a policy:

    @approval("2")        a quorum of 2 distinct approvers before it runs
    @approval_window("900")  seconds the approvers have (default: configuration)
    @ttl_max("3600")      the longest window the action may hold (seconds)
    @evidence("high")     the evidence level its records must meet

When several policies determine a verdict, the strictest value wins: the
largest quorum, the shortest windows, the highest evidence level. A
malformed obligation is a policy error (the bundle is refused), never a
silently weaker decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import PolicyError

EVIDENCE_LEVELS = ("low", "standard", "high")

#: annotation -> how to combine several values into the strictest one
_INTEGER_OBLIGATIONS = {"approval": max, "approval_window": min, "ttl_max": min}
OBLIGATION_NAMES = (*_INTEGER_OBLIGATIONS, "evidence")
MAX_QUORUM = 100


def obligations_of(policy_id: str, annotations: Mapping[str, str]) -> dict[str, str]:
    """The obligations one policy carries; PolicyError if one is malformed."""
    found: dict[str, str] = {}
    for name in OBLIGATION_NAMES:
        if name not in annotations:
            continue
        value = annotations[name]
        if name == "evidence":
            if value not in EVIDENCE_LEVELS:
                raise PolicyError(
                    f"policy {policy_id}: @evidence must be one of {', '.join(EVIDENCE_LEVELS)}, "
                    f"not {value!r}"
                )
        else:
            if not value.isascii() or not value.isdigit() or int(value) < 1:
                raise PolicyError(
                    f"policy {policy_id}: @{name} must be a positive whole number, not {value!r}"
                )
            if name == "approval" and int(value) > MAX_QUORUM:
                raise PolicyError(
                    f"policy {policy_id}: @approval quorum {value} exceeds {MAX_QUORUM}"
                )
            value = str(int(value))
        found[name] = value
    return found


def combine(each: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The strictest obligations among several policies."""
    combined: dict[str, str] = {}
    for obligations in each:
        for name, value in obligations.items():
            if name not in combined:
                combined[name] = value
            elif name == "evidence":
                combined[name] = max(combined[name], value, key=EVIDENCE_LEVELS.index)
            else:
                pick = _INTEGER_OBLIGATIONS[name]
                combined[name] = str(pick(int(combined[name]), int(value)))
    return dict(sorted(combined.items()))
