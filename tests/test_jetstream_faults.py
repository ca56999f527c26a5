"""JetStream under faults, on a real NATS server of this module's own that is killed for real.

The server is SIGKILLed during a stream of appends, frozen with SIGSTOP, and
restarted; an ExoArmur process is SIGKILLed mid-stream of thousands of
submissions; every submission is delivered twice, across a restart; two
processes append to one tenant and one of them is SIGKILLed. Acknowledged
means present exactly once; an outage means a fast ``StoreUnavailable``,
never a hang and never a false success; the same store object goes on once
the server is back.

Also here: what only JetStream has (URLs, the stream's fitness, messages too
large for one publish, a writer that died between its publish and its
indexes, leader reads, the lease-based run lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from children import whole_lines
from exoarmur.clock import SystemClock
from exoarmur.errors import (
    ConfigError,
    Conflict,
    DuplicateIntent,
    LedgerCorrupt,
    StoreError,
    StoreUnavailable,
)
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.home import Home, _run_lock, open_store
from exoarmur.ids import RandomIds
from exoarmur.ledger.jetstream import JetStreamStore, Layout, RunLock, chunking, subject_token
from exoarmur.ledger.jetstream.settings import parse_url, redact
from exoarmur.ledger.jetstream.store import Raced
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.store import LedgerStore
from exoarmur.model.event import SYSTEM_LOG, EventDraft, intent_key
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import replay
from samples import POLICY

if TYPE_CHECKING:
    from backends import JetStreamBackend, LocalNats

pytest_plugins = ["backends"]

TESTS_DIR = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY_SEED = bytes(range(64, 96))
KEY = SigningKey.from_seed("faults.exoarmur/log", KEY_SEED)


def draft(
    n: int,
    tenant: str = "acme",
    *,
    event_id: str | None = None,
    key: str | None = None,
    intent: str | None = None,
    type: str = "test.event",
    payload: dict[str, Any] | None = None,
) -> EventDraft:
    return EventDraft(
        event_id=event_id or f"ev-{tenant}-{n}",
        tenant=tenant,
        type=type,
        correlation_id=f"corr-{n % 3}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n} if payload is None else payload,
        intent_id=intent,
        idempotency_key=key,
    )


#: how much longer than on an idle machine a wait for progress may take: on a
#: loaded two-core machine work is slower, never wrong; only a hang should fail
PATIENCE = 4


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def db(private_nats: LocalNats) -> Iterator[JetStreamBackend]:
    with private_nats.ledger() as made:
        yield made


def verified(store: LedgerStore, tenant: str = "acme") -> None:
    events = list(store.events(tenant))
    assert [e.seq for e in events] == list(range(store.size(tenant)))
    assert len({e.event_id for e in events}) == len(events)
    ledger = Ledger(store, KEY)
    ledger.checkpoint(tenant)
    verification = ledger.verify(tenant)
    assert verification.ok, verification.problems


def messages_of(server: LocalNats, stream: str, tenant: str) -> int:
    """How many messages the ledger stream holds for one tenant."""

    async def count(nc: Any) -> int:
        info = await nc.jetstream().stream_info(stream, subjects_filter=Layout(stream).subjects)
        return int((info.state.subjects or {}).get(Layout(stream).subject(tenant), 0))

    return server.admin(count)


# -- URLs, names and the stream ------------------------------------------------------


def test_urls_name_servers_stream_and_options() -> None:
    parse = parse_url
    settings = parse("nats://me:s3cret@a.example:4223,b.example?stream=LEDGER&replicas=3")
    assert settings.servers == (
        "nats://me:s3cret@a.example:4223",
        "nats://me:s3cret@b.example:4222",
    )
    assert settings.where == "JetStream at a.example:4223,b.example:4222 (stream LEDGER)"
    assert (settings.stream, settings.replicas, settings.reads) == ("LEDGER", 3, "leader")
    plain = parse("nats://localhost", timeout=1.5)
    assert (plain.stream, plain.replicas, plain.reads, plain.timeout) == (
        "EXOARMUR",
        1,
        "direct",
        1.5,
    )
    assert parse("nats://h?creds=/etc/x.creds&reads=leader").creds == "/etc/x.creds"
    for url, message in (
        ("postgresql://x", "not a nats:// URL"),
        ("nats://", "needs a host"),
        ("nats://h?stream=a.b", "stream name"),
        ("nats://h?replicas=7", "replicas must be 1 to 5"),
        ("nats://h?replicas=two", "replicas='two' is not valid"),
        ("nats://h?timeout=0", "timeouts must be positive"),
        ("nats://h?reads=nearest", "reads must be"),
        ("nats://h?bogus=1", "unknown nats:// option 'bogus'"),
        ("nats://h:99999", "is not host:port"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse(url)
    with pytest.raises(ConfigError, match="stream is 'A' in the call and 'B' in the URL"):
        JetStreamStore("nats://h?stream=B", stream="A")
    assert redact("nats://me:s3cret@h:4222") == "nats://me:***@h:4222"
    assert redact("nats://h:4222") == "nats://h:4222"


def test_subject_tokens_keep_every_name_apart() -> None:
    assert subject_token("acme") == "acme"
    assert subject_token(SYSTEM_LOG) == "_system"  # already safe for subjects and keys
    odd = ["intent.recorded", "a b", "ünï", "=3d", "*", ">", "x" * 127 + "."]
    tokens = [subject_token(name) for name in odd]
    assert all(token.startswith("=") and "." not in token for token in tokens)
    assert len(set(tokens)) == len(odd)
    layout = Layout("EXOARMUR")
    assert layout.subject(SYSTEM_LOG) == "exoarmur._system.events"
    assert [layout.tenant_of(layout.subject(name)) for name in odd] == odd
    long = subject_token("k" * 129)  # looked up by its hash, never listed
    assert long.startswith("==")
    assert len(long) == 66


def test_home_opens_nats_urls_and_their_run_lock(db: JetStreamBackend, tmp_path: Path) -> None:
    store = db.adopt(open_store(db.spec, tmp_path / "unused.db"))
    assert isinstance(store, JetStreamStore)
    lock = _run_lock(Home(tmp_path, db.spec))
    assert isinstance(lock, RunLock)


def test_an_unreachable_server_fails_fast_and_hides_the_password() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailable, match=f"cannot connect to JetStream at 127.0.0.1:{port}"
    ) as caught:
        JetStreamStore(f"nats://me:s3cret-pw@127.0.0.1:{port}", connect_timeout=1)
    assert "s3cret-pw" not in str(caught.value)
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        RunLock(f"nats://127.0.0.1:{port}").acquire()
    assert time.monotonic() - started < 5


def test_a_stream_unfit_for_a_ledger_is_refused(private_nats: LocalNats) -> None:
    from nats.js import api

    name = private_nats.stream_name()
    # A second name for the second stream: deleting a stream and adding another under
    # its name at once can meet a server still removing the first (a 500 when busy).
    lossy_name = private_nats.stream_name()
    unfit = api.StreamConfig(
        name=name,
        subjects=[Layout(name).subjects],
        storage=api.StorageType.MEMORY,
        max_age=3600.0,
        allow_direct=True,
    )
    private_nats.admin(lambda nc: nc.jetstream().add_stream(unfit))
    try:
        with pytest.raises(StoreUnavailable, match="cannot hold a ledger safely") as caught:
            JetStreamStore(private_nats.url(name))
        for problem in ("storage is not file", "max_age is set", "deny_delete is off"):
            assert problem in str(caught.value)
        lossy = api.StreamConfig(
            name=lossy_name,
            subjects=[Layout(lossy_name).subjects],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.WORK_QUEUE,
            max_msgs=10,
            max_msgs_per_subject=5,
            no_ack=True,
            persist_mode=api.PersistMode.ASYNC,
        )
        private_nats.admin(lambda nc: nc.jetstream().add_stream(lossy))
        with pytest.raises(StoreUnavailable, match="cannot hold a ledger safely") as caught:
            JetStreamStore(private_nats.url(lossy_name))
        for problem in (
            "retention is not limits",
            "max_msgs is set",
            "max_msgs_per_subject is 5",
            "no_ack is set",
            "persist_mode is async",
        ):
            assert problem in str(caught.value)
        # three replicas on a single server: JetStream cannot place them
        with pytest.raises(StoreUnavailable, match="cannot create stream"):
            JetStreamStore(private_nats.url(private_nats.stream_name()) + "&replicas=3")
    finally:
        private_nats.drop(name)
        private_nats.drop(lossy_name)
    with private_nats.ledger() as made:
        made.open().close()  # one replica
        with pytest.raises(StoreUnavailable, match="1 replicas, the URL asks for 2"):
            JetStreamStore(made.spec + "&replicas=2")


# -- writes ------------------------------------------------------------------------


def test_an_append_larger_than_a_message_is_one_atomic_batch(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.open()
    assert isinstance(store, JetStreamStore)
    bulky = [draft(n, payload={"n": n, "pad": "x" * 700}) for n in range(3000)]
    written = store.append("acme", bulky)
    assert [e.seq for e in written] == list(range(3000))
    assert messages_of(db.server, db.stream, "acme") >= 3  # more than one message, one publish
    assert store.commits == 1
    verified(store)

    # A group that would need more messages than one batch may hold waits for the
    # next publish; one append that alone needs more is refused.
    monkeypatch.setattr(chunking, "MAX_BATCH_MESSAGES", 2)
    # 60 000 bytes of headers hold 1363 leaf hashes: two full messages, then one more
    two, one = (
        [draft(n) for n in range(first, first + count)]
        for first, count in ((3000, 2726), (5726, 10))
    )

    async def together() -> list[Any]:
        return await asyncio.gather(
            store._submit("acme", two, None), store._submit("acme", one, None)
        )

    before = store.commits
    first, second = store._runtime.run(together(), 60, "test")
    assert (first[0].seq, second[0].seq) == (3000, 5726)
    assert store.commits == before + 2
    with pytest.raises(StoreError, match="needs more than 2 messages"):
        store.append("acme", [draft(n) for n in range(6000, 10000)])
    assert store.size("acme") == 5736
    verified(store)


def test_refusals_stay_with_their_append(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.open()
    with pytest.raises(StoreError, match="more than one message"):
        store.append("acme", [draft(0, payload={"pad": "x" * 1_000_000})])
    with pytest.raises(StoreError, match="more than the 4096"):
        store.append("acme", [draft(0, key="k" * 5000)])
    with pytest.raises(StoreError, match="too long for JetStream"):
        store.append("t" * 300, [draft(0, tenant="t" * 300)])
    long_names = draft(0, event_id="e" * 5000, intent="i" * 5000, key="k" * 4000)
    assert store.append("acme", [long_names])[0].seq == 0
    assert store.intent_for_key("acme", "k" * 4000) == "i" * 5000
    assert [e.seq for e in store.events_for_intent("acme", "i" * 5000)] == [0]
    with pytest.raises(StoreError, match="cannot be recorded"):
        store.append("acme", [draft(0, payload={"x": float("nan")})])
    monkeypatch.setattr(chunking, "MAX_APPEND_EVENTS", 3)
    with pytest.raises(StoreError, match="more than the 3 one append"):
        store.append("acme", [draft(n) for n in range(4)])
    monkeypatch.setattr(chunking, "MAX_APPEND_PAYLOADS", 1)
    with pytest.raises(StoreError, match="bytes is more than one append"):
        store.append("acme", [draft(n, payload={"pad": "p" * 400_000}) for n in range(3)])
    assert store.size("acme") == 1
    assert store.append("acme", [draft(1)])[0].seq == 1
    verified(store)


def test_a_writer_that_died_before_indexing_is_caught_up(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying = db.open()
    assert isinstance(dying, JetStreamStore)

    async def died(*args: Any) -> None:
        """The process ends between the acknowledgement and the index writes."""

    monkeypatch.setattr(dying, "_index", died)
    dying.append("acme", [draft(0)])
    dying.append(
        "acme",
        [
            draft(1, key="k", intent="i-1", type="intent.recorded"),
            draft(2, intent="i-1", type="execution.started"),
        ],
    )
    others = db.open(), db.open(), db.open(), db.open()
    assert others[0].size("acme") == 3
    assert others[0].intent_for_key("acme", "k") == "i-1"
    assert [e.seq for e in others[1].events_for_intent("acme", "i-1")] == [1, 2]
    assert others[1].unfinished_executions("acme") == ["i-1"]
    found = others[2].event_by_id("acme", "ev-acme-2")
    assert found is not None
    assert found.seq == 2
    assert [e.seq for e in others[3].events("acme", 1)] == [1, 2]
    assert others[3].append("acme", [draft(3)])[0].seq == 3
    # the dead writer's own next append loses the race to its stale tip, catches up, goes on
    monkeypatch.undo()
    assert dying.append("acme", [draft(4)])[0].seq == 4
    verified(others[0])
    assert others[0].integrity_check() == "ok"


def test_an_index_write_that_fails_after_the_publish_still_acknowledges(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.open()
    assert isinstance(store, JetStreamStore)
    project = store._project
    calls = []

    async def flaky(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise StoreUnavailable("the connection dropped after the acknowledgement")
        await project(*args)

    monkeypatch.setattr(store, "_project", flaky)
    (event,) = store.append("acme", [draft(0, intent="i-1")])  # durable, so acknowledged
    assert event.seq == 0
    assert [e.seq for e in store.events_for_intent("acme", "i-1")] == [0]  # caught up
    assert store.append("acme", [draft(1)])[0].seq == 1
    verified(store)


def test_a_writer_asks_the_indexes_nothing_of_the_log_it_indexed_itself(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.open()
    assert isinstance(store, JetStreamStore)
    recorded, started = "intent.recorded", "execution.started"
    store.append("acme", [draft(0, key="k-0", intent="i-0", type=recorded)])
    store.append("acme", [draft(1, intent="i-0", type=started)], expect=("i-0", 0))
    assert [e.seq for e in store.events_for_intent("acme", "i-0")] == [0, 1]  # indexed
    asked: list[str] = []
    get_many, scan = store._kv.get_many, store._kv.scan

    async def counted_get(bucket: str, keys: Any, **options: Any) -> Any:
        asked.append(f"get {bucket}")
        return await get_many(bucket, keys, **options)

    async def counted_scan(bucket: str, keys: str, **options: Any) -> Any:
        asked.append(f"scan {bucket}")
        return await scan(bucket, keys, **options)

    monkeypatch.setattr(store._kv, "get_many", counted_get)
    monkeypatch.setattr(store._kv, "scan", counted_scan)
    for n in range(2, 8):
        intent = f"i-{n}"
        (first,) = store.append(
            "acme", [draft(n, key=f"k-{n}", intent=intent, type=recorded)], expect=(intent, -1)
        )
        store.append(
            "acme", [draft(100 + n, intent=intent, type=started)], expect=(intent, first.seq)
        )
    with pytest.raises(DuplicateIntent):
        store.append("acme", [draft(50, key="k-3", intent="i-50", type=recorded)])
    with pytest.raises(StoreError, match="already recorded"):
        store.append("acme", [draft(3, key="k-new", intent="i-new", type=recorded)])
    with pytest.raises(Conflict, match="last event 5, expected 4"):
        store.append("acme", [draft(51, intent="i-3", type=started)], expect=("i-3", 4))
    # keys, event ids and intents' last events all came from what the store indexed
    assert [a for a in asked if not a.endswith(store.layout.tree)] == []
    assert store.size("acme") == 14
    verified(store)


def test_losing_every_race_gives_up_in_bounded_time(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.adopt(JetStreamStore(db.spec, timeout=0.2))

    async def always_raced(*args: Any) -> int:
        raise Raced

    monkeypatch.setattr(store, "_publish", always_raced)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="kept losing the race"):
        store.append("acme", [draft(0)])
    assert time.monotonic() - started < 3


def test_missing_tree_nodes_fail_the_append_not_the_store(db: JetStreamBackend) -> None:
    store = db.open()
    store.append("acme", [draft(n) for n in range(4)])
    layout = Layout(db.stream)
    node = Layout.kv_subject(layout.tree, "acme.n.2.0")
    db.server.admin(lambda nc: nc.request(node, b"", headers={"KV-Operation": "DEL"}))
    fresh = db.open()  # no cached frontier: it must read the nodes
    with pytest.raises(StoreError, match=r"ledger append failed.*no hash for tree node"):
        fresh.append("acme", [draft(4)])
    assert fresh.size("acme") == 4
    assert "no hash for tree node (level 2, index 0)" in fresh.integrity_check()


def test_a_foreign_message_on_a_tenant_subject_is_corruption(db: JetStreamBackend) -> None:
    store = db.open()
    store.append("acme", [draft(0)])
    subject = Layout(db.stream).subject("acme")
    db.server.admin(lambda nc: nc.jetstream().publish(subject, b"not a ledger message"))
    with pytest.raises(LedgerCorrupt, match="is not a ledger message"):
        store.size("acme")
    assert "is not a ledger message" in store.integrity_check()


def test_a_gap_in_a_tenant_log_is_corruption(db: JetStreamBackend) -> None:
    import base64

    writer = db.open()
    writer.append("acme", [draft(0)])
    subject = Layout(db.stream).subject("acme")
    skipping = {
        "Exo-Seq": "5",
        "Exo-Count": "1",
        "Exo-Leaves": base64.b64encode(bytes(32)).decode(),
    }
    db.server.admin(lambda nc: nc.jetstream().publish(subject, b"{}", headers=skipping))
    reader = db.open()
    assert reader.size("acme") == 6  # what the last message claims
    with pytest.raises(
        LedgerCorrupt, match=r"message \d+ starts at seq 5, the log before it ends at 1"
    ):
        reader.events_for_intent("acme", "i-1")
    with pytest.raises(StoreError, match=r"ledger append failed.*starts at seq 5"):
        writer.append("acme", [draft(1)])
    doubled = {"Exo-Seq": "0", "Exo-Count": "2", "Exo-Leaves": base64.b64encode(bytes(32)).decode()}
    other = Layout(db.stream).subject("globex")
    db.server.admin(lambda nc: nc.jetstream().publish(other, b"{}", headers=doubled))
    with pytest.raises(LedgerCorrupt, match="says 2 events from seq 0, and holds 1 lines"):
        list(db.open().events("globex"))


def test_a_key_claimed_for_two_intents_is_corruption(
    db: JetStreamBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = db.open()

    async def died(*args: Any) -> None:
        """Never indexed."""

    monkeypatch.setattr(writer, "_index", died)
    writer.append("acme", [draft(0, key="k", intent="i-1")])
    forged = Layout.kv_subject(Layout(db.stream).keys, "acme.k")
    db.server.admin(lambda nc: nc.request(forged, b"i-forged"))
    with pytest.raises(LedgerCorrupt, match="recorded for two intents"):
        db.open().intent_for_key("acme", "k")


def test_leader_reads_give_the_same_answers(db: JetStreamBackend) -> None:
    direct = db.open()
    leader = db.adopt(JetStreamStore(db.spec, reads="leader"))
    ledger = Ledger(leader, KEY)
    for n in range(13):
        (direct if n % 2 else leader).append(
            "acme", [draft(n, intent=f"i-{n % 4}", key=f"k-{n}", type=f"t.{n % 2}")]
        )
    leader.append(SYSTEM_LOG, [draft(0, tenant=SYSTEM_LOG)])
    assert leader.size("acme") == 13
    assert [e.seq for e in leader.events("acme", 4, 9)] == [4, 5, 6, 7, 8]
    assert leader.tenants() == [SYSTEM_LOG, "acme"]
    assert leader.intent_for_key("acme", "k-5") == "i-1"
    assert [e.seq for e in leader.events_for_intent("acme", "i-1")] == [1, 5, 9]
    assert [e.seq for e in leader.events_for_correlation("acme", "corr-2")] == [2, 5, 8, 11]
    latest = leader.latest_of_type("acme", "t.1")
    assert latest is not None
    assert latest.seq == 11
    root = ledger.root("acme")
    assert all(ledger.inclusion("acme", seq, 13).verify(root) for seq in range(13))
    verified(leader)
    assert leader.latest_checkpoint("acme") == direct.latest_checkpoint("acme")


def test_a_closed_store_refuses_reads_and_writes(db: JetStreamBackend) -> None:
    store = JetStreamStore(db.spec)
    with store:
        store.append("acme", [draft(0)])
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append("acme", [draft(1)])
    with pytest.raises(StoreError, match="closed"):
        store.size("acme")
    assert store.append("acme", []) == []


def test_the_run_lock_lets_one_governor_recover_across_machines(db: JetStreamBackend) -> None:
    def lock() -> RunLock:
        return RunLock(db.spec, lease=1.0, poll=0.05)

    first, second, third = lock(), lock(), lock()
    try:
        assert first.acquire()  # alone: may recover
        seen: list[bool] = []
        waiting = threading.Thread(target=lambda: seen.append(second.acquire()))
        waiting.start()
        time.sleep(0.3)
        assert seen == []  # a starting governor waits while the first one recovers
        first.share()
        waiting.join(timeout=10)
        assert seen == [False]
        assert not third.acquire()  # others run: not alone, may not recover
    finally:
        for done in (first, second, third):
            done.release()
    alone = lock()
    assert alone.acquire()  # the others left: alone again
    alone.share()
    crashed = alone

    async def die() -> None:  # no goodbye: the lease just stops being renewed
        assert crashed._beating is not None
        crashed._beating.cancel()
        await crashed._link.close()

    crashed._run(die(), "test")
    crashed.release()
    early = lock()
    try:
        assert not early.acquire()  # the dead governor's lease still looks live
    finally:
        early.release()
    time.sleep(0.6)  # 2.5 renewals missed: it is dead
    late = lock()
    try:
        assert late.acquire()
    finally:
        late.release()


# -- the server killed, frozen, restarted -------------------------------------------------


def test_a_server_restart_between_calls_goes_unnoticed(
    private_nats: LocalNats, db: JetStreamBackend
) -> None:
    with JetStreamStore(db.spec) as store:
        store.append("acme", [draft(0)])
        private_nats.kill()
        private_nats.start()
        # The connection died while idle; nothing was in flight, so the first
        # call after the restart simply goes through on a new one.
        assert store.size("acme") == 1
        assert store.append("acme", [draft(1)])[0].seq == 1
        verified(store)


def test_an_outage_fails_each_call_at_once(private_nats: LocalNats, db: JetStreamBackend) -> None:
    store = db.adopt(JetStreamStore(db.spec, reconnect_backoff=(5.0, 5.0)))
    store.append("acme", [draft(0)])
    private_nats.kill()
    try:
        started = time.monotonic()
        seen: list[str] = []
        while not seen or "cannot connect to" not in seen[-1]:
            # (a call may still find the connection open, the loss not yet read)
            with pytest.raises(StoreUnavailable) as caught:
                store.size("acme")
            seen.append(str(caught.value))
            assert len(seen) <= 3, seen
        assert all("lost the connection" in m for m in seen[:-1]), seen
        with pytest.raises(StoreUnavailable, match=r"is unreachable .*next attempt in [45]\.\ds"):
            store.size("acme")  # within the pause: no attempt at all
        with pytest.raises(StoreUnavailable, match="is unreachable"):
            store.append("acme", [draft(1)])
        assert time.monotonic() - started < 2
    finally:
        private_nats.start()


def test_a_frozen_server_times_out_and_a_dying_one_fails_at_once(
    private_nats: LocalNats, db: JetStreamBackend
) -> None:
    quick = db.adopt(JetStreamStore(db.spec, timeout=0.3))
    patient = db.adopt(JetStreamStore(db.spec, timeout=30))
    quick.append("acme", [draft(0)])
    os.kill(private_nats.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"did not answer a ledger read within 0\.3s"):
            quick.size("acme")
        assert time.monotonic() - started < 2
        failed: list[BaseException] = []

        def wait_for_answer() -> None:
            try:
                patient.append("acme", [draft(1)])
            except StoreError as exc:
                failed.append(exc)

        waiting = threading.Thread(target=wait_for_answer)
        waiting.start()
        time.sleep(0.3)
        started = time.monotonic()
        private_nats.kill()  # the request in flight fails now, not at its 30 s timeout
        waiting.join(timeout=10)
        assert time.monotonic() - started < 3
        assert len(failed) == 1
        assert isinstance(failed[0], StoreUnavailable)
        assert "lost the connection" in str(failed[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(private_nats.pid, signal.SIGCONT)  # if a failure above left it frozen
        private_nats.kill()
        private_nats.start()
    assert patient.size("acme") == 1
    verified(patient)


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_append(
    private_nats: LocalNats, db: JetStreamBackend
) -> None:
    server = private_nats
    store = db.adopt(
        JetStreamStore(db.spec, timeout=1.0, connect_timeout=1.0, reconnect_backoff=(0.02, 0.5))
    )
    acked: dict[str, int] = {}
    attempted: list[str] = []
    failures: list[tuple[float, BaseException]] = []
    stop = threading.Event()

    def stream(name: str) -> None:
        n = 0
        while not stop.is_set():
            one = draft(n, event_id=f"{name}-{n}")
            n += 1
            attempted.append(one.event_id)
            started = time.monotonic()
            try:
                (event,) = store.append("acme", [one])
            except StoreError as exc:
                failures.append((time.monotonic() - started, exc))
                time.sleep(0.005)
            else:
                acked[one.event_id] = event.seq

    # Three appenders, so that the kill lands on group-committed messages too.
    writers = [threading.Thread(target=stream, args=(f"w{t}",)) for t in range(3)]
    for writer in writers:
        writer.start()
    try:
        wait_until(lambda: len(acked) >= 600, 30, "600 appends before the kill")
        server.kill()
        at_kill = len(acked)
        wait_until(lambda: len(failures) >= 30, 30, "appends to fail during the outage")
        time.sleep(0.3)  # an outage of a while: every call in it fails, none succeeds
        # (the appends whose acknowledgement was on its way as the kill landed count)
        assert len(acked) <= at_kill + len(writers)
        during_outage = len(failures)
        with pytest.raises(StoreUnavailable):
            store.size("acme")  # reads fail fast too
        server.start()
        wait_until(lambda: len(acked) >= at_kill + 600, 30, "the same store to go on")
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert not any(writer.is_alive() for writer in writers)

    assert during_outage >= 30
    slowest = max(took for took, _ in failures)
    assert slowest < 3.0, f"an append took {slowest:.1f}s to fail: not fast"
    assert all(isinstance(exc, StoreUnavailable) for _, exc in failures)
    messages = {str(exc) for _, exc in failures}
    kinds = ("lost the connection", "cannot connect to", "is unreachable", "cannot serve")
    assert all(any(kind in m for kind in kinds) for m in messages), messages
    assert all("JetStream at 127.0.0.1" in m for m in messages)
    assert any("next attempt in" in m for m in messages)  # the backoff is said, not hidden

    stored = Counter(e.event_id for e in store.events("acme"))
    assert max(stored.values()) == 1
    for event_id, seq in acked.items():
        found = store.event_by_id("acme", event_id)
        assert found is not None, f"acknowledged {event_id} lost"
        assert found.seq == seq
    assert set(stored) <= set(attempted)
    verified(store)


# -- ExoArmur processes killed ----------------------------------------------------------

SUBMITTER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from exoarmur.clock import SystemClock
    from exoarmur.executors import EchoExecutor, ExecutorRegistry
    from exoarmur.ids import RandomIds
    from exoarmur.ledger.jetstream import JetStreamStore
    from exoarmur.ledger.keys import SigningKey
    from exoarmur.ledger.log import Ledger
    from exoarmur.pipeline import Governor
    from exoarmur.policy import PolicyBundle, PolicyEngine
    from samples import POLICY

    url, seed, name, keys, rounds = sys.argv[2:7]
    key = SigningKey.from_seed("faults.exoarmur/log", bytes.fromhex(seed))
    executors = ExecutorRegistry()
    executors.bind("demo.*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(JetStreamStore(url), key),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=SystemClock(),
        ids=RandomIds(),
    )
    n = 0
    while keys == "endless" or n < int(keys):
        ikey = f"{name}-{n}" if keys == "endless" else f"k-{n}"
        for _ in range(int(rounds)):
            outcome = governor.submit({
                "tenant": "acme",
                "actor": {"id": "agent-1", "kind": "agent"},
                "action": "demo.write" if n % 2 else "inventory.lookup",
                "target": f"item/{n}",
                "safety_class": "A0" if n % 3 else "A2",
                "idempotency_key": ikey,
            })
            status = outcome.status.value
            print("ACK", ikey, outcome.intent_id, status, int(outcome.duplicate), flush=True)
        n += 1
    governor.close()
    """
)


def submitter(url: str, name: str, keys: str, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUBMITTER,
            str(TESTS_DIR),
            url,
            KEY_SEED.hex(),
            name,
            keys,
            str(rounds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def governor_on(url: str) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("demo.*", EchoExecutor())
    return Governor(
        ledger=Ledger(JetStreamStore(url), KEY),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=SystemClock(),
        ids=RandomIds(),
    )


def acks(line: str) -> tuple[str, str, str, bool]:
    tag, key, intent_id, status, duplicate = line.split()
    assert tag == "ACK"
    return key, intent_id, status, duplicate == "1"


def assert_each_intent_once(governor: Governor) -> Counter[tuple[str, str]]:
    per_intent = Counter(
        (e.intent_id, e.type) for e in governor.ledger.store.events("acme") if e.intent_id
    )
    for intent_id in {i for i, _ in per_intent}:
        assert per_intent[(intent_id, "intent.recorded")] == 1
        assert per_intent[(intent_id, "decision.recorded")] == 1
        assert per_intent[(intent_id, "execution.started")] <= 1
        finished = (
            per_intent[(intent_id, "execution.finished")]
            + per_intent[(intent_id, "execution.outcome_unknown")]
        )
        assert finished == per_intent[(intent_id, "execution.started")]
    return per_intent


@pytest.mark.slow
def test_a_killed_exoarmur_process_loses_no_acknowledged_intent(db: JetStreamBackend) -> None:
    # One submitter: replay re-folds control state from the log's start whenever
    # a recorded position lies behind it, which concurrent submitters cause
    # often; two processes appending at once are the next tests' business.
    child = submitter(db.spec, "c0", "endless", 1)
    acked: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()

    def read() -> None:
        assert child.stdout is not None
        for line in whole_lines(child.stdout):  # the kill may cut the last one short
            key, intent_id, status, _ = acks(line)
            with lock:
                acked[key] = (intent_id, status)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # A child that died on its own ends the wait at once, not after the timeout.
        wait_until(
            lambda: len(acked) >= 2000 or child.poll() is not None, 60, "2000 acknowledged intents"
        )
        assert child.poll() is None, "the submitter exited before it was killed"
    finally:
        child.kill()  # SIGKILL, mid-stream
        child.wait(timeout=30)
        reader.join(timeout=30)
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -9

    with governor_on(db.spec) as governor:  # "restart"
        governor.recover()  # an execution cut short becomes outcome_unknown
        store = governor.ledger.store
        assert store.unfinished_executions("acme") == []
        for key, (intent_id, _) in acked.items():
            assert store.intent_for_key("acme", intent_key("agent-1", key)) == intent_id
        for key in sorted(acked)[::10]:
            intent_id, status = acked[key]
            assert governor.outcome("acme", intent_id).status.value == status
        per_intent = assert_each_intent_once(governor)
        assert len({i for i, _ in per_intent}) >= len(acked)
        verified(store)
        assert store.integrity_check() == "ok"
        report = replay(store, "acme", verifier=KEY.verifier())
        assert report.verified, report.divergences[:3]
        assert report.intents >= len(acked)


@pytest.mark.slow
def test_every_submission_twice_across_a_restart_doubles_no_count(
    private_nats: LocalNats, db: JetStreamBackend
) -> None:
    intents = 150
    # Two processes deliver the same intents at once, each of them twice.
    children = [submitter(db.spec, f"d{c}", str(intents), 2) for c in range(2)]
    first: dict[str, set[str]] = {}
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        for line in out.splitlines():
            key, intent_id, _, _ = acks(line)
            first.setdefault(key, set()).add(intent_id)
    assert len(first) == intents
    assert all(len(ids) == 1 for ids in first.values()), "one key, two intents"
    with JetStreamStore(db.spec) as store:
        size = store.size("acme")
        recorded = Counter(e.type for e in store.events("acme"))
    assert recorded["intent.recorded"] == intents

    private_nats.kill()  # and the delivery after the crash is a duplicate too
    private_nats.start()
    with governor_on(db.spec) as governor:
        for n in range(intents):
            outcome = governor.submit(
                {
                    "tenant": "acme",
                    "actor": {"id": "agent-1", "kind": "agent"},
                    "action": "demo.write" if n % 2 else "inventory.lookup",
                    "target": f"item/{n}",
                    "safety_class": "A0" if n % 3 else "A2",
                    "idempotency_key": f"k-{n}",
                }
            )
            assert outcome.duplicate
            assert {outcome.intent_id} == first[f"k-{n}"]
        after = governor.ledger.store
        assert after.size("acme") == size
        assert Counter(e.type for e in after.events("acme")) == recorded
        assert_each_intent_once(governor)
        executed = sum(1 for n in range(intents) if n % 2 and n % 3)
        assert recorded["execution.finished"] == executed
        verified(after)


APPENDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    from exoarmur.ledger.jetstream import JetStreamStore
    from exoarmur.model.event import EventDraft, intent_key

    url, name = sys.argv[1], sys.argv[2]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    store = JetStreamStore(url)
    i = 0
    while True:
        drafts = [
            EventDraft(
                event_id=f"{name}-{i}-{j}", tenant="acme", type="test.event",
                correlation_id=name, event_time=at, process_time=at,
                actor={"id": name, "kind": "system"}, payload={"i": i, "j": j},
            )
            for j in range(1 + i % 3)
        ]
        events = store.append("acme", drafts)
        print(" ".join(f"{e.event_id}={e.seq}" for e in events), flush=True)
        i += 1
    """
)


@pytest.mark.slow
def test_two_processes_append_one_is_killed_and_the_tree_stays_one(
    db: JetStreamBackend,
) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, db.spec, name],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("p0", "p1")
    ]
    reported: dict[str, int] = {}
    lines: Counter[str] = Counter()
    lock = threading.Lock()

    def read(name: str, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in whole_lines(child.stdout):  # the kill may cut the last one short
            with lock:
                lines[name] += 1
                for pair in line.split():
                    event_id, position = pair.split("=")
                    reported[event_id] = int(position)

    readers = [
        threading.Thread(target=read, args=(name, child))
        for name, child in zip(("p0", "p1"), children, strict=True)
    ]
    for reader in readers:
        reader.start()
    try:
        wait_until(
            lambda: (
                (lines["p0"] >= 300 and lines["p1"] >= 300)
                or any(child.poll() is not None for child in children)
            ),
            60,
            "both appending",
        )
        assert all(child.poll() is None for child in children), "an appender exited by itself"
        children[0].kill()  # SIGKILL, perhaps between a publish and its indexes
        children[0].wait(timeout=30)
        at_kill = lines["p1"]
        wait_until(lambda: lines["p1"] >= at_kill + 300, 60, "the survivor to go on")
    finally:
        for child in children:
            child.kill()
            child.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
        for child in children:
            assert child.stdout is not None
            child.stdout.close()

    store = db.open()
    events = list(store.events("acme"))
    assert [e.seq for e in events] == list(range(len(events)))  # no gap, nothing twice
    stored = {e.event_id: e.seq for e in events}
    assert len(stored) == len(events)
    for event_id, seq in reported.items():
        assert stored[event_id] == seq  # every acknowledged position is the stored one
    # each append stayed whole and contiguous, acknowledged or not
    appends: dict[str, list[int]] = {}
    for event in events:
        name, i, _ = event.event_id.split("-")
        appends.setdefault(f"{name}-{i}", []).append(event.seq)
    for key, seqs in appends.items():
        i = int(key.split("-")[1])
        assert seqs == list(range(seqs[0], seqs[0] + 1 + i % 3)), key
    verified(store)
    assert store.integrity_check() == "ok"
