"""Shared fixtures: real SQLite stores in temporary directories, deterministic parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exoarmur.clock import StepClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY


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
