"""Attestation over HTTP and the CLI; trust show; the trust_influence demo."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from exoarmur.cli import app
from test_server_support import deploy

HELD = """
@id("tickets-attested") @evidence("attested")
permit (principal, action == Action::"ticket.create", resource);
"""


def _ticket() -> dict[str, object]:
    return {
        "tenant": "acme",
        "actor": {"id": "agent-7", "kind": "agent"},
        "action": "ticket.create",
        "target": "queue/soc",
        "safety_class": "A1",
        "params": {},
    }


def test_an_operator_attests_over_http_and_identity_comes_from_the_key(tmp_path: Path) -> None:
    d = deploy(tmp_path / "h", policy=HELD)
    try:
        # this home does not enforce evidence: the attestation is recorded all the same
        sent = d.client.post("/v1/intents", json=_ticket(), headers=d.auth("agent-7"))
        intent_id = sent.json()["intent_id"]
        url = f"/v1/tenants/acme/intents/{intent_id}/attest"
        before = d.size("acme")
        assert d.client.post(url, json={"note": "x"}).status_code == 401
        assert d.client.post(url, json={"note": "x"}, headers=d.auth("mallory")).status_code == 403
        forged = {"note": "x", "principal": "root"}
        assert d.client.post(url, json=forged, headers=d.auth("alice")).status_code == 422
        assert d.size("acme") == before
        answer = d.client.post(url, json={"note": "EDR checked"}, headers=d.auth("alice"))
        assert answer.status_code == 200, answer.text
        (event,) = [e for e in d.governor.story("acme", intent_id) if e.type == "evidence.attested"]
        assert event.payload["principal"] == "alice"
        assert event.event_id == answer.json()["event_id"]
    finally:
        d.governor.close()


def test_demo_trust_influence_is_stable_in_two_fresh_homes_and_trust_show_reads_it(
    tmp_path: Path,
) -> None:
    runs = []
    for name in ("a", "b"):
        home = str(tmp_path / name)
        result = CliRunner().invoke(
            app, ["--home", home, "demo", "trust_influence", "--deterministic"]
        )
        assert result.exit_code == 0, result.output
        runs.append(result.stdout)
    markers = dict(line.split("=", 1) for line in runs[0].splitlines())
    assert markers["TRUST_SCORE"] == "0.3333"
    assert markers["REQUIRED_EVIDENCE_LEVEL"] == "corroborated"
    assert markers["EXECUTION_ALLOWED"] == "false"
    assert markers["REPLAY_VERIFIED"] == "true"
    assert runs[0] == runs[1]
    shown = CliRunner().invoke(
        app, ["--home", str(tmp_path / "a"), "trust", "show", "--tenant", "acme"]
    )
    assert "detector stuffing score 0.5000 (1 of 2 undone)" in shown.stdout
    as_json = CliRunner().invoke(
        app, ["--home", str(tmp_path / "a"), "trust", "show", "--tenant", "acme", "--json"]
    )
    scores = json.loads(as_json.stdout)["scores"]
    assert {s["name"] for s in scores} == {"stuffing", "idp", "edr"}
    released = CliRunner().invoke(
        app, ["--home", str(tmp_path / "a"), "evidence", "recheck", "--tenant", "acme"]
    )
    assert released.exit_code == 0
    assert "released 0" in released.stdout


def test_cli_submit_below_the_level_waits_with_exit_4_and_an_operator_releases_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "h"
    run = CliRunner()
    assert run.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    (home / "policy" / "zz-evidence.cedar").write_text(HELD, encoding="utf-8")
    config = home / "config.toml"
    config.write_text(config.read_text() + "\n[gate.evidence]\nenforced = true\n")
    activated = run.invoke(app, ["--home", str(home), "policy", "activate", str(home / "policy")])
    assert activated.exit_code == 0, activated.output
    ticket = _ticket() | {"actor": {"id": "agent-1", "kind": "agent"}}
    sent = run.invoke(app, ["--home", str(home), "submit", "-", "--json"], input=json.dumps(ticket))
    assert sent.exit_code == 4, sent.output
    held = json.loads(sent.stdout)
    assert held["status"] == "pending_evidence"
    added = run.invoke(
        app,
        [
            "--home",
            str(home),
            "principal",
            "add",
            "alice",
            "--role",
            "operator",
            "--tenant",
            "acme",
            "--json",
        ],
    )
    key = json.loads(added.stdout)["api_key"]
    (tmp_path / "alice.key").write_text(key)
    attested = run.invoke(
        app,
        [
            "--home",
            str(home),
            "evidence",
            "attest",
            held["intent_id"],
            "--tenant",
            "acme",
            "--note",
            "checked",
            "--key-file",
            str(tmp_path / "alice.key"),
            "--json",
        ],
    )
    assert attested.exit_code == 0, attested.output
    (released,) = json.loads(attested.stdout)["released"]
    assert released["status"] == "decided"
    again = run.invoke(
        app,
        [
            "--home",
            str(home),
            "evidence",
            "attest",
            held["intent_id"],
            "--tenant",
            "acme",
            "--note",
            "seen again",
            "--key-file",
            str(tmp_path / "alice.key"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert f"attested {held['intent_id']} as alice" in again.stdout
    anonymous = run.invoke(
        app,
        ["--home", str(home), "evidence", "attest", held["intent_id"], "-t", "acme", "--note", "x"],
        env={"EXOARMUR_API_KEY": ""},
    )
    assert anonymous.exit_code != 0
