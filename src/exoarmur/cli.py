"""The ``exoarmur`` command.

Exit codes (stable, documented in the README):

    0  success; for ``submit``: allowed (executed, or decided for the caller)
    1  any other failure; nothing was acknowledged
    2  bad input (malformed intent, unknown field, bad option); nothing written
    3  ``submit``: denied (durably recorded)
    4  ``submit``: pending approval (durably recorded)
    5  ``submit``: allowed, but the executor failed or its outcome is unknown (recorded)
    6  ``serve``: stopped with executions still running after the grace
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from . import __version__
from .approvals import IntentState, Vote, intent_state
from .errors import (
    AuthenticationError,
    ExoArmurError,
    InputError,
    IntentIdTaken,
    NotFound,
    PermissionDenied,
)
from .gate import GateConfig
from .home import HOME_ENV, STORE_ENV, Home, open_governor, open_store, resolve_home
from .ledger.log import Ledger
from .model.decision import Outcome, OutcomeStatus
from .model.event import POLICY_ACTIVATED, SYSTEM_LOG
from .model.intent import MAX_INTENT_BYTES, parse_intent_json
from .pipeline import LOCAL_ADMIN, Governor
from .policy import PolicyBundle
from .principals import Principal
from .terminal import console as literal_console
from .terminal import json_text, line, styled

app = typer.Typer(
    name="exoarmur",
    help="Govern what agents and automations may do, and prove it later.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
prove_app = typer.Typer(
    help="Merkle proofs against the latest signed checkpoint.", no_args_is_help=True
)
key_app = typer.Typer(help="The checkpoint signing key.", no_args_is_help=True)
demo_app = typer.Typer(help="Runnable demonstrations.", no_args_is_help=True)
principal_app = typer.Typer(
    help="Principals (operators, agents, auditors, admins) and their API keys.",
    no_args_is_help=True,
)
killswitch_app = typer.Typer(
    help="Kill switches: stop every matching action at once.", no_args_is_help=True
)
posture_app = typer.Typer(
    help="A tenant's posture: normal, heightened, lockdown.", no_args_is_help=True
)
app.add_typer(prove_app, name="prove")
app.add_typer(principal_app, name="principal")
replay_app = typer.Typer(
    help="Re-derive decisions from the ledger alone; what-if under a candidate policy.",
    no_args_is_help=True,
)
app.add_typer(killswitch_app, name="killswitch")
app.add_typer(replay_app, name="replay")
app.add_typer(posture_app, name="posture")
app.add_typer(key_app, name="key")
app.add_typer(demo_app, name="demo")

# Every string printed is shown literally: agents write targets, reasons and errors.
console = literal_console()
err_console = literal_console(stderr=True)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_DENIED, EXIT_PENDING, EXIT_EXEC_FAILED = range(6)
EXIT_GRACE_EXPIRED = 6

_STATUS_EXIT = {
    OutcomeStatus.EXECUTED: EXIT_OK,
    OutcomeStatus.DECIDED: EXIT_OK,
    OutcomeStatus.DENIED: EXIT_DENIED,
    OutcomeStatus.PENDING_APPROVAL: EXIT_PENDING,
    OutcomeStatus.FAILED: EXIT_EXEC_FAILED,
    OutcomeStatus.OUTCOME_UNKNOWN: EXIT_EXEC_FAILED,
    OutcomeStatus.APPROVED: EXIT_OK,
    OutcomeStatus.REJECTED: EXIT_DENIED,
    OutcomeStatus.EXPIRED: EXIT_DENIED,
    OutcomeStatus.BLOCKED: EXIT_DENIED,
}
_STATUS_STYLE = {
    OutcomeStatus.EXECUTED: "bold green",
    OutcomeStatus.DECIDED: "green",
    OutcomeStatus.DENIED: "bold red",
    OutcomeStatus.PENDING_APPROVAL: "yellow",
    OutcomeStatus.FAILED: "bold magenta",
    OutcomeStatus.OUTCOME_UNKNOWN: "magenta",
    OutcomeStatus.APPROVED: "green",
    OutcomeStatus.REJECTED: "bold red",
    OutcomeStatus.EXPIRED: "red",
    OutcomeStatus.BLOCKED: "bold red",
}

_state: dict[str, Any] = {}

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=HOME_ENV,
        help="Data directory (default ./.exoarmur).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant whose log to use.")]


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(line(styled("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn ExoArmur's errors into one line on stderr and the right exit code."""
    try:
        yield
    except (InputError, IntentIdTaken) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except (AuthenticationError, PermissionDenied) as exc:
        _fail(str(exc), EXIT_DENIED)
    except ExoArmurError as exc:
        _fail(str(exc), EXIT_FAILURE)


def _home() -> Home:
    store = _state.get("store") or os.environ.get(STORE_ENV) or None
    return Home(_state.get("home") or resolve_home(None), store)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"exoarmur {__version__}")
        raise typer.Exit(0)


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        help="Ledger store URL: sqlite:///PATH (default: <home>/ledger.db) or postgresql://...",
        show_default=False,
    ),
]


@app.callback()
def _main(
    home: HomeOption = None,
    store: StoreOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    if home is not None:
        _state["home"] = home
    else:
        _state.pop("home", None)
    if store:
        _state["store"] = store
    else:
        _state.pop("store", None)


# -- init, key, health ------------------------------------------------------


@app.command()
def init() -> None:
    """Create the data directory, the signing key and a default policy."""
    with _errors():
        home = _home()
        created = home.init()
        for path in created:
            console.print(line(styled("created", "green"), f" {path}"))
        if not created:
            console.print(f"{home.path} is already initialised; nothing changed")
        console.print(f"public key: {home.signing_key().verifier_key()}")
        console.print(
            f"class floor (approvals whatever policy says): {_floor_text(home.gate())}",
            markup=False,
        )


def _floor_text(gate: GateConfig) -> str:
    return ", ".join(f"{c.value} {n}" for c, n in sorted(gate.class_floor.items())) or "none"


@key_app.command("public")
def key_public() -> None:
    """Print the verifier key (C2SP signed-note format) that checks checkpoints."""
    with _errors():
        home = _home()
        home.require()
        typer.echo(home.signing_key().verifier_key())


@app.command()
def health(as_json: JsonFlag = False) -> None:
    """Check the store, the key, the policy and the configuration."""
    checks: list[tuple[str, bool, str]] = []
    home = _home()

    def check(name: str, probe: Callable[[], str]) -> None:
        try:
            checks.append((name, True, probe()))
        except Exception as exc:  # every failure is reported, not raised
            checks.append((name, False, str(exc) or type(exc).__name__))

    def probe_store() -> str:
        if home.store_url is None and not home.ledger_path.exists():
            raise ExoArmurError(f"{home.ledger_path} does not exist; run `exoarmur init`")
        store = home.open_store()
        try:
            verdict = store.integrity_check()
            if verdict != "ok":
                raise ExoArmurError(f"store integrity check: {verdict}")
            tenants = store.tenants()
            unfinished = sum(len(store.unfinished_executions(t)) for t in tenants)
        finally:
            store.close()
        extra = f", {unfinished} unfinished execution(s)" if unfinished else ""
        where = home.store_url or str(home.ledger_path)
        return f"{_redact_url(where)} ok, {len(tenants)} tenant log(s){extra}"

    def probe_home() -> str:
        home.require()
        return str(home.path)

    check("home", probe_home)
    check("signing key", lambda: home.signing_key().verifier_key())
    check("policy", lambda: _policy_in_force(home))
    check("executors", lambda: json.dumps(home.executors().describe(), sort_keys=True))
    check("store", probe_store)
    check("gate", lambda: "class floor " + _floor_text(home.gate()))
    healthy = all(ok for _, ok, _ in checks)
    warnings: list[str] = []
    try:
        lowered = home.gate().lowered_floor()
    except ExoArmurError:
        lowered = []  # an unreadable config already fails the gate check above
    if lowered:
        warnings.append(
            "class floor lowered below the default (recorded in the configuration "
            "snapshot): " + "; ".join(lowered)
        )
    if as_json:
        _print_json(
            {
                "healthy": healthy,
                "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
                "warnings": warnings,
            }
        )
    else:
        table = Table(title=f"ExoArmur health — {home.path}")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for name, ok, detail in checks:
            table.add_row(name, styled("ok", "green") if ok else styled("FAIL", "bold red"), detail)
        for warning in warnings:
            table.add_row("gate", styled("WARNING", "yellow"), warning)
        console.print(table)
    raise typer.Exit(EXIT_OK if healthy else EXIT_FAILURE)


#: tenants with a bundle of their own that health names one by one
_TENANTS_SHOWN = 10


def _policy_in_force(home: Home) -> str:
    """The bundles the ledger has in force (global, and tenants' own), not the directory's.

    A ``policy/`` directory that differs from the global bundle in force is a
    warning: it decides nothing until it is activated.
    """
    store = home.open_store()
    try:
        activation = store.latest_of_type(SYSTEM_LOG, POLICY_ACTIVATED)
        own: dict[str, str] = {}
        for tenant in store.tenants():
            found = None if tenant == SYSTEM_LOG else store.latest_of_type(tenant, POLICY_ACTIVATED)
            if found is not None:
                own[tenant] = str(found.payload["policy_hash"])
    finally:
        store.close()
    if activation is None:
        raise ExoArmurError("no policy is in force; run `exoarmur policy activate DIR`")
    in_force = str(activation.payload["policy_hash"])
    parts = [f"bundle {in_force} in force"]
    shown = sorted(own.items())[:_TENANTS_SHOWN]
    parts += [f"tenant {tenant}: bundle {policy_hash}" for tenant, policy_hash in shown]
    if len(own) > _TENANTS_SHOWN:
        parts.append(f"and {len(own) - _TENANTS_SHOWN} more tenant(s) with their own bundle")
    try:
        directory = home.policy().policy_hash
    except ExoArmurError as exc:
        parts.append(f"warning: {home.policy_dir} does not load and is not in force: {exc}")
    else:
        if directory != in_force:
            parts.append(
                f"warning: {home.policy_dir} holds bundle {directory}, which is not in force "
                f"(`exoarmur policy activate {home.policy_dir}` would put it in force)"
            )
    return "; ".join(parts)


# -- submit and log ----------------------------------------------------------


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return outcome.model_dump(mode="json")


def _print_outcome(outcome: Outcome) -> None:
    style = _STATUS_STYLE[outcome.status]
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


@app.command()
def submit(
    file: Annotated[str, typer.Argument(help="Intent JSON file, or - for standard input.")],
    as_json: JsonFlag = False,
) -> None:
    """Govern one intent. Exit 0 allowed, 3 denied, 4 pending, 5 execution failed, 2 bad input."""
    with _errors():
        if file == "-":
            raw = sys.stdin.buffer.read(MAX_INTENT_BYTES + 1)
        else:
            try:
                with open(file, "rb") as handle:
                    raw = handle.read(MAX_INTENT_BYTES + 1)
            except OSError as exc:
                raise InputError(f"cannot read intent file {file}: {exc.strerror}") from None
        request = parse_intent_json(raw)
        with open_governor(_home()) as governor:
            outcome = governor.submit(request)
    if as_json:
        _print_json(_outcome_json(outcome))
    else:
        _print_outcome(outcome)
    raise typer.Exit(_STATUS_EXIT[outcome.status])


@app.command()
def log(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    correlation: Annotated[
        str | None, typer.Option("--correlation", "-c", help="Only this correlation id.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """List ledger events."""
    with _errors():
        if os.environ.get(API_KEY_ENV, "").strip():
            # With credentials, read as that principal: only its tenants, refusals recorded.
            with open_governor(_home()) as governor:
                reader = _acting_principal(governor, None)
                if tenant is not None:
                    governor.authorize_read(reader, tenant, "events")
                scoped = [tenant] if tenant else _readable_tenants(governor, reader)
        else:
            scoped = None
        ledger = _home().ledger()
        try:
            tenants = (
                scoped if scoped is not None else ([tenant] if tenant else ledger.store.tenants())
            )
            events = []
            for name in tenants:
                if correlation:
                    events.extend(ledger.store.events_for_correlation(name, correlation))
                else:
                    events.extend(ledger.store.events(name, 0, ledger.size(name)))
                if len(events) >= limit:
                    break
            events = events[:limit]
        finally:
            ledger.store.close()
    if as_json:
        _print_json([event.to_json() | {"leaf_hash": event.leaf_hash.hex()} for event in events])
        return
    table = Table(title=f"{len(events)} event(s)")
    for column in ("tenant", "seq", "type", "event_time", "actor", "intent", "summary"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            event.tenant,
            str(event.seq),
            event.type,
            event.event_time.strftime("%Y-%m-%d %H:%M:%S.%f"),
            event.actor.get("id", ""),
            event.intent_id or "",
            _summary(event.type, event.payload),
        )
    console.print(table)


def _summary(event_type: str, payload: dict[str, Any]) -> str | Text:
    if event_type == "intent.recorded":
        intent = payload["intent"]
        return f"{intent['action']} → {intent['target']} ({intent['safety_class']})"
    if event_type == "decision.recorded":
        decision = payload["decision"]
        style = "green" if decision["verdict"] == "allow" else "red"
        reasons = ", ".join(decision["reasons"]) or "default deny"
        return line(styled(decision["verdict"], style), f" ({reasons})")
    if event_type == "approval.requested":
        return f"quorum {payload['quorum']}, until {payload['deadline']}"
    if event_type in ("approval.granted", "approval.rejected"):
        return f"{payload['approver']}: {payload['reason']}"
    if event_type == "approval.refused":
        return line(styled("refused", "red"), f" {payload['approver']}: {payload['refused']}")
    if event_type == "intent.approved":
        return f"approved by {', '.join(payload['approvers'])}"
    if event_type == "intent.rejected":
        return f"rejected by {payload['rejected_by']}"
    if event_type == "intent.expired":
        return f"window closed {payload['deadline']}"
    if event_type == "gate.blocked":
        return line(
            styled("gate", "red"), f" {', '.join(payload['controls'])}: {payload['reason']}"
        )
    if event_type == "execution.blocked":
        return line(styled("blocked", "bold red"), f" by {payload['control']}: {payload['reason']}")
    if event_type in ("killswitch.engaged", "killswitch.released"):
        return f"{payload['scope']}: {payload['reason']}"
    if event_type == "posture.set":
        return f"{payload['posture']}: {payload['reason']}"
    if event_type == "execution.started":
        return f"via {payload['executor']}"
    if event_type == "execution.finished":
        return str(payload["status"]) + (f": {payload['error']}" if payload.get("error") else "")
    return str(payload.get("reason", ""))


# -- checkpoints and proofs --------------------------------------------------


@app.command()
def checkpoint(
    tenant: TenantOption,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="Witness URL.")] = None,
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="A witness's verifier key.")
    ] = None,
    quorum: Annotated[int | None, typer.Option("--quorum", help="Cosignatures needed.")] = None,
    evidence: Annotated[Path | None, typer.Option("--evidence", help="Refusals, JSON.")] = None,
) -> None:
    """Sign and print a fresh checkpoint (the C2SP signed note), cosigned with --witness."""
    with _errors():
        cosign = None
        if witness or witness_key or quorum is not None or evidence is not None:
            from .cli_witness import Witnessing

            cosign = Witnessing.of(witness or [], witness_key or [], quorum, evidence)
        ledger = _home().ledger()
        try:
            note = ledger.checkpoint(tenant).note if cosign is None else cosign(ledger, tenant)
        finally:
            ledger.store.close()
    sys.stdout.write(note)


@prove_app.command("inclusion")
def prove_inclusion(
    tenant: TenantOption,
    event_id: Annotated[str, typer.Option("--event-id", help="The event to prove.")],
    as_json: JsonFlag = False,
) -> None:
    """Prove an event is in the log, against the latest checkpoint."""
    with _errors():
        ledger = _home().ledger()
        try:
            event = ledger.event(tenant, event_id)
            signed = ledger.current_checkpoint(tenant)
            proof = ledger.inclusion(tenant, event.seq, signed.checkpoint.size)
            verified = proof.verify(signed.checkpoint.root_hash)
        finally:
            ledger.store.close()
    body = proof.to_json() | {"root_hash": signed.checkpoint.root_hash.hex()}
    if as_json:
        _print_json(body)
    else:
        console.print(f"event {event_id} is leaf {proof.leaf_index} of {proof.tree_size}")
        console.print(f"leaf hash {proof.leaf_hash.hex()}")
        for index, digest in enumerate(proof.hashes):
            console.print(f"  [{index}] {digest.hex()}")
        console.print(f"root {signed.checkpoint.root_hash.hex()} — verified: {verified}")
    if not verified:
        raise typer.Exit(EXIT_FAILURE)


@prove_app.command("consistency")
def prove_consistency(
    tenant: TenantOption,
    old_size: Annotated[int, typer.Option("--from", min=0, help="Older tree size.")],
    new_size: Annotated[int, typer.Option("--to", min=0, help="Newer tree size.")],
    as_json: JsonFlag = False,
) -> None:
    """Prove the log of size --to extends the log of size --from."""
    with _errors():
        if old_size > new_size:
            raise InputError(f"--from ({old_size}) must not exceed --to ({new_size})")
        ledger = _home().ledger()
        try:
            proof = ledger.consistency(tenant, old_size, new_size)
            old_root = ledger.root(tenant, old_size)
            new_root = ledger.root(tenant, new_size)
        finally:
            ledger.store.close()
    body = proof.to_json() | {"old_root": old_root.hex(), "new_root": new_root.hex()}
    if as_json:
        _print_json(body)
    else:
        console.print(f"consistency {old_size} → {new_size}")
        for index, digest in enumerate(proof.hashes):
            console.print(f"  [{index}] {digest.hex()}")
        console.print(f"verified: {proof.verify(old_root, new_root)}")


@app.command()
def verify(tenant: TenantOption, as_json: JsonFlag = False) -> None:
    """Re-derive a tenant's log from its stored bytes; check tree and checkpoint."""
    with _errors():
        ledger = _home().ledger()
        try:
            result = ledger.verify(tenant)
        finally:
            ledger.store.close()
    if as_json:
        _print_json(
            {
                "tenant": tenant,
                "ok": result.ok,
                "tree_size": result.size,
                "root_hash": result.root_hash.hex(),
                "checkpoint_size": result.checkpoint_size,
                "problems": list(result.problems),
            }
        )
    else:
        verdict = styled("VERIFIED", "bold green") if result.ok else styled("FAILED", "bold red")
        console.print(
            line(verdict, f" tenant {tenant}: {result.size} events, root {result.root_hash.hex()}")
        )
        for problem in result.problems:
            console.print(line("  ", styled("•", "red"), f" {problem}"))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILURE)


# -- policy activation, principals, approvals --------------------------------

API_KEY_ENV = "EXOARMUR_API_KEY"
KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help=f"File holding your API key (else ${API_KEY_ENV})."),
]


def activate_policy(
    directory: Annotated[Path, typer.Argument(help="Directory of .cedar files.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only for this tenant (else global).")
    ] = None,
) -> None:
    """Record a policy bundle (full text, schema, hash) in the ledger as the one in force."""
    with _errors():
        from .model.intent import TENANT_PATTERN

        if tenant is not None and not re.match(TENANT_PATTERN, tenant):
            raise InputError(f"tenant: {tenant!r} does not match {TENANT_PATTERN}")
        bundle = PolicyBundle.from_dir(directory)
        with open_governor(_home()) as governor:
            event = governor.activate_policy(bundle, tenant=tenant, actor="local-admin")
    scope = f"tenant {tenant}" if tenant else "every tenant without its own"
    console.print(
        line(
            styled("activated", "green"),
            f" bundle {event.payload['policy_hash']} for {scope} "
            f"({len(bundle.files)} file(s)); event {event.event_id}",
        )
    )


def _api_key(key_file: Path | None) -> str:
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


@principal_app.command("add")
def principal_add(
    name: Annotated[str, typer.Argument(help="The principal's name (its identity).")],
    role: Annotated[str, typer.Option("--role", help="agent, operator, auditor or admin.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="A tenant it acts for (repeat).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a principal and print its API key once (it is stored hashed)."""
    with _errors(), open_governor(_home()) as governor:
        principal, api_key = governor.add_principal(name, role, tenant or [])
    if as_json:
        _print_json(
            {
                "name": principal.name,
                "role": principal.role,
                "tenants": list(principal.tenants),
                "key_id": principal.key_id,
                "api_key": api_key,
            }
        )
        return
    # Only the key goes to stdout, so `exoarmur principal add … > alice.key` works.
    err_console.print(
        line(
            styled("created", "green"),
            f" {principal.role} ",
            styled(principal.name, "bold"),
            f" for {', '.join(principal.tenants)}; API key (shown once; store it now):",
        )
    )
    typer.echo(api_key)


@principal_app.command("list")
def principal_list(as_json: JsonFlag = False) -> None:
    """List principals (never their keys)."""
    with _errors(), open_governor(_home()) as governor:
        everyone = governor.principals().all()
    if as_json:
        _print_json(
            [
                {
                    "name": p.name,
                    "role": p.role,
                    "tenants": list(p.tenants),
                    "key_id": p.key_id,
                    "active": active,
                }
                for p, active in everyone
            ]
        )
        return
    table = Table(title=f"{len(everyone)} principal(s)")
    for column in ("name", "role", "tenants", "key id", "state"):
        table.add_column(column)
    for p, active in everyone:
        state = styled("active", "green") if active else styled("revoked", "red")
        table.add_row(p.name, p.role, ", ".join(p.tenants), p.key_id, state)
    console.print(table)


@principal_app.command("revoke")
def principal_revoke(name: Annotated[str, typer.Argument(help="The principal to revoke.")]) -> None:
    """Revoke a principal: its key stops working at once."""
    with _errors(), open_governor(_home()) as governor:
        governor.revoke_principal(name)
    console.print(line(styled("revoked", "red"), f" {name}"))


@app.command()
def pending(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Intents waiting for approval (overdue ones are recorded as expired first)."""
    with _errors(), open_governor(_home()) as governor:
        reader = _acting_principal(governor, None)
        tenants = [tenant] if tenant else _readable_tenants(governor, reader)
        for name in tenants:
            governor.authorize_read(reader, name, "pending approvals")
        waiting = [state for name in tenants for state in governor.pending(name)]
    if as_json:
        _print_json([_state_json(s) for s in waiting])
        return
    table = Table(title=f"{len(waiting)} intent(s) pending approval")
    for column in (
        "tenant",
        "intent",
        "actor",
        "action",
        "target",
        "class",
        "quorum",
        "approvals",
        "expires",
    ):
        table.add_column(column, overflow="fold")
    for s in waiting:
        table.add_row(
            s.intent.tenant,
            s.intent.intent_id,
            s.intent.actor.id,
            s.intent.action,
            s.intent.target,
            s.intent.safety_class.value,
            str(s.quorum),
            f"{len(s.approvers)}: {', '.join(s.approvers)}" if s.approvers else "0",
            s.deadline.strftime("%Y-%m-%d %H:%M:%S UTC") if s.deadline else "",
        )
    console.print(table)


def _readable_tenants(governor: Governor, reader: Principal) -> list[str]:
    return [t for t in governor.ledger.store.tenants() if t != SYSTEM_LOG and reader.acts_for(t)]


def _state_json(state: IntentState) -> dict[str, Any]:
    return {
        "tenant": state.intent.tenant,
        "intent_id": state.intent.intent_id,
        "intent_hash": state.intent_hash,
        "intent": state.intent.to_canonical(),
        "status": state.status.value,
        "quorum": state.quorum,
        "approvers": list(state.approvers),
        "deadline": state.deadline.isoformat() if state.deadline else None,
        "decision": state.decision.to_canonical(),
    }


def _vote(
    vote: Vote,
    intent_id: str,
    reason: str,
    tenant: str | None,
    intent_hash: str | None,
    key_file: Path | None,
    as_json: bool,
) -> None:
    with _errors():
        api_key = _api_key(key_file)
        with open_governor(_home()) as governor:
            principal = governor.authenticate(api_key)
            if tenant is None:
                own = [t for t in principal.tenants if t != "*"]
                if len(own) != 1:
                    raise InputError("--tenant: required (you act for more than one tenant)")
                tenant = own[0]
            result = governor.vote(tenant, intent_id, principal, vote, reason, intent_hash)
    if as_json:
        _print_json(
            {
                "accepted": result.accepted,
                "message": result.message,
                "approval_status": result.status.value,
                "outcome": _outcome_json(result.outcome),
            }
        )
    else:
        style = "green" if result.accepted else "bold red"
        console.print(
            line(styled("recorded" if result.accepted else "refused", style), f": {result.message}")
        )
        _print_outcome(result.outcome)
    if not result.accepted:
        raise typer.Exit(EXIT_DENIED if result.forbidden else EXIT_FAILURE)


ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (required, recorded).")]
HashOption = Annotated[
    str | None,
    typer.Option("--intent-hash", help="Bind the vote to this intent hash (as shown by `show`)."),
]
VoteTenantOption = Annotated[
    str | None, typer.Option("--tenant", "-t", help="The intent's tenant (default: your only one).")
]


@app.command()
def approve(
    intent_id: Annotated[str, typer.Argument(help="The pending intent.")],
    reason: ReasonOption,
    tenant: VoteTenantOption = None,
    intent_hash: HashOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a pending intent as the principal whose API key you hold."""
    _vote(Vote.APPROVE, intent_id, reason, tenant, intent_hash, key_file, as_json)


@app.command()
def reject(
    intent_id: Annotated[str, typer.Argument(help="The pending intent.")],
    reason: ReasonOption,
    tenant: VoteTenantOption = None,
    intent_hash: HashOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Reject a pending intent: one rejection rejects, and it never runs."""
    _vote(Vote.REJECT, intent_id, reason, tenant, intent_hash, key_file, as_json)


@app.command()
def show(
    intent_id: Annotated[str, typer.Argument(help="The intent.")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Its tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The whole story of one intent: decision, reasons, obligations, approvals, execution."""
    with _errors(), open_governor(_home()) as governor:
        reader = _acting_principal(governor, None)
        if tenant is not None:
            governor.authorize_read(reader, tenant, f"intent {intent_id}")
        tenants = [tenant] if tenant else _readable_tenants(governor, reader)
        for name in tenants:
            if governor.ledger.store.events_for_intent(name, intent_id):
                tenant = name
                break
        else:
            raise NotFound(
                f"no intent {intent_id!r}" + (f" in tenant {tenant!r}" if tenant else "")
            )
        story = governor.story(tenant, intent_id)
        outcome = governor.outcome(tenant, intent_id)
        state = intent_state(story)
    if as_json:
        _print_json(
            {
                "outcome": _outcome_json(outcome),
                "state": _state_json(state),
                "events": [e.to_json() for e in story],
            }
        )
        return
    intent = state.intent
    console.print(
        line(
            styled(intent.action, "bold"),
            f" → {intent.target} ({intent.safety_class.value}) "
            f"by {intent.actor.kind} {intent.actor.id} in tenant {intent.tenant}",
        )
    )
    console.print(f"intent {intent.intent_id}  hash {state.intent_hash}")
    # What the approver votes on includes params: show them whole, as recorded.
    console.print(line("params ", json_text(intent.params)))
    _print_outcome(outcome)
    if state.decision.obligations:
        console.print(
            "obligations: " + ", ".join(f"{k}={v}" for k, v in state.decision.obligations.items())
        )
    table = Table(title="story")
    for column in ("seq", "time", "event", "by", "detail"):
        table.add_column(column, overflow="fold")
    for event in story:
        table.add_row(
            str(event.seq),
            event.process_time.strftime("%Y-%m-%d %H:%M:%S.%f"),
            event.type,
            event.actor.get("id", ""),
            _summary(event.type, event.payload),
        )
    console.print(table)


# -- the gate's controls ---------------------------------------------------------


def _acting_principal(governor: Governor, key_file: Path | None) -> Principal:
    """The principal of the given key, else the local administrator.

    Whoever can read the data directory holds its signing key and every
    power already; with a key, the action is recorded under that principal
    and checked against its role.
    """
    if key_file is None and not os.environ.get(API_KEY_ENV, "").strip():
        return LOCAL_ADMIN
    return governor.authenticate(_api_key(key_file))


ScopeOption = Annotated[
    str,
    typer.Option("--scope", help="global, tenant:T, action:PATTERN or tenant:T/action:PATTERN."),
]


@killswitch_app.command("engage")
def killswitch_engage(
    scope: ScopeOption, reason: ReasonOption, key_file: KeyFileOption = None
) -> None:
    """Engage a kill switch: matching actions are denied, approved ones do not run."""
    with _errors(), open_governor(_home()) as governor:
        principal = _acting_principal(governor, key_file)
        event = governor.engage_killswitch(scope, reason, principal)
    console.print(
        line(
            styled("ENGAGED", "bold red"),
            f" {event.payload['scope']} by {event.actor['id']}: "
            f"{event.payload['reason']} (event {event.event_id})",
        )
    )


@killswitch_app.command("release")
def killswitch_release(
    scope: ScopeOption, reason: ReasonOption, key_file: KeyFileOption = None
) -> None:
    """Release a kill switch."""
    with _errors(), open_governor(_home()) as governor:
        principal = _acting_principal(governor, key_file)
        event = governor.release_killswitch(scope, reason, principal)
    console.print(
        line(
            styled("released", "green"),
            f" {event.payload['scope']} by {event.actor['id']} (event {event.event_id})",
        )
    )


@killswitch_app.command("status")
def killswitch_status(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only what affects it.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Engaged kill switches. Unreadable state is an error, never 'none engaged'."""
    with _errors(), open_governor(_home()) as governor:
        switches = governor.killswitches(tenant)
    if as_json:
        _print_json(switches)
        return
    if not switches:
        console.print(styled("no kill switch engaged", "green"))
        return
    table = Table(title=f"{len(switches)} kill switch(es) engaged")
    for column in ("scope", "engaged by", "at", "reason"):
        table.add_column(column, overflow="fold")
    for switch in switches:
        table.add_row(
            styled(switch["scope"], "bold red"),
            switch["engaged_by"],
            switch["engaged_at"],
            switch["reason"],
        )
    console.print(table)


@posture_app.command("set")
def posture_set(
    tenant: Annotated[str, typer.Argument(help="The tenant.")],
    posture: Annotated[str, typer.Argument(help="normal, heightened or lockdown.")],
    reason: ReasonOption,
    ttl: Annotated[
        int | None, typer.Option("--ttl", help="Seconds until it returns to normal by itself.")
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Set a tenant's posture (recorded; visible to policy as context.posture)."""
    with _errors(), open_governor(_home()) as governor:
        principal = _acting_principal(governor, key_file)
        event = governor.set_posture(tenant, posture, reason, principal, ttl)
    until = event.payload["until"]
    console.print(
        line(
            f"tenant {tenant}: posture ",
            styled(posture, "bold"),
            (f" until {until}" if until else "") + f" (event {event.event_id})",
        )
    )


@posture_app.command("show")
def posture_show(
    tenant: Annotated[str, typer.Argument(help="The tenant.")], as_json: JsonFlag = False
) -> None:
    """A tenant's posture now."""
    with _errors(), open_governor(_home()) as governor:
        state = governor.posture(tenant)
    if as_json:
        _print_json(state)
    else:
        console.print(
            line(
                f"tenant {tenant}: posture ",
                styled(state["posture"], "bold"),
                f" until {state['until']}" if state["until"] else "",
            )
        )


# -- replay and what-if ------------------------------------------------------------


@contextmanager
def _progress(total: int, label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
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


@replay_app.command("verify")
def replay_verify(
    tenant: TenantOption,
    correlation: Annotated[
        str | None,
        typer.Option("--correlation", "--audit-stream-id", "-c", help="Only this correlation."),
    ] = None,
    start: Annotated[int, typer.Option("--from", min=0, help="Check events from this seq.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Re-decide every recorded intent from the ledger alone and compare every field."""
    from .replay import replay

    with _errors():
        ledger = _home().ledger()
        try:
            size = ledger.size(tenant)
            with _progress(size, f"replaying {tenant}", as_json) as progress:
                report = replay(
                    ledger.store,
                    tenant,
                    verifier=ledger.verifier,
                    correlation=correlation,
                    start=start,
                    progress=progress,
                )
        finally:
            ledger.store.close()
    if as_json:
        _print_json(report.to_json())
    else:
        verdict = (
            styled("VERIFIED", "bold green") if report.verified else styled("DIVERGED", "bold red")
        )
        console.print(
            line(
                verdict,
                f" tenant {tenant}: {report.events} events, {report.intents} intents, "
                f"{report.decisions} decisions, {report.votes} votes, "
                f"{report.executions} executions",
            )
        )
        if report.first is not None:
            first = report.first
            table = Table(title="first divergence", show_header=False)
            table.add_row("event", f"seq {first.seq} {first.event_type} ({first.event_id})")
            table.add_row("intent", first.intent_id or "")
            table.add_row("field", first.field)
            table.add_row("recorded", json.dumps(first.recorded, sort_keys=True))
            table.add_row("replayed", json.dumps(first.replayed, sort_keys=True))
            table.add_row("why", first.reason)
            console.print(table)
        typer.echo(f"REPLAY_VERIFIED={str(report.verified).lower()}")
        typer.echo(f"EVENTS={report.events}")
        typer.echo(f"DECISIONS={report.decisions}")
        typer.echo(f"DIVERGENCES={len(report.divergences)}")
        typer.echo(f"ROOT_HASH={report.root_hash}")
        typer.echo(f"CHECKPOINT_VERIFIED={str(report.checkpoint_verified).lower()}")
    raise typer.Exit(EXIT_OK if report.verified else EXIT_FAILURE)


@replay_app.command("whatif")
def replay_whatif(
    tenant: TenantOption,
    policy: Annotated[Path, typer.Option("--policy", help="Candidate policy directory.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only intents from this time (ISO 8601).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Which recorded decisions a candidate policy would change. Writes nothing."""
    from .encoding import parse_time
    from .policy import PolicyEngine
    from .replay import whatif

    with _errors():
        moment = parse_time(since) if since else None
        candidate = PolicyEngine(PolicyBundle.from_dir(policy))
        ledger = _home().ledger()
        try:
            with _progress(ledger.size(tenant), "what-if", as_json) as progress:
                report = whatif(ledger.store, tenant, candidate, since=moment, progress=progress)
        finally:
            ledger.store.close()
    if as_json:
        _print_json(report.to_json())
        return
    console.print(
        f"candidate {report.candidate_hash}: {len(report.changes)} of {report.intents} "
        "recorded decisions would change"
    )
    if report.changes:
        table = Table(title="changed decisions")
        for column in ("intent", "actor", "action", "target", "class", "was", "would be"):
            table.add_column(column, overflow="fold")
        for change in report.changes:
            table.add_row(
                change.intent_id,
                change.actor,
                change.action,
                change.target,
                change.safety_class,
                f"{change.old_verdict} ({', '.join(change.old_reasons) or 'default deny'})",
                line(
                    styled(change.new_verdict, "bold"),
                    f" ({', '.join(change.new_reasons) or 'default deny'})",
                ),
            )
        console.print(table)
        summary = Table(title="summary")
        summary.add_column("change")
        summary.add_column("intents", justify="right")
        for transition, count in report.summary.items():
            summary.add_row(transition, str(count))
        console.print(summary)


# -- evidence bundles --------------------------------------------------------------

evidence_app = typer.Typer(
    help="Evidence bundles a cold reviewer verifies offline.", no_args_is_help=True
)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("export")
def evidence_export(
    tenant: TenantOption,
    correlation: Annotated[str, typer.Option("--correlation", "-c", help="The correlation id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the bundle.")],
) -> None:
    """Write one self-contained JSON bundle for a correlation."""
    from .evidence import export_bundle

    with _errors():
        ledger = _home().ledger()
        try:
            bundle = export_bundle(ledger, tenant, correlation)
        finally:
            ledger.store.close()
        try:
            out.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--out: cannot write {out}: {exc.strerror}") from None
    console.print(
        f"wrote {out}: {len(bundle['events'])} event(s), {len(bundle['context'])} context "
        f"event(s), bundle {bundle['bundle_hash']}"
    )


@app.command("verify-bundle")
def verify_bundle_command(
    file: Annotated[Path, typer.Argument(help="The evidence bundle.")],
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="The verifier key you trust (text, or @FILE)."),
    ] = None,
    as_json: JsonFlag = False,
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="A trusted witness's key.")
    ] = None,
    witness_quorum: Annotated[
        int | None, typer.Option("--witness-quorum", help="Cosignatures each checkpoint needs.")
    ] = None,
) -> None:
    """Verify an evidence bundle offline. Prints VERIFY_VERDICT=PASS|FAIL."""
    from .evidence import verify_bundle_text

    with _errors():
        try:
            text = file.read_bytes()
            if public_key is not None and public_key.startswith("@"):
                public_key = Path(public_key[1:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
        verdict = verify_bundle_text(text, public_key)
        if witness_key or witness_quorum is not None:
            from .cli_witness import require_witnesses

            require_witnesses(verdict, text, witness_key or [], witness_quorum)
    if as_json:
        _print_json(verdict.to_json())
    else:
        for failure in verdict.failures:
            console.print(line(styled("FAIL", "bold red"), f" {failure}"))
        for note in verdict.notes:
            console.print(line(styled("note", "yellow"), f" {note}"))
        console.print(f"{verdict.events} event(s) and {verdict.decisions} decision(s) checked")
        typer.echo(f"VERIFY_VERDICT={'PASS' if verdict.passed else 'FAIL'}")
    raise typer.Exit(EXIT_OK if verdict.passed else EXIT_FAILURE)


# -- the HTTP service ----------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8077,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            min=0,
            help="Seconds running executions get to finish once stopped "
            "(default: [server] grace_seconds in config.toml, else 30).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the authenticated HTTP API (FastAPI + uvicorn) on this data directory.

    On SIGTERM or SIGINT: new submissions are refused (503), running executions
    finish and are recorded, then it exits 0. If they outlast the grace, it says
    so on stderr and exits 6 at once (their outcome is recorded as unknown at the
    next start).
    """
    with _errors():
        try:
            from .server import serve as run_server
            from .server.run import GraceExpired
        except ImportError:
            _fail("the HTTP service needs its extra: pip install 'exoarmur[server]'", EXIT_FAILURE)
        home = _home()
        home.require()
        try:
            run_server(home, host=host, port=port, grace_seconds=grace)
        except GraceExpired as exc:
            # Loud, then gone: waiting on would let the executions outlive the
            # operator's deadline, and closing the ledger under them would cut them.
            sys.stderr.write(f"\nEXOARMUR STOPPED WITH EXECUTIONS RUNNING: {exc}\n")
            sys.stderr.flush()
            os._exit(EXIT_GRACE_EXPIRED)


# -- stores: schema upgrades and copies ----------------------------------------------

db_app = typer.Typer(help="The ledger database's schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="Move ledgers between stores.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")


def _redact_url(url: str) -> str:
    """A store URL fit to print: the password, if any, is not."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the PostgreSQL schema named by --store (or EXOARMUR_STORE)."""
    with _errors():
        url = _home().store_url
        if not url or url.split("://", 1)[0] not in ("postgresql", "postgres"):
            raise InputError("--store: give the postgresql://… URL of the database to upgrade")
        from .ledger.postgres import upgrade

        applied = upgrade(url)
    if applied:
        for name in applied:
            console.print(line(styled("applied", "green"), f" {name}"))
    else:
        console.print("schema up to date")


@ledger_app.command("copy")
def ledger_copy(
    source: Annotated[str, typer.Option("--from", help="Source store URL.")],
    destination: Annotated[str, typer.Option("--to", help="Destination store URL.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="Only these logs (repeat).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy logs with their bytes, proofs and checkpoints; verify them on the destination."""
    from .ledger.transfer import copy_log

    with _errors():
        home = _home()
        key = home.signing_key()
        src = open_store(source, home.ledger_path)
        try:
            dst = open_store(destination, home.ledger_path)
            try:
                logs = tenant or src.tenants()
                copied: dict[str, int] = {}
                for log in logs:
                    with _progress(src.size(log), f"copying {log}", as_json) as progress:
                        copied[log] = copy_log(src, dst, log, progress)
                checks = {log: Ledger(dst, key).verify(log) for log in logs}
            finally:
                dst.close()
        finally:
            src.close()
    ok = all(check.ok for check in checks.values())
    if as_json:
        _print_json(
            {
                "copied": copied,
                "verified": {log: check.ok for log, check in checks.items()},
                "problems": {log: list(check.problems) for log, check in checks.items()},
            }
        )
    else:
        for log, count in copied.items():
            check = checks[log]
            state = styled("verified", "green") if check.ok else styled("FAILED", "bold red")
            console.print(
                line(
                    f"{log}: {count} events copied, root {check.root_hash.hex()[:16]}…, "
                    f"checkpoint at {check.checkpoint_size} ",
                    state,
                )
            )
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILURE)


# -- demo ---------------------------------------------------------------------


@demo_app.command("quickstart")
def demo_quickstart(
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Deterministic run with this seed.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Govern a handful of intents end to end and verify the result."""
    from .demo import run_quickstart

    if deterministic and seed is None:
        seed = 0
    with _errors():
        home = _home()
        if not home.exists():
            home.init()
        with open_governor(home, seed=seed) as governor:
            report = run_quickstart(governor)
    markers = report.markers()
    if seed is not None:
        markers["DETERMINISTIC_SEED"] = str(seed)
    if as_json:
        _print_json(
            {
                "markers": markers,
                "outcomes": [_outcome_json(o) for o in report.outcomes],
                "checkpoint": report.checkpoint_note,
            }
        )
    else:
        table = Table(title="ExoArmur quickstart — tenant demo")
        for column in ("action", "target", "class", "verdict", "status", "reasons"):
            table.add_column(column, overflow="fold")
        for outcome, step in zip(report.outcomes, _scenario(), strict=True):
            style = _STATUS_STYLE[outcome.status]
            table.add_row(
                step["action"],
                step["target"],
                step["safety_class"],
                outcome.decision.verdict.value,
                styled(outcome.status.value, style),
                ", ".join(outcome.decision.reasons) or "default deny",
            )
        console.print(table)
        console.print("signed checkpoint:")
        sys.stdout.flush()
        sys.stdout.write(report.checkpoint_note)
        for name, value in markers.items():
            typer.echo(f"{name}={value}")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILURE)


def _scenario() -> tuple[dict[str, Any], ...]:
    from .demo import SCENARIO

    return SCENARIO


def _register_reality() -> None:
    from .bench import benchmark
    from .reality import reality

    app.command("reality")(reality)
    app.command("benchmark")(benchmark)


_register_reality()


def _register_policy_commands() -> None:
    # Imported here: policy.commands imports this module's helpers inside its commands.
    from .policy.commands import policy_app

    policy_app.command("activate")(activate_policy)
    app.add_typer(policy_app, name="policy")


_register_policy_commands()


def _register_witness_commands() -> None:
    from .cli_witness import tiles_app, witness_app

    app.add_typer(witness_app, name="witness")
    app.add_typer(tiles_app, name="tiles")


_register_witness_commands()


def _register_containment_commands() -> None:
    from .cli_containment import register

    register(app, demo_app)


_register_containment_commands()


def main() -> None:
    app()
