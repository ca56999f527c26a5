"""``exoarmur policy``: check, test and explain a policy bundle from the terminal.

The habits of ``cedar validate`` and ``opa test``. ``exoarmur.cli`` mounts
:data:`policy_app` as ``exoarmur policy``. This module only reads arguments
and prints: the work is done in :mod:`exoarmur.policy.tooling`; ``activate``
records a bundle through the governor.

Exit codes are the ones ``exoarmur.cli`` documents: 0 success, 1 a failed
check (for ``test``: a case failed), 2 bad input (for ``check``: the bundle
has problems).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..errors import InputError
from ..gate import GateConfig
from ..home import open_governor
from ..model.decision import Verdict
from ..model.intent import MAX_INTENT_BYTES, TENANT_PATTERN, parse_intent_json
from ..policy.bundle import PolicyBundle
from ..policy.engine import PolicyEngine
from ..policy.obligations import obligations_of
from ..policy.tooling import (
    CASE_SUFFIXES,
    CaseResult,
    Explanation,
    PolicySource,
    check_bundle,
    complete_intent,
    explain,
    load_cases,
    policy_sources,
    run_cases,
)
from ..terminal import line, styled, visible
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    JsonFlag,
    console,
    current_home,
    errors,
    print_json,
)

policy_app = typer.Typer(
    help="Check, test and explain Cedar policy bundles (like `cedar validate` and `opa test`).",
    no_args_is_help=True,
)


_VERDICT_STYLE = {
    Verdict.ALLOW: "bold green",
    Verdict.DENY: "bold red",
    Verdict.REQUIRE_APPROVAL: "bold yellow",
}

BundleArgument = Annotated[
    Path,
    typer.Argument(help="Policy bundle: a directory of .cedar files.", show_default=False),
]


def _verdict(verdict: Verdict) -> Text:
    return styled(verdict.value, _VERDICT_STYLE[verdict])


# -- check ------------------------------------------------------------------------


@policy_app.command("check")
def run_check(ctx: typer.Context, directory: BundleArgument, as_json: JsonFlag = False) -> None:
    """Report what is wrong with a bundle as file:line:column: message. Exit 0 clean, 2 not."""
    with errors(as_json):
        problems = check_bundle(directory)
        bundle = None if problems else PolicyBundle.from_dir(directory)
    if as_json:
        body: dict[str, Any] = {
            "ok": not problems,
            "problems": [problem.to_json() for problem in problems],
        }
        if bundle is not None:
            body["bundle_hash"] = bundle.hash
        print_json(body)
    elif bundle is None:
        for problem in problems:
            console.print(str(problem), soft_wrap=True)
        console.print(
            line(styled("FAILED", "bold red"), f" {directory}: {len(problems)} problem(s)"),
            soft_wrap=True,
        )
    else:
        count = len(policy_sources(bundle))
        console.print(
            line(
                styled("OK", "bold green"),
                f" {directory}: {count} policies in {len(bundle.files)} file(s), "
                f"bundle {bundle.hash}",
            ),
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_BAD_INPUT if problems else EXIT_OK)


# -- test -------------------------------------------------------------------------


def _case_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CASE_SUFFIXES)
    if not files:
        raise InputError(
            f"{directory} holds no case files ({', '.join('*' + s for s in CASE_SUFFIXES)}); "
            "pass --cases FILE"
        )
    return files


def _expected(result: CaseResult) -> str:
    expected = result.expected
    text = expected.verdict.value
    if expected.obligations and "approval" in expected.obligations:
        text += f" ({expected.obligations['approval']})"
    return text


def _actual(result: CaseResult) -> Text:
    actual = result.actual
    text = _verdict(actual.verdict)
    if "approval" in actual.obligations:
        text.append(visible(f" ({actual.obligations['approval']})"))
    return text


def _print_results(results: Sequence[CaseResult], bundle_hash: str) -> None:
    table = Table(title=f"Policy tests — bundle {bundle_hash}")
    table.add_column("case", overflow="fold")
    table.add_column("expected")
    table.add_column("actual")
    table.add_column("result")
    for result in results:
        table.add_row(
            result.name,
            _expected(result),
            _actual(result),
            styled("PASS", "bold green") if result.passed else styled("FAIL", "bold red"),
        )
    console.print(table)
    for result in results:
        if not result.passed:
            console.print(
                line(
                    styled("FAIL", "bold red"),
                    f" {result.name} ({result.case.source}): {result.message}",
                ),
                soft_wrap=True,
            )
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    style = "bold green" if not failed else "bold red"
    console.print(styled(f"{passed} passed, {failed} failed", style))


@policy_app.command("test")
def run_tests(
    ctx: typer.Context,
    directory: BundleArgument,
    cases: Annotated[
        list[Path] | None,
        typer.Option(
            "--cases",
            help="Case file (YAML or JSON); repeatable. Default: every *.yaml, *.yml "
            "and *.json file in the bundle directory.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run policy test cases against a bundle. Exit 0 all pass, 1 a case failed, 2 bad input."""
    with errors(as_json):
        engine = PolicyEngine(PolicyBundle.from_dir(directory))
        files = cases or _case_files(directory)
        loaded = [case for file in files for case in load_cases(file)]
        results = run_cases(engine, loaded, _gate(ctx).policy_context)
    failed = sum(1 for r in results if not r.passed)
    if as_json:
        print_json(
            {
                "bundle_hash": engine.policy_hash,
                "passed": len(results) - failed,
                "failed": failed,
                "cases": [result.to_json() for result in results],
            }
        )
    else:
        _print_results(results, engine.policy_hash)
    raise typer.Exit(EXIT_FAILURE if failed else EXIT_OK)


# -- explain ------------------------------------------------------------------------


def _read_intent(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read(MAX_INTENT_BYTES + 1)
    try:
        with open(file, "rb") as handle:
            return handle.read(MAX_INTENT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read intent file {file}: {exc.strerror}") from None


def _gate(ctx: typer.Context) -> GateConfig:
    """The home's gate configuration (what policy sees a posture tighten); defaults without one."""
    home = current_home(ctx)
    return home.gate() if home.config_path.exists() else GateConfig()


def _home_policy_dir(ctx: typer.Context) -> Path:
    return current_home(ctx).policy_dir


def _obligations(policy: PolicySource) -> str:
    found = obligations_of(policy.policy_id, policy.annotations)
    return " ".join(f"{name}={value}" for name, value in found.items())


def _policy_panel(policy: PolicySource, label: str) -> Panel:
    subtitle = _obligations(policy)
    return Panel(
        # Policy text keeps its lines; each line is shown literally.
        Text("\n").join(
            line(text.removesuffix("\r").expandtabs(4)) for text in policy.text.split("\n")
        ),
        title=line(f"{label}{policy.policy_id} — {policy.effect} — {policy.file}:{policy.line}"),
        title_align="left",
        subtitle=line(subtitle) if subtitle else None,
        subtitle_align="left",
        expand=False,
    )


def _print_explanation(explanation: Explanation, bundle_hash: str) -> None:
    decision = explanation.decision
    head = Table(show_header=False, box=None)
    head.add_row("verdict", _verdict(decision.verdict))
    head.add_row("why", explanation.summary)
    head.add_row("posture", explanation.posture)
    if decision.obligations:
        pairs = " ".join(f"{k}={v}" for k, v in decision.obligations.items())
        head.add_row("obligations", pairs)
    head.add_row("bundle", bundle_hash)
    console.print(head)
    console.print()
    console.print(styled("Cedar request", "bold"))
    # ASCII-only JSON: every control or bidi character is already a \u escape.
    sys.stdout.flush()
    sys.stdout.write(json.dumps(explanation.request, indent=2, sort_keys=True) + "\n")
    if explanation.determining:
        console.print()
        console.print(styled("Determining policies", "bold"))
        for policy in explanation.determining:
            console.print(_policy_panel(policy, ""))
    if explanation.errors:
        console.print()
        console.print(styled("Evaluation errors", "bold red"))
        for error in explanation.errors:
            console.print(f"  • {error}", soft_wrap=True)
    if explanation.hints:
        console.print()
        console.print(styled("Permits that name this action", "bold"))
        for policy in explanation.hints:
            console.print(_policy_panel(policy, "hint: "))


def _engine_in_force(ctx: typer.Context, tenant: str) -> PolicyEngine:
    """The bundle the ledger says is in force for ``tenant`` (what a submit would use)."""
    with open_governor(current_home(ctx), recover=False, record_run=False) as governor:
        return governor.policy_for(tenant)


@policy_app.command("explain")
def run_explain(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Intent JSON file, or - for standard input.")],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy bundle directory. Default: the bundle in force for the intent's tenant.",
            show_default=False,
        ),
    ] = None,
    posture: Annotated[str, typer.Option("--posture", help="Posture to decide under.")] = "normal",
    as_json: JsonFlag = False,
) -> None:
    """Say why an intent gets its verdict: the Cedar request and the policies that decided."""
    with errors(as_json):
        request = parse_intent_json(_read_intent(file))
        if not posture:
            raise InputError("--posture: must not be empty")
        engine = (
            PolicyEngine(PolicyBundle.from_dir(policy))
            if policy is not None
            else _engine_in_force(ctx, request.tenant)
        )
        # Explaining "what if this came in now": the edge reads the clock when
        # the intent gives no time, the decision itself never does.
        intent = complete_intent(request, datetime.now(UTC))
        explanation = explain(engine, intent, posture, _gate(ctx).policy_context(posture))
    if as_json:
        print_json(explanation.to_json() | {"bundle_hash": engine.policy_hash})
    else:
        _print_explanation(explanation, engine.policy_hash)


@policy_app.command("activate")
def activate_policy(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Directory of .cedar files.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only for this tenant (else global).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a policy bundle (full text, schema, hash) in the ledger as the one in force."""
    with errors(as_json):
        if tenant is not None and not re.match(TENANT_PATTERN, tenant):
            raise InputError(f"tenant: {tenant!r} does not match {TENANT_PATTERN}")
        bundle = PolicyBundle.from_dir(directory)
        with open_governor(current_home(ctx)) as governor:
            event = governor.activate_policy(bundle, tenant=tenant, actor="local-admin")
    if as_json:
        print_json(
            {
                "policy_hash": event.payload["policy_hash"],
                "tenant": tenant,
                "files": len(bundle.files),
                "event_id": event.event_id,
            }
        )
        return
    scope = f"tenant {tenant}" if tenant else "every tenant without its own"
    console.print(
        line(
            styled("activated", "green"),
            f" bundle {event.payload['policy_hash']} for {scope} "
            f"({len(bundle.files)} file(s)); event {event.event_id}",
        )
    )
