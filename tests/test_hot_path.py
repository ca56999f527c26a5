"""The hot path: bytes made once, and a writer that reads back nothing it already knows."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from exoarmur.clock import StepClock
from exoarmur.encoding import canonical_bytes, content_hash
from exoarmur.executors import ExecutorRegistry
from exoarmur.executors.builtin import EchoExecutor
from exoarmur.executors.guard import guard
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import EventDraft, event_bytes, event_parts, event_record
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

T0 = datetime(2026, 1, 1, tzinfo=UTC)

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    payload=st.dictionaries(st.text(), _json, max_size=5),
    text=st.text(min_size=1),
    seq=st.integers(0, 2**40),
    intent_id=st.none() | st.text(min_size=1),
    micros=st.integers(0, 10**12),
)
def test_bytes_joined_around_the_seq_are_the_canonical_bytes(
    payload: dict[str, Any], text: str, seq: int, intent_id: str | None, micros: int
) -> None:
    at = T0 + timedelta(microseconds=micros)
    draft = EventDraft(
        event_id=text,
        tenant=text,
        type=text,
        correlation_id=text,
        event_time=at,
        process_time=at,
        actor={"id": text, "kind": "agent"},
        payload=payload,
        intent_id=intent_id,
    )
    assert event_bytes(draft, seq) == canonical_bytes(event_record(draft, seq))
    head, tail = event_parts(draft)
    assert head.startswith(b"{")
    assert tail.endswith(b"}")


def _draft(n: int) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{n}",
        tenant="acme",
        type="test.event",
        correlation_id="c",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
        idempotency_key=f"key {n}",
        intent_id=f"intent-{n}",
    )


def test_the_writer_reads_no_tree_size_while_no_one_else_commits(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "l.db") as store:
        statements: list[str] = []
        store._writer_conn.set_trace_callback(statements.append)
        for n in range(5):
            store.append("acme", [_draft(n)])
        reads = [s for s in statements if "FROM trees" in s]
        assert len(reads) == 1  # the first touch of the tenant, never again
        # one transaction per append here: BEGIN, version, key check, 2 inserts, size, COMMIT
        assert len(statements) <= 5 * 8

        # Another connection commits: the writer notices and reads the size again.
        with sqlite3.connect(store.path) as other:
            other.execute("INSERT INTO checkpoints (tenant, size, note) VALUES ('x', 0, 'n')")
        statements.clear()
        store.append("acme", [_draft(9)])
        assert [s for s in statements if "FROM trees" in s] != []
        assert store.size("acme") == 6


def test_the_guard_hashes_a_result_from_its_one_serialization() -> None:
    intent = ActionIntent.from_canonical(
        {
            "intent_id": "01J00000000000000000000000",
            "tenant": "acme",
            "actor": {"id": "a", "kind": "agent"},
            "action": "x.y",
            "target": "t",
            "params": {"p": 1},
            "safety_class": "A0",
            "idempotency_key": "k",
            "correlation_id": "c",
            "event_time": "2026-01-01T00:00:00Z",
        }
    )
    result, digest = guard(EchoExecutor()).call(intent)
    assert digest == content_hash(result)


def test_one_batch_checks_each_append_against_what_the_batch_staged(tmp_path: Path) -> None:
    from exoarmur.errors import Conflict, DuplicateIntent
    from exoarmur.ledger.batching import PendingAppend

    def event(n: int, key: str | None, intent: str, tenant: str = "acme") -> EventDraft:
        return EventDraft(
            event_id=f"ev-{n}",
            tenant=tenant,
            type="test.event",
            correlation_id="c",
            event_time=T0,
            process_time=T0,
            actor={"id": "tester", "kind": "system"},
            payload={"n": n},
            idempotency_key=key,
            intent_id=intent,
        )

    with SqliteStore(tmp_path / "l.db") as store:
        store.append("acme", [event(0, "k0", "i0")])
        batch = [
            PendingAppend("acme", [event(1, "k1", "i1")]),
            PendingAppend("acme", [event(2, "k1", "i2")]),  # k1 staged just before
            PendingAppend("acme", [event(3, None, "i1")], expect=("i1", 1)),  # staged seq
            PendingAppend("acme", [event(4, None, "i0")], expect=("i0", 3)),  # stale
            PendingAppend("acme", [event(5, "k0", "i5")]),  # recorded before the batch
            PendingAppend("other", [event(6, "k1", "i6", "other")]),  # keys are per tenant
        ]
        store._commit_batch(batch)
        errors = [type(p.error).__name__ if p.error else None for p in batch]
        assert errors == [None, "DuplicateIntent", None, "Conflict", "DuplicateIntent", None]
        assert isinstance(batch[1].error, DuplicateIntent)
        assert batch[1].error.intent_id == "i1"
        assert isinstance(batch[3].error, Conflict)
        assert [e.seq for p in batch if p.result for e in p.result] == [1, 2, 0]
        assert store.size("acme") == 3
        assert store.intent_for_key("other", "k1") == "i6"
        assert store.commits == 2


def test_one_governed_action_reads_both_sizes_at_once_and_its_key_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    calls: Counter[str] = Counter()

    def counting(name: str) -> Any:
        method = getattr(store, name)

        def counted(*args: Any) -> Any:
            calls[name] += 1
            return method(*args)

        return counted

    for name in ("size", "sizes", "intent_for_key"):
        setattr(store, name, counting(name))
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    g = Governor(
        ledger=Ledger(store, SigningKey.from_seed("hot/log", bytes(32))),
        policy=PolicyEngine(PolicyBundle.from_text("permit (principal, action, resource);")),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(5),
    )
    body = {
        "tenant": "acme",
        "actor": {"id": "agent-7", "kind": "agent"},
        "action": "fs.read",
        "target": "reports/q3.txt",
        "safety_class": "A0",
    }
    g.submit(body | {"idempotency_key": "first"})  # the log's first intent: both keys tried
    g.submit(body | {"idempotency_key": "next"})  # and its key found scoped, once per tenant
    calls.clear()
    outcome = g.submit(body | {"idempotency_key": "second"})
    assert outcome.status == OutcomeStatus.EXECUTED
    # the decision's folds and the re-check's each read the system's and the tenant's
    # size in one statement; a log whose first intent has a scoped key has no bare one
    assert calls == {"sizes": 2, "intent_for_key": 1}
    again = g.submit(body | {"idempotency_key": "second"})
    assert (again.intent_id, again.duplicate) == (outcome.intent_id, True)
    g.close()
