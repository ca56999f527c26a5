"""SIGKILL at every boundary of a plan and of an expiry; the next start finishes it exactly once.

A child process runs the scenario and kills itself right after one event is
durable; this process then opens the same ledger, recovers and ticks, and
counts the effector state changes: no step runs twice, no control is
reverted twice, a plan ends completed or compensated (recorded), and
replay re-derives all of it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from containment_kit import governor
from exoarmur.clock import StepClock
from exoarmur.containment.fold import (
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_COMPENSATED,
    PLAN_COMPLETED,
    PLAN_STARTED,
    PLAN_STEP_FINISHED,
    PLAN_STEP_STARTED,
)
from exoarmur.ledger.keys import SigningKey, load_signing_key, write_signing_key
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import EXECUTION_FINISHED, EXECUTION_STARTED, Event
from exoarmur.replay import replay

CHILD = Path(__file__).parent / "containment_child.py"
LATER = datetime(2026, 6, 1, tzinfo=UTC)

#: (scenario, event type, nth): the child dies right after that event is durable
BOUNDARIES = [
    ("plan_ok", "intent.approved", 1),
    ("plan_ok", EXECUTION_STARTED, 1),
    ("plan_ok", PLAN_STARTED, 1),
    ("plan_ok", PLAN_STEP_STARTED, 1),
    ("plan_ok", PLAN_STEP_FINISHED, 1),
    ("plan_ok", PLAN_STEP_STARTED, 3),
    ("plan_ok", PLAN_STEP_FINISHED, 4),
    ("plan_ok", PLAN_COMPLETED, 1),
    ("plan_fail", PLAN_STEP_FINISHED, 4),
    ("plan_fail", CONTAINMENT_REVERTED, 1),
    ("plan_fail", CONTAINMENT_REVERTED, 2),
    ("plan_fail", PLAN_COMPENSATED, 1),
    ("expiry", CONTAINMENT_EXPIRED, 1),
    ("expiry", CONTAINMENT_REVERTED, 1),
    ("expiry", CONTAINMENT_EXPIRED, 2),
]


def _events(g: object) -> list[Event]:
    store = g.ledger.store  # type: ignore[attr-defined]
    return list(store.events("acme", 0, store.size("acme")))


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "kind", "nth"), BOUNDARIES)
def test_a_kill_at_each_boundary_is_finished_exactly_once(
    tmp_path: Path, scenario: str, kind: str, nth: int
) -> None:
    write_signing_key(tmp_path / "key", SigningKey.generate("t/log"))
    child = subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path), scenario, kind, str(nth)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    ledger = Ledger(SqliteStore(tmp_path / "l.db"), load_signing_key(tmp_path / "key"))
    g = governor(ledger, seed=99)
    g.clock = StepClock(LATER)
    g.recover()
    g.containment.tick(LATER + timedelta(days=1))
    after_first = len(_events(g))
    g.recover()  # a second start finds nothing left to do
    g.containment.tick(LATER + timedelta(days=1))
    assert len(_events(g)) == after_first

    events = _events(g)
    steps = Counter(
        (e.payload["plan_id"], e.payload["step"]) for e in events if e.type == PLAN_STEP_STARTED
    )
    assert all(n == 1 for n in steps.values()), "a step ran twice"
    reverts = Counter(e.payload["control"] for e in events if e.type == CONTAINMENT_REVERTED)
    assert all(n == 1 for n in reverts.values()), "a control was reverted twice"
    expiries = Counter(e.payload["control"] for e in events if e.type == CONTAINMENT_EXPIRED)
    assert all(n == 1 for n in expiries.values()), "a control expired twice"
    if scenario != "expiry":
        ends = [e.type for e in events if e.type in (PLAN_COMPLETED, PLAN_COMPENSATED)]
        finished = [e for e in events if e.type == EXECUTION_FINISHED]
        assert len(ends) <= 1
        assert len(finished) == 1, "the plan's outcome is recorded once"
        if scenario == "plan_fail" or not ends:
            assert finished[0].payload["status"] == "failed"
        if ends == [PLAN_COMPLETED]:
            assert finished[0].payload["status"] == "succeeded"
    assert g.containment.status("acme") == []  # everything expired or was compensated
    g.ledger.checkpoint("acme")
    report = replay(g.ledger.store, "acme", verifier=g.ledger.verifier)
    assert report.verified, report.divergences
