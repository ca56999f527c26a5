"""The governor's observer hook: stage timings on an injected clock, commit sizes, advice only."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from exoarmur.clock import StepClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.governor.observing import STAGES, Observer, Observers
from exoarmur.ids import SeededIds
from exoarmur.ledger.batching import GroupCommit, PendingAppend
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import SYSTEM_LOG
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY, intent


class Recording:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self.batches: list[int] = []

    def stage_timed(self, stage: str, seconds: float) -> None:
        self.stages.append((stage, seconds))

    def batch_committed(self, appends: int) -> None:
        self.batches.append(appends)


class Failing:
    def stage_timed(self, stage: str, seconds: float) -> None:
        raise RuntimeError(f"observer broke on {stage}")

    def batch_committed(self, appends: int) -> None:
        raise RuntimeError("observer broke on a commit")


def _ticks() -> Callable[[], float]:
    """A monotonic clock that moves one second per reading: every stage takes exactly 1.0."""
    counter = itertools.count()
    return lambda: float(next(counter))


def _governor(path: Path, monotonic: Callable[[], float] | None = None) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    return Governor(
        ledger=Ledger(SqliteStore(path), SigningKey.generate("test.exoarmur/log")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(7),
        **({"monotonic": monotonic} if monotonic is not None else {}),
    )


def test_each_stage_is_timed_on_the_injected_clock_and_each_commit_counted(
    tmp_path: Path,
) -> None:
    governor = _governor(tmp_path / "l.db", _ticks())
    seen = Recording()
    governor.observe(seen)
    try:
        assert governor.submit(intent()).status.value == "executed"
        denied = governor.submit(intent(target="db/prod", idempotency_key="k2"))
        assert denied.status.value == "denied"
    finally:
        governor.close()  # the store's writer has told every commit by now
    executed = ["decide", "gate", "append", "execute", "append"]
    assert [stage for stage, _ in seen.stages] == [*executed, "decide", "gate", "append"]
    assert {seconds for _, seconds in seen.stages} == {1.0}
    assert set(STAGES) == {stage for stage, _ in seen.stages}
    assert seen.batches == [1, 1, 1]  # one append each, none waiting beside it


def _run(
    path: Path, observer: Observer | None, monotonic: Callable[[], float] | None = None
) -> list[object]:
    governor = _governor(path, monotonic)
    if observer is not None:
        governor.observe(observer)
    try:
        outcomes = [
            governor.submit(intent()).model_dump(),
            governor.submit(intent(target="db/prod", idempotency_key="k2")).model_dump(),
            governor.submit(intent(safety_class="A2", idempotency_key="k3")).model_dump(),
        ]
        roots = [governor.ledger.root(log).hex() for log in (SYSTEM_LOG, "acme")]
    finally:
        governor.close()
    return [outcomes, roots]


def _broken_clock() -> float:
    raise OSError("no clock")


def test_an_observer_that_raises_changes_no_decision_no_write_and_no_outcome(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unobserved = _run(tmp_path / "plain.db", None)
    assert _run(tmp_path / "failing.db", Failing()) == unobserved
    assert "observer broke on decide" in caplog.text
    assert "observer broke on a commit" in caplog.text
    # A clock that fails times nothing and changes nothing either.
    assert _run(tmp_path / "clockless.db", Recording(), _broken_clock) == unobserved
    assert "the monotonic clock failed" in caplog.text


def test_a_commit_observer_that_raises_does_not_stop_the_writer() -> None:
    committed: list[int] = []

    def commit(batch: list[PendingAppend]) -> None:
        committed.append(len(batch))
        for request in batch:
            request.result = []

    def observe(appends: int) -> None:
        raise RuntimeError("broken dashboard")

    writer = GroupCommit(commit, max_batch=4, name="test-writer")
    writer.observe = observe
    try:
        for _ in range(3):
            assert writer.submit("acme", [], None) == []
    finally:
        writer.stop()
    assert sum(committed) == 3


def test_observers_can_be_removed_and_time_nothing_when_there_are_none() -> None:
    readings: list[float] = []

    def clock() -> float:
        readings.append(0.0)
        return 0.0

    observers = Observers(clock)
    with observers.timed("decide"):
        pass
    assert readings == []  # nobody listens: the clock is not even read
    seen = Recording()
    observers.add(seen)
    with observers.timed("gate"), pytest.raises(ValueError, match="stage failed"):
        raise ValueError("the stage failed")
    observers.remove(seen)
    with observers.timed("append"):
        pass
    assert seen.stages == [("gate", 0.0)]  # timed even when the stage raised
