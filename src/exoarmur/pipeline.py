"""The Governor's former home, kept so that existing imports keep working.

The governor now lives in :mod:`exoarmur.governor`, one module per concern;
import from there in new code.
"""

from .governor.facade import DEFAULT_APPROVAL_WINDOW, LOCAL_ADMIN, Governor
from .governor.outcomes import outcome_from_events
from .governor.running import INTERNAL_ERROR
from .governor.switches import MAX_POSTURE_TTL, MAX_REASON_CHARS
from .governor.votes import VoteResult

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
