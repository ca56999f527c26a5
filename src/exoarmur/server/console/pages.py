"""The operator console's pages and forms: inbox, controls, ledger; sign-in and sign-out.

Every page is rendered on the server from the same governor calls the HTTP
API makes, as the signed-in principal, with the same rights table: what the
console shows or does, the API would show or do for that key, and every
refusal is recorded the same way. Forms are plain HTML posts carrying the
session's CSRF token; the only script is our own ``console.js`` (live inbox,
countdowns, copy buttons), allowed by the Content-Security-Policy by origin.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...approvals import Vote
from ...errors import ExoArmurError, InputError, NotFound, PermissionDenied, StoreError
from ...ledger.checkpoint import open_checkpoint
from ...ledger.keys import Verifier
from ...ledger.merkle import leaf_hash, verify_inclusion
from ...model.event import INTENT_RECORDED, Event
from ...model.intent import TENANT_PATTERN
from ...pipeline import Governor
from ...principals import ALL_TENANTS
from ..access import Caller, Right, permits
from ..errors import TooBusy
from ..limits import InFlight, write_slot
from ..tracing import stage
from . import sessions as session_cookie
from .sessions import Session, Sessions
from .text import shown, shown_json

HERE = Path(__file__).parent
logger = logging.getLogger("exoarmur.server")
#: roles that may sign in; agents act through the API, never a console
CONSOLE_ROLES: Final = frozenset({"operator", "auditor", "admin"})
#: the longest form body read (a reason is at most 2,000 characters)
MAX_FORM_BYTES: Final = 16 * 1024
LEDGER_PAGE: Final = 50
#: a correlation id is at most 256 characters (model.intent)
MAX_CORRELATION_CHARS: Final = 256
RECENT_INTENTS: Final = 10
#: how often a live stream looks for new events, and how often it records due expiries
POLL_SECONDS: Final = 0.25
EXPIRE_EVERY: Final = 5.0
KEEPALIVE_SECONDS: Final = 15.0
#: one principal may hold a few tabs open; past this many streams, new ones are refused
MAX_STREAMS: Final = 64
_TENANT = re.compile(TENANT_PATTERN)

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["shown"] = shown
templates.filters["shown_json"] = shown_json


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


def _now(request: Request) -> datetime:
    governor: Governor = request.app.state.governor
    return governor.clock.now()


def _sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


def _tls(request: Request) -> bool:
    return bool(getattr(request.app.state, "tls", False))


def _cookie_name(request: Request) -> str:
    return session_cookie.TLS_COOKIE if _tls(request) else session_cookie.COOKIE


def _session(request: Request) -> Session:
    """The live session of this browser, its principal still in force; else sign in again."""
    sessions = _sessions(request)
    token = request.cookies.get(_cookie_name(request))
    session = sessions.find(token, _now(request))
    if session is None:
        raise SignInRequired
    governor: Governor = request.app.state.governor
    if governor.principals().get(session.principal.name) != session.principal:
        sessions.close(token)  # revoked or changed since sign-in
        raise SignInRequired
    return session


def _caller(request: Request, session: Session) -> Caller:
    return Caller(
        principal=session.principal,
        governor=request.app.state.governor,
        attempt=f"{request.method} {request.url.path}",
    )


def _tenants(session: Session) -> list[str]:
    return [t for t in session.principal.tenants if t != ALL_TENANTS]


def _tenant(request: Request, session: Session, given: str | None) -> str | None:
    """The tenant a page is about: the one asked for, else the principal's first."""
    if given:
        if not _TENANT.fullmatch(given) or len(given) > 63:
            raise InputError(f"tenant: {given!r} is not a tenant name")
        return given
    tenants = _tenants(session)
    return tenants[0] if tenants else None


def _page(
    request: Request,
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    page = templates.get_template(template).render(
        session=session,
        tenants=_tenants(session) if session else [],
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def _fail_status(exc: ExoArmurError) -> int:
    if isinstance(exc, TooBusy):
        return 429
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InputError):
        return 400
    return 409


async def _form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An urlencoded form, one value per field; larger or repeated fields are bad input."""
    body = await request.body()
    if len(body) > limit:
        raise InputError(f"form: larger than {limit} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InputError("form: not UTF-8") from exc
    form = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise InputError(f"{name}: given {len(values)} times")
        form[name] = values[0]
    return form


def _check_csrf(session: Session, form: Mapping[str, str]) -> None:
    if not session.csrf_matches(form.get("csrf")):
        raise CsrfRefused


class CsrfRefused(Exception):
    """A form post without this session's CSRF token: refused, nothing done."""


async def _run(fn: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(fn)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


class ConsoleRoute(APIRoute):
    """Console failures are pages, not the API's JSON: sign in again, refused, or why not."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except SignInRequired:
                return _redirect("/console/signin")
            except CsrfRefused:
                return _page(
                    request,
                    "error.html",
                    None,
                    403,
                    message="Refused: this form carried no valid CSRF token. Nothing was done.",
                )
            except StoreError as exc:
                # The store's own message names files and drivers: log it, do not show it.
                request.app.state.metrics.store_failed(exc)
                logger.error("ledger store failed: %s", exc)
                return _page(
                    request,
                    "error.html",
                    None,
                    503,
                    message="The ledger store is unavailable; nothing was done. Retry later.",
                )
            except ExoArmurError as exc:
                return _page(request, "error.html", None, _fail_status(exc), message=str(exc))
            return response

        return handle


router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


# -- sign-in and sign-out -------------------------------------------------------


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    try:
        _session(request)
    except SignInRequired:
        return _redirect("/console/signin")
    return _redirect("/console/inbox")


def _signin_page(request: Request, status: int = 200, message: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = _page(
        request,
        "signin.html",
        None,
        status,
        csrf=_sessions(request).signin_token(nonce),
        message=message,
    )
    response.set_cookie(
        "exoarmur_signin",
        nonce,
        httponly=True,
        secure=_tls(request),
        samesite="strict",
        path="/console",
        max_age=3600,
    )
    return response


@router.get("/signin")
def signin_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await _form(request)
    sessions = _sessions(request)
    if not sessions.signin_token_matches(request.cookies.get("exoarmur_signin"), form.get("csrf")):
        return _signin_page(request, 403, "The form expired; sign in again.")
    governor: Governor = request.app.state.governor
    try:
        principal = await _run(lambda: governor.authenticate(form.get("api_key", "").strip()))
    except ExoArmurError:
        source = request.client.host if request.client else "unknown"
        await _run(
            lambda: request.app.state.refusals.refuse(
                source, None, "POST /console/signin", "console sign-in with a bad key"
            )
        )
        return _signin_page(request, 401, "That key is not valid.")
    if principal.role not in CONSOLE_ROLES:
        caller = Caller(principal, governor, "POST /console/signin")
        why = f"role {principal.role} may not use the console"
        try:
            await _run(lambda: caller.refuse(None, why))
        except PermissionDenied:
            return _signin_page(request, 403, "Agents act through the API, not the console.")
    session = sessions.open(principal, _now(request))
    response = _redirect("/console/inbox")
    response.set_cookie(
        _cookie_name(request),
        session.token,
        httponly=True,
        secure=_tls(request),
        samesite="strict",
        path="/",
        max_age=int(sessions.lifetime.total_seconds()),
    )
    response.delete_cookie("exoarmur_signin", path="/console")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    form = await _form(request)
    session = _session(request)
    _check_csrf(session, form)
    _sessions(request).close(session.token)
    response = _redirect("/console/signin")
    response.delete_cookie(_cookie_name(request), path="/")
    return response


# -- the approval inbox ---------------------------------------------------------


def _inbox_context(request: Request, session: Session, tenant: str | None) -> dict[str, Any]:
    if tenant is None:
        return {"tenant": None, "pending": [], "recent": []}
    caller = _caller(request, session)
    caller.require(Right.READ_APPROVALS, tenant)
    governor = caller.governor
    metrics = getattr(request.app.state, "metrics", None)
    expired = governor.expire_due(tenant)
    if metrics is not None:
        metrics.expired(tenant, len(expired))
    now = governor.clock.now()
    pending = [
        {
            "state": state,
            "seconds_left": max(0, int((state.deadline - now).total_seconds()))
            if state.deadline
            else None,
        }
        for state in governor.pending(tenant)
    ]
    return {
        "tenant": tenant,
        "pending": pending,
        "recent": _recent(governor, tenant),
        "may_vote": permits(session.principal, Right.VOTE, tenant),
    }


def _recent(governor: Governor, tenant: str) -> list[dict[str, Any]]:
    """The latest intents of the tenant with their outcomes, newest first."""
    size = governor.ledger.size(tenant)
    found: list[dict[str, Any]] = []
    stop = size
    while stop > 0 and len(found) < RECENT_INTENTS:
        start = max(0, stop - 200)
        page = list(governor.ledger.store.events(tenant, start, stop))
        for event in reversed(page):
            if event.type == INTENT_RECORDED and event.intent_id is not None:
                outcome = governor.outcome(tenant, event.intent_id)
                found.append({"event": event, "outcome": outcome})
                if len(found) == RECENT_INTENTS:
                    break
        stop = start
    return found


@router.get("/inbox")
async def inbox(request: Request, tenant: str | None = None) -> Response:
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    context = await _run(lambda: _inbox_context(request, session, chosen))
    return _page(request, "inbox.html", session, **context)


@router.get("/inbox/pending")
async def inbox_pending(request: Request, tenant: str) -> Response:
    """The inbox's pending list alone: what the live page swaps in when the log moves."""
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    context = await _run(lambda: _inbox_context(request, session, chosen))
    return _page(request, "pending.html", session, **context)


async def _stream_slot(request: Request) -> AsyncIterator[None]:
    slots: InFlight = request.app.state.console_streams
    slots.enter()
    try:
        yield
    finally:
        slots.leave()


@router.get("/stream", dependencies=[Depends(_stream_slot)])
async def stream(request: Request, tenant: str) -> Response:
    """Server-sent events: ``changed`` whenever the tenant's log grows (votes, decisions,
    expiries); the page then fetches its pending list again."""
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    await _run(lambda: _caller(request, session).require(Right.READ_APPROVALS, chosen))
    governor: Governor = request.app.state.governor
    metrics = getattr(request.app.state, "metrics", None)
    sessions = _sessions(request)

    async def events() -> AsyncIterator[str]:
        seen = await _run(lambda: governor.ledger.size(chosen))
        yield f"event: hello\ndata: {seen}\n\n"
        last_expiry = last_word = time.monotonic()
        while not request.app.state.stopping:
            await asyncio.sleep(POLL_SECONDS)
            if sessions.find(session.token, _now(request)) is None:
                yield "event: signedout\ndata: 0\n\n"
                return
            if await request.is_disconnected():
                return
            moment = time.monotonic()
            if moment - last_expiry >= EXPIRE_EVERY:
                last_expiry = moment
                expired = await _run(lambda: governor.expire_due(chosen))
                if metrics is not None:
                    metrics.expired(chosen, len(expired))
            size = await _run(lambda: governor.ledger.size(chosen))
            if size != seen:
                seen = size
                last_word = moment
                yield f"event: changed\ndata: {size}\n\n"
            elif moment - last_word >= KEEPALIVE_SECONDS:
                last_word = moment
                yield ": still here\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers=SECURITY_HEADERS | {"X-Accel-Buffering": "no"},
    )


@router.post("/tenants/{tenant}/intents/{intent_id}/vote", dependencies=[Depends(write_slot)])
async def vote(request: Request, tenant: str, intent_id: str) -> Response:
    form = await _form(request)
    session = _session(request)
    _check_csrf(session, form)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    choice = form.get("vote")
    if choice not in ("approve", "reject"):
        raise InputError("vote: must be approve or reject")
    caller = _caller(request, session)

    def cast() -> tuple[int, str]:
        caller.require(Right.VOTE, chosen)
        with (
            stage(request, "vote", tenant=chosen, intent_id=intent_id, vote=choice),
            request.app.state.metrics.timed("vote"),
        ):
            result = caller.governor.vote(
                chosen,
                intent_id,
                session.principal,
                Vote(choice),
                form.get("reason", ""),
                form.get("intent_hash") or None,
            )
        if not result.accepted:
            return (403 if result.forbidden else 409), result.message
        return 200, f"{result.message}: {result.outcome.status.value}"

    status, message = await _run(cast)
    context = await _run(lambda: _inbox_context(request, session, chosen))
    return _page(request, "inbox.html", session, status, message=message, **context)


# -- controls -------------------------------------------------------------------


def _controls_context(request: Request, session: Session, tenant: str | None) -> dict[str, Any]:
    if tenant is None:
        return {"tenant": None, "killswitches": [], "posture": None}
    caller = _caller(request, session)
    caller.require(Right.READ_CONTROLS, tenant)
    return {
        "tenant": tenant,
        "killswitches": caller.governor.killswitches(tenant),
        "posture": caller.governor.posture(tenant),
        "may_control": permits(session.principal, Right.CONTROL, tenant),
    }


@router.get("/controls")
async def controls(request: Request, tenant: str | None = None) -> Response:
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    context = await _run(lambda: _controls_context(request, session, chosen))
    return _page(request, "controls.html", session, **context)


@router.post("/tenants/{tenant}/killswitch", dependencies=[Depends(write_slot)])
async def killswitch(request: Request, tenant: str) -> Response:
    form = await _form(request)
    session = _session(request)
    _check_csrf(session, form)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    action = form.get("action")
    if action not in ("engage", "release"):
        raise InputError("action: must be engage or release")
    governor: Governor = request.app.state.governor
    change = governor.engage_killswitch if action == "engage" else governor.release_killswitch
    event = await _run(
        lambda: change(form.get("scope", ""), form.get("reason", ""), session.principal)
    )
    message = f"kill switch {event.payload['scope']}: {event.type}"
    context = await _run(lambda: _controls_context(request, session, chosen))
    return _page(request, "controls.html", session, message=message, **context)


@router.post("/tenants/{tenant}/posture", dependencies=[Depends(write_slot)])
async def posture(request: Request, tenant: str) -> Response:
    form = await _form(request)
    session = _session(request)
    _check_csrf(session, form)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    ttl_text = form.get("ttl_seconds", "").strip()
    if ttl_text and not ttl_text.isdecimal():
        raise InputError("ttl_seconds: must be a whole number of seconds")
    ttl = int(ttl_text) if ttl_text else None
    governor: Governor = request.app.state.governor
    await _run(
        lambda: governor.set_posture(
            chosen, form.get("posture", ""), form.get("reason", ""), session.principal, ttl
        )
    )
    context = await _run(lambda: _controls_context(request, session, chosen))
    return _page(request, "controls.html", session, message="posture set", **context)


# -- the ledger -----------------------------------------------------------------


def _ledger_context(
    request: Request,
    session: Session,
    tenant: str | None,
    correlation: str | None,
    after: int | None,
) -> dict[str, Any]:
    if tenant is None:
        return {"tenant": None, "events": []}
    caller = _caller(request, session)
    caller.require(Right.READ_LEDGER, tenant)
    ledger = caller.governor.ledger
    size = ledger.size(tenant)
    if size == 0:
        return {"tenant": tenant, "events": [], "checkpoint": None, "size": 0}
    signed = ledger.current_checkpoint(tenant)
    verifier_key = ledger.key.verifier_key()
    # Check the note against the public key as printed, not the key object the server signs with.
    checkpoint = open_checkpoint(signed.note, Verifier.from_string(verifier_key))
    events: list[Event]
    next_after = None
    if correlation:
        events = ledger.store.events_for_correlation(tenant, correlation)[:LEDGER_PAGE]
    else:
        start = 0 if after is None else after + 1
        events = list(ledger.store.events(tenant, start, min(start + LEDGER_PAGE, size)))
        if events and events[-1].seq < size - 1:
            next_after = events[-1].seq
    checked = []
    for event in events:
        included = event.seq < checkpoint.size and verify_inclusion(
            leaf_hash(event.canonical),
            event.seq,
            checkpoint.size,
            ledger.inclusion(tenant, event.seq, checkpoint.size).hashes,
            checkpoint.root_hash,
        )
        checked.append({"event": event, "included": included})
    return {
        "tenant": tenant,
        "correlation": correlation or "",
        "events": checked,
        "checkpoint": checkpoint,
        "note": signed.note,
        "verifier_key": verifier_key,
        "size": size,
        "next": (
            "/console/ledger?" + urlencode({"tenant": tenant, "after": next_after})
            if next_after is not None
            else None
        ),
    }


@router.get("/ledger")
async def ledger(
    request: Request,
    tenant: str | None = None,
    correlation: str | None = None,
    after: int | None = None,
) -> Response:
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    if after is not None and after < 0:
        raise InputError("after: must not be negative")
    if correlation is not None and len(correlation) > MAX_CORRELATION_CHARS:
        raise InputError(f"correlation: longer than {MAX_CORRELATION_CHARS} characters")
    context = await _run(lambda: _ledger_context(request, session, chosen, correlation, after))
    return _page(request, "ledger.html", session, **context)
