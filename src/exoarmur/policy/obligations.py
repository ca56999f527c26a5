"""Obligations: what a determining policy asks of an allowed action.

They are Cedar annotations on a policy:

    @approval("2")        a quorum of 2 distinct approvers before it runs
    @approval_window("900")  seconds the approvers have (default: configuration)
    @ttl_max("3600")      the longest window the action may hold (seconds)
    @evidence("corroborated")  the evidence level its referenced evidence must meet
                          (none < observed < corroborated < attested; legacy
                          low/standard/high mean observed/corroborated/attested)
    @evidence_unmet("deny")  below that level: deny at once (default: wait,
                          ``pending_evidence``, until the evidence arrives)
    @escalate_after("900")   seconds after the approval request with no quorum...
    @escalate_quorum("3")    ...after which the quorum is raised to this (a ladder
                          rung; both or neither, and it only ever raises)

When several policies determine a verdict, the strictest value wins: the
largest quorum, the shortest windows, the highest evidence level. A
malformed obligation is a policy error (the bundle is refused), never a
silently weaker decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import PolicyError
from ..evidence_levels import UNMET_ACTIONS, level_of, rank

#: the names ``@evidence`` accepted before levels were enforced (still accepted)
EVIDENCE_LEVELS = ("low", "standard", "high")

#: annotation -> how to combine several values into the strictest one
_INTEGER_OBLIGATIONS = {
    "approval": max,
    "approval_window": min,
    "ttl_max": min,
    "escalate_after": min,
    "escalate_quorum": max,
}
OBLIGATION_NAMES = (*_INTEGER_OBLIGATIONS, "evidence", "evidence_unmet")
_LADDER = ("escalate_after", "escalate_quorum")
MAX_QUORUM = 100


def obligations_of(policy_id: str, annotations: Mapping[str, str]) -> dict[str, str]:
    """The obligations one policy carries; PolicyError if one is malformed."""
    found: dict[str, str] = {}
    for name in OBLIGATION_NAMES:
        if name not in annotations:
            continue
        value = annotations[name]
        if name == "evidence":
            try:
                level_of(value)
            except ValueError as exc:
                raise PolicyError(f"policy {policy_id}: @evidence {exc}") from None
        elif name == "evidence_unmet":
            if value not in UNMET_ACTIONS:
                raise PolicyError(
                    f"policy {policy_id}: @evidence_unmet must be one of "
                    f"{', '.join(UNMET_ACTIONS)}, not {value!r}"
                )
        else:
            if not value.isascii() or not value.isdigit() or int(value) < 1:
                raise PolicyError(
                    f"policy {policy_id}: @{name} must be a positive whole number, not {value!r}"
                )
            if name in ("approval", "escalate_quorum") and int(value) > MAX_QUORUM:
                raise PolicyError(
                    f"policy {policy_id}: @{name} quorum {value} exceeds {MAX_QUORUM}"
                )
            value = str(int(value))
        found[name] = value
    rungs = [name for name in _LADDER if name in found]
    if len(rungs) == 1:
        missing = next(name for name in _LADDER if name not in found)
        raise PolicyError(f"policy {policy_id}: @{rungs[0]} needs @{missing} beside it")
    if rungs and "approval" in found and int(found["escalate_quorum"]) <= int(found["approval"]):
        raise PolicyError(
            f"policy {policy_id}: @escalate_quorum {found['escalate_quorum']} must exceed "
            f"@approval {found['approval']} (a ladder only raises the quorum)"
        )
    return found


def combine(each: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The strictest obligations among several policies."""
    combined: dict[str, str] = {}
    for obligations in each:
        for name, value in obligations.items():
            if name not in combined:
                combined[name] = value
            elif name == "evidence":
                combined[name] = max(combined[name], value, key=rank)
            elif name == "evidence_unmet":
                combined[name] = max(combined[name], value, key=UNMET_ACTIONS.index)
            else:
                pick = _INTEGER_OBLIGATIONS[name]
                combined[name] = str(pick(int(combined[name]), int(value)))
    return dict(sorted(combined.items()))
