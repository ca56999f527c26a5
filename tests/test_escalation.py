"""Escalation ladders: a quorum raised when approval has not come in time, on recorded time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from evidence_kit import governor, person, ticket
from exoarmur.approvals import Vote
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import APPROVAL_ESCALATED
from exoarmur.replay.verify import replay

LADDER = """
@id("tickets-ladder") @approval("1") @escalate_after("900") @escalate_quorum("2")
permit (principal, action == Action::"ticket.create", resource);
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(SqliteStore(tmp_path / "l.db"), SigningKey.generate("t/log"))


def test_a_vote_after_the_window_needs_the_raised_quorum_and_replay_agrees(
    ledger: Ledger,
) -> None:
    g = governor(ledger, LADDER, enforced=False)
    held = g.submit(ticket())
    assert held.status == OutcomeStatus.PENDING_APPROVAL
    g.clock.advance(timedelta(seconds=901))  # type: ignore[attr-defined]
    first = g.vote("acme", held.intent_id, person(g, "alice"), Vote.APPROVE, "ok")
    assert first.message == "1 of 2 approvals"
    kinds = [e.type for e in g.story("acme", held.intent_id)]
    assert kinds[-2:] == [APPROVAL_ESCALATED, "approval.granted"]
    second = g.vote("acme", held.intent_id, person(g, "bob"), Vote.APPROVE, "ok too")
    assert second.message == "quorum reached"
    report = replay(ledger.store, "acme")
    assert report.verified, report.to_json()
    g.close()


def test_within_the_window_one_approval_is_enough(ledger: Ledger) -> None:
    g = governor(ledger, LADDER, enforced=False)
    held = g.submit(ticket())
    assert (
        g.vote("acme", held.intent_id, person(g, "alice"), Vote.APPROVE, "ok").message
        == "quorum reached"
    )
    g.close()


def test_the_tick_records_the_rung_once_at_the_injected_time(ledger: Ledger) -> None:
    g = governor(ledger, LADDER, enforced=False)
    g.submit(ticket())
    now = g.clock.now()
    assert g.escalate_due("acme", now + timedelta(seconds=100)) == []
    (event,) = g.escalate_due("acme", now + timedelta(seconds=1000))
    assert event.payload["quorum"] == 2
    assert event.payload["from"] == 1
    assert g.escalate_due("acme", now + timedelta(seconds=2000)) == []
    (state,) = g.pending("acme")
    assert state.quorum == 2
    assert replay(ledger.store, "acme").verified
    # a rung recorded before its time is caught by replay
    early = g.drafts.for_intent(state.intent, APPROVAL_ESCALATED, dict(event.payload), at=now)
    g.state.append_one("acme", early)
    other = g.submit(ticket(idempotency_key="second"))
    forged = g.drafts.for_intent(
        g.pending("acme")[-1].intent,
        APPROVAL_ESCALATED,
        {"quorum": 2, "from": 1, "at": event.payload["at"]},
        at=now,
    )
    g.state.append_one("acme", forged)
    report = replay(ledger.store, "acme")
    assert not report.verified
    assert other.intent_id
    g.close()


def test_the_serving_loop_tick_escalates_and_releases_what_evidence_now_meets(
    ledger: Ledger,
) -> None:
    from evidence_kit import SENSOR, observation
    from exoarmur.observations import parse_observation
    from exoarmur.observations.intake import ObservationDesk
    from exoarmur.server.expiry import ExpiryLoop

    g = governor(ledger, LADDER.replace("@approval", '@evidence("observed") @approval'))
    held = g.submit(ticket({"observations": ["o1"]}))
    assert held.status == OutcomeStatus.PENDING_EVIDENCE
    loop = ExpiryLoop(g)
    assert loop.tick() == 0
    # recorded by another process (its desk does not release this governor's intents)
    other = ObservationDesk(g.state, g.drafts)
    other.record("acme", [parse_observation(observation("o1", "edr", "login.failed"))], SENSOR)
    assert loop.tick() == 1  # released: its approval is requested now
    assert g.outcome("acme", held.intent_id).status == OutcomeStatus.PENDING_APPROVAL
    g.clock.advance(timedelta(seconds=901))  # type: ignore[attr-defined]
    assert loop.tick() == 1  # the ladder's rung
    (state,) = g.pending("acme")
    assert state.quorum == 2
    assert replay(ledger.store, "acme").verified
    g.close()
