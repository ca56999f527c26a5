"""Shared fixtures: real SQLite stores in temporary directories, deterministic parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from exoarmur.clock import StepClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY

# Wall time is no property of ExoArmur: on a loaded two-core machine one example
# may take seconds. So no Hypothesis test has a deadline or a speed health check;
# a test's own @settings inherits this for whatever it does not set itself.
settings.register_profile("exoarmur", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("exoarmur")


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("test.exoarmur/log")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "ledger.db")
    yield s
    s.close()


@pytest.fixture
def ledger(store: SqliteStore, key: SigningKey) -> Ledger:
    return Ledger(store, key)


@pytest.fixture
def governor(ledger: Ledger) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    return Governor(
        ledger=ledger,
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(7),
    )
