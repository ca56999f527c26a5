"""Malformed containment input is refused before anything is recorded, on every entry path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from containment_kit import CONTAINMENT_POLICY, action, governor
from exoarmur.cli import app
from exoarmur.errors import ContainmentError
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from test_server_support import Deployment, deploy


def _with(containment: object, **overrides: Any) -> dict[str, Any]:
    intent = action("rate_limit", "identity:carol", **overrides)
    intent["params"] = {"containment": containment}
    return intent


SCOPE = {"kind": "identity", "id": "carol"}
#: (intent, the field the error names, the rule it states)
BAD: list[tuple[dict[str, Any], str]] = [
    (_with({"scope": SCOPE, "ttl_seconds": 60, "why": 1}), "unknown field 'why'"),
    (_with({"scope": SCOPE, "ttl_seconds": 0}), "ttl_seconds: must be positive"),
    (_with({"scope": SCOPE, "ttl_seconds": -5}), "ttl_seconds: must be positive"),
    (_with({"scope": SCOPE, "ttl_seconds": 10**9}), "ttl_seconds: 1000000000 exceeds the bound"),
    (
        _with({"scope": SCOPE | {"tenant": "globex"}, "ttl_seconds": 60}),
        "scope: names tenant 'globex'",
    ),
    (_with({"scope": {"kind": "planet", "id": "x"}, "ttl_seconds": 60}), "scope.kind"),
    (_with({"scope": 7, "ttl_seconds": 60}), "scope: must be an object with kind and id"),
    (_with("rate limit carol"), "params.containment: must be an object"),
    (action("rm_rf", "identity:carol"), "unknown effector 'rm_rf'"),
    (action("isolate_endpoint", "endpoint:pc-1", safety_class="A0"), "safety_class"),
    (
        action("rate_limit", "identity:carol", action="containment.plan", params={"plan": []}),
        "plan",
    ),
]
IDS = [
    "unknown-field",
    "ttl-zero",
    "ttl-negative",
    "ttl-above-bound",
    "other-tenant",
    "bad-kind",
    "malformed-scope",
    "not-an-object",
    "unknown-effector",
    "below-class",
    "malformed-plan",
]


@pytest.fixture
def gov(tmp_path: Path) -> Iterator[Governor]:
    g = governor(Ledger(SqliteStore(tmp_path / "l.db"), SigningKey.generate("t/log")))
    yield g
    g.close()


def _size(g: Governor) -> int:
    return sum(g.ledger.size(t) for t in ("acme", "_system"))


@pytest.mark.parametrize(("intent", "words"), BAD, ids=IDS)
def test_submit_and_run_refuse_bad_containment_writing_nothing(
    gov: Governor, intent: dict[str, Any], words: str
) -> None:
    before = _size(gov)
    with pytest.raises(ContainmentError, match=re.escape(words)):
        gov.submit(intent)
    with pytest.raises(ContainmentError, match=r"params|safety_class|plan"):
        gov.run(intent, lambda _: "ran")
    assert _size(gov) == before


def test_a_good_containment_intent_still_goes_through(gov: Governor) -> None:
    outcome = gov.submit(action("rate_limit", "identity:carol"))
    assert outcome.status == OutcomeStatus.EXECUTED


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=CONTAINMENT_POLICY)
    yield deployment
    deployment.client.close()
    deployment.governor.close()


@pytest.mark.parametrize(("intent", "words"), BAD[:4], ids=IDS[:4])
def test_http_answers_422_naming_the_field_writing_nothing(
    dep: Deployment, intent: dict[str, Any], words: str
) -> None:
    before = dep.size("acme")
    body = {k: v for k, v in intent.items() if k != "actor"}
    answer = dep.client.post("/v1/intents", json=body, headers=dep.auth("agent-7"))
    assert answer.status_code == 422, answer.text
    assert "params.containment" in answer.text
    assert dep.size("acme") == before


def test_the_cli_exits_2_naming_the_field_writing_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    intent = _with({"scope": SCOPE, "ttl_seconds": 0})
    result = runner.invoke(app, ["--home", str(home), "submit", "-"], input=json.dumps(intent))
    assert result.exit_code == 2, result.output
    assert "params.containment.ttl_seconds: must be positive" in result.output
    log = runner.invoke(app, ["--home", str(home), "log", "--tenant", "acme"])
    assert "intent.recorded" not in log.output
