"""``exoarmur memory`` and ``demo memory_snapshot`` from the command line, and the HTTP read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from containment_kit import CONTAINMENT_POLICY
from exoarmur.cli import app
from exoarmur.home import open_governor
from exoarmur.memory.room import snapshot_at
from memory_kit import belief
from test_server_support import Deployment, deploy

runner = CliRunner()


def run(home: Path, *args: str, key: str | None = None) -> object:
    env = {"EXOARMUR_API_KEY": key} if key else {}
    return runner.invoke(app, ["--home", str(home), *args], env=env)


def markers(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def demo_homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    found = []
    for name in ("one", "two"):
        home = tmp_path_factory.mktemp(name) / "home"
        result = run(home, "demo", "memory_snapshot", "--deterministic")
        assert result.exit_code == 0, result.output
        found.append((home, markers(result.output)))
    (home, first), (_, second) = found
    assert first == second  # every marker, MEMORY_HASH included, in two fresh homes
    return home, first


def test_the_demo_remembers_records_advice_once_and_replays(
    demo_homes: tuple[Path, dict[str, str]],
) -> None:
    _, found = demo_homes
    assert found["MEMORY_HASH"].startswith("sha256:")
    assert found["REPLAY_VERIFIED"] == "true"
    assert found["MEMORY_STABLE"] == "true"
    assert found["RECOMMENDATIONS_RECORDED"] == "2"
    assert found["RECORDED_AGAIN"] == "0"
    assert len(found["RECOMMENDATIONS"].split(",")) == 2


def test_memory_commands_show_record_and_apply_only_when_asked(
    demo_homes: tuple[Path, dict[str, str]],
) -> None:
    home, found = demo_homes
    snap = run(home, "memory", "snapshot", "-t", "acme", "--json")
    assert snap.exit_code == 0, snap.output
    assert json.loads(snap.output)["memory_hash"] == found["MEMORY_HASH"]
    assert found["MEMORY_HASH"] in run(home, "memory", "snapshot", "-t", "acme").output

    listed = json.loads(run(home, "memory", "recommendations", "-t", "acme", "--json").output)
    assert [r["applied"] for r in listed] == [None, None]
    posture = next(r for r in listed if r["kind"] == "posture")
    ttl = next(r for r in listed if r["kind"] == "ttl")
    assert "not applied" in run(home, "memory", "recommendations", "-t", "acme").output

    added = run(home, "principal", "add", "op-9", "--role", "operator", "-t", "acme", "--json")
    key = json.loads(added.output)["api_key"]
    agent = run(home, "principal", "add", "bot", "--role", "agent", "-t", "acme", "--json")
    agent_key = json.loads(agent.output)["api_key"]
    apply = ("memory", "apply", posture["recommendation_id"], "-t", "acme", "-r", "agreed")
    assert run(home, *apply, key=agent_key).exit_code == 3
    ttl_apply = ("memory", "apply", ttl["recommendation_id"], "-t", "acme", "-r", "agreed")
    assert run(home, *ttl_apply, key=key).exit_code == 2
    done = run(home, *apply, "--json", key=key)
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["change"]["type"] == "posture.set"
    assert body["change"]["actor"] == {"id": "op-9", "kind": "operator"}
    assert body["applied"]["payload"]["principal"] == "op-9"
    assert run(home, *apply, key=key).exit_code == 2
    shown = json.loads(run(home, "posture", "show", "acme", "--json").output)
    assert shown["posture"] == "heightened"
    assert shown["set_by"] == "op-9"

    again = run(home, "memory", "recommend", "-t", "acme", key=key)
    assert again.exit_code == 0, again.output
    assert "none applied" in again.output
    as_json = json.loads(run(home, "memory", "recommend", "-t", "acme", "--json").output)
    assert all(not r["new"] for r in as_json["recommendations"])


def test_untrusted_names_are_shown_literally_and_bad_input_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "init").exit_code == 0
    with open_governor(home) as governor:
        draft = governor.drafts.for_log(
            "acme",
            "belief.formed",
            belief("b1", "[bold red]evil[/]\x1b[2J"),
            {"id": "d", "kind": "service"},
        )
        governor.state.append_one("acme", draft)
    shown = run(home, "memory", "snapshot", "-t", "acme")
    assert shown.exit_code == 0, shown.output
    assert "[bold red]evil[/]" in shown.output
    assert "\x1b" not in shown.output
    for bad in (("-t", "nope"), ("-t", "_system"), ("-t", "acme", "--at", "5")):
        result = run(home, "memory", "snapshot", *bad)
        assert result.exit_code == 2, result.output
    assert run(home, "memory", "recommendations", "-t", "nope").exit_code == 2
    empty = run(home, "memory", "recommend", "-t", "acme")
    assert "0 recommendation(s), 0 newly recorded; none applied" in empty.output


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=CONTAINMENT_POLICY)
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def test_the_memory_snapshot_over_http_takes_its_tenant_from_the_credentials(
    dep: Deployment,
) -> None:
    plan = {"preset": "door-net", "targets": ["identity:eve"]}
    assert dep.client.post(
        "/v1/tenants/acme/plans", json=plan, headers=dep.auth("alice")
    ).is_success
    expected = snapshot_at(dep.governor.ledger.store, "acme").to_json()
    for who in ("alice", "audrey"):
        answer = dep.client.get("/v1/memory/snapshot", headers=dep.auth(who))
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
    at = dep.client.get("/v1/memory/snapshot?at=1", headers=dep.auth("alice")).json()
    assert at["position"] <= 1
    size = dep.size("acme")
    refused = [
        ("root", "", 422, "name one"),
        ("mallory", "?tenant=acme", 403, "may not"),
        ("agent-7", "", 403, "may not"),
        ("alice", "?at=99999", 422, "at: must be"),
        ("alice", "?tenant=globex", 403, "may not"),
    ]
    for who, query, status, words in refused:
        answer = dep.client.get(f"/v1/memory/snapshot{query}", headers=dep.auth(who))
        assert answer.status_code == status, (who, answer.text)
        assert words in answer.text
    assert (
        dep.client.get("/v1/memory/snapshot?tenant=acme", headers=dep.auth("root")).json()
        == expected
    )
    assert dep.client.get("/v1/memory/snapshot").status_code == 401
    assert dep.size("acme") == size  # reading memory writes nothing in the tenant
