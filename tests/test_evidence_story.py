"""Evidence bundles prove the story, not only the bytes.

Every case here is a consistent forgery (see ``forgery.py``): the edited
events are hashed, proven and signed again with the real key, so the bundle
hash, the signatures and the proofs all verify. Each must still FAIL with
its named reason (never an exception), and an independent checker written
from ``docs/evidence-bundle.md`` alone must reach the same verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.encoding import content_hash, format_time, parse_time
from exoarmur.evidence import export_bundle, verify_bundle, verify_bundle_text
from exoarmur.ledger.log import Ledger
from forgery import Entry, append, forge, of_type
from spec_checker import check as spec_check
from test_replay import GOLDEN, KEY, MANIFEST, load

OTHER_HASH = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    ledger = Ledger(load(GOLDEN / MANIFEST["good"], tmp_path_factory.mktemp("golden")), KEY)
    yield ledger
    ledger.store.close()


def _story(ledger: Ledger, wanted: Callable[[list[Any]], bool]) -> dict[str, Any]:
    by_correlation: dict[str, list[Any]] = {}
    for event in ledger.store.events("acme"):
        if event.intent_id:
            by_correlation.setdefault(event.correlation_id, []).append(event)
    correlation = next(c for c, events in by_correlation.items() if wanted(events))
    return export_bundle(ledger, "acme", correlation)


def _types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


BASES: dict[str, Callable[[list[Any]], bool]] = {
    "approved": lambda es: "intent.approved" in _types(es),
    "denied": lambda es: (
        _types(es) == ["intent.recorded", "decision.recorded"]
        and es[1].payload["decision"]["reasons"] != []
    ),
    "lockdown": lambda es: any(
        e.type == "gate.blocked" and e.payload["controls"] == ["posture:lockdown"] for e in es
    ),
    "killswitch": lambda es: any(
        e.type == "gate.blocked" and e.payload["controls"][0].startswith("killswitch:") for e in es
    ),
    "expired": lambda es: "intent.expired" in _types(es),
    "retried": lambda es: "execution.retry" in _types(es),
    "rejected": lambda es: "intent.rejected" in _types(es),
    "rate-limited": lambda es: any(
        e.type == "gate.blocked" and e.payload["controls"] == ["rate_limit:actor"] for e in es
    ),
}


def payload(events: list[Entry], kind: str, nth: int = 0) -> dict[str, Any]:
    return of_type(events, kind, nth).event["payload"]


def decision(events: list[Entry]) -> dict[str, Any]:
    found: dict[str, Any] = payload(events, "decision.recorded")["decision"]
    return found


def _drop(events: list[Entry], kind: str, nth: int = 0) -> None:
    events.remove(of_type(events, kind, nth))


def _approve_after_one(events: list[Entry], _: list[Entry]) -> None:
    # The forger's story: quorum 1, one approver; the policy's @approval("2") says otherwise.
    first = payload(events, "approval.granted")["approver"]
    _drop(events, "approval.granted", 1)
    payload(events, "intent.approved").update(approvers=[first], quorum=1)


def _claim_quorum_one_everywhere(events: list[Entry], context: list[Entry]) -> None:
    _approve_after_one(events, context)
    payload(events, "approval.granted")["quorum"] = 1


def _request_quorum_one(events: list[Entry], context: list[Entry]) -> None:
    _claim_quorum_one_everywhere(events, context)
    payload(events, "approval.requested")["quorum"] = 1


def _decide_quorum_one(events: list[Entry], context: list[Entry]) -> None:
    _request_quorum_one(events, context)
    decision(events)["obligations"]["approval"] = "1"


def _swap(events: list[Entry], a: int, b: int) -> None:
    events[a], events[b] = events[b], events[a]


def _swap_positions(events: list[Entry], a: int, b: int) -> None:
    """Exchange two events' places in the log (a consistent reordering)."""
    first, second = events[a], events[b]
    first.leaf_index, second.leaf_index = second.leaf_index, first.leaf_index
    first.event["seq"], second.event["seq"] = second.event["seq"], first.event["seq"]
    _swap(events, a, b)


def _start_again(events: list[Entry], _: list[Entry]) -> None:
    started = of_type(events, "execution.started").event
    append(events, started | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ"})


def _start_denied(events: list[Entry], _: list[Entry]) -> None:
    recorded = events[0].event
    append(
        events,
        recorded
        | {
            "event_id": "01KDVDNA0HQR10R2VWCCARZZZZ",
            "type": "execution.started",
            "payload": {
                "executor": "echo",
                "binding": "fs.*",
                "intent_hash": recorded["payload"]["intent_hash"],
            },
        },
    )


def _extra_config(_: list[Entry], context: list[Entry]) -> None:
    snapshot = next(e for e in context if e.event["type"] == "config.snapshot").event
    config = snapshot["payload"]["config"] | {"approvals": {"window_seconds": 1}}
    append(
        context,
        snapshot
        | {
            "event_id": "01KDVDNA0HQR10R2VWCCARZZZZ",
            "payload": {"config": config, "config_hash": content_hash(config)},
        },
    )


def _move_to_context(events: list[Entry], context: list[Entry]) -> None:
    moved = of_type(events, "execution.finished")
    events.remove(moved)
    context.append(moved)


def _reindent(events: list[Entry], _: list[Entry]) -> None:
    entry = of_type(events, "intent.approved")
    entry.text = json.dumps(entry.event, indent=1, sort_keys=True)


def _vote_late(events: list[Entry], _: list[Entry]) -> None:
    granted = of_type(events, "approval.granted").event
    granted["process_time"] = "2099-01-01T00:00:00.000000Z"


def _same_approver(events: list[Entry], _: list[Entry]) -> None:
    first = payload(events, "approval.granted")["approver"]
    payload(events, "approval.granted", 1)["approver"] = first
    payload(events, "intent.approved")["approvers"] = [first, first]


def _loosen(events: list[Entry], _: list[Entry]) -> None:
    decision(events).update(
        verdict="require_approval",
        gate={"policy_verdict": "deny", "controls": ["protected:target"], "reason": "x"},
    )


def _gate(events: list[Entry]) -> dict[str, Any]:
    gate: dict[str, Any] = decision(events)["gate"]
    return gate


def _no_control(events: list[Entry], _: list[Entry]) -> None:
    _gate(events)["controls"] = []
    payload(events, "gate.blocked")["controls"] = []


def _posture_normal(events: list[Entry], _: list[Entry]) -> None:
    payload(events, "decision.recorded")["posture"] = "normal"


def _lockdown_quorum(events: list[Entry], _: list[Entry]) -> None:
    decision(events)["obligations"]["approval"] = "2"
    payload(events, "approval.requested")["quorum"] = 2


def _expire_early(events: list[Entry], _: list[Entry]) -> None:
    expired = of_type(events, "intent.expired").event
    expired["process_time"] = of_type(events, "approval.requested").event["process_time"]


def _again(events: list[Entry], kind: str) -> dict[str, Any]:
    """A copy of an event of the story under a new id (for placing it again later)."""
    return of_type(events, kind).event | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ"}


def _as(events: list[Entry], kind: str) -> dict[str, Any]:
    """The last event of the story retyped: an event of ``kind`` after the end."""
    last = events[-1].event
    return last | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ", "type": kind}


def _intent_time_spelled_otherwise(events: list[Entry], _: list[Entry]) -> None:
    recorded = events[0].event["payload"]
    intent = recorded["intent"]
    intent["event_time"] = intent["event_time"].replace("Z", "+00:00")
    recorded["intent_hash"] = content_hash(intent)


def _rate_limit_on(key: str) -> Callable[[list[Entry], list[Entry]], None]:
    def edit(events: list[Entry], _: list[Entry]) -> None:
        _gate(events)["controls"] = [f"rate_limit:{key}"]
        payload(events, "gate.blocked")["controls"] = [f"rate_limit:{key}"]

    return edit


def _unknown_of_another_start(events: list[Entry], _: list[Entry]) -> None:
    finished = of_type(events, "execution.finished")
    finished.event["type"] = "execution.outcome_unknown"
    finished.event["payload"] = {"reason": "x", "started_event_id": "other", "executor": "echo"}


def _end_then_finish(events: list[Entry], kind: str, body: dict[str, Any] | None) -> None:
    """The finish retyped as another end of the story, and the finish recorded after it."""
    finished = of_type(events, "execution.finished")
    ended = finished.event | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ", "type": kind}
    if body is None:
        started = of_type(events, "execution.started").event["event_id"]
        body = {"reason": "x", "started_event_id": started, "executor": "echo"}
    ended["payload"] = body | {"intent_hash": finished.event["payload"]["intent_hash"]}
    events.insert(events.index(finished), Entry(finished.log, finished.leaf_index, ended))
    finished.leaf_index += 1
    finished.event["seq"] += 1


def _set(
    kind: str, path: str, value: Any, nth: int = 0
) -> Callable[[list[Entry], list[Entry]], None]:
    def edit(events: list[Entry], _: list[Entry]) -> None:
        target: Any = of_type(events, kind, nth).event
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return edit


_DELETE = object()

#: (case, base story, the forger's edit, the failure it must be named by)
CASES: list[tuple[str, str, Callable[[list[Entry], list[Entry]], None], str]] = [
    # 18: the quorum comes from the re-derived decision, never from an approval event
    (
        "approved-with-one-of-two",
        "approved",
        _approve_after_one,
        "approved with 1 distinct approval(s) before it; the decision requires 2",
    ),
    ("vote-claims-quorum-1", "approved", _claim_quorum_one_everywhere, "payload.quorum: 1"),
    ("request-claims-quorum-1", "approved", _request_quorum_one, "payload.quorum: 1"),
    ("decision-claims-quorum-1", "approved", _decide_quorum_one, "decision.obligations"),
    ("lockdown-quorum-raised", "lockdown", _lockdown_quorum, "decision.obligations"),
    (
        "lockdown-posture-dropped",
        "lockdown",
        _posture_normal,
        "decision.verdict: decided again it is 'allow'",
    ),
    # 19: order, uniqueness, emptiness, binding
    ("events-swapped", "approved", lambda es, _: _swap(es, 3, 4), "must be in log order"),
    (
        "events-reordered-consistently",
        "approved",
        lambda es, _: _swap_positions(es, 2, 3),
        "needs approval.requested next",
    ),
    ("event-duplicated", "approved", lambda es, _: es.insert(3, es[3]), "each event once"),
    ("ran-twice", "approved", _start_again, "execution started twice"),
    ("events-empty", "approved", lambda es, _: es.clear(), "events: is empty"),
    (
        "start-bound-to-another-intent",
        "approved",
        _set("execution.started", "payload.intent_hash", OTHER_HASH),
        "payload.intent_hash: bound to",
    ),
    (
        "vote-bound-to-another-intent",
        "approved",
        _set("approval.granted", "payload.intent_hash", OTHER_HASH),
        "payload.intent_hash: bound to",
    ),
    ("context-unreferenced", "approved", _extra_config, "named by no decision"),
    ("event-moved-into-context", "approved", _move_to_context, "context may hold policy"),
    # 24: every re-derivation and story rule, one consistent forgery each
    (
        "intent-edited",
        "approved",
        _set("intent.recorded", "payload.intent.target", "db/everything"),
        "does not hash to its recorded hash",
    ),
    (
        "verdict-edited",
        "denied",
        _set("decision.recorded", "payload.decision.verdict", "allow"),
        "decision.verdict: the policy decides deny",
    ),
    (
        "reasons-edited",
        "denied",
        _set("decision.recorded", "payload.decision.reasons", ["x"]),
        "decision.reasons",
    ),
    ("gate-loosened", "denied", _loosen, "the gate loosened"),
    ("gate-without-control", "lockdown", _no_control, "without naming a control"),
    (
        "gate-record-edited",
        "lockdown",
        _set("gate.blocked", "payload.reason", "none"),
        "does not repeat the decision's gate record",
    ),
    (
        "killswitch-elsewhere",
        "killswitch",
        lambda es, c: (
            _set("decision.recorded", "payload.decision.gate.controls", ["killswitch:tenant:x"])(
                es, c
            ),
            _set("gate.blocked", "payload.controls", ["killswitch:tenant:x"])(es, c),
        ),
        "does not cover this intent",
    ),
    (
        "config-missing",
        "denied",
        _set("decision.recorded", "payload.decision.config_hash", _DELETE),
        "decision.config_hash: missing",
    ),
    ("config-withheld", "denied", lambda _, c: c.pop(0), "lacks the configuration"),
    ("policy-withheld", "denied", lambda _, c: c.pop(1), "lacks the policy"),
    (
        "posture-unknown",
        "denied",
        _set("decision.recorded", "payload.posture", "relaxed"),
        "payload.posture",
    ),
    ("started-when-denied", "denied", _start_denied, "without an allow or an approval"),
    ("vote-after-deadline", "approved", _vote_late, "after the approval window closed"),
    (
        "requester-approves",
        "approved",
        _set("approval.granted", "payload.approver", "agent-7"),
        "may not vote on it",
    ),
    ("approver-counted-twice", "approved", _same_approver, "has already approved"),
    (
        "vote-count-edited",
        "approved",
        _set("approval.granted", "payload.count", 2),
        "payload.count",
    ),
    (
        "approvers-edited",
        "approved",
        _set("intent.approved", "payload.approvers", ["mallory", "bob"]),
        "payload.approvers",
    ),
    (
        "result-edited",
        "approved",
        _set("execution.finished", "payload.result", {"rows": 0}),
        "payload.result_hash",
    ),
    (
        "attempt-edited",
        "retried",
        _set("execution.finished", "payload.attempt", 1),
        "payload.attempt",
    ),
    (
        "retry-attempt-edited",
        "retried",
        _set("execution.retry", "payload.attempt", 2),
        "payload.attempt",
    ),
    ("expired-early", "expired", _expire_early, "expired before its deadline"),
    (
        "rejected-by-another",
        "rejected",
        _set("intent.rejected", "payload.rejected_by", "mallory"),
        "follows no rejection",
    ),
    (
        "payload-missing-a-field",
        "approved",
        _set("intent.approved", "payload.quorum", _DELETE),
        "payload.quorum: missing",
    ),
    (
        "float-in-canonical-content",
        "approved",
        _set("intent.approved", "payload.quorum", 2.5),
        "payload.quorum: 2.5 is not of type int",
    ),
    ("event-reindented", "approved", _reindent, "not in canonical form"),
    (
        "seq-not-leaf-index",
        "approved",
        lambda es, _: setattr(es[-1], "leaf_index", es[-1].leaf_index + 100),
        "is not its leaf index",
    ),
    (
        "event-of-another-tenant",
        "approved",
        _set("execution.finished", "tenant", "globex"),
        "filed under log 'acme'",
    ),
    (
        "decision-missing-a-field",
        "denied",
        _set("decision.recorded", "payload.decision.policy_hash", _DELETE),
        "cannot be checked: field 'policy_hash' is missing",
    ),
    (
        "event-actor-not-the-intents",
        "approved",
        _set("intent.recorded", "actor", {"id": "agent-8", "kind": "agent"}),
        "actor: the event says",
    ),
    (
        "decided-twice",
        "denied",
        lambda es, _: append(es, es[1].event | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ"}),
        "a second decision",
    ),
    (
        "payload-not-an-object",
        "approved",
        _set("execution.finished", "payload", []),
        "payload: not an object",
    ),
    (
        "refused-before-decision",
        "approved",
        lambda es, _: _swap_positions(es, 1, 4),
        "a vote refused before the intent was decided",
    ),
    (
        "type-unknown",
        "approved",
        _set("execution.finished", "type", "execution.teleported"),
        "is not part of an intent's story",
    ),
    (
        "intent-not-canonical",
        "approved",
        _intent_time_spelled_otherwise,
        "payload.intent is not in its canonical form",
    ),
    (
        "rate-limit-not-configured",
        "rate-limited",
        _rate_limit_on("tenant"),
        "the configuration sets no tenant rate limit",
    ),
    (
        "request-edited",
        "lockdown",
        _set("approval.requested", "payload.window_seconds", 60),
        "differs from the one the decision makes",
    ),
    (
        "request-not-made",
        "approved",
        lambda es, _: append(es, _again(es, "approval.requested")),
        "an approval request the decision does not make",
    ),
    (
        "vote-after-the-end",
        "approved",
        lambda es, _: append(es, _again(es, "approval.granted")),
        "a vote counted while the intent was finished",
    ),
    (
        "approved-quorum-edited",
        "approved",
        _set("intent.approved", "payload.quorum", 3),
        "payload.quorum: 3, the decision requires 2",
    ),
    (
        "expiry-record-edited",
        "expired",
        _set("intent.expired", "payload.quorum", 3),
        "the expiry record differs",
    ),
    (
        "expired-when-finished",
        "approved",
        lambda es, _: append(es, _as(es, "intent.expired")),
        "expired while the intent was finished",
    ),
    (
        "retry-after-the-end",
        "approved",
        lambda es, _: append(es, _as(es, "execution.retry")),
        "a retry while the intent was finished",
    ),
    (
        "blocked-after-the-end",
        "approved",
        lambda es, _: append(es, _as(es, "execution.blocked")),
        "blocked while the intent was finished",
    ),
    (
        "finished-maybe",
        "approved",
        _set("execution.finished", "payload.status", "maybe"),
        "is neither succeeded nor failed",
    ),
    (
        "unknown-after-the-end",
        "approved",
        lambda es, _: append(es, _as(es, "execution.outcome_unknown")),
        "outcome unknown while the intent was finished",
    ),
    (
        "unknown-of-another-start",
        "approved",
        _unknown_of_another_start,
        "not this intent's execution.started",
    ),
    (
        "finished-after-blocked",
        "approved",
        lambda es, _: _end_then_finish(es, "execution.blocked", {"control": "x", "reason": "y"}),
        "execution finished while the intent was blocked before the side effect",
    ),
    (
        "finished-after-unknown",
        "approved",
        lambda es, _: _end_then_finish(es, "execution.outcome_unknown", None),
        "execution finished while the intent was outcome unknown",
    ),
    (
        "count-as-a-boolean",
        "approved",
        _set("approval.granted", "payload.count", True),
        "payload.count: True is not of type int",
    ),
    (
        "rejection-cut-off",
        "rejected",
        lambda es, _: _drop(es, "intent.rejected"),
        "the story stops before intent.rejected",
    ),
    (
        "event-id-reused",
        "approved",
        lambda es, _: append(es, of_type(es, "approval.refused").event),
        "appears twice",
    ),
    (
        "intent-recorded-twice",
        "approved",
        lambda es, _: append(es, es[0].event | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ"}),
        "is recorded twice",
    ),
    (
        "decision-cut-off",
        "lockdown",
        lambda es, _: _drop(es, "approval.requested"),
        "the story stops before approval.requested",
    ),
]


@pytest.mark.parametrize(
    ("base", "edit", "message"),
    [pytest.param(base, edit, message, id=name) for name, base, edit, message in CASES],
)
def test_a_consistent_forgery_of_the_story_is_named(
    golden: Ledger, base: str, edit: Any, message: str
) -> None:
    honest = _story(golden, BASES[base])
    assert verify_bundle(honest, KEY.verifier_key()).passed
    forged = forge(honest, edit, KEY)
    assert forged != honest
    verdict = verify_bundle_text(json.dumps(forged), KEY.verifier_key())
    assert not verdict.passed
    assert any(message in failure for failure in verdict.failures), verdict.failures
    # an implementation written from docs/evidence-bundle.md alone agrees
    assert spec_check(forged, KEY.verifier_key()), "the spec checker must refuse it too"


def test_the_forgery_helper_alone_changes_nothing_that_verifies(golden: Ledger) -> None:
    for base in BASES.values():
        honest = _story(golden, base)
        resealed = forge(honest, lambda _, __: None, KEY)
        verdict = verify_bundle(resealed, KEY.verifier_key())
        assert verdict.passed
        assert verdict.events == len(honest["events"]) + len(honest["context"])
        assert verdict.decisions == 1
        assert spec_check(resealed, KEY.verifier_key()) == []


def test_a_story_cut_short_is_reported_open_never_a_silent_pass(
    golden: Ledger, tmp_path: Path
) -> None:
    honest = _story(golden, BASES["approved"])
    cut = forge(honest, lambda es, _: _drop(es, "execution.finished"), KEY)
    verdict = verify_bundle(cut, KEY.verifier_key())
    assert verdict.passed, verdict.failures  # nothing in it is false: it stops early
    assert [i["state"] for i in verdict.intents] == ["started, not finished"]
    assert not verdict.complete
    assert verdict.to_json()["story"] == "OPEN"
    assert any("open at export" in note for note in verdict.notes)
    whole = verify_bundle(honest, KEY.verifier_key())
    assert whole.to_json()["story"] == "COMPLETE"
    assert [i["state"] for i in whole.intents] == ["finished: succeeded"]
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(cut))
    shown = CliRunner().invoke(app, ["verify-bundle", str(path)])
    assert shown.exit_code == 0
    intent_id = verdict.intents[0]["intent_id"]
    assert f"intent {intent_id}: started, not finished (open)" in shown.stdout
    assert "VERIFY_STORY=OPEN" in shown.stdout
    as_json = json.loads(CliRunner().invoke(app, ["verify-bundle", str(path), "--json"]).stdout)
    assert as_json["intents"] == [
        {"intent_id": intent_id, "state": "started, not finished", "open": True}
    ]


def test_every_state_at_export_is_named(golden: Ledger) -> None:
    states = {
        base: [i["state"] for i in verify_bundle(_story(golden, wanted)).intents]
        for base, wanted in BASES.items()
    }
    assert states == {
        "approved": ["finished: succeeded"],
        "denied": ["denied"],
        "lockdown": ["pending approval"],
        "killswitch": ["denied"],
        "rate-limited": ["denied"],
        "expired": ["expired"],
        "retried": ["finished: succeeded"],
        "rejected": ["rejected"],
    }


def _rehashed(bundle: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    return body | {"bundle_hash": content_hash(body)}


def _entry(name: str, **change: Any) -> Callable[[dict[str, Any]], None]:
    def edit(bundle: dict[str, Any]) -> None:
        bundle[name][0].update(change)

    return edit


#: (case, edit of an honest bundle, the field the failure must name)
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("checkpoints-not-an-object", lambda b: b.update(checkpoints=["note"]), "checkpoints:"),
    ("events-not-a-list", lambda b: b.update(events={"0": "x"}), "events: must be a list"),
    ("context-not-a-list", lambda b: b.update(context="x"), "context: must be a list"),
    ("extra-top-level-field", lambda b: b.update(signed_by="me"), "'signed_by'"),
    (
        "extra-entry-field",
        _entry("events", note="x"),
        "unexpected field 'note'",
    ),
    ("entry-not-an-object", lambda b: b["events"].insert(0, "x"), "events[0]: malformed entry"),
    (
        "upper-case-proof-hex",
        lambda b: b["events"][0].update(proof=[h.upper() for h in b["events"][0]["proof"]]),
        "is not 64 lowercase hex digits",
    ),
    ("leaf-index-as-text", _entry("events", leaf_index="8"), "is not its leaf index '8'"),
    ("event-not-text", _entry("events", event=7), "events[0]: event is not JSON"),
    ("log-elsewhere", _entry("context", log="globex"), "context[0]: log 'globex'"),
    ("public-key-not-text", lambda b: b.update(public_key=7), "public_key"),
    ("format-other", lambda b: b.update(format="exoarmur.evidence-bundle/v3"), "format"),
    (
        "proof-altered",
        lambda b: b["events"][0]["proof"].__setitem__(0, "0" * 64),
        "events[0]: inclusion proof does not reach the signed root of acme",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [pytest.param(edit, msg, id=name) for name, edit, msg in MALFORMED]
)
def test_a_malformed_bundle_fails_naming_the_field(golden: Ledger, edit: Any, message: str) -> None:
    bundle = _story(golden, BASES["approved"])
    edit(bundle)
    verdict = verify_bundle_text(json.dumps(_rehashed(bundle)))
    assert not verdict.passed
    assert any(message in failure for failure in verdict.failures), verdict.failures
    assert spec_check(_rehashed(bundle), KEY.verifier_key())


def test_an_upper_case_bundle_hash_is_another_hash(golden: Ledger) -> None:
    bundle = _story(golden, BASES["approved"])
    bundle["bundle_hash"] = bundle["bundle_hash"].upper()
    verdict = verify_bundle(bundle)
    assert verdict.failures == ["bundle_hash: does not match the bundle's content"]


def test_a_denial_by_a_control_outside_the_bundle_is_noted(golden: Ledger) -> None:
    verdict = verify_bundle(_story(golden, BASES["killswitch"]), KEY.verifier_key())
    assert verdict.passed
    assert any("was denied by killswitch:" in note for note in verdict.notes), verdict.notes


def test_a_bundle_that_is_not_an_object_counts_nothing() -> None:
    verdict = verify_bundle_text("[]")
    assert verdict.failures[0].startswith("bundle: must be an object with exactly the fields")
    assert (verdict.events, verdict.decisions, verdict.intents) == (0, 0, [])


def test_another_format_is_the_one_failure(golden: Ledger) -> None:
    bundle = _story(golden, BASES["approved"]) | {"format": "exoarmur.evidence-bundle/v3"}
    assert verify_bundle(bundle).failures == [
        "format: expected one of exoarmur.evidence-bundle/v1, exoarmur.evidence-bundle/v2, "
        "found 'exoarmur.evidence-bundle/v3'"
    ]


@pytest.mark.parametrize(
    ("edit", "failures"),
    [
        (lambda b: b.update(events={"0": "x"}), ["events: must be a list"]),
        (lambda b: b.update(context="x"), ["context: must be a list"]),
    ],
)
def test_a_list_that_is_not_one_is_one_failure(
    golden: Ledger, edit: Any, failures: list[str]
) -> None:
    bundle = _story(golden, BASES["approved"])
    edit(bundle)
    assert verify_bundle(_rehashed(bundle), KEY.verifier_key()).failures == failures


def test_text_that_is_not_json_is_one_failure() -> None:
    verdict = verify_bundle_text(b"{")
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith("bundle: not JSON")


def _config_without_window(events: list[Entry], context: list[Entry]) -> None:
    snapshot = next(e for e in context if e.event["type"] == "config.snapshot").event
    config = {k: v for k, v in snapshot["payload"]["config"].items() if k != "approvals"}
    snapshot["payload"] = {"config": config, "config_hash": content_hash(config)}
    decision(events)["config_hash"] = content_hash(config)


def test_with_no_window_configured_an_approval_window_is_an_hour(golden: Ledger) -> None:
    honest = _story(golden, BASES["lockdown"])  # no @approval_window: the configuration's
    requested = next(
        json.loads(e["event"]) for e in honest["events"] if "approval.requested" in e["event"]
    )
    assert requested["payload"]["window_seconds"] == 3600
    forged = forge(honest, _config_without_window, KEY)
    verdict = verify_bundle(forged, KEY.verifier_key())
    assert verdict.passed, verdict.failures
    assert spec_check(forged, KEY.verifier_key()) == []


def test_an_event_of_no_intent_in_the_correlation_takes_no_part(golden: Ledger) -> None:
    honest = _story(golden, BASES["approved"])

    def control_event(events: list[Entry], _: list[Entry]) -> None:
        last = events[-1].event
        note = {k: v for k, v in last.items() if k != "intent_id"}
        append(events, note | {"event_id": "01KDVDNA0HQR10R2VWCCARZZZZ", "type": "posture.set"})

    forged = forge(honest, control_event, KEY)
    assert verify_bundle(forged, KEY.verifier_key()).passed
    assert spec_check(forged, KEY.verifier_key()) == []


def test_the_approval_window_comes_from_the_configuration(golden: Ledger) -> None:
    honest = _story(golden, BASES["lockdown"])  # no @approval_window: the configuration's

    def half_an_hour(events: list[Entry], context: list[Entry]) -> None:
        snapshot = next(e for e in context if e.event["type"] == "config.snapshot").event
        config = snapshot["payload"]["config"] | {"approvals": {"window_seconds": 1800}}
        snapshot["payload"] = {"config": config, "config_hash": content_hash(config)}
        decision(events)["config_hash"] = content_hash(config)
        decided_at = parse_time(of_type(events, "decision.recorded").event["process_time"])
        payload(events, "approval.requested").update(
            window_seconds=1800, deadline=format_time(decided_at + timedelta(seconds=1800))
        )

    forged = forge(honest, half_an_hour, KEY)
    assert verify_bundle(forged, KEY.verifier_key()).passed
    assert spec_check(forged, KEY.verifier_key()) == []


def test_a_checkpoint_of_another_log_is_refused(golden: Ledger) -> None:
    from exoarmur.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint

    bundle = _story(golden, BASES["approved"])
    mine = open_checkpoint(bundle["checkpoints"]["acme"], KEY.verifier())
    elsewhere = Checkpoint(f"{KEY.name}/globex", mine.size, mine.root_hash)
    bundle["checkpoints"]["acme"] = sign_checkpoint(elsewhere, KEY)
    verdict = verify_bundle(_rehashed(bundle), KEY.verifier_key())
    assert f"checkpoints.acme: origin '{KEY.name}/globex' is not log 'acme'" in verdict.failures
    assert spec_check(_rehashed(bundle), KEY.verifier_key())


def test_a_value_json_allows_but_canonical_json_does_not_fails_the_bundle(
    golden: Ledger,
) -> None:
    # NaN never gets this far (the strict JSON reader names it); an integer past
    # 2^53 is plain JSON that RFC 8785 cannot canonicalize
    bundle = _story(golden, BASES["approved"]) | {"correlation_id": 2**60}
    verdict = verify_bundle_text(json.dumps(bundle))
    assert not verdict.passed
    assert verdict.failures[0].startswith("bundle: value cannot be canonicalized")
    nan = _story(golden, BASES["approved"]) | {"correlation_id": float("nan")}
    refused = verify_bundle_text(json.dumps(nan))
    assert not refused.passed
    assert "correlation_id: NaN is not a JSON value" in refused.failures[0]
