"""The governor: the one path from intent to side effect, in one room per concern.

    state.py      control-state folds, the decide lock, the one append
    drafts.py     event drafts: the injected clock and id generator
    policies.py   which bundle is in force; activating one
    deciding.py   pure decide() and engine_in_force(), shared with replay
    intake.py     idempotency, decide, record, hand to the runner
    running.py    write-before-execute, re-check, retries, outcome
    votes.py      rulings, quorum, the start after a quorum
    switches.py   kill switches and posture
    principals.py who may act
    access.py     who may read; refusals recorded
    recovery.py   what a stopped process left; runs and services recorded
    drain.py      governed calls in flight
    observing.py  observers told each stage's time and each commit's size (advice only)
    outcomes.py   an intent's outcome and story, read from the ledger
    facade.py     the Governor, which wires them

The names below load lazily: replay imports :mod:`.deciding` alone and must
never load the executors, which the facade needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .facade import DEFAULT_APPROVAL_WINDOW, LOCAL_ADMIN, Governor
    from .outcomes import outcome_from_events
    from .running import INTERNAL_ERROR
    from .switches import MAX_POSTURE_TTL, MAX_REASON_CHARS
    from .votes import VoteResult

_WHERE = {
    "DEFAULT_APPROVAL_WINDOW": "facade",
    "LOCAL_ADMIN": "facade",
    "Governor": "facade",
    "outcome_from_events": "outcomes",
    "INTERNAL_ERROR": "running",
    "MAX_POSTURE_TTL": "switches",
    "MAX_REASON_CHARS": "switches",
    "VoteResult": "votes",
}

__all__ = [
    "DEFAULT_APPROVAL_WINDOW",
    "INTERNAL_ERROR",
    "LOCAL_ADMIN",
    "MAX_POSTURE_TTL",
    "MAX_REASON_CHARS",
    "Governor",
    "VoteResult",
    "outcome_from_events",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
