"""The JetStream store's pure rooms, without a server: packing events into messages, and back.

The store's behaviour end to end (atomic batches, refusals) is in
test_jetstream_faults.py against a real nats-server; these pin the packing rules
themselves, which must not depend on how a group happened to arrive.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from exoarmur.errors import LedgerCorrupt
from exoarmur.ledger.jetstream import Layout, chunking
from exoarmur.ledger.jetstream.chunking import Chunk, Stored, TooManyMessages, pack
from exoarmur.ledger.merkle import leaf_hash
from exoarmur.model.event import Event, EventDraft, event_bytes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(seq: int, *, pad: int = 0, key: str | None = None) -> Event:
    draft = EventDraft(
        event_id=f"ev-{seq}",
        tenant="acme",
        type="test.event",
        correlation_id="corr",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": seq, "pad": "x" * pad},
        intent_id=f"i-{seq}",
        idempotency_key=key,
    )
    canonical = event_bytes(draft, seq)
    return Event.at(draft, seq, canonical, leaf_hash(canonical))


def appends(sizes: list[int], *, pad: int = 0) -> list[list[tuple[Event, str | None]]]:
    found: list[list[tuple[Event, str | None]]] = []
    seq = 0
    for size in sizes:
        found.append([(event(s, pad=pad, key=f"k-{s}"), f"k-{s}") for s in range(seq, seq + size)])
        seq += size
    return found


def test_messages_hold_whole_events_in_order_within_the_byte_budget() -> None:
    groups = appends([3, 4, 2], pad=300)
    messages = pack(groups, budget=1200)
    assert len(messages) > 1
    lines = [line for chunk, _ in messages for line in chunk.lines]
    assert lines == [e.canonical for group in groups for e, _ in group]
    for chunk, _ in messages:
        assert len(chunk.data) <= 1200
        assert chunk.end == chunk.first + len(chunk.lines)
    # each append is named once, by the message it ends in
    assert [i for _, ending in messages for i in ending] == [0, 1, 2]


def test_the_header_budget_splits_messages_of_small_events() -> None:
    count = chunking.MAX_HEADER_BYTES // chunking.LEAF_HEADER_BYTES + 10
    (group,) = appends([count])
    messages = pack([[(e, None) for e, _ in group]], budget=1 << 20)
    assert [len(chunk.lines) for chunk, _ in messages] == [
        chunking.MAX_HEADER_BYTES // chunking.LEAF_HEADER_BYTES,
        10,
    ]


def test_appends_past_one_batch_wait_and_a_first_too_long_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunking, "MAX_BATCH_MESSAGES", 2)
    groups = appends([2, 2, 2], pad=300)
    messages = pack(groups, budget=1200)  # two events a message
    assert [i for _, ending in messages for i in ending] == [0, 1]
    assert sum(len(chunk.lines) for chunk, _ in messages) == 4
    with pytest.raises(TooManyMessages, match="an append of 6 events needs more than 2"):
        pack(appends([6], pad=300), budget=1200)


def test_a_message_reads_back_as_it_was_packed() -> None:
    layout = Layout("EXOARMUR")
    ((chunk, _),) = pack(appends([3]), budget=1 << 20)
    headers = chunk.headers("acme")
    stored = Stored(layout.subject("acme"), 7, headers, chunk.data)
    back = Chunk.parse(stored, layout.subject("acme"), "acme")
    assert (back.first, back.lines, back.leaves, back.keys) == (
        0,
        chunk.lines,
        chunk.leaves,
        {
            0: "k-0",
            1: "k-1",
            2: "k-2",
        },
    )
    assert back.fact(1).intent_id == "i-1"
    assert back.event(2).seq == 2
    with pytest.raises(LedgerCorrupt, match=r"is on exoarmur\.other\.events"):
        Chunk.parse(Stored("exoarmur.other.events", 7, headers, chunk.data), stored.subject, "x")
    lying = {**headers, "Exo-Count": "4"}
    with pytest.raises(LedgerCorrupt, match="says 4 events from seq 0, and holds 3 lines"):
        Chunk.parse(Stored(stored.subject, 7, lying, chunk.data), stored.subject, "acme")
    broken = {**headers, "Exo-Leaves": base64.b64encode(b"short").decode() + "!"}
    with pytest.raises(LedgerCorrupt, match="is not a ledger message"):
        Chunk.parse(Stored(stored.subject, 7, broken, chunk.data), stored.subject, "acme")
