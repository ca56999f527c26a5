"""JetStream finds events by type from its index: every event has a ``ty`` entry.

The release before indexed intents' events only, so ``events_of_type`` read
the whole log. A log that release indexed gets the missing entries once, from
the first process of this release that asks, and is never read for them again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from exoarmur.errors import StoreUnavailable
from exoarmur.ledger.jetstream import JetStreamStore, Layout, subject_token
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.model.event import EventDraft

if TYPE_CHECKING:
    from backends import JetStreamBackend, LocalNats

pytest_plugins = ["backends"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = SigningKey.from_seed("types.exoarmur/log", bytes(range(32)))
#: (intent, type) of each append: control events of no intent among intents' events
STORY = [
    (None, "policy.activated"),
    (None, "config.snapshot"),
    ("i-1", "intent.recorded"),
    ("i-1", "execution.started"),
    (None, "killswitch.engaged"),
    ("i-1", "execution.finished"),
    (None, "policy.activated"),
    ("i-2", "intent.recorded"),
]


def draft(n: int, intent: str | None, kind: str) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{n}",
        tenant="acme",
        type=kind,
        correlation_id=f"corr-{n % 3}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
        intent_id=intent,
    )


@pytest.fixture
def db(nats_server: LocalNats) -> Iterator[JetStreamBackend]:
    with nats_server.ledger() as made:
        yield made


def opened(db: JetStreamBackend) -> JetStreamStore:
    store = db.open()
    assert isinstance(store, JetStreamStore)
    return store


def log_reads(store: JetStreamStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every message of the ledger stream (not of a bucket) the store reads, by stream seq."""
    read: list[int] = []
    client, stream = store._client, store.layout.stream
    scan = client.scan

    async def counted(on: str, *args: Any, **options: Any) -> Any:
        page, more = await scan(on, *args, **options)
        if on == stream:
            read.extend(message.seq for message in page)
        return page, more

    monkeypatch.setattr(client, "scan", counted)
    return read


def write_story(store: JetStreamStore, rounds: int) -> None:
    """``rounds`` times the story, one append each: more messages than a page of a scan."""
    n = 0
    for _ in range(rounds):
        for intent, kind in STORY:
            store.append("acme", [draft(n, intent and f"{intent}-{n}", kind)])
            n += 1


def as_the_release_before(db: JetStreamBackend) -> int:
    """Remove what that release never wrote: events of no intent's ``ty`` entries, the layout.

    Purged, not deleted: the keys are as absent as if never written. How many went.
    """
    index = Layout(db.stream).index

    async def work(nc: Any) -> int:
        js = nc.jetstream()
        gone = 0
        for kind in {kind for intent, kind in STORY if intent is None}:
            subject = f"$KV.{index}.acme.ty.{subject_token(kind)}.*"
            info = await js.stream_info(f"KV_{index}", subjects_filter=subject)
            gone += len(info.state.subjects or {})
            await js.purge_stream(f"KV_{index}", subject=subject)
        await js.purge_stream(f"KV_{index}", subject=f"$KV.{index}.acme.layout")
        return gone

    return db.server.admin(work)


def test_a_log_of_the_release_before_gets_its_type_entries_once(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_story(opened(db), rounds=20)  # 160 messages: two pages of a scan

    def seqs(*kinds: str) -> list[int]:
        return [n for n in range(160) if STORY[n % 8][1] in kinds]

    assert as_the_release_before(db) == 80

    # its first reader of this release: verify sees no entry missing (it lays the log out)
    auditor = opened(db)
    assert Ledger(auditor, KEY).verify("acme").ok
    first = opened(db)
    read = log_reads(first, monkeypatch)
    policy_and_config = first.events_of_type("acme", "policy.activated", "config.snapshot")
    assert [e.seq for e in policy_and_config] == seqs("policy.activated", "config.snapshot")
    assert read == []  # the auditor laid it out already

    # laid out by the asker itself, once, reading each message once
    assert as_the_release_before(db) == 80
    asker = opened(db)
    read = log_reads(asker, monkeypatch)
    assert [e.seq for e in asker.events_of_type("acme", "config.snapshot")] == seqs(
        "config.snapshot"
    )
    assert read == list(range(1, 161))
    assert [e.seq for e in asker.events_of_type("acme", "policy.activated")] == seqs(
        "policy.activated"
    )
    assert read == list(range(1, 161))
    # and every later reader finds them in the index
    later = opened(db)
    read = log_reads(later, monkeypatch)
    assert later.events_of_type("acme", "policy.activated", "config.snapshot") == policy_and_config
    assert [e.seq for e in later.events_of_type("acme", "killswitch.engaged", stop=13)] == [4, 12]
    assert read == []
    assert later.index_problems("acme", 160) == []
    assert later.intents_with("acme", "policy.activated", ["execution.finished"]) == []


def test_an_event_left_unindexed_by_a_dead_writer_is_found_by_type(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``ty`` entry is ever missing for a durable event: a reader catches up first."""
    writer = opened(db)
    writer.append("acme", [draft(0, None, "policy.activated")])

    async def died(*args: Any) -> None:
        raise StoreUnavailable("killed after the acknowledgement, before indexing")

    monkeypatch.setattr(writer, "_project", died)
    (durable,) = writer.append("acme", [draft(1, None, "policy.activated")])
    reader = opened(db)
    assert [e.seq for e in reader.events_of_type("acme", "policy.activated")] == [0, durable.seq]


def test_a_half_written_entry_past_the_log_is_not_listed(db: JetStreamBackend) -> None:
    """Another writer's projection in flight: entries at or past the log's size wait."""
    store = opened(db)
    store.append("acme", [draft(0, None, "policy.activated")])
    index = Layout(db.stream).index
    subject = f"$KV.{index}.acme.ty.{subject_token('policy.activated')}.7"

    async def work(nc: Any) -> None:
        assert "error" not in json.loads((await nc.request(subject, b"", timeout=10)).data)

    db.server.admin(work)
    assert [e.seq for e in store.events_of_type("acme", "policy.activated")] == [0]
    assert [e.seq for e in opened(db).events_of_type("acme", "policy.activated")] == [0]
    assert opened(db).events_of_type("nobody", "policy.activated") == []
