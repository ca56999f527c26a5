"""The joins: evidence that arrives releases what waited for it; shadows only raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.home import Home, open_governor
from exoarmur.policy import PolicyBundle
from exoarmur.replay import replay
from exoarmur.server import create_app
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
