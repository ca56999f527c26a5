"""Pending answers (HTTP 202, MCP) link the intent's console page when the public URL is set."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from exoarmur.clock import FixedClock
from exoarmur.errors import ConfigError
from exoarmur.ids import SeededIds
from exoarmur.integrations.console_link import check_public_url, console_link
from exoarmur.integrations.mcp.mapping import load_settings
from exoarmur.integrations.mcp.proxy import GovernedTools
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.server import create_app
from exoarmur.server.settings import ServiceSettings

POLICY = """
@id("one-approver") @approval("1")
permit (principal, action, resource) when { context.safety_class == "A2" };
"""
PUBLIC = "https://exo.example/base"


def governor_at(tmp_path: Path) -> Governor:
    return Governor(
        ledger=Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("t/link")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        clock=FixedClock(datetime(2026, 6, 1, tzinfo=UTC)),
        ids=SeededIds(9),
    )


def test_the_link_names_the_tenants_inbox_and_the_intents_card() -> None:
    assert console_link(None, "acme", "01J") is None
    assert (
        console_link(check_public_url(PUBLIC + "/", "x"), "acme", "01J")
        == "https://exo.example/base/console/inbox?tenant=acme#intent-01J"
    )
    for bad in ("ftp://x", "https://", "https://x/?q=1", 7):
        with pytest.raises(ConfigError, match=r"server\.public_url"):
            ServiceSettings.from_config({"server": {"public_url": bad}})


@pytest.mark.parametrize("public_url", [None, PUBLIC])
def test_a_202_links_the_console_only_when_the_public_url_is_set(
    tmp_path: Path, public_url: str | None
) -> None:
    governor = governor_at(tmp_path)
    _, key = governor.add_principal("agent-7", "agent", ["acme"])
    app = create_app(governor)
    app.state.public_url = public_url
    with TestClient(app) as client:
        answer = client.post(
            "/v1/intents",
            json={"tenant": "acme", "action": "db.vacuum", "target": "db/x", "safety_class": "A2"},
            headers={"Authorization": f"Bearer {key}"},
        )
    governor.close()
    assert answer.status_code == 202, answer.text
    body = answer.json()
    if public_url is None:
        assert "console_url" not in body
    else:
        assert (
            body["console_url"] == f"{PUBLIC}/console/inbox?tenant=acme#intent-{body['intent_id']}"
        )


def test_an_mcp_pending_answer_links_the_console(tmp_path: Path) -> None:
    governor = governor_at(tmp_path)
    settings = load_settings("acme", {"server": {"public_url": PUBLIC}})
    assert settings.public_url == PUBLIC
    outcome = governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "mcp.upstream.drop",
            "target": "db/x",
            "safety_class": "A2",
        }
    )
    # the answer is built from the ledger alone; no upstream is reached for a pending call
    tools = GovernedTools(governor, None, settings, upstream=None)  # type: ignore[arg-type]
    answer = tools._answer(outcome)
    governor.close()
    link = f"{PUBLIC}/console/inbox?tenant=acme#intent-{outcome.intent_id}"
    assert answer.meta is not None
    assert answer.meta["exoarmur/console_url"] == link
    assert link in answer.content[0].text  # type: ignore[union-attr]
