"""``exoarmur report``: the start and the end of an action its caller carries out, recorded.

The local twin of ``POST …/start`` and ``POST …/outcome`` (see
:mod:`exoarmur.reported` for the rules). The reporter is the principal of
``--key-file`` (or ``$EXOARMUR_API_KEY``); without a key, whoever holds the
data directory names the actor with ``--actor``, as ``exoarmur submit``
takes it from the intent file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..errors import InputError
from ..model.intent import MAX_INTENT_BYTES
from ._common import (
    API_KEY_ENV,
    STATUS_EXIT,
    acting_principal,
    console,
    current_home,
    errors,
    outcome_json,
    print_json,
    print_outcome,
)

#: a result file may be as large as an intent document
MAX_RESULT_BYTES = MAX_INTENT_BYTES


def _result(result_file: Path | None) -> Any:
    from ..jsontext import loads

    if result_file is None:
        return None
    try:
        with result_file.open("rb") as handle:
            raw = handle.read(MAX_RESULT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--result-file: cannot read {result_file}: {exc.strerror}") from None
    if len(raw) > MAX_RESULT_BYTES:
        raise InputError(f"--result-file: larger than {MAX_RESULT_BYTES} bytes")
    try:
        return loads(raw)
    except InputError as exc:
        raise InputError(f"--result-file: {exc}") from None


def report(
    ctx: typer.Context,
    intent_id: Annotated[str, typer.Argument(help="The intent's id.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="The intent's tenant.")],
    start: Annotated[
        bool, typer.Option("--start", help="Record that it starts now (before acting).")
    ] = False,
    status: Annotated[
        str | None,
        typer.Option("--status", help="How it ended: succeeded or failed.", show_default=False),
    ] = None,
    result_file: Annotated[
        Path | None, typer.Option("--result-file", help="Its result (JSON), when it succeeded.")
    ] = None,
    error: Annotated[
        str | None, typer.Option("--error", help="Why it failed.", show_default=False)
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who submitted it (without a key).", show_default=False),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File holding your API key.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """Report an action you carry out: --start before it, then --status when it ended.

    Exit 0 recorded; 3 blocked by the gate (do not act); 2 bad input; 1 refused (says why).
    """
    from .. import reported
    from ..home import open_governor

    with errors():
        if start == (status is not None):
            raise InputError("--start or --status: give exactly one")
        if status is not None and status not in ("succeeded", "failed"):
            raise InputError(f"--status: must be succeeded or failed, not {status!r}")
        ending: Literal["succeeded", "failed"] | None = (
            "succeeded" if status == "succeeded" else "failed" if status == "failed" else None
        )
        result = _result(result_file)
        with open_governor(current_home(ctx)) as governor:
            keyed = key_file is not None or bool(_env(API_KEY_ENV))
            if keyed:
                reporter = acting_principal(governor, key_file).name
                if actor is not None and actor != reporter:
                    raise InputError("--actor: a key names the reporter; leave --actor out")
            elif actor is None:
                raise InputError("--actor: name who submitted the intent (or pass --key-file)")
            else:
                reporter = actor
            started = None
            if ending is None:
                started = reported.start(governor, tenant, intent_id, reporter)
                outcome = started.outcome
            else:
                outcome = reported.finish(
                    governor, tenant, intent_id, reporter, ending, result=result, error=error
                )
    if as_json:
        print_json(outcome_json(outcome))
    elif started is not None and started.event is not None:
        console.print(
            f"started: execution.started {started.event.event_id} is recorded; "
            f"act now, then `exoarmur report {intent_id} -t {tenant} --status …`"
        )
    else:
        print_outcome(outcome)
    raise typer.Exit(STATUS_EXIT[outcome.status] if started and started.event is None else 0)


def _env(name: str) -> str:
    import os

    return os.environ.get(name, "").strip()
