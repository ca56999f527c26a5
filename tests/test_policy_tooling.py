"""Policy tooling: `check` locates problems, `test` runs cases, `explain` says why.

The broken-policy table pins the exact line and column `check` reports for
each kind of mistake; Cedar itself gives no position, so these are ours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from exoarmur.cli.policy import policy_app
from exoarmur.errors import InputError, PolicyError
from exoarmur.gate import GateConfig
from exoarmur.model.decision import Verdict
from exoarmur.model.intent import parse_intent
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.policy.lexer import MAX_OPERATORS
from exoarmur.policy.tooling import (
    CASE_INTENT_ID,
    CASE_TIME,
    Problem,
    check_bundle,
    complete_intent,
    explain,
    load_cases,
    policy_sources,
    run_cases,
)
from samples import intent as sample_intent

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "policies" / "production"

runner = CliRunner()
app = typer.Typer()
app.add_typer(policy_app, name="policy")


@app.callback()
def _root() -> None:
    """Stands in for the exoarmur command that mounts policy_app."""


def policy(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["policy", *args], input=stdin)


def write_bundle(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return directory


def problems_of(directory: Path) -> list[tuple[str, int, int, str]]:
    return [(Path(p.file).name, p.line, p.column, p.message) for p in check_bundle(directory)]


# -- check: where each mistake is reported -------------------------------------

OK = '@id("ok") permit (principal, action, resource);'
DEEP = "(" * 70 + "true" + ")" * 70
LONG = " && ".join(["true"] * (MAX_OPERATORS + 100))

BROKEN = [
    ("missing comma", "permit (principal, action resource);", 1, 27, "unexpected token `resource`"),
    (
        "unknown variable",
        '@id("a")\npermit (principal, action, resource)\nwhen { x == 1 };',
        3,
        8,
        "invalid variable: x",
    ),
    (
        "second policy broken",
        f'{OK}\n\n@id("b") permit (principal, action, resource)\n  when {{ context.a == }};',
        4,
        24,
        "unexpected token `}`",
    ),
    (
        "missing final semicolon",
        '@id("a") permit (principal, action, resource)',
        1,
        45,
        "unexpected end of input (missing `;` at the end of the policy?)",
    ),
    (
        "missing semicolon between policies, with ; in comments and strings",
        "// a comment; with a semicolon\n"
        '@id("a;b") permit (principal, action, resource) when { context.x == "//;" }\n'
        '@id("c") forbid (principal, action, resource);',
        3,
        1,
        "unexpected token `@` (missing `;` before this policy?)",
    ),
    (
        "unterminated string",
        '@id("a") permit (principal, action, resource) when {\n  context.name == "abc\n};',
        2,
        19,
        "invalid token",
    ),
    (
        "bad effect",
        "permitt (principal, action, resource);",
        1,
        1,
        "invalid policy effect: permitt",
    ),
    (
        "template",
        '@id("t") permit (principal == ?principal, action, resource);',
        1,
        31,
        "policy templates (?principal, ?resource) are not supported",
    ),
    (
        "duplicate annotation",
        '@id("a")\n@id("b")\npermit (principal, action, resource);',
        2,
        1,
        "duplicate annotation: @id",
    ),
    (
        "zero quorum",
        '@id("q")\n@approval("0")\npermit (principal, action, resource);',
        2,
        1,
        "policy q: @approval must be a positive whole number, not '0'",
    ),
    (
        "unknown evidence level",
        '@id("e")  @evidence("max") permit (principal, action, resource);',
        1,
        11,
        "policy e: @evidence must be one of none, observed, corroborated, attested "
        "(or legacy low, standard, high), not 'max'",
    ),
    (
        "obligation without a value",
        '@id("w") @ttl_max permit (principal, action, resource);',
        1,
        10,
        '@ttl_max needs a value, e.g. @ttl_max("3600")',
    ),
    (
        "obligation on a forbid",
        '@id("f") @approval("2") forbid (principal, action, resource);',
        1,
        10,
        "@approval on a forbid has no effect",
    ),
    (
        "misspelt obligation",
        '@id("p") @aproval("2") permit (principal, action, resource);',
        1,
        10,
        "unknown annotation @aproval would be ignored; did you mean @approval?",
    ),
    ("id without a value", "@id permit (principal, action, resource);", 1, 1, "@id needs a value"),
    (
        "bad escape inside a string",
        '@id("s") permit (principal, action, resource)\nwhen { context.x like "a\\qb" };',
        2,
        25,
        "the input `\\q` is not a valid escape",
    ),
    (
        "member access on an unknown variable",
        '@id("v") permit (principal, action, resource) when { context.a && y.z };',
        1,
        67,
        "invalid member access `y.z`",
    ),
    (
        "action of the wrong type",
        '@id("u") permit (principal, action == Fs::"read", resource);',
        1,
        39,
        'expected an entity uid with type `Action` but got `Fs::"read"`',
    ),
    (
        "integer too large",
        '@id("n") permit (principal, action, resource) when { context.n == 99999999999999999999 };',
        1,
        67,
        "integer parse error",
    ),
    (
        "unknown method",
        '@id("m") permit (principal, action, resource) when { context.x.foo() };',
        1,
        64,
        "`foo` is not a valid method",
    ),
    ("double semicolon", f"{OK};", 1, 48, "unexpected token `;`"),
    (
        "missing semicolon before a policy without annotations",
        f"{OK[:-1]}\n  forbid (principal, action, resource);",
        2,
        10,
        "unexpected token `(` (missing `;` before this policy?)",
    ),
    (
        "pattern on an entity: an error on every request",
        '@id("d") permit (principal, action, resource)\n'
        'when { context.x == 1 && action like "*.d" };',
        2,
        26,
        "`action like` is a type error on every request (action is an entity, not a string) "
        "and an error denies; match `context.action like …` instead",
    ),
    (
        "pattern on the resource entity",
        '@id("d") forbid (principal, action, resource) when { resource like "db/*" };',
        1,
        54,
        "match `context.target like …` instead",
    ),
    (
        "stray character after a tab",
        '\t@id("tab")\tpermit (principal, action, resource) when { $ };',
        1,
        57,
        "invalid token",
    ),
    (
        "nesting deep enough to crash the parser",
        f"permit (principal, action, resource) when {{ {DEEP} }};",
        1,
        108,
        "nested deeper than 64 brackets",
    ),
    (
        "a chain too long for the engine's JSON form",
        '@id("c")\npermit (principal, action, resource) when { '
        + " || ".join(["context.x == 1"] * 70)
        + " };",
        1,
        1,
        "nested too deeply for the engine (Cedar refuses its JSON form)",
    ),
    (
        "a chain long enough to crash the parser",
        f"permit (principal, action, resource) when {{ {LONG} }};",
        1,
        16050,
        f"more than {MAX_OPERATORS} operators in one policy",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in BROKEN],
)
def test_check_locates_each_mistake(
    tmp_path: Path, text: str, line: int, column: int, message: str
) -> None:
    write_bundle(tmp_path, p_cedar=text)
    found = problems_of(tmp_path)
    assert len(found) == 1, found
    name, got_line, got_column, got_message = found[0]
    assert (name, got_line, got_column) == ("p.cedar", line, column)
    assert message in got_message


def test_a_clean_bundle_has_no_problems(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        a_cedar=f"// reads\n{OK}\n",
        b_cedar='@id("q") @approval("2") @evidence("high") @ttl_max("60") @approval_window("30")\n'
        'permit (principal, action in [Action::"fs.delete"], resource)\n'
        'when { context.params has env && context.params.env == "prod" };\n'
        '@id("note") @owner("platform-team") forbid (principal, action, resource)\n'
        'unless { context.tenant == "acme" };\n',
        empty_cedar="// nothing here yet\n",
    )
    assert check_bundle(tmp_path) == []
    PolicyEngine(PolicyBundle.from_dir(tmp_path))


def test_every_broken_file_and_statement_is_reported(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        a_cedar=f"{OK}\npermit (principal, action resource);\n"
        "permitt (principal, action, resource);",
        b_cedar=f'@id("x") permit (principal, action, resource);\n{OK}',
    )
    assert [p[:3] for p in problems_of(tmp_path)] == [
        ("a.cedar", 2, 27),
        ("a.cedar", 3, 1),
        ("b.cedar", 2, 1),
    ]
    problem = check_bundle(tmp_path)[-1]
    assert problem.message == f"policy id 'ok' is used twice (first at {tmp_path}/a.cedar:1:1)"
    assert str(problem) == f"{tmp_path}/b.cedar:2:1: {problem.message}"


def test_duplicate_fallback_ids_are_reported_at_the_statement(tmp_path: Path) -> None:
    # The second policy has no @id, so the engine names it a.cedar#1: taken.
    write_bundle(
        tmp_path,
        a_cedar='@id("a.cedar#1") permit (principal, action, resource);\n'
        "  forbid (principal, action, resource);",
    )
    assert problems_of(tmp_path) == [
        (
            "a.cedar",
            2,
            3,
            f"policy id 'a.cedar#1' is used twice (first at {tmp_path}/a.cedar:1:1)",
        )
    ]


def test_file_level_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.cedar").write_bytes(f"{OK}\n// caf\xe9\n".encode("latin-1"))
    (tmp_path / "good.cedar").write_text('@id("g") permit (principal, action, resource);')
    assert problems_of(tmp_path) == [
        ("bad.cedar", 2, 7, "not UTF-8: invalid continuation byte"),
    ]


def test_a_directory_named_like_a_policy_is_reported(tmp_path: Path) -> None:
    write_bundle(tmp_path, p_cedar=OK)
    (tmp_path / "more.cedar").mkdir()
    [problem] = check_bundle(tmp_path)
    assert (Path(problem.file).name, problem.line, problem.column) == ("more.cedar", 1, 1)
    assert problem.message == "cannot read: Is a directory"


def test_not_a_bundle_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        check_bundle(tmp_path / "missing")
    with pytest.raises(PolicyError, match=r"holds no \.cedar files"):
        check_bundle(tmp_path)
    (tmp_path / "huge.cedar").write_text("// " + "x" * (4 * 1024 * 1024))
    with pytest.raises(PolicyError, match="exceeds"):
        check_bundle(tmp_path)


def test_windows_line_endings_count_as_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.cedar").write_bytes(b'@id("a")\r\npermit (principal, action, resource)\r\nx;')
    assert problems_of(tmp_path) == [("p.cedar", 3, 2, "unexpected token `;`")]


SCHEMA = """\
entity Agent { kind: String };
entity Target;
action "fs.read" appliesTo {
  principal: [Agent],
  resource: [Target],
  context: { safety_class: String }
};
"""


def test_schema_validation_errors_point_at_the_policy(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        schema_cedarschema=SCHEMA,
        p_cedar='@id("ok") permit (principal, action == Action::"fs.read", resource)\n'
        'when { context.safety_class == "A0" };\n'
        '@id("typed") permit (principal, action == Action::"fs.read", resource)\n'
        "when { context.safety_class == 1 };\n"
        'permit (principal is Robot, action == Action::"fs.read", resource);\n',
    )
    found = problems_of(tmp_path)
    assert [p[:3] for p in found] == [("p.cedar", 3, 1), ("p.cedar", 5, 1), ("p.cedar", 5, 22)]
    assert found[0][3] == (
        "does not validate against the schema: the types Long and String are not compatible "
        "(policy typed)"
    )
    assert "unable to find an applicable action" in found[1][3]
    assert found[2][3] == (
        "does not validate against the schema: unrecognized entity type `Robot` (policy p.cedar#2)"
    )


@pytest.mark.parametrize(
    ("schema", "line", "column", "message"),
    [
        ("entity Agent {\n  kind: Strin };", 2, 9, "failed to resolve type: Strin"),
        ("entity Agent {\n  kind: ;", 2, 9, "unexpected token `;`"),
        ("entity A { a: " + "{ b: " * 70 + "Long" + " }" * 70 + " };", 1, 330, "nested deeper"),
        (b"entity \xff;", 1, 8, "not UTF-8"),
    ],
)
def test_schema_problems_are_located(
    tmp_path: Path, schema: str | bytes, line: int, column: int, message: str
) -> None:
    write_bundle(tmp_path, p_cedar=OK)
    schema_path = tmp_path / "schema.cedarschema"
    if isinstance(schema, bytes):
        schema_path.write_bytes(schema)
    else:
        schema_path.write_text(schema)
    [(name, got_line, got_column, got_message)] = problems_of(tmp_path)
    assert (name, got_line, got_column) == ("schema.cedarschema", line, column)
    assert message in got_message


ALPHABET = list(
    'permitforbidwhenunlessprincipalactionresourcecontext(),{}[];:"\\@?.=!&|<>+-*'
    " \n\t\r/0123456789xyzAgentTarget::"
)
CEDARISH = st.lists(
    st.sampled_from(
        [
            "permit",
            "forbid",
            "(",
            ")",
            "principal",
            "action",
            "resource",
            ",",
            ";",
            "when",
            "{",
            "}",
            "context.x",
            "==",
            '"s"',
            "@id(",
            '@approval("2")',
            '@evidence("x")',
            "?principal",
            "//",
            "\n",
            " ",
            '"',
            "like",
            "[",
            "]",
            "1",
            "&&",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.text(ALPHABET, max_size=200), CEDARISH))
def test_check_never_raises_and_points_inside_the_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "p.cedar").write_text(text, encoding="utf-8")
        problems = check_bundle(directory)
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for problem in problems:
            assert isinstance(problem, Problem)
            assert 1 <= problem.line <= len(lines)
            assert 1 <= problem.column <= len(lines[problem.line - 1])
            assert problem.message
        if not problems:
            PolicyEngine(PolicyBundle.from_dir(directory))


# -- the command: check ----------------------------------------------------------


def test_check_command_on_the_shipped_example() -> None:
    result = policy("check", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {EXAMPLE}: 8 policies in 4 file(s), bundle sha256:")
    as_json = json.loads(policy("check", str(EXAMPLE), "--json").stdout)
    assert as_json["ok"] is True
    assert as_json["problems"] == []
    assert as_json["bundle_hash"] == PolicyBundle.from_dir(EXAMPLE).hash


def test_check_command_prints_problems_like_a_compiler(tmp_path: Path) -> None:
    write_bundle(tmp_path, p_cedar=f"{OK}\npermit (principal, action resource);")
    result = policy("check", str(tmp_path))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{tmp_path}/p.cedar:2:27: unexpected token `resource`",
        f"FAILED {tmp_path}: 1 problem(s)",
    ]
    as_json = json.loads(policy("check", str(tmp_path), "--json").stdout)
    assert as_json == {
        "ok": False,
        "problems": [
            {
                "file": f"{tmp_path}/p.cedar",
                "line": 2,
                "column": 27,
                "message": "unexpected token `resource`",
            }
        ],
    }


def test_check_command_on_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    result = policy("check", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


# -- test: cases ---------------------------------------------------------------------


def test_the_shipped_example_passes_its_tests() -> None:
    cases = load_cases(EXAMPLE / "tests.yaml")
    assert len(cases) >= 10
    results = run_cases(PolicyEngine(PolicyBundle.from_dir(EXAMPLE)), cases)
    assert [r.message for r in results if not r.passed] == []
    # every rule of the bundle is proven by some case
    proven = {reason for r in results for reason in r.actual.reasons}
    assert proven == set(policy_sources(PolicyBundle.from_dir(EXAMPLE)))
    result = policy("test", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert f"{len(cases)} passed, 0 failed" in result.output
    assert "FAIL" not in result.output


def test_cases_fill_what_the_intent_omits_deterministically(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"tenant": "acme", "actor": {"id": "agent-1"}},
                "cases": [
                    {
                        "name": "filled",
                        "intent": {"action": "fs.read", "target": "a", "safety_class": "A0"},
                        "expect": {"verdict": "allow"},
                    },
                    {
                        "name": "own time and actor",
                        "posture": "lockdown",
                        "intent": {
                            "action": "fs.read",
                            "target": "a",
                            "safety_class": "A0",
                            "actor": {"id": "alice", "kind": "operator"},
                            "event_time": "2026-05-01T10:00:00+02:00",
                        },
                        "expect": {"verdict": "deny", "reasons": [], "obligations": {}},
                    },
                ],
            }
        )
    )
    first, second = load_cases(path)
    assert first.intent.intent_id == second.intent.intent_id == CASE_INTENT_ID
    assert first.intent.event_time == CASE_TIME
    assert first.intent.correlation_id == CASE_INTENT_ID
    assert first.intent.actor.kind == "agent"
    assert second.intent.actor.id == "alice"
    assert second.intent.event_time == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert second.posture == "lockdown"
    assert second.source == "cases.json: cases[1]"
    assert load_cases(path) == [first, second]


def test_run_cases_keeps_order_across_postures() -> None:
    engine = PolicyEngine(PolicyBundle.from_dir(EXAMPLE))
    cases = load_cases(EXAMPLE / "tests.yaml")
    shuffled = cases[::-1]
    results = run_cases(engine, shuffled)
    assert [r.name for r in results] == [c.name for c in shuffled]
    for case, result in zip(shuffled, results, strict=True):
        assert result.actual == engine.decide(case.intent, case.posture)


WRONG = """\
defaults: {tenant: acme, actor: {id: agent-7}}
cases:
  - name: reads are allowed
    intent: {action: fs.read, target: r, safety_class: A0}
    expect: {verdict: allow, reasons: [allow-read-only]}
  - name: a staging delete needs two approvers
    intent: {action: fs.delete, target: r, safety_class: A2, params: {env: staging}}
    expect:
      verdict: require_approval
      reasons: [prod-delete-two-approvers]
      obligations: {approval: 2, evidence: high}
  - name: reversible work in dev is denied
    intent: {action: k8s.scale, target: deploy/web, safety_class: A1, params: {env: dev}}
    expect: {verdict: deny}
"""


def test_a_wrong_expectation_fails_and_names_the_case(tmp_path: Path) -> None:
    cases = tmp_path / "wrong.yaml"
    cases.write_text(WRONG)
    result = policy("test", str(EXAMPLE), "--cases", str(cases))
    assert result.exit_code == 1
    assert "1 passed, 2 failed" in result.output
    assert (
        "FAIL reversible work in dev is denied (wrong.yaml: cases[2]): "
        "verdict: expected deny, got allow" in result.output
    )
    assert (
        "FAIL a staging delete needs two approvers (wrong.yaml: cases[1]): "
        "reasons: expected [prod-delete-two-approvers], got [nonprod-impactful-one-approver]; "
        "obligations.approval: expected 2, got 1; obligations.evidence: expected high, got standard"
    ) in result.output
    as_json = json.loads(policy("test", str(EXAMPLE), "--cases", str(cases), "--json").stdout)
    assert (as_json["passed"], as_json["failed"]) == (1, 2)
    failed = as_json["cases"][1]
    assert failed["name"] == "a staging delete needs two approvers"
    assert failed["passed"] is False
    assert failed["expected"]["obligations"] == {"approval": "2", "evidence": "high"}
    assert failed["actual"]["verdict"] == "require_approval"


def test_evaluation_errors_fail_a_case_unless_expected(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        p_cedar='@id("big") permit (principal, action, resource) when { context.params.size > 1 };',
    )
    body = {
        "defaults": {"tenant": "acme", "actor": {"id": "a"}, "safety_class": "A0", "target": "t"},
        "cases": [
            {"name": "denied", "intent": {"action": "x.y"}, "expect": {"verdict": "deny"}},
            {
                "name": "fails closed",
                "intent": {"action": "x.y"},
                "expect": {"verdict": "deny", "errors": True},
            },
            {
                "name": "no error here",
                "intent": {"action": "x.y", "params": {"size": 5}},
                "expect": {"verdict": "allow", "errors": True},
            },
        ],
    }
    (tmp_path / "cases.json").write_text(json.dumps(body))
    results = run_cases(
        PolicyEngine(PolicyBundle.from_dir(tmp_path)), load_cases(tmp_path / "cases.json")
    )
    assert [r.passed for r in results] == [False, True, False]
    assert results[0].message.startswith("evaluation errors: ")
    assert results[2].message == "errors: expected evaluation errors, got none"
    assert results[1].expected.to_json() == {"verdict": "deny", "errors": True}
    result = policy("test", str(tmp_path))  # case files found in the bundle directory
    assert result.exit_code == 1
    assert "1 passed, 2 failed" in result.output


CASE = (
    "  - name: c\n"
    "    intent: {tenant: acme, actor: {id: a}, action: fs.read, target: t, safety_class: A0}\n"
)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("list", "- a\n- b\n", "must be a mapping with a `cases` list"),
        ("unknown top", "surprise: 1\ncases: []\n", "surprise: unknown field"),
        ("no cases", "cases: []\n", "cases: must be a non-empty list"),
        ("defaults", "defaults: [1]\ncases: [{}]\n", "defaults: must be a mapping"),
        ("case not mapping", "cases: [1]\n", "cases[0]: must be a mapping"),
        ("no name", "cases: [{intent: {}}]\n", "cases[0]: name: is required"),
        (
            "duplicate name",
            f"cases:\n{CASE}    expect: {{verdict: allow}}\n{CASE}    expect: {{verdict: allow}}\n",
            "cases[1] (c): name: is used by an earlier case",
        ),
        ("unknown field", f"cases:\n{CASE}    expct: {{}}\n", "cases[0] (c): expct: unknown field"),
        ("no intent", "cases: [{name: c, expect: {verdict: allow}}]\n", "(c): intent: is required"),
        (
            "bad posture",
            f"cases:\n{CASE}    posture: 3\n    expect: {{verdict: allow}}\n",
            "(c): posture: must be a non-empty string",
        ),
        (
            "bad intent",
            "cases:\n  - name: c\n    intent: {action: fs.read, target: t, safety_class: A9}\n"
            "    expect: {verdict: allow}\n",
            "cases[0] (c): intent.tenant: is required; intent.actor: is required; "
            "intent.safety_class: Input should be 'A0', 'A1', 'A2' or 'A3'",
        ),
        ("no expect", f"cases:\n{CASE}", "(c): expect: is required"),
        (
            "bad verdict",
            f"cases:\n{CASE}    expect: {{verdict: maybe}}\n",
            "(c): expect.verdict: is required, one of allow, deny, require_approval (not 'maybe')",
        ),
        (
            "unknown expect field",
            f"cases:\n{CASE}    expect: {{verdict: allow, quorum: 2}}\n",
            "(c): expect.quorum: unknown field",
        ),
        (
            "bad reasons",
            f"cases:\n{CASE}    expect: {{verdict: allow, reasons: a}}\n",
            "(c): expect.reasons: must be a list of policy ids",
        ),
        (
            "bad obligations",
            f"cases:\n{CASE}    expect: {{verdict: allow, obligations: [1]}}\n",
            "(c): expect.obligations: must be a mapping",
        ),
        (
            "unknown obligation",
            f"cases:\n{CASE}    expect: {{verdict: allow, obligations: {{quorum: 2}}}}\n",
            "(c): expect.obligations.quorum: unknown field",
        ),
        (
            "bad obligation value",
            f"cases:\n{CASE}    expect: {{verdict: allow, obligations: {{approval: 0}}}}\n",
            "(c): expect.obligations.approval: @approval must be a positive whole number",
        ),
        (
            "boolean obligation value",
            f"cases:\n{CASE}    expect: {{verdict: allow, obligations: {{approval: yes}}}}\n",
            "(c): expect.obligations.approval: must be a string or number",
        ),
        (
            "bad errors flag",
            f"cases:\n{CASE}    expect: {{verdict: allow, errors: maybe}}\n",
            "(c): expect.errors: must be true or false",
        ),
        ("malformed YAML", "cases: [\n  {name: c,\n", "tests.yaml:3:1: malformed YAML"),
    ],
)
def test_bad_case_files_are_bad_input_naming_the_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    cases = tmp_path / "tests.yaml"
    cases.write_text(text)
    with pytest.raises(InputError) as raised:
        load_cases(cases)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(cases))
    result = policy("test", str(EXAMPLE), "--cases", str(cases))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("c.json", b'{"cases": [', "c.json:1:12: malformed JSON"),
        ("c.yaml", b"cases: \xff", "not UTF-8"),
        ("c.txt", b"cases: []", "must end in .yaml, .yml, .json"),
        ("c.yml", b"x" * (4 * 1024 * 1024 + 1), "larger than"),
        ("c.json", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        ("c.yaml", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ],
)
def test_unreadable_case_files_are_bad_input(
    tmp_path: Path, file: str, content: bytes, message: str
) -> None:
    path = tmp_path / file
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)):
        load_cases(path)


def test_test_command_needs_case_files(tmp_path: Path) -> None:
    write_bundle(tmp_path, p_cedar=OK)
    result = policy("test", str(tmp_path))
    assert result.exit_code == 2
    assert "holds no case files" in result.output
    missing = policy("test", str(tmp_path), "--cases", str(tmp_path / "none.yaml"))
    assert missing.exit_code == 2
    assert "cannot read case file" in missing.output


# -- explain ---------------------------------------------------------------------------


def explain_json(body: dict[str, Any], *extra: str) -> dict[str, Any]:
    result = policy(
        "explain", "-", "--policy", str(EXAMPLE), "--json", *extra, stdin=json.dumps(body)
    )
    assert result.exit_code == 0, result.output
    decoded: dict[str, Any] = json.loads(result.stdout)
    return decoded


def test_explain_an_allow() -> None:
    body = sample_intent(event_time="2026-03-01T12:00:00Z")
    out = explain_json(body)
    assert out["verdict"] == "allow"
    assert out["summary"] == "Allowed: permitted by allow-read-only."
    request = out["request"]
    assert (request["principal"], request["action"], request["resource"]) == (
        'Agent::"agent-1"',
        'Action::"fs.read"',
        'Target::"reports/q3.txt"',
    )
    assert (
        request["context"]
        | {
            "action": "fs.read",
            "target": "reports/q3.txt",
            "params": {"bytes": 10},
            "safety_class": "A0",
            "tenant": "acme",
            "posture": "normal",
            "event_time": "2026-03-01T12:00:00.000000Z",
            "event_epoch": 1772366400,
        }
        == request["context"]
    )
    # exactly the request the engine evaluates
    intent = complete_intent(parse_intent(body), CASE_TIME)
    tightened = GateConfig().policy_context("normal")  # the home's configuration's
    assert request == PolicyEngine.request(intent, "normal", tightened)[0]
    [determining] = out["determining"]
    assert determining["id"] == "allow-read-only"
    assert (determining["file"], determining["line"]) == ("20-everyday.cedar", 9)
    assert determining["effect"] == "permit"
    assert determining["obligations"] == {}
    assert determining["source"].startswith('@id("allow-read-only")\npermit (principal')
    assert out["bundle_hash"] == out["decision"]["policy_hash"]


def test_explain_a_forbid(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    path.write_text(json.dumps(sample_intent(target="db/customers-prod")))
    text = policy("explain", str(path), "--policy", str(EXAMPLE))
    assert text.exit_code == 0, text.output
    assert "Denied: forbidden by protect-customer-database. A forbid beats any permit." in (
        text.output
    )
    assert "protect-customer-database — forbid — 00-protected.cedar:11" in text.output
    assert 'resource == Target::"db/customers-prod"' in text.output
    out = explain_json(sample_intent(target="db/customers-prod"))
    assert out["verdict"] == "deny"
    assert [p["id"] for p in out["determining"]] == ["protect-customer-database"]


def test_explain_a_default_deny_names_the_permits_for_the_action() -> None:
    body = sample_intent(action="db.delete", safety_class="A3", params={"env": "staging"})
    out = explain_json(body)
    assert out["verdict"] == "deny"
    assert out["determining"] == []
    assert out["summary"] == (
        "Denied by default: no permit matched this request. "
        "Permits that single out db.delete: prod-delete-two-approvers "
        "(30-production.cedar:26); their conditions did not hold."
    )
    assert [h["id"] for h in out["hints"]] == ["prod-delete-two-approvers"]
    plain = explain_json(sample_intent(action="ssh.exec", safety_class="A3"))
    assert plain["summary"] == "Denied by default: no permit matched this request."
    assert plain["hints"] == []
    text = policy("explain", "-", "--policy", str(EXAMPLE), stdin=json.dumps(body))
    assert "Permits that name this action" in text.output
    assert "hint: prod-delete-two-approvers — permit — 30-production.cedar:26" in text.output


def test_explain_hints_find_permits_by_scope_and_by_condition(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        p_cedar='@id("by-scope") permit (principal, action == Action::"db.drop", resource)\n'
        'when { context.safety_class == "A0" };\n'
        '@id("by-set") permit (principal, action, resource)\n'
        'when { ["db.drop", "db.purge"].contains(context.action) && context.params has ok };\n'
        '@id("by-name") permit (principal, action, resource)\n'
        'when { context.action == "db.drop" && context.params has ok };\n'
        '@id("other-set") permit (principal, action, resource)\n'
        'when { ["db.purge"].contains(context.action) && context.params has ok };\n'
        '@id("other") permit (principal, action == Action::"db.purge", resource);\n'
        '@id("no") forbid (principal, action == Action::"db.drop", resource)\n'
        "when { context.params has no };\n",
    )
    body = sample_intent(action="db.drop", safety_class="A3", params={})
    result = policy("explain", "-", "--policy", str(tmp_path), "--json", stdin=json.dumps(body))
    hints = [hint["id"] for hint in json.loads(result.stdout)["hints"]]
    assert sorted(hints) == ["by-name", "by-scope", "by-set"]


def test_explain_a_require_approval() -> None:
    body = sample_intent(action="db.delete", safety_class="A2", params={"env": "prod"})
    out = explain_json(body)
    assert out["verdict"] == "require_approval"
    assert out["decision"]["obligations"] == {
        "approval": "2",
        "approval_window": "900",
        "evidence": "high",
        "ttl_max": "3600",
    }
    assert [(p["id"], p["obligations"]) for p in out["determining"]] == [
        (
            "prod-change-one-approver",
            {"approval": "1", "approval_window": "900", "evidence": "standard"},
        ),
        ("prod-delete-two-approvers", {"approval": "2", "evidence": "high", "ttl_max": "3600"}),
    ]
    assert out["summary"].startswith("Allowed once 2 distinct approver(s) approve")
    text = policy("explain", "-", "--policy", str(EXAMPLE), stdin=json.dumps(body))
    assert "require_approval" in text.output
    assert "approval=2 approval_window=900 evidence=high ttl_max=3600" in text.output
    assert "Cedar request" in text.output
    lockdown = explain_json(body, "--posture", "lockdown")
    assert lockdown["verdict"] == "deny"
    assert lockdown["request"]["context"]["posture"] == "lockdown"


def test_explain_evaluation_errors(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        p_cedar=f'{OK}\n@id("big") permit (principal, action, resource)\n'
        "when { context.params.size > 1 };",
    )
    engine = PolicyEngine(PolicyBundle.from_dir(tmp_path))
    explanation = explain(engine, complete_intent(parse_intent(sample_intent()), CASE_TIME))
    assert explanation.verdict is Verdict.DENY
    assert explanation.errors
    assert explanation.summary == (
        "Denied: Cedar reported 1 evaluation error(s) and ExoArmur denies on any error "
        "(fail closed) (determining policies: ok)."
    )
    text = policy("explain", "-", "--policy", str(tmp_path), stdin=json.dumps(sample_intent()))
    assert "Evaluation errors" in text.output


def test_explain_uses_the_bundle_in_force_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exoarmur.home import Home, open_governor
    from exoarmur.policy import PolicyBundle

    home = tmp_path / "home"
    Home(home).init()
    active = tmp_path / "active"
    write_bundle(active, default_cedar='@id("home-rule") permit (principal, action, resource);')
    with open_governor(home) as governor:
        governor.activate_policy(PolicyBundle.from_dir(active))
    # files edited in the home's policy/ but not activated do not count
    write_bundle(
        home / "policy", default_cedar='@id("not-active") forbid (principal, action, resource);'
    )
    monkeypatch.setenv("EXOARMUR_HOME", str(home))
    result = policy("explain", "-", "--json", stdin=json.dumps(sample_intent(safety_class="A3")))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["decision"]["reasons"] == ["home-rule"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-"], '{"tenant": "acme"}', "actor: is required"),
        (["-"], "not json", "malformed JSON"),
        (["/nonexistent/intent.json"], None, "cannot read intent file"),
        (["-", "--posture", ""], json.dumps(sample_intent()), "--posture: must not be empty"),
    ],
)
def test_explain_bad_input(args: list[str], stdin: str | None, message: str) -> None:
    result = policy("explain", *args, "--policy", str(EXAMPLE), stdin=stdin)
    assert result.exit_code == 2
    assert message in result.output


# -- the benchmark ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_policy_benchmark_runs_in_quick_mode() -> None:
    script = ROOT / "benchmarks" / "bench_policy.py"
    env = {**os.environ, "COLUMNS": "120"}
    text = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    ).stdout
    markers = dict(re.findall(r"^([A-Z0-9_]+)=(\S+)$", text, re.MULTILINE))
    assert markers["POLICY_COUNT"] == "100"
    assert markers["POLICY_N"] == "200"
    for key in ("POLICY_P50_US", "POLICY_P99_US", "POLICY_BATCH_P50_US", "POLICY_BATCH_P99_US"):
        assert float(markers[key]) > 0
    verdicts = dict(pair.split(":") for pair in markers["POLICY_VERDICTS"].split(","))
    assert set(verdicts) == {"allow", "deny", "require_approval"}
    assert sum(int(v) for v in verdicts.values()) == 200
    report = json.loads(
        subprocess.run(
            [sys.executable, str(script), "--quick", "--json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=300,
        ).stdout
    )
    assert report["policies"] == 100
    assert report["decide"]["p50_us"] <= report["decide"]["p99_us"]
    assert report["decide_batch"]["p50_us"] <= report["decide_batch"]["p99_us"]
