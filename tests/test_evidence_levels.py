"""Evidence levels: computed from the tenant's recorded evidence, enforced, replayed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence_kit import believe, governor, observe, person, ticket
from exoarmur.errors import ConfigError, InputError, PermissionDenied, PolicyError
from exoarmur.evidence_levels import (
    EVIDENCE_SATISFIED,
    EvidenceFold,
    EvidenceRefs,
    level_met,
    level_of,
    parse_refs,
)
from exoarmur.executors import CallableExecutor, ExecutorRegistry
from exoarmur.gate import GateConfig
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus, Verdict
from exoarmur.pipeline import Governor
from exoarmur.policy.obligations import obligations_of
from exoarmur.principals import Principal
from exoarmur.replay.verify import replay


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(SqliteStore(tmp_path / "l.db"), SigningKey.generate("t/log"))


@pytest.fixture
def gov(ledger: Ledger) -> Iterator[Governor]:
    g = governor(ledger)
    yield g
    g.close()


def test_legacy_names_map_onto_the_ordered_levels() -> None:
    assert [level_of(n) for n in ("low", "standard", "high")] == [
        "observed",
        "corroborated",
        "attested",
    ]
    with pytest.raises(ValueError, match="must be one of none, observed"):
        level_of("extreme")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([], "must be an object"),
        ({"facts": []}, "unknown field 'facts'"),
        ({"beliefs": "b1"}, "beliefs: must be a list"),
        ({"observations": ["b", "a"]}, "must be sorted and distinct"),
        ({"observations": ["a", "a"]}, "must be sorted and distinct"),
    ],
)
def test_malformed_refs_name_the_field_and_write_nothing(
    gov: Governor, raw: object, words: str
) -> None:
    with pytest.raises(InputError, match=words):
        parse_refs({"evidence_refs": raw})
    before = gov.ledger.size("acme")
    with pytest.raises(InputError, match=words):
        gov.submit(ticket() | {"params": {"evidence_refs": raw}})
    assert gov.ledger.size("acme") == before


def test_level_met_counts_distinct_sources_and_attestations_bound_to_the_hash() -> None:
    fold = EvidenceFold()
    fold.apply(
        "observation.recorded", {"observation": {"observation_id": "o1", "source": "edr"}}, None
    )
    fold.apply(
        "observation.recorded", {"observation": {"observation_id": "o2", "source": "edr"}}, None
    )
    fold.apply(
        "observation.recorded", {"observation": {"observation_id": "o3", "source": "idp"}}, None
    )
    fold.apply("observation.recorded", {"observation": "garbled"}, None)
    assert level_met(EvidenceRefs(), fold, "i", "h") == "none"
    assert level_met(EvidenceRefs(("nope",)), fold, "i", "h") == "none"
    assert level_met(EvidenceRefs(("o1", "o2")), fold, "i", "h") == "observed"
    assert level_met(EvidenceRefs(("o1", "o3")), fold, "i", "h") == "corroborated"
    fold.apply("evidence.attested", {"intent_hash": "other", "principal": "a"}, "i")
    assert level_met(EvidenceRefs(), fold, "i", "h") == "none"
    fold.apply("evidence.attested", {"intent_hash": "h", "principal": "a"}, "i")
    assert level_met(EvidenceRefs(), fold, "i", "h") == "attested"


def test_new_policy_obligations_are_validated() -> None:
    ok = {"evidence": "corroborated", "evidence_unmet": "deny"}
    assert obligations_of("p", ok) == ok
    for bad, words in [
        ({"evidence": "sure"}, "@evidence must be one of"),
        ({"evidence_unmet": "shrug"}, "@evidence_unmet must be one of"),
        ({"escalate_after": "900"}, "@escalate_after needs @escalate_quorum"),
        ({"escalate_quorum": "3"}, "@escalate_quorum needs @escalate_after"),
        ({"escalate_after": "0", "escalate_quorum": "3"}, "positive whole number"),
        ({"escalate_after": "9", "escalate_quorum": "101"}, "exceeds 100"),
        ({"approval": "3", "escalate_after": "9", "escalate_quorum": "2"}, "must exceed"),
    ]:
        with pytest.raises(PolicyError, match=bad and words):
            obligations_of("p", bad)


def test_below_the_level_it_waits_then_runs_once_a_second_source_corroborates(
    ledger: Ledger,
) -> None:
    ran: list[str] = []
    executors = ExecutorRegistry()
    executors.bind("ticket.create", CallableExecutor(lambda i: ran.append(i.intent_id) or "ok"))
    g = governor(ledger)
    g.executors = executors
    observe(g, "acme", "o1", "edr")
    first = g.submit(ticket({"observations": ["o1", "o2"]}))
    assert first.status == OutcomeStatus.PENDING_EVIDENCE
    assert first.decision.gate is not None
    assert first.decision.gate["evidence"] == {
        "required": "corroborated",
        "met": "observed",
        "influences": [],
    }
    assert g.recheck_evidence("acme") == []
    assert ran == []
    # another tenant's evidence never counts
    assert observe(g, "globex", "o2", "idp").released == []
    assert g.recheck_evidence("acme") == []
    assert ran == []
    # recording the evidence releases what waited for it: no tick, no recheck needed
    assert observe(g, "acme", "o2", "idp").released == [first.intent_id]
    assert ran == [first.intent_id]
    assert g.recheck_evidence("acme") == []  # released once
    assert g.outcome("acme", first.intent_id).status == OutcomeStatus.EXECUTED
    report = replay(ledger.store, "acme")
    assert report.verified, report.to_json()
    g.close()


def test_policy_may_deny_instead_of_waiting(ledger: Ledger) -> None:
    g = governor(
        ledger,
        '@id("t") @evidence("observed") @evidence_unmet("deny")\n'
        'permit (principal, action == Action::"ticket.create", resource);',
    )
    outcome = g.submit(ticket({"beliefs": ["b-unknown"]}))
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.gate == {
        "policy_verdict": "allow",
        "controls": ["evidence:observed"],
        "reason": "evidence: observed required, none met",
    }
    g.close()


def test_an_operator_attests_then_approvals_are_asked(ledger: Ledger) -> None:
    g = governor(
        ledger,
        '@id("t") @evidence("high") @approval("1")\n'
        'permit (principal, action == Action::"ticket.create", resource);',
    )
    observe(g, "acme", "o1", "edr")
    held = g.submit(ticket({"observations": ["o1"]}))
    assert held.status == OutcomeStatus.PENDING_EVIDENCE
    assert g.pending("acme") == []  # no approval is asked before the evidence is there
    with pytest.raises(PermissionDenied):
        g.attest_evidence("acme", held.intent_id, person(g, "mallory"), "looked at it")
    with pytest.raises(PermissionDenied, match="revoked"):
        g.attest_evidence("acme", held.intent_id, Principal("alice", "admin", ("*",), "x"), "me")
    with pytest.raises(InputError, match="reason"):
        g.attest_evidence("acme", held.intent_id, person(g, "alice"), "  ")
    event, (released,) = g.attest_evidence(
        "acme", held.intent_id, person(g, "alice"), "checked the EDR"
    )
    assert event.payload["principal"] == "alice"
    assert released.status == OutcomeStatus.PENDING_APPROVAL
    kinds = [e.type for e in g.story("acme", held.intent_id)]
    assert kinds[-3:] == ["evidence.attested", EVIDENCE_SATISFIED, "approval.requested"]
    assert replay(ledger.store, "acme").verified
    g.close()


def test_replay_catches_a_release_with_too_little_evidence(ledger: Ledger) -> None:
    g = governor(ledger)
    observe(g, "acme", "o1", "edr")
    held = g.submit(ticket({"observations": ["o1"]}))
    # Forge a release the evidence does not support, through the normal append path.
    forged = g.drafts.for_intent(
        g.story("acme", held.intent_id)[0] and _intent(g, held.intent_id),
        EVIDENCE_SATISFIED,
        {
            "intent_hash": g.story("acme", held.intent_id)[0].payload["intent_hash"],
            "required": "corroborated",
            "met": "corroborated",
            "controls": {"tenant": g.ledger.size("acme")},
            "verdict": "allow",
        },
    )
    g.state.append_one("acme", forged)
    report = replay(ledger.store, "acme")
    g.close()
    assert not report.verified
    assert report.first is not None
    assert report.first.event_type == EVIDENCE_SATISFIED


def _intent(g: Governor, intent_id: str):  # type: ignore[no-untyped-def]
    from exoarmur.model.intent import ActionIntent

    return ActionIntent.from_canonical(g.story("acme", intent_id)[0].payload["intent"])


def test_old_snapshots_never_enforce_and_a_switched_off_flag_keeps_the_hash() -> None:
    old = GateConfig().to_canonical()
    assert "evidence" not in old
    assert GateConfig.from_recorded(old).evidence_enforced is False
    on = GateConfig.from_table({"evidence": {"enforced": True}})
    assert on.to_canonical()["evidence"] == {"enforced": True}
    assert GateConfig.from_recorded(on.to_canonical()).evidence_enforced is True
    assert GateConfig.from_table({"evidence": {"enforced": False}}).to_canonical() == old


def test_without_the_flag_evidence_is_recorded_and_ignored_as_before(ledger: Ledger) -> None:
    g = governor(ledger, enforced=False)
    outcome = g.submit(ticket({"observations": ["o-missing"]}))
    assert outcome.decision.verdict == Verdict.ALLOW
    assert outcome.decision.obligations == {"evidence": "standard"}
    g.close()


def test_containment_names_its_own_level_only_when_it_says_one(ledger: Ledger) -> None:
    g = governor(ledger, '@id("c") permit (principal, action, resource);')
    scope = {"kind": "identity", "id": "carol"}
    plain = {"scope": scope, "ttl_seconds": 60}
    base = ticket(action="containment.rate_limit", target="identity:carol")
    unsaid = g.submit(base | {"params": {"containment": plain}})
    assert unsaid.decision.verdict == Verdict.ALLOW
    said = g.submit(base | {"params": {"containment": plain | {"evidence": "low"}}})
    assert said.decision.verdict == Verdict.PENDING_EVIDENCE
    g.close()


def test_recorded_trust_scores_are_re_derived_by_replay(ledger: Ledger) -> None:
    g = governor(ledger, enforced=False)
    belief_id = believe(g, "acme", "stuffing", {"o1": "idp", "o2": "edr"})
    g.submit(ticket({"beliefs": [belief_id]}))
    with pytest.raises(PermissionDenied):
        g.record_trust("acme", person(g, "mallory"))
    event = g.record_trust("acme", person(g, "alice"))
    assert [(s["name"], s["acted"], s["score_bp"]) for s in event.payload["scores"]] == [
        ("stuffing", 1, 6666),
        ("edr", 1, 6666),
        ("idp", 1, 6666),
    ]
    assert replay(ledger.store, "acme").verified
    forged = dict(event.payload) | {"scores": []}
    g.state.append_one("acme", g.drafts.for_log("acme", "trust.scored", forged, {"id": "x"}))
    report = replay(ledger.store, "acme")
    assert report.first is not None
    assert report.first.event_type == "trust.scored"
    g.close()


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"evidence": True}, r"\[gate.evidence\] must be a table"),
        ({"evidence": {"enforce": True}}, "unknown key 'enforce'"),
        ({"evidence": {"enforced": "yes"}}, "enforced: must be true or false"),
    ],
)
def test_a_malformed_evidence_table_is_refused_naming_it(table: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        GateConfig.from_table(table)


def test_replay_refuses_a_release_of_what_never_waited(ledger: Ledger) -> None:
    g = governor(ledger, enforced=False)
    allowed = g.submit(ticket())
    intent = _intent(g, allowed.intent_id)
    payload = {
        "intent_hash": intent.intent_hash(),
        "required": "none",
        "met": "none",
        "controls": {"tenant": 0},
        "verdict": "allow",
    }
    g.state.append_one("acme", g.drafts.for_intent(intent, EVIDENCE_SATISFIED, payload))
    report = replay(ledger.store, "acme")
    assert report.first is not None
    assert report.first.reason == "nothing was waiting for evidence"
    g.close()


def test_a_kill_switch_engaged_while_it_waited_still_blocks_the_release(ledger: Ledger) -> None:
    ran: list[str] = []
    executors = ExecutorRegistry()
    executors.bind("ticket.create", CallableExecutor(lambda i: ran.append(i.intent_id) or "ok"))
    g = governor(ledger)
    g.executors = executors
    held = g.submit(ticket({"observations": ["o1", "o2"]}))
    g.engage_killswitch("tenant:acme", "incident", person(g, "alice"))
    observe(g, "acme", "o1", "edr")
    assert observe(g, "acme", "o2", "idp").released == [held.intent_id]
    assert ran == []
    assert g.outcome("acme", held.intent_id).status == OutcomeStatus.BLOCKED
    assert replay(ledger.store, "acme").verified
    g.close()
