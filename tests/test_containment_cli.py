"""The containment commands: plan submit/show/list, containment status, tick; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from containment_kit import CONTAINMENT_POLICY
from exoarmur.cli import app
from exoarmur.containment.model import containment_spec, parse_spec
from exoarmur.containment.plans import door_net, parse_plan
from exoarmur.errors import ContainmentError
from exoarmur.home import Home
from exoarmur.model.intent import parse_intent

runner = CliRunner()
PLAN = {
    "name": "sessions-and-limit",
    "steps": [
        {"effector": "revoke_sessions", "scope": "identity:carol", "ttl_seconds": 600},
        {"effector": "rate_limit", "scope": {"kind": "identity", "id": "carol"}, "ttl_seconds": 60},
    ],
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    Home(path).init()
    (path / "policy" / "containment.cedar").write_text(CONTAINMENT_POLICY, encoding="utf-8")
    run(path, "policy", "activate", str(path / "policy"))
    return path


def run(home: Path, *args: str, input: str | None = None) -> object:
    return runner.invoke(app, ["--home", str(home), *args], input=input)


def test_a_plan_from_stdin_is_governed_shown_listed_and_expires(home: Path, tmp_path: Path) -> None:
    submitted = run(home, "plan", "submit", "-t", "acme", "--json", "-", input=json.dumps(PLAN))
    assert submitted.exit_code == 0, submitted.output
    body = json.loads(submitted.output)
    assert body["status"] == "executed"
    assert body["sequence"] == ["revoke_sessions", "rate_limit"]
    shown = run(home, "plan", "show", body["intent_id"], "-t", "acme")
    assert "plan.completed" in shown.output
    assert (
        json.loads(run(home, "plan", "show", body["intent_id"], "-t", "acme", "--json").output)[
            "plan_hash"
        ]
        == body["plan_hash"]
    )
    assert body["intent_id"] in run(home, "plan", "list", "-t", "acme").output
    listed = json.loads(run(home, "plan", "list", "-t", "acme", "--json").output)
    assert listed[0]["status"] == "executed"
    status = run(home, "containment", "status", "-t", "acme")
    assert "2 control(s) in force in acme" in status.output
    assert "revoke_sessions/identity:carol" in status.output
    ticked = run(home, "tick", "--until", "2099-01-01T00:00:00Z", "--json")
    assert [e["type"] for e in json.loads(ticked.output)].count("containment.reverted") == 2
    assert "0 control(s)" in run(home, "containment", "status", "-t", "acme").output
    again = run(home, "plan", "submit", "-t", "acme", str(_write(tmp_path, PLAN)))
    assert "status: executed" in again.output  # the same plan: the first outcome, nothing new


def _write(tmp_path: Path, plan: object) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


def test_door_net_preset_waits_for_approval(home: Path) -> None:
    result = run(
        home,
        "plan",
        "submit",
        "-t",
        "acme",
        "--preset",
        "door-net",
        "--target",
        "identity:bob",
        "--target",
        "endpoint:desk-2",
    )
    assert result.exit_code == 4, result.output
    assert "revoke_sessions -> isolate_endpoint -> rate_limit" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "submit", "-t", "acme"], "not both"),
        (["plan", "submit", "-t", "acme", "--preset", "door-nets"], "unknown preset"),
        (["plan", "submit", "-t", "acme", "--preset", "door-net"], "needs an identity"),
        (["plan", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "-t", "acme"], "no plan"),
        (["tick", "--until", "tomorrow"], "--until"),
        (["demo", "dominance_plan", "--fail-at", "9"], "--fail-at"),
    ],
)
def test_bad_input_exits_non_zero_naming_the_rule(
    home: Path, args: list[str], message: str
) -> None:
    before = (home / "ledger.db").stat().st_size if (home / "ledger.db").exists() else 0
    result = run(home, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert ((home / "ledger.db").stat().st_size if (home / "ledger.db").exists() else 0) == before


@pytest.mark.parametrize(
    ("effector", "raw", "message"),
    [
        ("isolate_endpoint", {"scope": "identity:x", "ttl_seconds": 5}, "constrains endpoint"),
        ("rate_limit", {"scope": "identity:x", "ttl_seconds": 5, "evidence": "max"}, "evidence"),
        ("rate_limit", {"scope": "identity:x", "ttl_seconds": 5, "why": 1}, "unknown field 'why'"),
        ("rate_limit", {"scope": 7, "ttl_seconds": 5}, "must be an object"),
        ("rate_limit", {"scope": {"kind": "identity", "id": "x", "x": 1}, "ttl_seconds": 5}, "'x'"),
        ("rate_limit", {"scope": "planet:x", "ttl_seconds": 5}, "scope.kind"),
        ("rate_limit", {"scope": "identity:a b", "ttl_seconds": 5}, "scope.id"),
        ("rate_limit", {"scope": "identity:x", "ttl_seconds": True}, "whole number"),
        ("rate_limit", {"scope": "identity:x", "ttl_seconds": 10**9}, "exceeds the bound"),
        ("rate_limit", [], "must be an object"),
    ],
)
def test_bad_containment_fields_name_the_field(effector: str, raw: object, message: str) -> None:
    with pytest.raises(ContainmentError, match=message):
        parse_spec(effector, raw, "acme", "params.containment")


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([], "must be an object"),
        ({"steps": [], "extra": 1}, "unknown field"),
        ({"format": "v0", "steps": []}, "plan.format"),
        ({"name": "", "steps": []}, "plan.name"),
        ({"steps": [1]}, r"steps\[1\]: must be an object"),
        ({"steps": [PLAN["steps"][0]] * 40}, "at most 32"),
    ],
)
def test_bad_plan_shapes_are_refused(plan: object, message: str) -> None:
    with pytest.raises(ContainmentError, match=message):
        parse_plan(plan, "acme")


def test_a_containment_intent_below_its_effector_class_is_refused() -> None:
    intent = parse_intent(
        {
            "tenant": "acme",
            "actor": {"id": "a"},
            "action": "containment.isolate_endpoint",
            "target": "endpoint:x",
            "safety_class": "A1",
            "params": {"containment": {"scope": "endpoint:x", "ttl_seconds": 5}},
        }
    )
    with pytest.raises(ContainmentError, match="at least A2"):
        containment_spec(intent)
    assert door_net("acme", ["identity:a"], {"revoke_sessions": 5}).steps[0].ttl_seconds == 5
