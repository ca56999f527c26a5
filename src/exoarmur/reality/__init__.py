"""The reality check: one command that proves, on a real store, what ExoArmur claims.

    exoarmur reality [--out artifacts/RUN_ID] [--json]

It starts from an empty data directory on the embedded SQLite ledger,
creates an agent and two operators with keys on disk, and runs a known
scenario in a child process: allowed, denied and approval-requiring intents,
each delivered twice under one idempotency key, operator votes cast with the
operators' own keys, a kill switch engaged and released. The child prints one
``ACK`` line per acknowledged outcome and waits for the parent's ``go``; the
parent SIGKILLs it after a known number of ACKs, at the moment one more
intent is durably recorded but not yet acknowledged. It checks that every
acknowledged outcome is in the ledger, then runs the scenario again from the
start in a new child, which meets every earlier delivery (the unacknowledged
one included) as a duplicate and finishes. The parent then replays the
tenant from the ledger alone, exports and verifies the evidence bundle of the
intent approved by a quorum of two, and writes an evidence directory with
one line per gate in ``PASS_FAIL.txt`` (what each file and gate proves:
``docs/reality.md``).

The package has one module per gate under ``gates/`` (what it gathers and
how it judges it), the scenario, the child process, the parent that drives
and kills it, the run driver, the evidence writer and the command.

Nothing here is mocked and nothing is written to the ledger except through
the governor. The wall clock and randomness appear only where a real
deployment has them: the run's name, the children's governors (the system
clock, recorded as such) and the timestamps of ``service.log``.
"""

from .child import child_main
from .command import reality, step_display
from .report import GATES, Gate, RealityReport
from .run import new_run_id, run_reality
from .scenario import ACKS_BEFORE_KILL, EFFECTS_ENV, KILL_STEP, STEPS, TENANT, carry_out, prepare

__all__ = [
    "ACKS_BEFORE_KILL",
    "EFFECTS_ENV",
    "GATES",
    "KILL_STEP",
    "STEPS",
    "TENANT",
    "Gate",
    "RealityReport",
    "carry_out",
    "child_main",
    "new_run_id",
    "prepare",
    "reality",
    "run_reality",
    "step_display",
]
