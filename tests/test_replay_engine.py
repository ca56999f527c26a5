"""ReplayEngine: Core's replay API over our ledger, and over hand-built canonical events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import exoarmur
from exoarmur import CanonicalEvent, ReplayEngine
from exoarmur.errors import InputError
from exoarmur.ledger.log import Ledger
from exoarmur.pipeline import Governor
from exoarmur.replay.engine import ReplayResult
from test_replay import GOLDEN, KEY, MANIFEST, load


def core_event(payload: object, **changes: object) -> CanonicalEvent:
    """An event exactly as ExoArmur-Core's README builds one."""
    fields: dict[str, object] = {
        "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "event_type": "belief_creation_started",
        "actor": "demo",
        "correlation_id": "corr-1",
        "payload": payload,
        "payload_hash": hashlib.sha256(
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
    }
    return CanonicalEvent(**(fields | changes))  # type: ignore[arg-type]


def test_the_core_readme_form_succeeds() -> None:
    event = core_event({"kind": "inline", "ref": {"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}})
    report = ReplayEngine(audit_store={"corr-1": [event]}).replay_correlation("corr-1")
    assert report.result is ReplayResult.SUCCESS
    assert report.result.value == "success"
    assert report.failures == ()
    assert report.form == "in-memory"
    assert "consistency only" in report.notes[0]
    assert report.to_json()["result"] == "success"


@pytest.mark.parametrize(
    ("events", "field", "words"),
    [
        ([core_event({"a": 1}, payload_hash="00" * 32)], "payload_hash", "does not match"),
        ([core_event({"a": 1}, correlation_id="corr-2")], "correlation_id", "belongs to"),
        ([core_event({"a": 1}), core_event({"a": 1})], "event_id", "appears twice"),
        (
            [
                core_event({"a": 1}, event_id="e1", sequence_number=2),
                core_event({"a": 1}, event_id="e2", sequence_number=1),
            ],
            "sequence_number",
            "out of order",
        ),
        ([core_event({"a": 1}, parent_event_id="nope")], "parent_event_id", "no earlier"),
        ([core_event({"a": 1.5e400})], "payload", "not canonical JSON"),
        (["not an event"], "event", "not a CanonicalEvent"),
        ([], "correlation_id", "no events"),
    ],
)
def test_inconsistent_events_fail_naming_event_and_field(
    events: list[object], field: str, words: str
) -> None:
    report = ReplayEngine(audit_store={"corr-1": events}).replay_correlation("corr-1")  # type: ignore[dict-item]
    assert report.result.value == "failure"
    assert any(f.field == field and words in f.reason for f in report.failures), report.failures
    assert field in str(report.failures[0]) or report.failures[0].field


def test_a_prefixed_hash_is_the_same_hash() -> None:
    event = core_event({"a": 1})
    prefixed = core_event({"a": 1}, payload_hash="sha256:" + event.payload_hash)
    assert ReplayEngine(audit_store={"c": [prefixed]}).replay_correlation("corr-1").failures
    report = ReplayEngine(audit_store={"corr-1": [prefixed]}).replay_correlation("corr-1")
    assert report.result is ReplayResult.SUCCESS


@pytest.fixture
def golden(tmp_path: Path) -> Ledger:
    store = load(GOLDEN / MANIFEST["good"], tmp_path)
    store.save_checkpoint("acme", store.size("acme"), MANIFEST["checkpoint"])
    ledger = Ledger(store, KEY)
    yield ledger
    store.close()


def test_a_recorded_stream_replays_with_its_decisions(golden: Ledger) -> None:
    decided = next(e for e in golden.store.events("acme") if e.type == "decision.recorded")
    report = ReplayEngine(golden).replay_correlation(decided.correlation_id)
    assert report.result is ReplayResult.SUCCESS, report.failures
    assert report.tenant == "acme"
    assert report.decisions == (decided.payload["decision"],)
    assert report.ledger is not None
    assert report.ledger.status == "VERIFIED"
    assert report.events == len(golden.store.events_for_correlation("acme", decided.correlation_id))
    same = ReplayEngine(golden.store, tenant="acme").replay_correlation(decided.correlation_id)
    assert same.replay_hash == report.replay_hash
    assert "signature was not checked" in same.notes[0]


@pytest.mark.parametrize("name", sorted(MANIFEST["doctored"]))
def test_a_doctored_stream_fails_naming_event_and_field(tmp_path: Path, name: str) -> None:
    entry = MANIFEST["doctored"][name]
    store = load(GOLDEN / entry["file"], tmp_path)
    try:
        event = next(e for e in store.events("acme") if e.event_id == entry["expect"]["event_id"])
        report = ReplayEngine(store).replay_correlation(event.correlation_id)
    finally:
        store.close()
    assert report.result is ReplayResult.FAILURE
    first = report.failures[0]
    assert (first.event_id, first.field) == (entry["expect"]["event_id"], entry["expect"]["field"])
    assert entry["expect"]["event_id"] in str(first)
    assert report.to_json()["failures"][0]["field"] == entry["expect"]["field"]


def test_an_unknown_stream_fails(golden: Ledger) -> None:
    report = ReplayEngine(golden).replay_correlation("no-such-stream")
    assert report.result is ReplayResult.FAILURE
    assert report.failures[0].field == "correlation_id"


def test_a_home_path_replays(tmp_path: Path) -> None:
    from exoarmur.demo_golden import STREAM, run_golden

    run = run_golden(tmp_path / "home")
    for source in (tmp_path / "home", str(tmp_path / "home")):
        report = ReplayEngine(source).replay_correlation(STREAM)
        assert report.result is ReplayResult.SUCCESS, report.failures
        assert report.replay_hash == run.replay_hash


def test_bad_construction_is_refused() -> None:
    with pytest.raises(InputError):
        ReplayEngine()
    with pytest.raises(InputError):
        ReplayEngine(object()).replay_correlation("x")
    with pytest.raises(AttributeError):
        _ = exoarmur.Nothing  # type: ignore[attr-defined]


def test_the_package_exports_the_replay_api() -> None:
    assert set(exoarmur.__all__) == {"CanonicalEvent", "ReplayEngine", "__version__"}
    from exoarmur.replay.event_envelope import CanonicalEvent as FromCorePath

    assert FromCorePath is CanonicalEvent


def _shared_stream(governor: Governor) -> None:
    for tenant in ("a", "b"):
        governor.submit(
            {
                "tenant": tenant,
                "actor": {"id": "agent-1", "kind": "agent"},
                "action": "fs.read",
                "target": "notes.txt",
                "safety_class": "A0",
                "idempotency_key": f"k-{tenant}",
                "correlation_id": "shared",
            }
        )


def test_a_stream_in_two_tenants_needs_one_named(governor: Governor) -> None:
    _shared_stream(governor)
    with pytest.raises(InputError, match="name one"):
        ReplayEngine(governor.ledger).replay_correlation("shared")
    report = ReplayEngine(governor.ledger, tenant="a").replay_correlation("shared")
    assert report.result is ReplayResult.SUCCESS, report.failures
    assert report.tenant == "a"
    assert len(report.decisions) == 1
    if report.ledger is not None and report.ledger.status == "UNANCHORED":
        assert "UNANCHORED" in report.notes[0]


def test_a_checkpoint_that_does_not_verify_fails(governor: Governor) -> None:
    _shared_stream(governor)
    store = governor.ledger.store
    store.save_checkpoint("a", store.size("a"), "not a signed note\n")
    report = ReplayEngine(governor.ledger, tenant="a").replay_correlation("shared")
    assert report.result is ReplayResult.FAILURE
    assert report.failures[-1].field == "checkpoint"
