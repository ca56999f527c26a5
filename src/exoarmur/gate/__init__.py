"""The safety gate: kill switches, posture, rate limits, protected things.

Pure rules over control state folded from the ledger; the governor feeds it
and records its verdicts.
"""

from .config import GateConfig, RateLimit
from .controls import POSTURES, Controls, Posture, Switch
from .gate import check, recheck, revoked, vote_over_limit
from .scope import Scope, parse_scope

__all__ = [
    "POSTURES",
    "Controls",
    "GateConfig",
    "Posture",
    "RateLimit",
    "Scope",
    "Switch",
    "check",
    "parse_scope",
    "recheck",
    "revoked",
    "vote_over_limit",
]
