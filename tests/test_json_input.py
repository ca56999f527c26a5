"""Documents that enter by the CLI and over HTTP: refused with the field named, never a 500.

Regression inputs named after what they caught: a key given twice (a proxy
keeping the first sees another intent), an integer of more than 4,300 digits
(a traceback and a 500), event times whose UTC instant leaves the years 1 to
9999 (an OverflowError), ``true`` taken as one second, and bodies that are
not declared JSON yet were executed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.encoding import format_time, parse_time
from exoarmur.errors import InputError, JSONTextError
from exoarmur.jsontext import MAX_INTEGER_DIGITS, loads
from exoarmur.server.bodies import JSONBodyRoute
from test_server_support import DELETE, READ, Deployment, deploy, submit

runner = CliRunner()
INTENT = '{"tenant":"acme","actor":{"id":"agent-7","kind":"agent"},' + (
    '"action":"demo.read","target":"reports/q3.txt","safety_class":"A0"}'
)
HUGE = "9" * (MAX_INTEGER_DIGITS + 1)

# (document, the field a refusal must name)
HOSTILE_INTENTS = {
    "tenant-twice": ('{"tenant":"beta",' + INTENT[1:], "tenant"),
    "safety-class-twice": (INTENT[:-1] + ',"safety_class":"A3"}', "safety_class"),
    "actor-twice": (
        INTENT[:-1] + ',"actor":{"id":"agent-7","kind":"agent"}}',
        "actor",
    ),
    "actor-id-twice": (
        INTENT.replace('"id":"agent-7"', '"id":"agent-7","id":"agent-7"'),
        "actor.id",
    ),
    "param-key-twice": (INTENT[:-1] + ',"params":{"a":[{"b":1,"b":2}]}}', "params.a.0.b"),
    "integer-of-4301-digits": (INTENT[:-1] + f',"params":{{"n":{HUGE}}}}}', "params.n"),
    "negative-integer-of-4301-digits": (INTENT[:-1] + f',"params":{{"n":-{HUGE}}}}}', "params.n"),
    "NaN": (INTENT[:-1] + ',"params":{"n":NaN}}', "params.n"),
    "Infinity": (INTENT[:-1] + ',"params":{"n":[-Infinity]}}', "params.n.0"),
    "overflowing-float": (INTENT[:-1] + ',"params":{"n":1e400}}', "params.n"),
    "event-time-before-year-1": (
        INTENT[:-1] + ',"event_time":"0001-01-01T00:00:00+14:00"}',
        "event_time",
    ),
    "event-time-after-year-9999": (
        INTENT[:-1] + ',"event_time":"9999-12-31T23:59:59-14:00"}',
        "event_time",
    ),
    "event-time-as-a-number": (INTENT[:-1] + ',"event_time":0}', "event_time"),
}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _json_headers(dep: Deployment, who: str) -> dict[str, str]:
    return dep.auth(who) | {"Content-Type": "application/json"}


# -- the reader --------------------------------------------------------------------


def test_a_plain_document_reads_as_the_standard_library_reads_it() -> None:
    text = '{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}},"d":' + "9" * MAX_INTEGER_DIGITS + "}"
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@given(st.recursive(st.integers() | st.text() | st.booleans(), lambda inner: st.lists(inner)))
def test_any_document_without_repeats_reads_unchanged(value: Any) -> None:
    text = json.dumps({"v": value})
    assert loads(text) == {"v": value}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"a":1,"a":1}', "a"),
        ('[{"x":{"y":0,"y":0}}]', "0.x.y"),
        ('{"ok":1,"later":[0,{"z":NaN}],"b":{"a":1,"a":2}}', "later.1.z"),
        ("NaN", None),
    ],
)
def test_the_first_refusal_in_document_order_is_named(text: str, field: str | None) -> None:
    with pytest.raises(JSONTextError) as refused:
        loads(text)
    assert refused.value.field == field
    assert isinstance(refused.value, InputError)


@pytest.mark.parametrize("text", ["{", "", b"\xff\xfe\xfd", "[" * 100_000])
def test_text_that_is_not_json_names_no_field(text: str | bytes) -> None:
    with pytest.raises(JSONTextError) as refused:
        loads(text)
    assert refused.value.field is None
    assert str(refused.value).startswith("malformed JSON")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_times_outside_the_utc_calendar_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="outside the years 1 to 9999"):
        parse_time(text)
    with pytest.raises(InputError, match="outside the years 1 to 9999"):
        format_time(datetime.fromisoformat(text))


# -- the CLI -----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(path), "init"]).exit_code == 0
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE_INTENTS))
def test_the_cli_refuses_hostile_intents_naming_the_field(
    home: Path, tmp_path: Path, case: str
) -> None:
    document, field = HOSTILE_INTENTS[case]
    file = tmp_path / "intent.json"
    file.write_text(document)
    for source, stdin in ((str(file), None), ("-", document)):
        result = runner.invoke(app, ["--home", str(home), "submit", source], input=stdin)
        assert result.exit_code == 2, result.output
        assert f"{field}: " in result.output, result.output
        assert "Traceback" not in result.output
    with sqlite3.connect(home / "ledger.db") as conn:
        written = conn.execute("SELECT count(*) FROM events WHERE tenant != '_system'")
        assert written.fetchone()[0] == 0


def test_an_intent_from_the_year_1_is_recorded_readably(home: Path) -> None:
    # Regression: the time was recorded as "1-01-01T…", which nothing could read back,
    # so every later submit of the tenant failed.
    for when in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00-14:00", "0999-12-31T23:59:59Z"):
        document = INTENT[:-1] + f',"event_time":"{when}"}}'
        result = runner.invoke(app, ["--home", str(home), "submit", "-"], input=document)
        assert result.exit_code == 0, result.output
    replayed = runner.invoke(app, ["--home", str(home), "replay", "verify", "-t", "acme"])
    assert "REPLAY_VERIFIED=true" in replayed.stdout, replayed.output
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000Z"


def test_whatif_since_outside_the_calendar_is_bad_input(home: Path) -> None:
    since = "0001-01-01T00:00:00+14:00"
    policy = str(home / "policy")
    args = ["--home", str(home), "replay", "whatif", "-t", "acme", "--policy", policy]
    result = runner.invoke(app, [*args, "--since", since])
    assert result.exit_code == 2, result.output
    assert "outside the years 1 to 9999" in result.output


def test_policy_explain_refuses_a_repeated_key(home: Path) -> None:
    document, _ = HOSTILE_INTENTS["tenant-twice"]
    result = runner.invoke(app, ["--home", str(home), "policy", "explain", "-"], input=document)
    assert result.exit_code == 2
    assert "tenant: the key appears more than once" in result.output


# -- HTTP --------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(HOSTILE_INTENTS))
def test_http_refuses_hostile_intents_with_422_naming_the_field(dep: Deployment, case: str) -> None:
    document, field = HOSTILE_INTENTS[case]
    answer = dep.client.post("/v1/intents", content=document, headers=_json_headers(dep, "agent-7"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid"
    assert [p["field"] for p in answer.json()["detail"]] == [field]
    assert dep.size("acme") == 0


@pytest.mark.parametrize(
    ("path", "method", "document", "field"),
    [
        ("/v1/killswitches", "POST", '{"action":"engage","action":"release",', "action"),
        ("/v1/tenants/acme/posture", "PUT", '{"posture":"lockdown","posture":"normal",', "posture"),
        ("/v1/tenants/acme/posture", "PUT", '{"ttl_seconds":1,"ttl_seconds":600,', "ttl_seconds"),
        ("/v1/tenants/acme/posture", "PUT", f'{{"ttl_seconds":{HUGE},', "ttl_seconds"),
    ],
)
def test_control_bodies_with_a_repeated_key_or_a_huge_number_are_422(
    dep: Deployment, path: str, method: str, document: str, field: str
) -> None:
    filler = '"scope":"tenant:acme"' if "killswitch" in path else '"posture":"heightened"'
    body = document + filler + ',"reason":"drill"}'
    before = dep.size("acme")
    answer = dep.client.request(method, path, content=body, headers=_json_headers(dep, "alice"))
    assert answer.status_code == 422, answer.text
    assert [p["field"] for p in answer.json()["detail"]] == [field]
    assert dep.size("acme") == before


def test_a_vote_with_a_repeated_intent_hash_is_refused_and_not_counted(dep: Deployment) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    size = dep.size("acme")
    body = (
        '{"reason":"ok","intent_hash":"sha256:' + "0" * 64 + '",'
        '"intent_hash":"' + pending["intent_hash"] + '"}'
    )
    path = f"/v1/tenants/acme/intents/{pending['intent_id']}/approve"
    answer = dep.client.post(path, content=body, headers=_json_headers(dep, "alice"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"] == "intent_hash"
    assert dep.size("acme") == size


@pytest.mark.parametrize("ttl", [True, False, "600", 600.0, 1.5])
def test_ttl_seconds_must_be_an_integer_not_a_boolean_or_text(dep: Deployment, ttl: Any) -> None:
    before = dep.size("acme")
    answer = dep.client.put(
        "/v1/tenants/acme/posture",
        json={"posture": "lockdown", "reason": "drill", "ttl_seconds": ttl},
        headers=dep.auth("alice"),
    )
    assert answer.status_code == 422, answer.text
    assert [p["field"] for p in answer.json()["detail"]] == ["ttl_seconds"]
    assert dep.size("acme") == before
    good = dep.client.put(
        "/v1/tenants/acme/posture",
        json={"posture": "lockdown", "reason": "drill", "ttl_seconds": 600},
        headers=dep.auth("alice"),
    )
    assert good.status_code == 200, good.text


NOT_JSON = {
    "text-plain": {"Content-Type": "text/plain"},
    "form": {"Content-Type": "application/x-www-form-urlencoded"},
    "multipart": {"Content-Type": "multipart/form-data; boundary=x"},
    "undeclared": {},
    "json-lookalike": {"Content-Type": "application/jsonp"},
}


@pytest.mark.parametrize("kind", sorted(NOT_JSON))
def test_a_body_not_declared_json_is_415_and_nothing_runs(dep: Deployment, kind: str) -> None:
    headers = dep.auth("agent-7") | NOT_JSON[kind]
    answer = dep.client.post("/v1/intents", content=json.dumps(READ), headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"] == "unsupported_media_type"
    assert dep.size("acme") == 0
    switch = dep.client.post(
        "/v1/killswitches",
        content=json.dumps({"action": "engage", "scope": "tenant:acme", "reason": "x"}),
        headers=dep.auth("alice") | NOT_JSON[kind],
    )
    assert switch.status_code == 415, switch.text
    assert dep.size("acme") == 0


def test_json_with_a_charset_is_json(dep: Deployment) -> None:
    headers = dep.auth("agent-7") | {"Content-Type": "Application/JSON; charset=utf-8"}
    answer = dep.client.post("/v1/intents", content=json.dumps(READ), headers=headers)
    assert answer.status_code == 200, answer.text


def test_every_route_reads_its_body_strictly() -> None:
    from exoarmur.server import controls, intents, record, service

    routes = [r for m in (controls, intents, record, service) for r in m.router.routes]
    assert len(routes) > 10
    assert all(isinstance(route, JSONBodyRoute) for route in routes)


# -- evidence bundles ----------------------------------------------------------------


def test_a_bundle_with_a_repeated_key_fails_naming_it(tmp_path: Path) -> None:
    from exoarmur.evidence import export_bundle, verify_bundle_text
    from exoarmur.ledger.log import Ledger
    from test_replay import GOLDEN, KEY, MANIFEST, load

    ledger = Ledger(load(GOLDEN / MANIFEST["good"], tmp_path), KEY)
    try:
        correlation = next(e.correlation_id for e in ledger.store.events("acme") if e.intent_id)
        text = json.dumps(export_bundle(ledger, "acme", correlation), indent=2, sort_keys=True)
    finally:
        ledger.store.close()
    assert verify_bundle_text(text, KEY.verifier_key()).passed
    # A reader that keeps the first "events" sees an empty story; ours must not see another.
    forged = '{"events": [],' + text[1:]
    verdict = verify_bundle_text(forged, KEY.verifier_key())
    assert not verdict.passed
    assert any("events: the key appears more than once" in f for f in verdict.failures)


# -- policy test cases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "cases.yaml",
            "cases:\n  - name: a\n    name: b\n",
            "cases.yaml:3:5: malformed YAML: the key 'name' appears more than once",
        ),
        (
            "cases.json",
            '{"cases": [], "cases": [{"name": "x"}]}',
            "cases.json: cases: the key appears more than once",
        ),
        ("cases.json", '{"cases": [', "cases.json:1:12: malformed JSON: Expecting value"),
    ],
)
def test_policy_case_files_with_a_repeated_key_are_refused(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    from exoarmur.policy.tooling import load_cases

    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(InputError) as refused:
        load_cases(file)
    assert message in str(refused.value)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    from exoarmur.policy.tooling import _parse_document

    text = "base: &b {x: 1}\nmore: {<<: *b, x: 2}\n"
    assert _parse_document(tmp_path / "c.yaml", text)["more"] == {"x": 2}
