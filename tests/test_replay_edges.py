"""Replay's rarer findings, each from a consistently forged copy of the golden history."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exoarmur.errors import LedgerCorrupt
from exoarmur.gate.controls import Controls
from exoarmur.model.event import Event
from exoarmur.replay import replay
from exoarmur.replay.folds import LogFold
from test_replay import GOLDEN, MANIFEST, load

Events = list[dict[str, Any]]


def forged(tmp_path: Path, edit: Callable[[Events], None]) -> Any:
    events = [json.loads(line) for line in (GOLDEN / MANIFEST["good"]).read_text().splitlines()]
    edit(events)
    path = tmp_path / "forged.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return load(path, tmp_path)


def first(events: Events, kind: str, **where: Any) -> dict[str, Any]:
    return next(
        e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in where.items())
    )


def _unknown_voter(events: Events) -> None:
    vote = first(events, "approval.granted")
    vote["payload"]["cast"]["voter"] = "nobody"


def _missing_config(events: Events) -> None:
    decision = first(events, "decision.recorded")
    decision["payload"]["decision"]["config_hash"] = "sha256:" + "1" * 64


def _start_without_allow(events: Events) -> None:
    denied = next(
        e
        for e in events
        if e["type"] == "decision.recorded" and e["payload"]["decision"]["verdict"] == "deny"
    )
    index = events.index(denied)
    events.insert(
        index + 1,
        {
            **denied,
            "type": "execution.started",
            "event_id": "forged-start",
            "payload": {"executor": "echo", "binding": "*", "intent_hash": "x"},
        },
    )


def _unknown_without_start(events: Events) -> None:
    decided = first(events, "decision.recorded")
    index = events.index(decided)
    events.insert(
        index + 1,
        {
            **decided,
            "type": "execution.outcome_unknown",
            "event_id": "forged",
            "payload": {"reason": "x", "started_event_id": "y", "executor": None},
        },
    )


def _approved_out_of_nowhere(events: Events) -> None:
    requested = first(events, "approval.requested")
    index = events.index(requested)
    events.insert(
        index + 1,
        {
            **requested,
            "type": "intent.approved",
            "event_id": "forged",
            "payload": {"approvers": ["alice", "bob"], "quorum": 2},
        },
    )


def _result_swapped(events: Events) -> None:
    finished = first(events, "execution.finished")
    finished["payload"]["result"] = {"forged": True}


def _finished_without_start(events: Events) -> None:
    started = first(events, "execution.started")
    events.remove(started)


def _intent_hash_edited(events: Events) -> None:
    recorded = first(events, "intent.recorded")
    recorded["payload"]["intent"]["target"] = "reports/elsewhere"


def _early_expiry(events: Events) -> None:
    expired = first(events, "intent.expired")
    requested = first(events, "approval.requested", intent_id=expired["intent_id"])
    expired["process_time"] = requested["process_time"]


def _key_reused(events: Events) -> None:
    recorded = [e for e in events if e["type"] == "intent.recorded"]
    recorded[1]["payload"]["intent"]["idempotency_key"] = recorded[0]["payload"]["intent"][
        "idempotency_key"
    ]


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (_unknown_voter, "cast.voter", "no such principal"),
        (_missing_config, "config_hash", "no config.snapshot with this hash"),
        (_start_without_allow, "type", "started without an allow or an approval"),
        (_unknown_without_start, "type", "outcome_unknown without an unfinished execution"),
        (_approved_out_of_nowhere, "type", "no vote in the record leads to this"),
        (_result_swapped, "result_hash", "does not hash to its recorded hash"),
        (_finished_without_start, "type", "no execution.started before it"),
        (_intent_hash_edited, "intent_hash", "does not hash to its recorded hash"),
        (_early_expiry, "process_time", "expired before its deadline"),
    ],
)
def test_rare_forgeries_are_named(
    tmp_path: Path, edit: Callable[[Events], None], field: str, reason: str
) -> None:
    store = forged(tmp_path, edit)
    report = replay(store, "acme")
    assert not report.verified
    assert any(d.field.startswith(field) and reason in d.reason for d in report.divergences), [
        (d.field, d.reason) for d in report.divergences[:5]
    ]
    store.close()


def test_filters_limit_what_is_checked_but_not_what_is_folded(tmp_path: Path) -> None:
    store = forged(tmp_path, _result_swapped)
    swapped = next(e for e in store.events("acme") if e.type == "execution.finished")
    assert not replay(store, "acme").verified
    assert replay(store, "acme", start=swapped.seq + 1).verified
    assert replay(store, "acme", correlation="not-this-one").verified
    assert not replay(store, "acme", correlation=swapped.correlation_id).verified
    store.close()


def _event(seq: int, kind: str = "test.event", payload: dict[str, Any] | None = None) -> Event:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Event(
        seq=seq,
        event_id=f"e{seq}",
        tenant="acme",
        type=kind,
        correlation_id="c",
        event_time=now,
        process_time=now,
        actor={"id": "x", "kind": "system"},
        payload=payload or {},
        intent_id=None,
        canonical=b"{}",
        leaf_hash=b"0" * 32,
    )


def test_a_fold_rebuilds_when_asked_for_an_earlier_position() -> None:
    events = [_event(n) for n in range(10)]
    engaged = _event(10, "killswitch.engaged", {"scope": "global", "reason": "r"})
    events.append(engaged)
    events += [_event(n) for n in range(11, 15)]
    fold = LogFold("acme", lambda a, b: iter(events[a:b]))
    for event in events:
        fold.offer(event)
    assert "global" in fold.at(12).switches
    state: Controls = fold.at(5)  # behind the fold: rebuilt from the start
    assert state.position == 5
    assert state.switches == {}
    assert fold.rebuilds == 1
    assert "global" in fold.at(15).switches
    with pytest.raises(LedgerCorrupt, match="has only"):
        fold.at(99)


def test_a_reused_key_cannot_even_be_stored(tmp_path: Path) -> None:
    from exoarmur.errors import StoreError

    with pytest.raises(StoreError, match="appears twice in one append"):
        forged(tmp_path, _key_reused)
