"""Replay's shortcuts give the very report replay gives without them.

Each shortcut has a plain form that is the way replay used to work:
deciding one decision at a time (not in Cedar batches read ahead), asking
the store's idempotency index about every key (not only about keys the
filter may have met), validating every intent again (not only those whose
bytes no longer hash to the recorded hash), rebuilding a fold from the
start of the log (not from the nearest snapshot), and keeping every open
intent's events (not dropping them at a terminal event or past a byte
budget). Replayed both ways, the golden history, every doctored one and
generated concurrent logs (edited at random) give the same report, the same
re-derived decisions and the same divergences.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence_kit import governor as evidence_governor
from evidence_kit import observe, person, ticket
from exoarmur.clock import StepClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.ledger.transfer import dump_jsonl
from exoarmur.model.event import SYSTEM_LOG
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import Replayer
from exoarmur.replay import folds as replay_folds
from exoarmur.replay import verify as replay_verify
from exoarmur.replay.recorded import recorded_intent
from exoarmur.replay.seen_keys import SeenKeys
from test_replay import GOLDEN, KEY, MANIFEST, load

NAMES = ["good", *sorted(MANIFEST["doctored"])]
TENANT_POLICY = (
    '@id("reads-only") permit (principal, action == Action::"fs.read", resource) '
    'when { context.safety_class == "A0" };'
)
Lines = list[dict[str, Any]]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SqliteStore]]:
    found = {}
    for name in NAMES:
        file = MANIFEST["good"] if name == "good" else MANIFEST["doctored"][name]["file"]
        found[name] = load(GOLDEN / file, tmp_path_factory.mktemp(name))
    yield found
    for store in found.values():
        store.close()


def _replayed(store: SqliteStore, fast: bool) -> tuple[dict[str, Any], list[Any], Replayer]:
    """Replay ``store``'s tenant with every shortcut (``fast``) or with none of them."""
    replayer = Replayer(store, "acme")
    replayer.verifier = KEY.verifier()
    replayer.keep_rederived = True
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            replayer.decide_ahead = lambda chunk: None  # type: ignore[method-assign]
            replayer.seen_keys.add = lambda key: True  # type: ignore[method-assign]
            patch.setattr(replay_verify, "_OPEN_BYTES", 1 << 60)
            patch.setattr(replay_verify, "_TERMINAL", frozenset())
            # one snapshot only, at the start: going back rebuilds from there
            patch.setattr(replay_folds, "SNAPSHOT_EVERY", 1 << 60)
            patch.setattr(replay_verify, "recorded_intent", _validated)
        report = replayer.run()
    rederived = [(event.seq, decision.to_canonical()) for event, decision in replayer.rederived]
    return report.to_json(), rederived, replayer


def _validated(payload: dict[str, Any]) -> tuple[Any, str]:
    from exoarmur.encoding import content_hash
    from exoarmur.model.intent import ActionIntent

    return ActionIntent.from_canonical(payload["intent"]), content_hash(payload["intent"])


@settings(max_examples=10, deadline=None)
@given(
    chunk=st.integers(min_value=1, max_value=40),
    every=st.integers(min_value=1, max_value=8),
    budget=st.integers(min_value=0, max_value=20_000),
)
def test_replay_with_its_shortcuts_reports_what_replay_without_them_reports(
    stores: dict[str, SqliteStore], chunk: int, every: int, budget: int
) -> None:
    batched = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay_verify, "_AHEAD", chunk)
        patch.setattr(replay_verify, "_OPEN_BYTES", budget)
        patch.setattr(replay_folds, "SNAPSHOT_EVERY", every)
        for name in NAMES:
            plain = _replayed(stores[name], fast=False)
            fast = _replayed(stores[name], fast=True)
            assert fast[:2] == plain[:2], name
            assert plain[2].batched == 0
            batched += fast[2].batched
    assert batched > 0  # the batched path ran


# -- generated logs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lines]:
    """A log written by concurrent submitters, with a kill switch and postures between."""
    registry = ExecutorRegistry()
    registry.bind("*", EchoExecutor())
    path = tmp_path_factory.mktemp("concurrent") / "l.db"
    governor = Governor(
        ledger=Ledger(SqliteStore(path), KEY),
        policy=PolicyEngine(
            PolicyBundle.from_text(
                '@id("reads") permit (principal, action, resource) '
                'when { context.safety_class == "A0" };\n'
                '@id("writes") permit (principal, action == Action::"fs.write", resource) '
                'when { context.safety_class == "A1" };'
            )
        ),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(11),
    )

    def submit(worker: int) -> None:
        for n in range(24):
            governor.submit(
                {
                    "tenant": "acme",
                    "actor": {"id": f"agent-{worker}"},
                    "action": ("fs.read", "fs.write", "fs.delete")[n % 3],
                    "target": f"t/{worker}/{n}",
                    "safety_class": ("A0", "A1", "A1")[n % 3],
                }
            )

    def operate() -> None:
        governor.engage_killswitch("tenant:acme/action:fs.write", "drill", LOCAL_ADMIN)
        governor.set_posture("acme", "heightened", "drill", LOCAL_ADMIN)
        # the tenant's own bundle from here on: its activation is in the tenant's log
        governor.activate_policy(PolicyBundle.from_text(TENANT_POLICY), tenant="acme")
        governor.release_killswitch("tenant:acme/action:fs.write", "over", LOCAL_ADMIN)
        governor.set_posture("acme", "normal", "over", LOCAL_ADMIN)

    pool = [threading.Thread(target=submit, args=(w,)) for w in range(4)]
    pool.append(threading.Thread(target=operate))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    store = governor.ledger.store
    logs = {
        log: [json.loads(line) for line in dump_jsonl(store, log)] for log in (SYSTEM_LOG, "acme")
    }
    governor.close()
    return logs


def _reorder(lines: Lines, at: int) -> None:
    lines[at], lines[at + 1] = lines[at + 1], lines[at]


def _flip_verdict(lines: Lines, at: int) -> None:
    decisions = [e for e in lines if e["type"] == "decision.recorded"]
    decision = decisions[at % len(decisions)]["payload"]["decision"]
    decision["verdict"] = "deny" if decision["verdict"] == "allow" else "allow"


def _edit_intent(lines: Lines, at: int) -> None:
    intents = [e for e in lines if e["type"] == "intent.recorded"]
    intents[at % len(intents)]["payload"]["intent"]["target"] = "t/elsewhere"


def _move_back(lines: Lines, at: int) -> None:
    decisions = [e for e in lines if e["type"] == "decision.recorded"]
    decisions[at % len(decisions)]["payload"]["controls"]["tenant"] = 0


EDITS: dict[str, Callable[[Lines, int], None] | None] = {
    "none": None,
    "reorder": _reorder,
    "flip-verdict": _flip_verdict,
    "edit-intent": _edit_intent,
    "move-back": _move_back,
}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edit=st.sampled_from(sorted(EDITS)),
    at=st.integers(min_value=0, max_value=200),
    chunk=st.integers(min_value=1, max_value=64),
    every=st.integers(min_value=1, max_value=16),
    budget=st.integers(min_value=0, max_value=40_000),
)
def test_generated_logs_replay_alike_with_and_without_the_shortcuts(
    concurrent: dict[str, Lines],
    tmp_path_factory: pytest.TempPathFactory,
    edit: str,
    at: int,
    chunk: int,
    every: int,
    budget: int,
) -> None:
    tenant = json.loads(json.dumps(concurrent["acme"]))
    change = EDITS[edit]
    if change is not None:
        change(tenant, at % (len(tenant) - 1))
    where = tmp_path_factory.mktemp("generated")
    file = where / "log.jsonl"
    lines = [*concurrent[SYSTEM_LOG], *tenant]
    file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))
    store = load(file, where)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(replay_verify, "_AHEAD", chunk)
            patch.setattr(replay_verify, "_OPEN_BYTES", budget)
            patch.setattr(replay_folds, "SNAPSHOT_EVERY", every)
            plain = _replayed(store, fast=False)
            fast = _replayed(store, fast=True)
    finally:
        store.close()
    assert fast[:2] == plain[:2]
    if edit == "none":
        assert plain[0]["verified"]  # (some edits change nothing replay can see)


def test_a_decision_behind_the_fold_goes_back_to_a_snapshot_not_to_the_start(
    concurrent: dict[str, Lines], tmp_path: Path
) -> None:
    tenant = json.loads(json.dumps(concurrent["acme"]))
    late = [e for e in tenant if e["type"] == "decision.recorded"][-1]
    # as a submitter that read its controls a while before it recorded would have
    late["payload"]["controls"]["tenant"] = tenant.index(late) - 10
    file = tmp_path / "log.jsonl"
    lines = [*concurrent[SYSTEM_LOG], *tenant]
    file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))
    store = load(file, tmp_path)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(replay_folds, "SNAPSHOT_EVERY", 4)
            fast_report, _, fast = _replayed(store, fast=True)
            plain_report, _, plain = _replayed(store, fast=False)
    finally:
        store.close()
    assert fast_report == plain_report
    assert fast.fold.rebuilds == plain.fold.rebuilds >= 1
    # each time from the snapshot at or before, not from the start
    assert fast.fold.reread <= fast.fold.rebuilds * (10 + 4 + 2)
    assert plain.fold.reread > len(tenant) - 4


def test_intents_dropped_from_memory_are_read_again_when_named(tmp_path: Path) -> None:
    """Held for evidence, then released by an attestation after another intent."""
    ledger = Ledger(SqliteStore(tmp_path / "l.db"), KEY)
    g = evidence_governor(
        ledger,
        '@id("t") @evidence("high") @approval("1")\n'
        'permit (principal, action == Action::"ticket.create", resource);',
    )
    observe(g, "acme", "o1", "edr")
    held = g.submit(ticket({"observations": ["o1"]}))
    g.submit(ticket({"observations": ["o1"]}))  # another intent in between
    g.attest_evidence("acme", held.intent_id, person(g, "alice"), "checked the EDR")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay_verify, "_OPEN_BYTES", 0)  # nothing kept but the intent at hand
        report, _, replayer = _replayed(ledger.store, fast=True)  # type: ignore[arg-type]
    assert report["verified"], report["first_divergence"]
    assert replayer.reread > 0
    g.close()


# -- the pieces ---------------------------------------------------------------------------


def test_kept_snapshots_thin_out_with_distance_and_never_come_back() -> None:
    kept: set[int] = {0}
    for newest in range(1, 2000):
        now = {n for n in kept if replay_folds.kept(n, newest)} | {newest}
        assert now <= kept | {newest}  # only ever drops
        kept = now
        for distance in (1, 10, 100, 1000):
            target = newest - distance
            if target >= 0:
                nearest = max(n for n in kept if n <= target)
                assert target - nearest <= distance // 3 + 1
    assert len(kept) <= 4 * (2000).bit_length() + 4


def test_the_key_filter_never_forgets_a_key() -> None:
    seen = SeenKeys(1000)
    keys = [f"k-{n}" for n in range(1000)]
    fresh = [seen.add(key) for key in keys]
    assert all(seen.add(key) for key in keys)
    assert sum(fresh) < 50  # a few false "maybe"s, no false "new"
    assert seen.size_bytes == 1000 * 10 // 8


def test_an_intent_whose_bytes_hash_to_the_record_is_the_validated_intent() -> None:
    recorded = [
        json.loads(line)
        for line in (GOLDEN / MANIFEST["good"]).read_text().splitlines()
        if '"intent.recorded"' in line
    ]
    for event in recorded:
        built, computed = recorded_intent(event["payload"])
        validated, again = _validated(event["payload"])
        assert built == validated
        assert built.model_dump() == validated.model_dump()
        assert computed == again == event["payload"]["intent_hash"]
    edited = json.loads(json.dumps(recorded[0]["payload"]))
    edited["intent"]["safety_class"] = "A9"  # no longer the bytes that were validated
    with pytest.raises(ValueError, match="safety_class"):
        recorded_intent(edited)


def test_replay_pauses_the_cycle_collector_and_still_collects_young_cycles(
    concurrent: dict[str, Lines], tmp_path: Path
) -> None:
    """Paused while it replays, young cycles collected every few chunks, resumed after."""
    file = tmp_path / "log.jsonl"
    lines = [*concurrent[SYSTEM_LOG], *concurrent["acme"]]
    file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))
    store = load(file, tmp_path)
    running: list[bool] = []
    young: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            young.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(replay_verify, "_AHEAD", 2)
            patch.setattr(replay_verify, "_COLLECT_EVERY", 3)
            replayer = Replayer(store, "acme")
            report = replayer.run(progress=lambda _: running.append(gc.isenabled()))
    finally:
        gc.callbacks.remove(seen)
        store.close()
    assert report.verified, report.divergences[:3]
    assert running
    assert not any(running)
    assert gc.isenabled()
    chunks = len(running) // 2
    assert young.count(1) >= chunks // 3 >= 1
