"""Replay: re-derive every decision, gate verdict and approval outcome from the ledger alone.

    report = replay(store, "acme", verifier=key.verifier())
    report.verified, report.first   # a frozen ReplayReport; first = the first Divergence

``whatif`` replays the same intents under a candidate policy bundle and
reports which decisions would change. Neither writes anything.
"""

from .verify import Divergence, Replayer, ReplayReport, first_difference, replay
from .whatif import Change, WhatIfReport, whatif

__all__ = [
    "Change",
    "Divergence",
    "ReplayReport",
    "Replayer",
    "WhatIfReport",
    "first_difference",
    "replay",
    "whatif",
]
