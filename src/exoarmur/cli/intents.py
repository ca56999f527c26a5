"""Intents: ``submit``, ``show``, ``log``, ``pending``, ``approve``, ``reject``."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..approvals import IntentState, Vote, intent_state
from ..errors import (
    InputError,
    NotFound,
)
from ..home import open_governor
from ..ledger.log import Ledger
from ..model.event import Event
from ..model.intent import MAX_INTENT_BYTES, parse_intent_json
from ..terminal import json_text, line, styled
from ._common import (
    API_KEY_ENV,
    EXIT_DENIED,
    EXIT_FAILURE,
    STATUS_EXIT,
    JsonFlag,
    KeyFileOption,
    ReasonOption,
    acting_principal,
    api_key_of,
    console,
    current_home,
    err_console,
    errors,
    outcome_json,
    print_json,
    print_outcome,
    readable_tenants,
)
from ._streams import stream_tenants


def submit(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Intent JSON file, or - for standard input.")],
    as_json: JsonFlag = False,
) -> None:
    """Govern one intent. Exit 0 allowed, 3 denied, 4 pending, 5 execution failed, 2 bad input."""
    with errors(as_json):
        if file == "-":
            raw = sys.stdin.buffer.read(MAX_INTENT_BYTES + 1)
        else:
            try:
                with open(file, "rb") as handle:
                    raw = handle.read(MAX_INTENT_BYTES + 1)
            except OSError as exc:
                raise InputError(f"cannot read intent file {file}: {exc.strerror}") from None
        request = parse_intent_json(raw)
        with open_governor(current_home(ctx)) as governor:
            outcome = governor.submit(request)
    if as_json:
        print_json(outcome_json(outcome))
    else:
        print_outcome(outcome)
    raise typer.Exit(STATUS_EXIT[outcome.status])


#: events read from the store at a time while listing
_LOG_CHUNK = 500


def log(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    correlation: Annotated[
        str | None,
        typer.Option(
            "--correlation", "--audit-stream-id", "-c", help="Only this correlation (audit stream)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events.")] = 1000,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor",
            help="Start where an earlier page stopped (its `next`, or what stderr named).",
            show_default=False,
        ),
    ] = None,
    everything: Annotated[
        bool,
        typer.Option("--all", help="Every event, no limit (with --json: one JSON object a line)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List ledger events, a page at a time (stderr says when more follow)."""
    with errors(as_json):
        start = _parse_cursor(cursor)
        if os.environ.get(API_KEY_ENV, "").strip():
            # With credentials, read as that principal: only its tenants, refusals recorded.
            with open_governor(current_home(ctx)) as governor:
                reader = acting_principal(governor, None)
                if tenant is not None:
                    governor.authorize_read(reader, tenant, "events")
                scoped = [tenant] if tenant else readable_tenants(governor, reader)
        else:
            scoped = None
        ledger = current_home(ctx).ledger()
        try:
            tenants = (
                scoped if scoped is not None else ([tenant] if tenant else ledger.store.tenants())
            )
            if start is not None and start[0] not in tenants:
                raise InputError(f"--cursor: no log for tenant {start[0]!r} among those listed")
            if correlation and not stream_tenants(ledger.store, correlation, tenants):
                # an unknown stream is a mistake to name, never an empty listing
                raise InputError(
                    f"--audit-stream-id: no events of correlation {correlation!r} in "
                    + (f"tenant {tenant!r}" if tenant else "any tenant listed")
                )
            walk = _walk(ledger, tenants, correlation, start)
            if everything and as_json:
                for event in walk:
                    sys.stdout.write(json.dumps(_event_json(event), sort_keys=True) + "\n")
                return
            events = list(walk) if everything else list(itertools.islice(walk, limit + 1))
        finally:
            ledger.store.close()
    following = events[limit] if not everything and len(events) > limit else None
    events = events if everything else events[:limit]
    next_cursor = f"{following.tenant}:{following.seq}" if following is not None else None
    if as_json:
        print_json({"events": [_event_json(event) for event in events], "next": next_cursor})
    else:
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
    if next_cursor is not None:
        # Never cut silently: a reader of the table or a script learns there is more.
        err_console.print(
            f"showing the first {limit} event(s); more follow: --cursor {next_cursor} "
            "for the next page, or --all",
            markup=False,
            soft_wrap=True,
        )


def _event_json(event: Event) -> dict[str, Any]:
    return event.to_json() | {"leaf_hash": event.leaf_hash.hex()}


def _parse_cursor(cursor: str | None) -> tuple[str, int] | None:
    """``TENANT:SEQ``, the first event a page starts with."""
    if cursor is None:
        return None
    tenant, _, seq = cursor.rpartition(":")
    if not tenant or not seq.isdigit() or not seq.isascii():
        raise InputError(f"--cursor: {cursor!r} is not a cursor (TENANT:SEQ, as `next` gives)")
    return tenant, int(seq)


def _walk(
    ledger: Ledger, tenants: Sequence[str], correlation: str | None, start: tuple[str, int] | None
) -> Iterator[Event]:
    """Events of ``tenants`` in order (tenant, then seq), from ``start`` on."""
    for name in tenants:
        first = 0
        if start is not None:
            if name != start[0]:
                continue
            first, start = start[1], None
        if correlation:
            for event in ledger.store.events_for_correlation(name, correlation):
                if event.seq >= first:
                    yield event
            continue
        size = ledger.size(name)
        for offset in range(first, size, _LOG_CHUNK):
            yield from ledger.store.events(name, offset, min(offset + _LOG_CHUNK, size))


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


def pending(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Intents waiting for approval (overdue ones are recorded as expired first)."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        reader = acting_principal(governor, None)
        tenants = [tenant] if tenant else readable_tenants(governor, reader)
        for name in tenants:
            governor.authorize_read(reader, name, "pending approvals")
        waiting = [state for name in tenants for state in governor.pending(name)]
    if as_json:
        print_json([_state_json(s) for s in waiting])
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
    ctx: typer.Context,
    vote: Vote,
    intent_id: str,
    reason: str,
    tenant: str | None,
    intent_hash: str | None,
    key_file: Path | None,
    as_json: bool,
) -> None:
    with errors(as_json):
        api_key = api_key_of(key_file)
        with open_governor(current_home(ctx)) as governor:
            principal = governor.authenticate(api_key)
            if tenant is None:
                own = [t for t in principal.tenants if t != "*"]
                if len(own) != 1:
                    raise InputError("--tenant: required (you act for more than one tenant)")
                tenant = own[0]
            result = governor.vote(tenant, intent_id, principal, vote, reason, intent_hash)
    if as_json:
        print_json(
            {
                "accepted": result.accepted,
                "message": result.message,
                "approval_status": result.status.value,
                "outcome": outcome_json(result.outcome),
            }
        )
    else:
        style = "green" if result.accepted else "bold red"
        console.print(
            line(styled("recorded" if result.accepted else "refused", style), f": {result.message}")
        )
        print_outcome(result.outcome)
    if not result.accepted:
        raise typer.Exit(EXIT_DENIED if result.forbidden else EXIT_FAILURE)


HashOption = Annotated[
    str | None,
    typer.Option("--intent-hash", help="Bind the vote to this intent hash (as shown by `show`)."),
]


VoteTenantOption = Annotated[
    str | None, typer.Option("--tenant", "-t", help="The intent's tenant (default: your only one).")
]


def approve(
    ctx: typer.Context,
    intent_id: Annotated[str, typer.Argument(help="The pending intent.")],
    reason: ReasonOption,
    tenant: VoteTenantOption = None,
    intent_hash: HashOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a pending intent as the principal whose API key you hold."""
    _vote(ctx, Vote.APPROVE, intent_id, reason, tenant, intent_hash, key_file, as_json)


def reject(
    ctx: typer.Context,
    intent_id: Annotated[str, typer.Argument(help="The pending intent.")],
    reason: ReasonOption,
    tenant: VoteTenantOption = None,
    intent_hash: HashOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Reject a pending intent: one rejection rejects, and it never runs."""
    _vote(ctx, Vote.REJECT, intent_id, reason, tenant, intent_hash, key_file, as_json)


def show(
    ctx: typer.Context,
    intent_id: Annotated[str, typer.Argument(help="The intent.")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Its tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The whole story of one intent: decision, reasons, obligations, approvals, execution."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        reader = acting_principal(governor, None)
        if tenant is not None:
            governor.authorize_read(reader, tenant, f"intent {intent_id}")
        tenants = [tenant] if tenant else readable_tenants(governor, reader)
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
        print_json(
            {
                "outcome": outcome_json(outcome),
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
    trace_id = story[0].payload.get("trace_id")
    if isinstance(trace_id, str):
        console.print(f"trace {trace_id}")
    # What the approver votes on includes params: show them whole, as recorded.
    console.print(line("params ", json_text(intent.params)))
    print_outcome(outcome)
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


def register(app: typer.Typer) -> None:
    """Mount this module's top-level commands on the root application."""
    app.command()(submit)
    app.command()(log)
    app.command()(pending)
    app.command()(approve)
    app.command()(reject)
    app.command()(show)
