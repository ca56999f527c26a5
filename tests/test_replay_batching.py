"""Replay's decisions decided ahead in Cedar batches give the very report deciding alone gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.replay import Replayer
from exoarmur.replay import verify as replay_verify
from test_replay import GOLDEN, KEY, MANIFEST, load

NAMES = ["good", *sorted(MANIFEST["doctored"])]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SqliteStore]]:
    found = {}
    for name in NAMES:
        file = MANIFEST["good"] if name == "good" else MANIFEST["doctored"][name]["file"]
        found[name] = load(GOLDEN / file, tmp_path_factory.mktemp(name))
    yield found
    for store in found.values():
        store.close()


def _replayed(store: SqliteStore, ahead: bool) -> tuple[dict[str, Any], list[Any], int]:
    replayer = Replayer(store, "acme")
    replayer.verifier = KEY.verifier()
    if not ahead:
        replayer.decide_ahead = lambda chunk: None  # type: ignore[method-assign]
    report = replayer.run()
    rederived = [(event.seq, decision) for event, decision in replayer.rederived]
    return report.to_json(), rederived, replayer.batched


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=1, max_value=40))
def test_batched_replay_reports_what_deciding_alone_reports(
    stores: dict[str, SqliteStore], chunk: int
) -> None:
    batched = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay_verify, "_AHEAD", chunk)
        for name in NAMES:
            alone = _replayed(stores[name], ahead=False)
            together = _replayed(stores[name], ahead=True)
            assert together[:2] == alone[:2], name
            assert alone[2] == 0
            batched += together[2]
    assert batched > 0  # the batched path ran
