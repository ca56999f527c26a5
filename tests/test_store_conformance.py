"""One suite for every ledger store: the same facts must hold on SQLite and PostgreSQL.

Each test runs once per registered backend (see ``backends.py``). The last
ones put the governor on top and check that a deterministic scenario decides
the same and yields the same Merkle root on every backend.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from exoarmur.approvals import Vote
from exoarmur.clock import StepClock
from exoarmur.errors import Conflict, DuplicateIntent, IntentIdTaken, LedgerCorrupt, StoreError
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.merkle import Frontier, leaf_hash
from exoarmur.ledger.store import LedgerStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import (
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    INTENT_RECORDED,
    SYSTEM_LOG,
    EventDraft,
    draft_of,
    idempotency_key_of,
    intent_id_key,
    intent_key,
)
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY, intent

if TYPE_CHECKING:
    from backends import Backend, Backends

pytest_plugins = ["backends"]

TESTS_DIR = Path(__file__).resolve().parent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = SigningKey.from_seed("conformance.exoarmur/log", bytes(range(32)))


def draft(
    n: int,
    tenant: str = "acme",
    *,
    key: str | None = None,
    intent: str | None = None,
    type: str = "test.event",
    prefix: str = "ev",
) -> EventDraft:
    return EventDraft(
        event_id=f"{prefix}-{tenant}-{n}",
        tenant=tenant,
        type=type,
        correlation_id=f"corr-{n % 3}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
        intent_id=intent,
        idempotency_key=key,
    )


def rebuilt_root(store: LedgerStore, tenant: str) -> bytes:
    frontier = Frontier()
    for event in store.events(tenant):
        frontier.append(leaf_hash(event.canonical))
    return frontier.root()


def assert_one_consistent_tree(store: LedgerStore, tenant: str = "acme") -> None:
    """No gap, no duplicate, stored nodes agree with the events, the ledger verifies."""
    events = list(store.events(tenant))
    assert [e.seq for e in events] == list(range(store.size(tenant)))
    assert len({e.event_id for e in events}) == len(events)
    ledger = Ledger(store, KEY)
    assert ledger.root(tenant) == rebuilt_root(store, tenant)
    verification = ledger.verify(tenant)
    assert verification.ok, verification.problems


@pytest.fixture
def store(backend: Backend) -> LedgerStore:
    return backend.open()


# -- appends ---------------------------------------------------------------


def test_appends_get_consecutive_positions_and_survive_reopen(backend: Backend) -> None:
    store = backend.open()
    first = store.append("acme", [draft(0), draft(1)])
    second = store.append("acme", [draft(2)])
    assert [e.seq for e in first + second] == [0, 1, 2]
    assert store.append("acme", []) == []
    store.close()
    reopened = backend.open()
    assert reopened.size("acme") == 3
    events = list(reopened.events("acme"))
    assert events == first + second
    assert [e.payload["n"] for e in events] == [0, 1, 2]
    assert all(leaf_hash(e.canonical) == e.leaf_hash for e in events)
    assert reopened.event_by_id("acme", "ev-acme-1") == events[1]
    assert reopened.event_by_id("acme", "nope") is None
    assert reopened.append("acme", [draft(3)])[0].seq == 3


def test_events_read_in_ranges_and_pages(store: LedgerStore) -> None:
    store.append("acme", [draft(n) for n in range(2500)])
    assert sum(1 for _ in store.events("acme")) == 2500
    assert [e.seq for e in store.events("acme", 998, 1003)] == [998, 999, 1000, 1001, 1002]
    assert [e.seq for e in store.events("acme", 2498, 9999)] == [2498, 2499]
    assert list(store.events("acme", 5, 5)) == []
    assert list(store.events("nobody")) == []


def test_tenants_have_separate_logs(store: LedgerStore) -> None:
    assert store.tenants() == []
    store.append("acme", [draft(0)])
    store.append("globex", [draft(0, tenant="globex"), draft(1, tenant="globex")])
    store.append(SYSTEM_LOG, [draft(0, tenant=SYSTEM_LOG)])
    assert store.size("acme") == 1
    assert store.size("globex") == 2
    assert store.size("initech") == 0
    assert store.tenants() == [SYSTEM_LOG, "acme", "globex"]  # byte order on every backend
    assert store.event_by_id("acme", "ev-globex-0") is None
    assert store.events_for_correlation("acme", "corr-1") == []
    assert [e.seq for e in store.events_for_correlation("globex", "corr-1")] == [1]


def test_a_draft_of_another_tenant_is_refused(store: LedgerStore) -> None:
    with pytest.raises(StoreError, match="belongs to tenant"):
        store.append("acme", [draft(0), draft(1, tenant="globex")])
    assert store.size("acme") == 0
    assert store.tenants() == []
    assert store.append("acme", [draft(0)])[0].seq == 0


def test_a_taken_event_id_is_refused_and_writes_nothing(store: LedgerStore) -> None:
    store.append("acme", [draft(0)])
    with pytest.raises(StoreError, match="already recorded"):
        store.append("acme", [draft(1), draft(0)])
    assert store.size("acme") == 1
    assert store.append("acme", [draft(1)])[0].seq == 1
    assert_one_consistent_tree(store)


def test_one_key_twice_in_one_append_is_refused(store: LedgerStore) -> None:
    with pytest.raises(StoreError):
        store.append("acme", [draft(0, key="k", intent="i-1"), draft(1, key="k", intent="i-1")])
    assert store.size("acme") == 0
    assert store.intent_for_key("acme", "k") is None


# -- idempotency and preconditions -------------------------------------------


def test_duplicate_idempotency_key_writes_nothing(store: LedgerStore) -> None:
    store.append("acme", [draft(0, key="k", intent="i-1"), draft(1)])
    with pytest.raises(DuplicateIntent) as caught:
        store.append("acme", [draft(2, key="k", intent="i-2"), draft(3)])
    assert caught.value.intent_id == "i-1"
    assert caught.value.tenant == "acme"
    assert caught.value.idempotency_key == "k"
    assert store.size("acme") == 2
    assert store.intent_for_key("acme", "k") == "i-1"
    assert store.intent_for_key("acme", "other") is None
    # without an intent id the key names the event that took it
    store.append("acme", [draft(4, key="bare")])
    assert store.intent_for_key("acme", "bare") == "ev-acme-4"
    # the same key in another tenant is another key
    store.append("globex", [draft(0, tenant="globex", key="k", intent="i-9")])
    assert store.intent_for_key("globex", "k") == "i-9"
    assert_one_consistent_tree(store)


def test_an_observation_and_a_belief_are_recorded_once_on_every_store(store: LedgerStore) -> None:
    observation = {"observation": {"observation_id": "okta/evt 1", "source": "okta"}}
    belief = {"belief": {"belief_id": "bel-1"}}
    drafts = []
    for n, (kind, payload) in enumerate(
        [("observation.recorded", observation), ("belief.formed", belief)]
    ):
        key = idempotency_key_of(kind, payload)
        drafts.append(replace(draft(n, type=kind, key=key), payload=payload))
    store.append("acme", drafts)
    for n, taken in enumerate(drafts, start=2):
        with pytest.raises(DuplicateIntent):
            store.append("acme", [replace(taken, event_id=f"ev-acme-{n}")])
    assert store.size("acme") == 2
    assert store.intent_for_key("acme", "observation okta/evt 1") == "ev-acme-0"
    assert store.intent_for_key("acme", "belief bel-1") == "ev-acme-1"
    assert store.index_problems("acme", 2) == []


def test_sizes_reads_several_logs_at_once(store: LedgerStore) -> None:
    store.append("acme", [draft(0), draft(1)])
    store.append("globex", [draft(0, tenant="globex")])
    assert store.sizes(["acme", "nobody", "globex", "acme"]) == {
        "acme": 2,
        "nobody": 0,
        "globex": 1,
    }
    assert store.sizes(["acme"]) == {"acme": store.size("acme")}


def test_a_duplicate_in_a_batch_does_not_sink_the_others(store: LedgerStore) -> None:
    store.append("acme", [draft(0, key="taken", intent="i-0")])
    results: dict[int, BaseException | int] = {}
    barrier = threading.Barrier(6)

    def work(n: int) -> None:
        barrier.wait()
        key = "taken" if n % 2 else f"free-{n}"
        try:
            results[n] = store.append("acme", [draft(n, key=key, intent=f"i-{n}")])[0].seq
        except DuplicateIntent as exc:
            results[n] = exc

    pool = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert sorted(v for v in results.values() if isinstance(v, int)) == [1, 2, 3]
    assert sum(isinstance(v, DuplicateIntent) for v in results.values()) == 3
    assert store.size("acme") == 4
    assert_one_consistent_tree(store)


def test_expect_is_an_optimistic_precondition(store: LedgerStore) -> None:
    # -1: the intent has no events yet
    store.append("acme", [draft(0, intent="i-1")], expect=("i-1", -1))
    store.append("acme", [draft(1, intent="i-2")])
    with pytest.raises(Conflict, match="intent i-1 changed"):
        store.append("acme", [draft(2, intent="i-1")], expect=("i-1", -1))
    with pytest.raises(Conflict):
        store.append("acme", [draft(2, intent="i-1")], expect=("i-1", 1))
    assert store.size("acme") == 2
    store.append("acme", [draft(2, intent="i-1")], expect=("i-1", 0))
    assert [e.seq for e in store.events_for_intent("acme", "i-1")] == [0, 2]
    assert store.events_for_intent("acme", "nope") == []


def test_racing_preconditions_let_exactly_one_through(store: LedgerStore) -> None:
    store.append("acme", [draft(0, intent="i-1")])
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []

    def race(n: int) -> None:
        barrier.wait()
        try:
            store.append("acme", [draft(n, intent="i-1")], expect=("i-1", 0))
            won.append(n)
        except Conflict:
            lost.append(n)

    pool = [threading.Thread(target=race, args=(n,)) for n in range(1, 9)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(won) == 1
    assert len(lost) == 7
    assert store.size("acme") == 2


# -- concurrency -------------------------------------------------------------


def test_group_commit_under_threads_loses_nothing(store: LedgerStore) -> None:
    threads, per_thread = 8, 60
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                tenant = "globex" if i % 5 == 0 else "acme"
                store.append(tenant, [draft(t * 1000 + i, tenant=tenant)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors
    total = threads * per_thread
    assert store.size("acme") + store.size("globex") == total
    assert sorted(
        e.payload["n"] for tenant in ("acme", "globex") for e in store.events(tenant)
    ) == sorted(t * 1000 + i for t in range(threads) for i in range(per_thread))
    commits = getattr(store, "commits", None)
    if commits is not None:
        assert commits < total, "every append paid its own commit: no group commit"
    assert_one_consistent_tree(store, "acme")
    assert_one_consistent_tree(store, "globex")
    integrity_check = getattr(store, "integrity_check", None)
    if integrity_check is not None:  # the backend's own structural check, for `exoarmur health`
        assert integrity_check() == "ok"


def test_two_store_objects_keep_one_consistent_tree(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    for n in range(20):
        (a if n % 3 else b).append("acme", [draft(n)])
    assert a.size("acme") == b.size("acme") == 20

    def work(store: LedgerStore, offset: int) -> None:
        for n in range(offset, offset + 80):
            store.append("acme", [draft(n), draft(n, prefix="twin")])

    pool = [
        threading.Thread(target=work, args=(a, 1000)),
        threading.Thread(target=work, args=(b, 2000)),
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert a.size("acme") == b.size("acme") == 20 + 2 * 160
    assert_one_consistent_tree(a)
    assert Ledger(b, KEY).root("acme") == Ledger(a, KEY).root("acme")


def test_two_stores_racing_on_keys_and_expectations_keep_both_unique(backend: Backend) -> None:
    # Two writers (as two processes would) batch their appends against one log:
    # each key is offered by both and recorded once; each intent's chain of
    # expect= appends, split between the stores, loses no step and repeats none.
    stores = [backend.open(), backend.open()]
    threads, intents = 6, 5
    won: Counter[str] = Counter()
    lost: list[bool] = []  # each loser told the winner's intent
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        store = stores[t % 2]
        barrier.wait()
        try:
            for i in range(intents):
                owner = f"i-{t // 2}-{i}"  # threads t and t+1 race for the same key
                try:
                    store.append(
                        "acme",
                        [draft(t * 100 + i, key=f"k-{t // 2}-{i}", intent=owner, prefix="key")],
                    )
                    won[owner] += 1
                except DuplicateIntent as exc:
                    lost.append(exc.intent_id == owner)
                chain = f"chain-{t}-{i}"
                last = -1
                for step in range(3):
                    extended = stores[(t + step) % 2].append(
                        "acme",
                        [draft(t * 100 + i, intent=chain, prefix=f"step{step}")],
                        expect=(chain, last),
                    )
                    last = extended[0].seq
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors[:3]
    assert sorted(won.values()) == [1] * (threads // 2 * intents)
    assert lost == [True] * (threads // 2 * intents)
    size = threads // 2 * intents + threads * intents * 3
    assert stores[0].size("acme") == stores[1].size("acme") == size
    events = list(stores[0].events("acme"))
    keyed = Counter(e.intent_id for e in events if e.event_id.startswith("key-"))
    assert sorted(keyed.values()) == [1] * (threads // 2 * intents)
    for t in range(threads):
        for i in range(intents):
            chain = [e.event_id for e in stores[1].events_for_intent("acme", f"chain-{t}-{i}")]
            assert chain == [f"step{s}-acme-{t * 100 + i}" for s in range(3)]
    assert_one_consistent_tree(stores[0])
    assert Ledger(stores[1], KEY).root("acme") == Ledger(stores[0], KEY).root("acme")


APPENDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    sys.path.insert(0, sys.argv[1])
    from backends import open_spec
    from exoarmur.model.event import EventDraft

    spec, name, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    store = open_spec(spec)
    print("READY", flush=True)
    sys.stdin.readline()
    for i in range(count):
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
    store.close()
    """
)


@pytest.mark.slow
def test_processes_appending_at_once_keep_one_tree(backend: Backend) -> None:
    children, count = 3, 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(TESTS_DIR), backend.spec, f"p{c}", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for c in range(children)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
    local = backend.open()
    for proc in procs:  # go, all at once, while this process appends too
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for n in range(count):
        local.append("acme", [draft(n, prefix="parent")])
    reported: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        for line in out.split("\n"):
            for pair in line.split():
                event_id, position = pair.split("=")
                reported[event_id] = int(position)
    per_child = sum(1 + i % 3 for i in range(count))
    assert len(reported) == children * per_child
    assert local.size("acme") == children * per_child + count
    assert_one_consistent_tree(local)
    stored = {e.event_id: e.seq for e in local.events("acme")}
    for event_id, seq in reported.items():
        assert stored[event_id] == seq  # every acknowledged position is the stored one
    # each child's multi-event appends stayed contiguous and in order
    for c in range(children):
        for i in range(count):
            seqs = [stored[f"p{c}-{i}-{j}"] for j in range(1 + i % 3)]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# -- the Merkle tree through the ledger ----------------------------------------


@pytest.fixture
def filled(store: LedgerStore) -> Ledger:
    ledger = Ledger(store, KEY)
    for n in range(13):
        ledger.append("acme", [draft(n)])
    return ledger


def test_every_inclusion_and_consistency_proof_verifies(filled: Ledger) -> None:
    for size in range(1, 14):
        root = filled.root("acme", size)
        for seq in range(size):
            assert filled.inclusion("acme", seq, size).verify(root)
        for old in range(size + 1):
            assert filled.consistency("acme", old, size).verify(filled.root("acme", old), root)


def test_checkpoints_sign_the_tree_and_the_latest_wins(filled: Ledger) -> None:
    assert filled.latest_checkpoint("acme") is None
    first = filled.checkpoint("acme")
    assert filled.store.latest_checkpoint("acme") == (13, first.note)
    filled.store.save_checkpoint("acme", 13, first.note)  # saving again is harmless
    filled.append("acme", [draft(99)])
    second = filled.checkpoint("acme")
    opened = open_checkpoint(second.note, filled.verifier)
    assert (opened.size, opened.root_hash) == (14, filled.root("acme"))
    assert filled.latest_checkpoint("acme") == second
    assert filled.store.latest_checkpoint("globex") is None
    verification = filled.verify("acme")
    assert verification.ok, verification.problems
    assert verification.checkpoint_size == 14


def test_a_checkpoint_is_replaced_only_over_the_note_stored(filled: Ledger) -> None:
    store = filled.store
    plain = filled.checkpoint("acme").note
    cosigned = plain + "\u2014 witness.test/w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
    more = cosigned + "\u2014 witness.test/w2 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
    assert store.checkpoint_at("acme", 13) == plain
    assert store.checkpoint_at("acme", 12) is None
    assert store.checkpoint_at("globex", 13) is None
    assert not store.replace_checkpoint("acme", 13, cosigned, more)  # not what is stored
    assert not store.replace_checkpoint("acme", 12, plain, cosigned)  # nothing stored there
    assert store.checkpoint_at("acme", 12) is None
    assert store.replace_checkpoint("acme", 13, plain, cosigned)
    assert store.checkpoint_at("acme", 13) == cosigned
    assert store.latest_checkpoint("acme") == (13, cosigned)
    assert not store.replace_checkpoint("acme", 13, plain, more)  # a second swap from plain loses
    assert not store.replace_checkpoint("acme", 13, plain, cosigned)  # done once, not twice
    store.save_checkpoint("acme", 13, plain)  # saving never replaces
    assert store.latest_checkpoint("acme") == (13, cosigned)
    filled.append("acme", [draft(99)])
    later = filled.checkpoint("acme").note
    # Swapping an older checkpoint leaves the latest one where it is.
    assert store.replace_checkpoint("acme", 13, cosigned, more)
    assert store.checkpoint_at("acme", 13) == more
    assert store.latest_checkpoint("acme") == (14, later)


def test_verify_finds_an_edited_event(filled: Ledger, backend: Backend) -> None:
    filled.checkpoint("acme")
    original = next(filled.store.events("acme", 5, 6)).canonical
    backend.edit_event("acme", 5, original.replace(b'"n":5', b'"n":6'))
    result = filled.verify("acme")
    assert not result.ok
    assert "event seq 5" in result.problems[0]
    assert "do not hash to the stored leaf hash" in result.problems[0]


def test_stored_bytes_that_do_not_decode_are_corruption(
    store: LedgerStore, backend: Backend
) -> None:
    store.append("acme", [draft(0), draft(1)])
    backend.edit_event("acme", 1, b"not an event")
    with pytest.raises(LedgerCorrupt, match="do not decode"):
        store.event_by_id("acme", "ev-acme-1")
    assert store.event_by_id("acme", "ev-acme-0") is not None


def test_bytes_that_do_not_decode_name_their_log_and_position(
    store: LedgerStore, backend: Backend
) -> None:
    """Issue 10 #12: the error says which event, on every read path and in verify."""
    store.append("acme", [draft(0, intent="i-1"), draft(1, intent="i-1"), draft(2)])
    backend.edit_event("acme", 1, b"\x00garbage")
    where = "log 'acme' seq 1: stored event bytes do not decode"
    with pytest.raises(LedgerCorrupt, match=where):
        list(store.events("acme"))
    with pytest.raises(LedgerCorrupt, match=where):
        store.events_for_intent("acme", "i-1")
    result = Ledger(store, KEY).verify("acme")
    assert not result.ok
    assert where in result.problems[0]


#: an index column, and a value that points the event elsewhere
EDITS = {
    "intent_id": "i-2",
    "type": EXECUTION_STARTED,
    "correlation_id": "corr-elsewhere",
    "event_id": "ev-forged",
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_index_column_edited_outside_the_bytes_is_caught(
    store: LedgerStore, backend: Backend, column: str
) -> None:
    """Issue 10 #4: moving an execution.finished to another intent (or renaming its type,
    correlation or id) in the columns the queries select by is refused when read and by verify."""
    ledger = Ledger(store, KEY)
    store.append(
        "acme",
        [
            draft(0, intent="i-1", type=EXECUTION_STARTED),
            draft(1, intent="i-1", type=EXECUTION_FINISHED),
            draft(2, intent="i-2", type=EXECUTION_STARTED),
        ],
    )
    ledger.checkpoint("acme")
    assert ledger.verify("acme").status == "VERIFIED"
    finished = next(store.events("acme", 1, 2))
    value = EDITS[column]
    backend.edit_column(finished, column, value)

    result = ledger.verify("acme")
    assert not result.ok
    assert result.status == "FAILED"
    assert "log 'acme'" in result.problems[0]
    reads = {
        "intent_id": lambda: store.events_for_intent("acme", value),
        "type": lambda: store.events_for_intent("acme", "i-1"),
        "correlation_id": lambda: store.events_for_correlation("acme", value),
        "event_id": lambda: store.event_by_id("acme", value),
    }
    with pytest.raises(LedgerCorrupt, match=r"log 'acme' seq 1: the stored \w+ is"):
        reads[column]()
    if column == "intent_id":
        # The story left behind looks unfinished: whoever would act on that reads it whole.
        assert store.unfinished_executions("acme") == ["i-1"]
        with pytest.raises(LedgerCorrupt, match="log 'acme' seq 1"):
            ledger.complete_story("acme", "i-1")


def test_an_inner_merkle_node_off_the_root_path_is_caught(
    store: LedgerStore, backend: Backend
) -> None:
    """Proofs read every stored node; verify compares every one, not only the root's."""
    ledger = Ledger(store, KEY)
    store.append("acme", [draft(n) for n in range(8)])
    ledger.checkpoint("acme")
    assert ledger.verify("acme").ok
    backend.edit_node("acme", 1, 1, bytes(32))  # under the root of 8, never read to rebuild it
    assert ledger.root("acme") == rebuilt_root(store, "acme")
    result = ledger.verify("acme")
    assert result.problems == (
        "log 'acme': stored Merkle node (level 1, index 1) disagrees with the events' leaf hashes",
    )


def recorded(n: int, intent: str, key: str) -> EventDraft:
    """An ``intent.recorded`` as the pipeline writes it: its bytes carry its key."""
    return replace(
        draft(n, intent=intent, key=intent_key("agent-7", key), type=INTENT_RECORDED),
        payload={"n": n, "intent": {"actor": {"id": "agent-7"}, "idempotency_key": key}},
    )


def test_an_idempotency_entry_pointed_at_another_intent_is_caught(
    store: LedgerStore, backend: Backend
) -> None:
    """A key pointed at another intent never hands out that intent's outcome."""
    store.append("acme", [recorded(0, "i-1", "job-1"), recorded(1, "i-2", "job-2")])
    ledger = Ledger(store, KEY)
    assert ledger.verify("acme").ok
    job_1, job_2 = intent_key("agent-7", "job-1"), intent_key("agent-7", "job-2")
    backend.edit_key("acme", job_1, "i-2")
    with pytest.raises(LedgerCorrupt, match="'agent-7 job-1' is indexed for 'i-2', whose events"):
        store.intent_for_key("acme", job_1)
    assert store.intent_for_key("acme", job_2) == "i-2"
    result = ledger.verify("acme")
    assert not result.ok
    # (JetStream names the key as its KV key token)
    assert "is indexed for 'i-2', the events say 'i-1'" in result.problems[0]
    assert "key 'agent-7 job-2'" not in " ".join(result.problems)


# -- queries -------------------------------------------------------------------


def test_intent_queries(store: LedgerStore) -> None:
    story = [
        ("i-1", "intent.recorded"),
        ("i-1", "execution.started"),
        ("i-2", "intent.recorded"),
        ("i-2", "execution.started"),
        ("i-1", "execution.finished"),
        ("i-3", "intent.recorded"),
        ("i-3", "execution.started"),
        ("i-4", "execution.started"),
        ("i-4", "execution.blocked"),
        ("i-5", "execution.started"),
        ("i-5", "execution.outcome_unknown"),
        ("i-6", "approval.requested"),
        ("i-7", "approval.requested"),
        ("i-7", "intent.approved"),
        (None, "policy.activated"),
        (None, "policy.activated"),
    ]
    for n, (intent_id, event_type) in enumerate(story):
        store.append("acme", [draft(n, intent=intent_id, type=event_type)])
    store.append("globex", [draft(0, tenant="globex", intent="g-1", type="execution.started")])
    assert store.unfinished_executions("acme") == ["i-2", "i-3"]
    assert store.unfinished_executions("globex") == ["g-1"]
    assert store.intents_with("acme", "approval.requested", ["intent.approved"]) == ["i-6"]
    assert store.intents_with("acme", "intent.recorded", ["execution.started"]) == []
    with pytest.raises(ValueError, match="at least one type"):
        store.intents_with("acme", "intent.recorded", [])
    latest = store.latest_of_type("acme", "policy.activated")
    assert latest is not None
    assert latest.seq == 15
    assert store.latest_of_type("acme", "no.such.type") is None
    assert store.latest_of_type("globex", "policy.activated") is None
    assert [e.seq for e in store.events_for_correlation("acme", "corr-2")] == [2, 5, 8, 11, 14]
    assert [e.type for e in store.events_for_intent("acme", "i-1")] == [
        "intent.recorded",
        "execution.started",
        "execution.finished",
    ]


def test_events_of_type_reads_the_kinds_asked_for_in_order(backend: Backend) -> None:
    store = backend.open()
    kinds = ["policy.activated", "config.snapshot", "intent.recorded", "test.event"]
    for n in range(12):
        intent = f"i-{n}" if kinds[n % 4] == "intent.recorded" else None
        store.append("acme", [draft(n, intent=intent, type=kinds[n % 4])])
    store.append("globex", [draft(0, tenant="globex", type="policy.activated")])
    assert [e.seq for e in store.events_of_type("acme", "policy.activated")] == [0, 4, 8]
    assert [e.seq for e in store.events_of_type("acme", "config.snapshot", "intent.recorded")] == [
        1,
        2,
        5,
        6,
        9,
        10,
    ]
    assert [e.seq for e in store.events_of_type("acme", "policy.activated", stop=8)] == [0, 4]
    assert store.events_of_type("acme", "no.such.type") == []
    assert store.events_of_type("acme") == []
    assert [e.event_id for e in store.events_of_type("globex", "policy.activated")] == [
        "ev-globex-0"
    ]
    assert all(e.payload == {"n": e.seq} for e in store.events_of_type("acme", "test.event"))


# -- the governor on top ---------------------------------------------------------


GOVERNED_POLICY = (
    POLICY
    + """
@id("prod-delete") @approval("2")
permit (principal, action == Action::"db.delete", resource)
when { context.params.env == "prod" };
"""
)


def build_governor(store: LedgerStore) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    executors.bind("db.*", EchoExecutor())
    ids = SeededIds(11)
    return Governor(
        ledger=Ledger(store, KEY),
        policy=PolicyEngine(PolicyBundle.from_text(GOVERNED_POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=ids,
        randomness=ids.random_bytes,  # principals' API keys too: the same bytes every run
    )


def governed_scenario(store: LedgerStore) -> dict[str, Any]:
    """Allow, deny, duplicate, a 2-of-n quorum and a kill switch: what was decided, and roots."""
    governor = build_governor(store)
    alice, _ = governor.add_principal("alice", "operator", ["acme"])
    bob, _ = governor.add_principal("bob", "operator", ["acme"])
    seen: list[tuple[str, str, bool]] = []

    def note(step: str, status: OutcomeStatus, duplicate: bool = False) -> None:
        seen.append((step, status.value, duplicate))

    allowed = governor.submit(intent(idempotency_key="read-1"))
    note("allow", allowed.status)
    size = governor.ledger.size("acme")
    again = governor.submit(intent(idempotency_key="read-1", target="elsewhere"))
    assert again.intent_id == allowed.intent_id
    assert governor.ledger.size("acme") == size
    note("duplicate", again.status, again.duplicate)
    note("deny", governor.submit(intent(action="fs.delete", safety_class="A2")).status)
    note("forbid", governor.submit(intent(target="db/prod")).status)

    pending = governor.submit(
        intent(action="db.delete", target="db/orders", params={"env": "prod"}, safety_class="A2")
    )
    note("quorum: requested", pending.status)
    for step, who in (("first vote", alice), ("same voter again", alice), ("second vote", bob)):
        result = governor.vote("acme", pending.intent_id, who, Vote.APPROVE, "ok")
        note(f"quorum: {step}", result.outcome.status, not result.accepted)

    governor.engage_killswitch("tenant:acme", "r", LOCAL_ADMIN)
    switched = governor.submit(intent(target="reports/q4.txt"))
    assert switched.decision.gate is not None
    assert switched.decision.gate["controls"] == ["killswitch:tenant:acme"]
    note("kill switch", switched.status)
    governor.release_killswitch("tenant:acme", "over", LOCAL_ADMIN)
    note("released", governor.submit(intent(target="reports/q5.txt")).status)

    found = {
        "seen": seen,
        "sizes": {log: governor.ledger.size(log) for log in ("acme", SYSTEM_LOG)},
        "roots": {log: governor.ledger.root(log).hex() for log in ("acme", SYSTEM_LOG)},
        "story": Counter(e.type for e in store.events("acme")),
    }
    for log in ("acme", SYSTEM_LOG):
        verification = governor.ledger.verify(log)
        assert verification.ok, verification.problems
    governor.close()
    return found


EXPECTED_DECISIONS = [
    ("allow", "executed", False),
    ("duplicate", "executed", True),
    ("deny", "denied", False),
    ("forbid", "denied", False),
    ("quorum: requested", "pending_approval", False),
    ("quorum: first vote", "pending_approval", False),
    ("quorum: same voter again", "pending_approval", True),
    ("quorum: second vote", "executed", False),
    ("kill switch", "denied", False),
    ("released", "executed", False),
]


def test_the_governor_decides_the_same_on_every_backend(backend: Backend) -> None:
    outcome = governed_scenario(backend.open())
    assert outcome["seen"] == EXPECTED_DECISIONS
    assert outcome["story"]["execution.finished"] == 3
    assert outcome["story"]["intent.approved"] == 1


def test_a_deterministic_scenario_has_one_root_on_every_backend(
    backends: Backends, tmp_path: Path
) -> None:
    results = {}
    for name in backends.names:
        with backends.open(name, tmp_path) as made:
            results[name] = governed_scenario(made.open())
    first = next(iter(results.values()))
    for name, other in results.items():
        assert other == first, f"{name} differs"
    assert len(results) >= 2
    assert first["sizes"]["acme"] > 20
    # a rerun on a fresh backend writes the very same bytes
    with backends.open("sqlite", tmp_path / "again") as made:
        assert governed_scenario(made.open())["roots"] == first["roots"]


def log_walks(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The logs ``store`` is asked to walk, its own calls of ``self.events`` too (on the object)."""
    walked: list[str] = []
    events = store.events

    def counted(tenant: str, start: int = 0, stop: int | None = None) -> Any:
        walked.append(tenant)
        return events(tenant, start, stop)

    monkeypatch.setattr(store, "events", counted)
    return walked


def test_events_of_type_is_one_list_on_every_store_and_walks_no_log(
    backends: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 #4: every store finds events by type from an index, never by reading its log
    (JetStream read it, since its by-type entries held intents' events only), and all alike."""
    answers: dict[str, dict[str, Any]] = {}
    for name in backends.names:
        with backends.open(name, tmp_path) as made:
            governed_scenario(made.open())
            store = made.open()  # another store object: nothing of the writer's in memory
            logs = {log: list(store.events(log)) for log in ("acme", SYSTEM_LOG)}
            walked = log_walks(store, monkeypatch)
            found: dict[str, Any] = {}
            for log, recorded in logs.items():
                kinds = sorted({e.type for e in recorded})
                assert "policy.activated" in {e.type for e in logs[SYSTEM_LOG]}
                for kind in kinds:
                    listed = store.events_of_type(log, kind)
                    assert listed == [e for e in recorded if e.type == kind], (name, log, kind)
                    found[f"{log} {kind}"] = [(e.seq, e.event_id) for e in listed]
                half = len(recorded) // 2
                some = store.events_of_type(log, *kinds[::2], stop=half)
                assert some == [e for e in recorded[:half] if e.type in kinds[::2]]
                found[f"{log} half"] = [e.seq for e in some]
                # events of no intent have by-type entries too; no intent is named by them
                assert store.intents_with(log, "policy.activated", ["intent.recorded"]) == []
            monkeypatch.undo()
            assert walked == [], f"{name} read a log to answer by type"
            answers[name] = found
    first = answers[backends.names[0]]
    for name, other in answers.items():
        assert other == first, f"{name} differs"


# -- who may reach which intent ---------------------------------------------------


def test_an_idempotency_key_is_scoped_to_the_actor_on_every_backend(backend: Backend) -> None:
    governor = build_governor(backend.open())
    agent_7 = {"id": "agent-7", "kind": "agent"}
    agent_8 = {"id": "agent-8", "kind": "agent"}
    first = governor.submit(
        intent(actor=agent_7, idempotency_key="job-1", params={"token": "s3cret-of-7"})
    )
    assert first.status == OutcomeStatus.EXECUTED
    other = governor.submit(
        intent(actor=agent_8, idempotency_key="job-1", target="reports/q9.txt", params={})
    )
    # agent-8's own intent, recorded and run: nothing of agent-7's reaches it
    assert other.intent_id != first.intent_id
    assert not other.duplicate
    assert other.status == OutcomeStatus.EXECUTED
    assert "s3cret-of-7" not in other.model_dump_json()
    story = governor.story("acme", other.intent_id)
    assert story[0].payload["intent"]["actor"]["id"] == "agent-8"
    assert story[0].payload["intent"]["target"] == "reports/q9.txt"
    # and each agent's retry still finds its own first outcome, writing nothing
    size = governor.ledger.size("acme")
    again_7 = governor.submit(intent(actor=agent_7, idempotency_key="job-1", params={}))
    again_8 = governor.submit(intent(actor=agent_8, idempotency_key="job-1", params={}))
    assert (again_7.intent_id, again_7.duplicate) == (first.intent_id, True)
    assert (again_8.intent_id, again_8.duplicate) == (other.intent_id, True)
    assert governor.ledger.size("acme") == size
    governor.close()


def test_a_reused_intent_id_is_refused_and_writes_nothing_on_every_backend(
    backend: Backend,
) -> None:
    governor = build_governor(backend.open())
    chosen = "01KDVDNA0MHK4TPFES1W0SHD8Y"
    first = governor.submit(intent(intent_id=chosen, idempotency_key="a"))
    assert first.intent_id == chosen
    size = governor.ledger.size("acme")
    for body in (
        intent(intent_id=chosen, idempotency_key="b"),
        intent(intent_id=chosen, idempotency_key="a", actor={"id": "agent-8", "kind": "agent"}),
    ):
        with pytest.raises(IntentIdTaken, match=f"intent_id: {chosen} is already recorded"):
            governor.submit(body)
    assert governor.ledger.size("acme") == size
    assert [e.type for e in governor.story("acme", chosen)].count("intent.recorded") == 1
    # another tenant has its own ids
    assert governor.submit(intent(tenant="globex", intent_id=chosen)).intent_id == chosen
    governor.close()


def test_the_store_itself_keeps_an_intent_id_unique_on_every_backend(store: LedgerStore) -> None:
    # What two processes racing past the governor's check would write: the
    # second append is refused whole, whatever its idempotency key.
    governor = build_governor(store)
    chosen = "01KDVDNA0MHK4TPFES1W0SHD8Y"
    governor.submit(intent(intent_id=chosen, idempotency_key="a"))
    recorded, decided = (draft_of(e) for e in governor.story("acme", chosen)[:2])
    size = store.size("acme")
    second = [
        replace(recorded, event_id="02-recorded", idempotency_key="agent-1 b"),
        replace(decided, event_id="02-decided"),
    ]
    with pytest.raises(DuplicateIntent) as refused:
        store.append("acme", second)
    assert refused.value.idempotency_key == intent_id_key(chosen)
    assert store.size("acme") == size
    governor.close()


def test_racing_submissions_of_one_intent_id_record_it_once_on_every_backend(
    backend: Backend,
) -> None:
    chosen = "01KDVDNA0MHK4TPFES1W0SHD8Y"
    governors = [build_governor(backend.open()) for _ in range(2)]
    results: list[str] = []

    def submit(n: int) -> None:
        try:
            governors[n % 2].submit(intent(intent_id=chosen, idempotency_key=f"k-{n}"))
            results.append("recorded")
        except IntentIdTaken:
            results.append("refused")

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["recorded"] + ["refused"] * 5
    recorded = [e for e in governors[0].story("acme", chosen) if e.type == "intent.recorded"]
    assert len(recorded) == 1
    for governor in governors:
        governor.close()


def test_an_approved_intent_blocked_before_its_start_is_never_started_on_every_backend(
    backend: Backend,
) -> None:
    governor = build_governor(backend.open())
    alice, _ = governor.add_principal("alice", "operator", ["acme"])
    bob, _ = governor.add_principal("bob", "operator", ["acme"])
    pending = governor.submit(
        intent(action="db.delete", target="db/orders", params={"env": "prod"}, safety_class="A2")
    )
    governor.engage_killswitch("tenant:acme/action:db.*", "r", LOCAL_ADMIN)
    governor.engage_killswitch("tenant:acme", "r", LOCAL_ADMIN)
    governor.vote("acme", pending.intent_id, alice, Vote.APPROVE, "ok")
    result = governor.vote("acme", pending.intent_id, bob, Vote.APPROVE, "ok")
    assert result.outcome.status == OutcomeStatus.BLOCKED
    assert governor.recover() == []
    types = [e.type for e in governor.story("acme", pending.intent_id)]
    assert "execution.started" not in types
    assert types[-1] == "execution.blocked"
    governor.close()
