"""What every command shares: consoles, exit codes, errors, options, the acting principal.

A leaf: it imports no command module.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from typer.core import TyperGroup

from ..errors import (
    AuthenticationError,
    ExoArmurError,
    InputError,
    IntentError,
    IntentIdTaken,
    JSONTextError,
    PermissionDenied,
)
from ..home import HOME_ENV, STORE_ENV, Home, resolve_home
from ..ledger.store import LedgerStore
from ..model.decision import Outcome, OutcomeStatus
from ..model.event import SYSTEM_LOG
from ..pipeline import LOCAL_ADMIN, Governor
from ..principals import Principal
from ..terminal import console as literal_console
from ..terminal import line, styled

console = literal_console()


err_console = literal_console(stderr=True)


EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_DENIED, EXIT_PENDING, EXIT_EXEC_FAILED = range(6)


EXIT_GRACE_EXPIRED = 6


#: `verify` and `replay verify`: every check passed, but no signed checkpoint covers the log's end
EXIT_UNANCHORED = 7


STATUS_EXIT = {
    OutcomeStatus.EXECUTED: EXIT_OK,
    OutcomeStatus.DECIDED: EXIT_OK,
    OutcomeStatus.DENIED: EXIT_DENIED,
    OutcomeStatus.PENDING_APPROVAL: EXIT_PENDING,
    OutcomeStatus.PENDING_EVIDENCE: EXIT_PENDING,
    OutcomeStatus.FAILED: EXIT_EXEC_FAILED,
    OutcomeStatus.OUTCOME_UNKNOWN: EXIT_EXEC_FAILED,
    OutcomeStatus.APPROVED: EXIT_OK,
    OutcomeStatus.REJECTED: EXIT_DENIED,
    OutcomeStatus.EXPIRED: EXIT_DENIED,
    OutcomeStatus.BLOCKED: EXIT_DENIED,
}


STATUS_STYLE = {
    OutcomeStatus.EXECUTED: "bold green",
    OutcomeStatus.DECIDED: "green",
    OutcomeStatus.DENIED: "bold red",
    OutcomeStatus.PENDING_APPROVAL: "yellow",
    OutcomeStatus.PENDING_EVIDENCE: "yellow",
    OutcomeStatus.FAILED: "bold magenta",
    OutcomeStatus.OUTCOME_UNKNOWN: "magenta",
    OutcomeStatus.APPROVED: "green",
    OutcomeStatus.REJECTED: "bold red",
    OutcomeStatus.EXPIRED: "red",
    OutcomeStatus.BLOCKED: "bold red",
}


VERDICT_EXIT = {"VERIFIED": EXIT_OK, "UNANCHORED": EXIT_UNANCHORED, "FAILED": EXIT_FAILURE}


VERDICT_STYLE = {"VERIFIED": "bold green", "UNANCHORED": "bold yellow", "FAILED": "bold red"}


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=HOME_ENV,
        help="Data directory (default ./.exoarmur).",
        show_default=False,
    ),
]


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        help="Ledger store URL: sqlite:///PATH (default: <home>/ledger.db) or postgresql://...",
        show_default=False,
    ),
]


JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant whose log to use.")]


API_KEY_ENV = "EXOARMUR_API_KEY"


KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help=f"File holding your API key (else ${API_KEY_ENV})."),
]


ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (required, recorded).")]


#: the ``code`` of a JSON error, by exit code
ERROR_CODES = {
    EXIT_FAILURE: "failed",
    EXIT_BAD_INPUT: "bad_input",
    EXIT_DENIED: "denied",
}
# "field: rule", where the field is one token (an option, a dotted path, a file name)
_FIELD_MESSAGE = re.compile(r"^([^\s:]+): (.+)$", re.DOTALL)


def error_json(message: str, code: int, field: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "field"}}``: what ``--json`` prints on stderr."""
    if field is None:
        match = _FIELD_MESSAGE.match(message)
        field = match.group(1) if match else None
    return {"error": {"code": ERROR_CODES.get(code, "failed"), "message": message, "field": field}}


def fail(message: str, code: int, as_json: bool = False, field: str | None = None) -> NoReturn:
    """Report one error on stderr (a line, or JSON with ``--json``) and exit with ``code``."""
    if as_json:
        sys.stderr.write(json.dumps(error_json(message, code, field), sort_keys=True) + "\n")
    else:
        err_console.print(line(styled("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


def _field_of(exc: ExoArmurError) -> str | None:
    if isinstance(exc, IntentError) and exc.problems:
        return exc.problems[0][0]
    if isinstance(exc, JSONTextError):
        return exc.field
    return None


@contextmanager
def errors(as_json: bool = False) -> Iterator[None]:
    """Turn ExoArmur's errors into one line on stderr (JSON with ``--json``) and the exit code."""
    try:
        yield
    except (InputError, IntentIdTaken) as exc:
        fail(str(exc), EXIT_BAD_INPUT, as_json, _field_of(exc))
    except (AuthenticationError, PermissionDenied) as exc:
        fail(str(exc), EXIT_DENIED, as_json)
    except ExoArmurError as exc:
        fail(str(exc), EXIT_FAILURE, as_json)


@dataclass
class CliContext:
    """What the root callback puts in ``ctx.obj``: the data directory and store chosen.

    ``None`` means "not given": the environment, then the default, decide.
    A command's own ``--home``/``--store`` (given after its name) overrides these.
    """

    home: Path | None = None
    store: str | None = None

    def open_home(self) -> Home:
        store = self.store or os.environ.get(STORE_ENV) or None
        return Home(self.home or resolve_home(None), store)


def current_home(ctx: typer.Context) -> Home:
    """The data directory this invocation acts on (a bare context when a group runs alone)."""
    found = ctx.find_object(CliContext)
    return (found if found is not None else CliContext()).open_home()


def _choose_home(ctx: typer.Context, _param: Any, value: Path | str | None) -> None:
    if value:
        ctx.ensure_object(CliContext).home = Path(value)


def _choose_store(ctx: typer.Context, _param: Any, value: str | None) -> None:
    if value:
        ctx.ensure_object(CliContext).store = value


_JSON_ASKED = "exoarmur.json"
_PLACEMENT = {"--home": _choose_home, "--store": _choose_store}


def _placement_options(root_params: list[Any]) -> list[Any]:
    """``--home``/``--store`` after a command's name, as well as before it.

    Copies of the root's own options (so their help and types stay one), that
    override ``ctx.obj`` when given. No environment variable here: the root's
    options already read them, and one given after the command name is the
    more specific choice.
    """
    copies = []
    for param in root_params:
        names = getattr(param, "opts", ())
        chosen = next((_PLACEMENT[name] for name in names if name in _PLACEMENT), None)
        if chosen is None:
            continue
        twin = copy.copy(param)
        twin.envvar = None
        twin.show_envvar = False
        twin.expose_value = False
        twin.callback = chosen
        copies.append(twin)
    return copies


def _add_placement_options(command: Any, options: list[Any]) -> None:
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub in subcommands.values():
            _add_placement_options(sub, options)
        return
    names = {opt for param in command.params for opt in getattr(param, "opts", ())}
    command.params.extend(p for p in options if not names.intersection(p.opts))


class ShellGroup(TyperGroup):
    """The root group: every command under it also takes ``--home`` and ``--store``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = _placement_options(self.params)
        for command in self.commands.values():
            _add_placement_options(command, options)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[_JSON_ASKED] = "--json" in args
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        """With ``--json``, a usage error (unknown option, bad value) is JSON on stderr too."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # click's usage errors carry these; typer re-exports none of their classes
            exit_code = getattr(exc, "exit_code", None)
            if not (ctx.meta.get(_JSON_ASKED) and hasattr(exc, "format_message")):
                raise
            param = getattr(exc, "param", None)
            field = (getattr(param, "opts", None) or [None])[0] if param is not None else None
            field = field or getattr(exc, "option_name", None)
            code = exit_code if isinstance(exit_code, int) else EXIT_BAD_INPUT
            fail(exc.format_message(), code, as_json=True, field=field)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return outcome.model_dump(mode="json")


def print_outcome(outcome: Outcome) -> None:
    style = STATUS_STYLE[outcome.status]
    table = Table(show_header=False, box=None)
    table.add_row("intent", outcome.intent_id)
    table.add_row("tenant", outcome.tenant)
    table.add_row("verdict", outcome.decision.verdict.value)
    table.add_row("status", styled(outcome.status.value, style))
    table.add_row("reasons", ", ".join(outcome.decision.reasons) or "(no policy permitted it)")
    table.add_row("policy", outcome.decision.policy_hash)
    if outcome.decision.gate:
        gate = outcome.decision.gate
        table.add_row(
            "gate",
            line(
                styled(", ".join(gate["controls"]), "red"),
                f" ({gate['policy_verdict']} → {outcome.decision.verdict.value}): {gate['reason']}",
            ),
        )
    if outcome.executor:
        table.add_row("executor", outcome.executor)
    if outcome.result_hash:
        table.add_row("result hash", outcome.result_hash)
    if outcome.error:
        table.add_row("error", outcome.error)
    if outcome.duplicate:
        table.add_row("duplicate", "yes: this is the first outcome, nothing new was written")
    console.print(table)


def require_log(store: LedgerStore, tenant: str) -> None:
    """Refuse to verify a log that does not exist: a typo must never read as VERIFIED."""
    if tenant not in store.tenants():
        raise InputError(f"--tenant: no log for tenant {tenant!r} in this ledger")


@contextmanager
def progress_bar(total: int, label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal for long logs; nothing for machines."""
    if quiet or total < 2000 or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def api_key_of(key_file: Path | None) -> str:
    if key_file is not None:
        try:
            return key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"--key-file: cannot read {key_file}: {exc.strerror}") from None
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise AuthenticationError(
            f"no credentials: set {API_KEY_ENV} or pass --key-file "
            "(create a key with `exoarmur principal add`)"
        )
    return key


def acting_principal(governor: Governor, key_file: Path | None) -> Principal:
    """The principal of the given key, else the local administrator.

    Whoever can read the data directory holds its signing key and every
    power already; with a key, the action is recorded under that principal
    and checked against its role.
    """
    if key_file is None and not os.environ.get(API_KEY_ENV, "").strip():
        return LOCAL_ADMIN
    return governor.authenticate(api_key_of(key_file))


def readable_tenants(governor: Governor, reader: Principal) -> list[str]:
    return [t for t in governor.ledger.store.tenants() if t != SYSTEM_LOG and reader.acts_for(t)]


def redact_url(url: str) -> str:
    """A store URL fit to print: the password, if any, is not."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
