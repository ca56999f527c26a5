"""The joins: evidence that arrives releases what waited for it; shadows only raise."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.approvals.book import Vote
from exoarmur.cli import app
from exoarmur.clock import StepClock
from exoarmur.encoding import content_hash
from exoarmur.evidence import export_bundle, export_pack, pack_bytes, verify_bundle
from exoarmur.home import Home, open_governor
from exoarmur.observations import parse_observation
from exoarmur.observations.intake import desk_of
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle
from exoarmur.replay import replay
from exoarmur.server import create_app
from forgery import Entry, forge, of_type
from spec_checker import check as spec_check
from spec_pack_checker import check_pack
from test_server_support import PEOPLE, Deployment, TestClient

#: a ticket needs two independent sources behind it
CORROBORATED = """
@id("tickets-with-evidence") @evidence("corroborated")
permit (principal, action == Action::"ticket.create", resource);
"""
ENFORCED = "\n[gate.evidence]\nenforced = true\n"


def _enforcing_home(path: Path) -> None:
    Home(path).init()
    config = path / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + ENFORCED, encoding="utf-8")


def _ticket(refs: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "actor": {"id": "agent-7", "kind": "agent"},
        "action": "ticket.create",
        "target": "queue/soc",
        "safety_class": "A1",
        "params": {"evidence_refs": refs},
    }


def _observation(observation_id: str, source: str) -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "source": source,
        "subject": {"kind": "service", "id": "mail"},
        "kind": "phish.reported",
        "attributes": {},
        "event_time": "2026-11-30T08:00:00Z",
    }


def test_observations_posted_over_http_release_the_intent_waiting_for_them(
    tmp_path: Path,
) -> None:
    _enforcing_home(tmp_path / "h")
    governor = open_governor(tmp_path / "h")
    governor.activate_policy(PolicyBundle.from_text(CORROBORATED))
    keys = {n: governor.add_principal(n, r, t)[1] for n, (r, t) in PEOPLE.items()}
    d = Deployment(tmp_path / "h", governor, keys, TestClient(create_app(governor)))
    try:
        sent = d.client.post(
            "/v1/intents", json=_ticket({"observations": ["o1", "o2"]}), headers=d.auth("agent-7")
        )
        held = sent.json()
        assert held["status"] == "pending_evidence", sent.text
        one = d.client.post(
            "/v1/observations", json=_observation("o1", "edr"), headers=d.auth("agent-7")
        )
        assert one.status_code == 200, one.text
        assert one.json()["released"] == []  # one source is not corroborated
        two = d.client.post(
            "/v1/observations", json=_observation("o2", "idp"), headers=d.auth("agent-7")
        )
        assert two.status_code == 200, two.text
        assert two.json()["released"] == [held["intent_id"]]
        story = [e.type for e in governor.story("acme", held["intent_id"])]
        assert "evidence.satisfied" in story
        # allowed now (no executor is bound to ticket.create in a fresh home)
        assert governor.outcome("acme", held["intent_id"]).status.value == "decided"
        assert replay(governor.ledger.store, "acme").verified
    finally:
        d.client.close()
        governor.close()


def test_exoarmur_observe_releases_the_intent_waiting_for_its_evidence(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _enforcing_home(home)
    (home / "policy" / "zz-evidence.cedar").write_text(CORROBORATED, encoding="utf-8")
    run = CliRunner()
    activated = run.invoke(app, ["--home", str(home), "policy", "activate", str(home / "policy")])
    assert activated.exit_code == 0, activated.output
    refs = {"observations": ["o1", "o2"]}
    ticket = _ticket(refs) | {"actor": {"id": "agent-1", "kind": "agent"}}
    sent = run.invoke(app, ["--home", str(home), "submit", "-", "--json"], input=json.dumps(ticket))
    assert sent.exit_code == 4, sent.output
    held = json.loads(sent.stdout)["intent_id"]
    batch = "\n".join(json.dumps(_observation(o, s)) for o, s in (("o1", "edr"), ("o2", "idp")))
    seen = run.invoke(
        app, ["--home", str(home), "observe", "-", "--tenant", "acme"], input=batch + "\n"
    )
    assert seen.exit_code == 0, seen.output
    assert f"released {held}: its evidence arrived" in seen.stdout
    shown = run.invoke(app, ["--home", str(home), "show", held, "--tenant", "acme", "--json"])
    assert json.loads(shown.stdout)["outcome"]["status"] == "decided", shown.output


# -- verify-bundle and evidence packs: a story that waited for evidence --------------------

LADDER = """
@id("tickets-attested-or-corroborated") @evidence("corroborated") @approval("1")
@escalate_after("900") @escalate_quorum("2")
permit (principal, action == Action::"ticket.create", resource);

@id("closing-needs-an-attestation") @evidence("attested") @evidence_unmet("deny")
permit (principal, action == Action::"ticket.close", resource);
"""


@pytest.fixture(scope="module")
def waited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Governor, str]]:
    """A home where a ticket waited for evidence, was attested, escalated and approved."""
    home = tmp_path_factory.mktemp("waited") / "h"
    _enforcing_home(home)
    governor = open_governor(home, clock=StepClock(), seed=13)
    governor.activate_policy(PolicyBundle.from_text(LADDER))
    people = {n: governor.add_principal(n, r, t)[0] for n, (r, t) in PEOPLE.items()}
    people["carol"] = governor.add_principal("carol", "operator", ["acme"])[0]
    held = governor.submit(_ticket({"observations": ["o1", "o2"]}))
    assert held.status.value == "pending_evidence"
    sensor = {"id": "sensor", "kind": "service"}
    desk_of(governor).record("acme", [parse_observation(_observation("o1", "edr"))], sensor)
    _, (released,) = governor.attest_evidence("acme", held.intent_id, people["alice"], "EDR")
    assert released.status.value == "pending_approval"
    governor.clock.advance(timedelta(seconds=901))  # type: ignore[attr-defined]
    assert len(governor.escalate_due("acme")) == 1
    for name in ("bob", "carol"):
        governor.vote("acme", held.intent_id, people[name], Vote.APPROVE, "ok")
    kinds = [e.type for e in governor.story("acme", held.intent_id)]
    assert {"evidence.attested", "evidence.satisfied", "approval.escalated"} <= set(kinds)
    assert "intent.approved" in kinds
    denied = governor.submit(_ticket({}) | {"action": "ticket.close"})
    assert denied.decision.gate is not None
    assert denied.decision.gate["controls"] == ["evidence:attested"]
    yield governor, held.correlation_id
    governor.close()


def _verdicts(bundle: dict[str, Any], key: str) -> tuple[list[str], list[str]]:
    return verify_bundle(bundle, key).failures, spec_check(bundle, key)


def test_a_bundle_of_an_intent_that_waited_for_evidence_verifies_offline(
    waited: tuple[Governor, str],
) -> None:
    governor, stream = waited
    key = governor.ledger.key.verifier_key()
    bundle = export_bundle(governor.ledger, "acme", stream)
    assert bundle["format"] == "exoarmur.evidence-bundle/v2"
    verdict = verify_bundle(bundle, key)
    assert verdict.passed, verdict.failures
    assert any("was held for evidence: corroborated required, none met" in n for n in verdict.notes)
    assert spec_check(bundle, key) == []
    pack = export_pack(governor.ledger, "acme", stream)
    assert verify_bundle(pack, key).passed
    assert check_pack(pack_bytes(pack), key) == []
    # the same story read as format v1 (which had no evidence holds) fails in both
    old = forge(bundle, lambda events, context: None, governor.ledger.key)
    old["format"] = "exoarmur.evidence-bundle/v1"
    old["bundle_hash"] = content_hash({k: v for k, v in old.items() if k != "bundle_hash"})
    failures, spec = _verdicts(old, key)
    assert any("bundle format v1" in f for f in failures)
    assert spec


def test_a_bundle_of_an_intent_denied_for_its_evidence_verifies_in_both_checkers(
    waited: tuple[Governor, str],
) -> None:
    governor, _ = waited
    (closing,) = [
        e
        for e in governor.ledger.store.events("acme")
        if e.type == "intent.recorded" and e.payload["intent"]["action"] == "ticket.close"
    ]
    key = governor.ledger.key.verifier_key()
    bundle = export_bundle(governor.ledger, "acme", closing.correlation_id)
    assert bundle["format"] == "exoarmur.evidence-bundle/v1"  # nothing of v2 in its story
    assert _verdicts(bundle, key) == ([], [])

    def ask_less(events: list[Entry], _: list[Entry]) -> None:
        gate = of_type(events, "decision.recorded").event["payload"]["decision"]["gate"]
        gate["controls"] = ["evidence:observed"]
        gate["reason"] = "evidence: observed required, none met"

    failures, spec = _verdicts(forge(bundle, ask_less, governor.ledger.key), key)
    assert any("policy asks attested" in f for f in failures), failures
    assert spec


def _met(level: str) -> Callable[[list[Entry], list[Entry]], None]:
    def edit(events: list[Entry], _: list[Entry]) -> None:
        of_type(events, "evidence.satisfied").event["payload"]["met"] = level

    return edit


def _unattested(events: list[Entry], _: list[Entry]) -> None:
    events.remove(of_type(events, "evidence.attested"))


def _asks_less(events: list[Entry], _: list[Entry]) -> None:
    for kind in ("decision.recorded", "gate.blocked"):
        payload = of_type(events, kind).event["payload"]
        gate = payload["decision"]["gate"] if kind == "decision.recorded" else payload
        gate["evidence"]["required"] = "observed"


def _escalate_to(quorum: int) -> Callable[[list[Entry], list[Entry]], None]:
    def edit(events: list[Entry], _: list[Entry]) -> None:
        of_type(events, "approval.escalated").event["payload"]["quorum"] = quorum

    return edit


def _self_attested(events: list[Entry], _: list[Entry]) -> None:
    of_type(events, "evidence.attested").event["payload"]["principal"] = "agent-7"


def _early_escalation(events: list[Entry], _: list[Entry]) -> None:
    escalation = of_type(events, "approval.escalated").event
    escalation["process_time"] = of_type(events, "approval.requested").event["process_time"]


def _released_to_allow(events: list[Entry], _: list[Entry]) -> None:
    of_type(events, "evidence.satisfied").event["payload"]["verdict"] = "allow"


def _unreadable_influence(events: list[Entry], _: list[Entry]) -> None:
    decided = of_type(events, "decision.recorded").event["payload"]["decision"]
    decided["gate"]["evidence"]["influences"] = [{"origin": "x", "level": "max", "reason": ""}]


def _released_at_once(events: list[Entry], _: list[Entry]) -> None:
    decided = of_type(events, "decision.recorded").event["payload"]["decision"]
    decided["gate"]["evidence"]["met"] = "corroborated"


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_met("observed"), "does not meet the corroborated the decision required"),
        (_unattested, "no evidence.attested of this intent comes before"),
        (_asks_less, "policy asks corroborated"),
        (_escalate_to(1), "the ladder says"),
        (_released_at_once, "held for evidence it met"),
        (_self_attested, "may not attest its evidence"),
        (_early_escalation, "escalated before"),
        (_released_to_allow, "payload.verdict"),
        (_unreadable_influence, "influences[0]: must be an object"),
    ],
    ids=[
        "met-below",
        "attested-by-nobody",
        "requirement-lowered",
        "ladder",
        "held-though-met",
        "self-attested",
        "early-escalation",
        "released-to-allow",
        "unreadable-influence",
    ],
)
def test_a_forged_release_or_escalation_fails_in_both_checkers(
    waited: tuple[Governor, str], edit: Callable[[list[Entry], list[Entry]], None], words: str
) -> None:
    governor, stream = waited
    key = governor.ledger.key.verifier_key()
    bundle = forge(export_bundle(governor.ledger, "acme", stream), edit, governor.ledger.key)
    failures, spec = _verdicts(bundle, key)
    assert any(words in f for f in failures), failures
    assert spec, "the spec checker passed a forgery verify-bundle refuses"
