"""Observations, detectors, beliefs and the identity shadow (issue 13, parts 1 and 2)."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from exoarmur.errors import (
    ConfigError,
    DuplicateIntent,
    NotFound,
    ObservationError,
    PermissionDenied,
)
from exoarmur.model.intent import SYSTEM_ACTOR
from exoarmur.observations import detectors as detector_module
from exoarmur.observations.detectors import (
    Finding,
    Seen,
    belief_of,
    derive,
    detectors_config,
    load,
)
from exoarmur.observations.intake import ObservationDesk, desk_of, recording_actor
from exoarmur.observations.model import (
    BELIEF_FORMED,
    OBSERVATION_RECORDED,
    SHADOW_CLOSED,
    Observation,
    parse_batch,
    parse_observation,
)
from exoarmur.observations.shadow import shadow_key, shadow_status
from exoarmur.pipeline import Governor
from exoarmur.principals import Principal
from exoarmur.replay import replay

AGENT = {"id": "telemetry", "kind": "agent"}
DEEP: Any = 1
for _ in range(20):
    DEEP = [DEEP]
TENANT = "acme"


def obs(n: int = 0, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": "okta",
        "subject": {"kind": "identity", "id": "alice"},
        "kind": "login.failed",
        "attributes": {"attempt": n},
        "event_time": f"2026-11-30T08:00:{n:02d}Z",
    }
    base.update(overrides)
    return base


def failures(count: int, **overrides: Any) -> list[Observation]:
    return [parse_observation(obs(n, **overrides)) for n in range(count)]


def kinds(governor: Governor, tenant: str = TENANT) -> list[str]:
    store = governor.ledger.store
    return [e.type for e in store.events(tenant, 0, store.size(tenant))]


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ({**obs(), "tenant": "globex"}, "tenant", "unknown field"),
        ({**obs(), "subject": {"kind": "identity", "id": "a", "x": 1}}, "subject.x", "unknown"),
        ({**obs(), "subject": {"kind": "person", "id": "a"}}, "subject.kind", "one of identity"),
        ({k: v for k, v in obs().items() if k != "source"}, "source", "is required"),
        ({**obs(), "event_time": "2026-11-30T08:00:00"}, "event_time", "offset"),
        ({**obs(), "kind": "Login Failed"}, "kind", "pattern"),
        ({**obs(), "attributes": {"blob": "x" * 20_000}}, "attributes", "exceeds the limit"),
        (
            {**obs(), "attributes": {"correlated_ids": ["alice"]}},
            "attributes.correlated_ids.0",
            "kind:id",
        ),
        ({**obs(), "subject": {"kind": "identity", "id": "a\u009bb"}}, "subject.id", "pattern"),
        ({**obs(), "source": ""}, "source", "1-256 characters"),
        ({**obs(), "kind": "Login"}, "kind", "lower-case"),
        ({**obs(), "attributes": []}, "attributes", "JSON object"),
        ({**obs(), "attributes": {"a": DEEP}}, "attributes", "deeper"),
        ({**obs(), "attributes": {"correlated_ids": "x"}}, "attributes.correlated_ids", "list"),
        ({**obs(), "event_time": 1764489600}, "event_time", "string"),
    ],
)
def test_a_bad_observation_is_refused_naming_the_field_and_the_rule(
    raw: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ObservationError) as refused:
        parse_batch(json.dumps(raw))
    assert str(refused.value).startswith(f"{field}: ")
    assert rule in str(refused.value)


def test_repeated_keys_and_bad_lines_are_refused_where_they_are() -> None:
    with pytest.raises(ObservationError, match=r"^source: the key appears more than once"):
        parse_batch('{"source": "a", "source": "b"}')
    lines = json.dumps(obs(1)) + "\n" + json.dumps({**obs(2), "bogus": 1}) + "\n"
    with pytest.raises(ObservationError, match=r"^line 2: bogus: unknown field"):
        parse_batch(lines)
    with pytest.raises(ObservationError, match=r"^1\.subject: must be an object"):
        parse_batch(json.dumps([obs(1), {**obs(2), "subject": "alice"}]))
    with pytest.raises(ObservationError, match="empty"):
        parse_batch("[]")
    with pytest.raises(ObservationError, match=r"^0\.observation: must be a JSON object"):
        parse_batch("[1]")
    with pytest.raises(ObservationError, match=r"^malformed JSON"):
        parse_batch("{")


def test_the_derived_id_depends_on_content_not_on_spelling() -> None:
    one = parse_observation(obs(3))
    spelled = parse_observation(
        {**dict(reversed(list(obs(3).items()))), "event_time": "2026-11-30T09:00:03+01:00"}
    )
    assert one.observation_id == spelled.observation_id
    assert one.observation_id != parse_observation(obs(4)).observation_id
    given = parse_observation({**obs(3), "observation_id": "okta-123"})
    assert given.observation_id == "okta-123"
    assert [o.observation_id for o in parse_batch(json.dumps(obs(3)))] == [one.observation_id]


# -- detectors --------------------------------------------------------------------


def seen(observations: list[Observation], seconds: list[int]) -> list[Seen]:
    base = parse_observation(obs()).event_time
    from datetime import timedelta

    return [
        Seen(o, base + timedelta(seconds=s), n)
        for n, (o, s) in enumerate(zip(observations, seconds, strict=True))
    ]


def test_failed_logins_form_one_belief_when_the_threshold_is_reached_in_the_window() -> None:
    rules = load(detectors_config())
    history = seen(failures(6), [0, 10, 20, 30, 40, 50])
    formed = [derive(history[: n + 1], rules) for n in range(6)]
    assert [len(f) for f in formed] == [0, 0, 0, 0, 1, 0]
    belief = formed[4][0]
    assert belief["detector"] == "failed_logins"
    assert belief["kind"] == "repeated_failed_logins"
    assert belief["observation_ids"] == sorted(s.observation.observation_id for s in history[:5])
    assert belief["sources"] == ["okta"]
    # recorded time decides the window, not the source's event_time
    spread = seen(failures(5), [0, 700, 1400, 2100, 2800])
    assert derive(spread, rules) == []


def test_access_from_a_new_location_forms_a_belief_on_two_sources() -> None:
    rules = load(detectors_config())
    lyon = obs(1, kind="login.succeeded", source="vpn", attributes={"location": "Lyon"})
    lagos = obs(2, kind="login.succeeded", attributes={"location": "Lagos"})
    history = seen([parse_observation(lyon), parse_observation(lagos)], [0, 60])
    assert derive(history[:1], rules) == []
    (belief,) = derive(history, rules)
    assert (belief["kind"], belief["sources"]) == ("access_from_new_location", ["okta", "vpn"])
    back = parse_observation({**lyon, "event_time": obs(5)["event_time"]})
    again = seen([parse_observation(lyon), back], [0, 1])
    assert derive(again, rules) == []


def test_a_configured_rule_replaces_a_shipped_one_and_changes_its_version() -> None:
    shipped = {d.name: d.version for d in load(detectors_config())}
    tuned = detectors_config(
        {
            "rules": [
                {
                    "name": "failed_logins",
                    "type": "threshold",
                    "match": "login.failed",
                    "threshold": 2,
                    "window_seconds": 60,
                    "belief": "repeated_failed_logins",
                }
            ]
        }
    )
    rules = {d.name: d for d in load(tuned)}
    assert rules["failed_logins"].version != shipped["failed_logins"]
    assert len(derive(seen(failures(2), [0, 1]), list(rules.values()))) == 1


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"rules": [{"name": "x", "type": "regex"}]}, "detectors.rules.0.type"),
        ({"rules": [{"name": "x", "type": "threshold", "match": "a"}]}, "is required"),
        ({"rules": [{"name": "x", "type": "plugin", "plugin": "nowhere"}]}, "no detector"),
        ({"shadow_ttl_seconds": 1}, "shadow_ttl_seconds"),
        ({"colour": "red"}, "detectors.colour: unknown field"),
        ([], "must be an object"),
        ({"rules": {}}, "must be a list"),
        ({"rules": [[]]}, "rules.0: must be an object"),
        ({"rules": [{"type": "threshold"}]}, "rules.0.name"),
        ({"rules": [{"name": "p", "type": "plugin", "plugin": "p", "x": 1}]}, "rules.0.x"),
        (
            {
                "rules": [
                    {
                        "name": "t",
                        "type": "threshold",
                        "match": "a",
                        "threshold": 0,
                        "window_seconds": 1,
                        "belief": "b",
                    }
                ]
            },
            "rules.0.threshold",
        ),
        (
            {
                "rules": [
                    {
                        "name": "n",
                        "type": "new_location",
                        "match": "a",
                        "attribute": "",
                        "belief": "b",
                    }
                ]
            },
            "rules.0.attribute",
        ),
    ],
)
def test_bad_detector_settings_are_refused(raw: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        detectors_config(raw)


class Burst:
    """A plugin detector: any two observations of a subject form a belief."""

    name = "burst"
    version = "7"

    def __init__(self, config: dict[str, Any]) -> None:
        self.kind = config.get("kind", "burst")

    def detect(self, history: list[Seen]) -> list[Finding]:
        if len(history) != 2:
            return []
        return [Finding(self.kind, history[-1].observation.subject, tuple(history))]


def test_a_plugin_detector_comes_from_the_entry_point_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point = EntryPoint("burst", "test_observations:Burst", detector_module.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        detector_module, "entry_points", lambda group: [point] if group == point.group else []
    )
    config = detectors_config({"rules": [{"name": "burst", "type": "plugin", "plugin": "burst"}]})
    rules = load(config)
    (belief,) = derive(seen(failures(2), [0, 1]), rules)
    assert (belief["detector"], belief["detector_version"]) == ("burst", "7")
    assert len(belief["observation_ids"]) == 2


# -- intake: durable, idempotent, in the tenant's log ---------------------------------


def test_observations_are_recorded_once_and_form_beliefs_and_a_shadow(governor: Governor) -> None:
    desk = desk_of(governor)
    batch = failures(5, attributes={"correlated_ids": ["identity:alice@acme.example"]})
    done = desk.record(TENANT, batch, AGENT)
    assert [d.recorded for d in done] == [True] * 5
    assert len(done[-1].beliefs) == 1
    assert done[-1].shadows[0]["type"] == "shadow.created"
    size = governor.ledger.size(TENANT)
    again = desk.record(TENANT, batch, AGENT)
    assert [d.recorded for d in again] == [False] * 5
    assert governor.ledger.size(TENANT) == size
    # another process whose fold is behind meets the store's uniqueness key: nothing written
    payload = {"observation": batch[0].to_canonical()}
    key = f"observation {batch[0].observation_id}"
    draft = governor.drafts.for_log(
        TENANT, OBSERVATION_RECORDED, payload, AGENT, idempotency_key=key
    )
    with pytest.raises(DuplicateIntent):
        governor.state.append_one(TENANT, draft)
    assert ObservationDesk(governor.state, governor.drafts)._append(TENANT, draft) is None
    assert governor.ledger.size(TENANT) == size
    assert kinds(governor).count(OBSERVATION_RECORDED) == 5
    status = shadow_status(governor.ledger.store.events(TENANT), "identity:alice@acme.example")
    assert status.shadowed
    assert status.shadow_key == shadow_key(["identity:alice@acme.example", "identity:alice"])
    assert status.plan == "door-net"
    assert not shadow_status(governor.ledger.store.events(TENANT), "identity:bob").shadowed


def test_an_id_reused_for_other_content_refuses_the_whole_batch(governor: Governor) -> None:
    desk = desk_of(governor)
    desk.record(TENANT, [parse_observation({**obs(1), "observation_id": "e-1"})], AGENT)
    size = governor.ledger.size(TENANT)
    batch = [parse_observation(obs(2)), parse_observation({**obs(3), "observation_id": "e-1"})]
    with pytest.raises(ObservationError, match=r"1\.observation_id: 'e-1' is already recorded"):
        desk.record(TENANT, batch, AGENT)
    assert governor.ledger.size(TENANT) == size


def test_a_shadow_closes_by_ttl_on_recorded_time_and_by_an_operator(governor: Governor) -> None:
    from datetime import timedelta

    desk = desk_of(governor)
    desk.record(TENANT, failures(5), AGENT, {"shadow_ttl_seconds": 3600})
    (shadow,) = desk.shadows(TENANT)
    governor.clock.advance(timedelta(seconds=3599))  # type: ignore[attr-defined]
    desk.record(TENANT, [parse_observation(obs(30, kind="noise"))], AGENT)
    assert desk.status(TENANT, "identity:alice").shadowed
    governor.clock.advance(timedelta(seconds=10))  # type: ignore[attr-defined]
    (expired,) = desk.expire(TENANT)
    assert expired.payload["shadow"]["shadow_key"] == shadow.shadow_key
    assert desk.expire(TENANT) == []
    assert not desk.status(TENANT, "identity:alice").shadowed
    closed = [e for e in governor.ledger.store.events(TENANT) if e.type == SHADOW_CLOSED]
    assert closed[0].payload["cause"] == "ttl"
    # a new burst opens the same key again; an operator closes it, an auditor may not
    desk.record(TENANT, failures(5, source="siem", kind="login.failed"), AGENT)
    assert desk.status(TENANT, "identity:alice").shadow_key == shadow.shadow_key
    auditor = Principal("audrey", "auditor", (TENANT,), "k1")
    with pytest.raises(PermissionDenied):
        desk.close(TENANT, shadow.shadow_key, auditor, "no")
    operator = Principal("olga", "operator", (TENANT,), "k2")
    with pytest.raises(ObservationError, match="--reason"):
        desk.close(TENANT, shadow.shadow_key, operator, " ")
    event = desk.close(TENANT, shadow.shadow_key, operator, "false positive")
    assert (event.actor["id"], event.payload["cause"]) == ("olga", "operator")
    with pytest.raises(NotFound):
        desk.close(TENANT, shadow.shadow_key, operator, "again")
    with pytest.raises(PermissionDenied):
        recording_actor(auditor, TENANT)
    report = _replayed(governor)
    assert report.verified, report.divergences


def test_correlated_identifiers_give_one_key_whatever_the_order() -> None:
    assert shadow_key(["identity:b", "identity:a", "identity:a"]) == shadow_key(
        ["identity:a", "identity:b"]
    )
    assert shadow_key(["identity:a"]) != shadow_key(["identity:b"])


# -- replay re-derives beliefs ----------------------------------------------------------


def _replayed(governor: Governor) -> Any:
    return replay(governor.ledger.store, TENANT)


def test_replay_verifies_recorded_beliefs(governor: Governor) -> None:
    desk_of(governor).record(TENANT, failures(5), AGENT)
    report = _replayed(governor)
    assert report.verified, report.divergences


def test_replay_fails_on_a_belief_no_detector_forms(governor: Governor) -> None:
    desk = desk_of(governor)
    desk.record(TENANT, failures(5), AGENT)
    (recorded,) = desk.log(TENANT).beliefs.values()
    changed = recorded | {"observation_ids": recorded["observation_ids"][:4]}
    draft = governor.drafts.for_log(
        TENANT, BELIEF_FORMED, {"belief": changed}, SYSTEM_ACTOR.to_canonical()
    )
    governor.state.append_one(TENANT, draft)
    report = _replayed(governor)
    assert not report.verified
    assert report.first is not None
    assert (report.first.event_type, report.first.field) == (BELIEF_FORMED, "payload.belief")
    assert "differs" in report.first.reason


def test_replay_fails_on_a_forged_belief_and_on_a_missing_one(governor: Governor) -> None:
    forged = belief_of(load(detectors_config())[0], Finding("x", failures(1)[0].subject, ()))
    desk_of(governor).record(TENANT, failures(1), AGENT)
    draft = governor.drafts.for_log(
        TENANT, BELIEF_FORMED, {"belief": forged}, SYSTEM_ACTOR.to_canonical()
    )
    governor.state.append_one(TENANT, draft)
    # four more failures recorded around the desk: the fifth forms a belief nobody recorded
    for observation in failures(5)[1:]:
        payload = {"observation": observation.to_canonical()}
        governor.state.append_one(
            TENANT,
            governor.drafts.for_log(TENANT, OBSERVATION_RECORDED, payload, AGENT),
        )
    reasons = [d.reason for d in _replayed(governor).divergences]
    assert any("no detector in force re-derives" in r for r in reasons)
    assert any("it is not recorded" in r for r in reasons)


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [
        ("shadow.created", {"shadow_key": "shd-0"}, "hash of its identifiers"),
        ("shadow.created", {}, "already open"),
        ("shadow.updated", {"plan": None}, "ready plan follows"),
        ("shadow.updated", {"belief_ids": ["bel-forged"]}, "no such belief"),
        ("shadow.closed", {"shadow_key": "shd-0"}, "no open shadow"),
    ],
)
def test_replay_fails_on_a_shadow_event_that_does_not_fit(
    governor: Governor, kind: str, change: dict[str, Any], reason: str
) -> None:
    desk = desk_of(governor)
    desk.record(TENANT, failures(5), AGENT)
    (shadow,) = desk.shadows(TENANT)
    payload = {"shadow": shadow.to_canonical() | change}
    draft = governor.drafts.for_log(TENANT, kind, payload, SYSTEM_ACTOR.to_canonical())
    governor.state.append_one(TENANT, draft)
    report = _replayed(governor)
    assert not report.verified
    assert any(reason in d.reason for d in report.divergences), report.divergences


# -- the command line ------------------------------------------------------------------


def test_observe_and_shadow_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from exoarmur.cli import app
    from exoarmur.home import Home

    runner = CliRunner()
    home = tmp_path / "home"
    Home(home).init()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, ["--home", str(home), *args], input=input)

    marked = [obs(n, subject={"kind": "identity", "id": "[bold]eve"}) for n in range(5)]
    bad = run("observe", "-t", "acme", "-", input=json.dumps({**obs(), "extra": 1}))
    assert bad.exit_code == 2
    assert "extra: unknown field" in bad.output
    lines = "\n".join(json.dumps(o) for o in marked)
    done = run("observe", "-t", "acme", "--json", "-", input=lines)
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    key = body["observations"][-1]["shadows"][0]["shadow_key"]
    again = run("observe", "-t", "acme", "-", input=lines)
    assert "0 recorded, 5 already recorded" in again.output
    listed = run("shadow", "list", "-t", "acme")
    assert key in listed.output
    shown = run("shadow", "show", key, "-t", "acme")
    assert "identity:[bold]eve" in shown.output
    as_json = json.loads(run("shadow", "show", key, "-t", "acme", "--json").output)
    assert as_json["plan"] == "door-net"
    closed = run("shadow", "close", key, "-t", "acme", "--reason", "cleared")
    assert closed.exit_code == 0, closed.output
    assert json.loads(run("shadow", "list", "-t", "acme", "--json").output) == []
    assert "0 shadow(s) closed" in run("shadow", "expire", "-t", "acme").output
    assert json.loads(run("shadow", "expire", "-t", "acme", "--json").output) == []
    assert run("shadow", "show", "shd-none", "-t", "acme").exit_code == 1
    assert run("observe", "-t", "Bad Tenant", "-", input=json.dumps(obs())).exit_code == 2
    assert run("observe", "-t", "acme", str(tmp_path / "missing.json")).exit_code == 2
    (home / "detectors.json").write_text('{"shadow_ttl_seconds": 0}', encoding="utf-8")
    assert run("observe", "-t", "acme", "-", input=json.dumps(obs(9))).exit_code == 2
