"""Any Python call behind ExoArmur, in process or over HTTP: the core every wrapper shares.

A governed call is an intent (action, target, safety class, its arguments as
params). It runs only when ExoArmur allows it, and write-before-execute holds:
``execution.started`` is durable before the call, ``execution.finished``
(status, result hash) after. With a :class:`~exoarmur.pipeline.Governor` in
this process, the start is recorded as this process's own, so a process killed
mid-call is found ``outcome_unknown`` by the next recovery; with a client, the
service records the caller's start and end (``POST …/start``, ``…/outcome``).

A call that may not run raises :class:`CallRefused`, whose ``refusal`` says
why in words an agent can act on. One that waits for approval is remembered:
the identical call (same action, target and arguments) made again runs the
approved intent once, never a new one; a changed call is a new intent.
Nothing here reads a clock: ExoArmur's own decide and gate do the deciding.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from pydantic_core import to_jsonable_python

from .. import reported
from ..approvals import intent_state
from ..client import AsyncClient, Client, ConflictError
from ..encoding import canonical_bytes, content_hash
from ..errors import ExoArmurError, InputError
from ..model.decision import Outcome, OutcomeStatus
from ..pipeline import Governor

#: the executor a call in this process is recorded under
IN_PROCESS = "python-call"
#: longest error text recorded for a failed call (the service's bound)
_MAX_ERROR = reported.MAX_ERROR_CHARS

Via = Governor | Client | AsyncClient
Ended = Literal["succeeded", "failed"]
_R = TypeVar("_R")
_P = ParamSpec("_P")


@dataclass(frozen=True)
class Refusal:
    """Why a governed call did not run, and what the caller (an agent) can do about it."""

    status: OutcomeStatus
    intent_id: str
    tenant: str
    reasons: tuple[str, ...] = ()
    detail: str | None = None
    intent_hash: str | None = None

    @property
    def text(self) -> str:
        """One paragraph for an agent: what happened, and what to do next."""
        where = f"(intent {self.intent_id} in tenant {self.tenant})"
        if self.status == OutcomeStatus.PENDING_APPROVAL:
            return (
                f"ExoArmur: this call waits for human approval {where}, intent hash "
                f"{self.intent_hash}. It has not run. Once it is approved, make exactly the same "
                "call again and it runs once; a changed call is a new request."
            )
        if self.status == OutcomeStatus.DENIED:
            why = self.detail or ", ".join(self.reasons) or "no policy permits it"
            return f"ExoArmur denied this call {where}: {why}. It did not run."
        what = {
            OutcomeStatus.BLOCKED: "blocked this call",
            OutcomeStatus.REJECTED: "an approver rejected this call",
            OutcomeStatus.EXPIRED: "the approval window for this call closed",
            OutcomeStatus.FAILED: "ran this call and it failed",
            OutcomeStatus.OUTCOME_UNKNOWN: "cannot tell whether this call ran",
        }.get(self.status, f"answered {self.status.value} for this call")
        detail = f": {self.detail}" if self.detail else ""
        ran = (
            ""
            if self.status in (OutcomeStatus.FAILED, OutcomeStatus.OUTCOME_UNKNOWN)
            else (" It did not run.")
        )
        return f"ExoArmur {what} {where}{detail}.{ran}"


class CallRefused(ExoArmurError):
    """A governed call did not run (denied, waiting for approval, blocked, rejected…)."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.text)


def _refusal(outcome: Outcome, intent_hash: str | None = None) -> Refusal:
    gate = outcome.decision.gate
    return Refusal(
        status=outcome.status,
        intent_id=outcome.intent_id,
        tenant=outcome.tenant,
        reasons=outcome.decision.reasons,
        detail=outcome.error
        or (f"the safety gate ({', '.join(gate['controls'])}): {gate['reason']}" if gate else None),
        intent_hash=intent_hash,
    )


def recordable(value: Any) -> Any:
    """What the ledger records of a call's return value: itself when it is JSON, else its type."""
    try:
        jsonable = to_jsonable_python(value)
        canonical_bytes(jsonable)
    except (InputError, ValueError, TypeError):
        return {"unrecorded": type(value).__name__}
    return jsonable


def _params(arguments: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = to_jsonable_python(dict(arguments))
        canonical_bytes(params)
    except (InputError, ValueError, TypeError) as exc:
        raise InputError(f"params: the call's arguments are not JSON ({exc})") from None
    return dict(params)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


# -- where intents go ---------------------------------------------------------


class _Backend(Protocol):
    def submit(self, intent: dict[str, Any]) -> Outcome: ...
    def outcome(self, intent_id: str) -> Outcome: ...
    def intent_hash(self, intent_id: str) -> str: ...
    def start(self, intent_id: str) -> Outcome | None: ...
    def finish(self, intent_id: str, status: Ended, result: Any, error: str | None) -> None: ...


class _AsyncBackend(Protocol):
    async def submit(self, intent: dict[str, Any]) -> Outcome: ...
    async def outcome(self, intent_id: str) -> Outcome: ...
    async def intent_hash(self, intent_id: str) -> str: ...
    async def start(self, intent_id: str) -> Outcome | None: ...
    async def finish(
        self, intent_id: str, status: Ended, result: Any, error: str | None
    ) -> None: ...


class _InProcess:
    """A governor in this process; the call's start is this process's (recovery cuts it)."""

    def __init__(self, governor: Governor, tenant: str, actor: str, kind: str) -> None:
        self.governor, self.tenant, self.actor, self.kind = governor, tenant, actor, kind

    def submit(self, intent: dict[str, Any]) -> Outcome:
        now = self.governor.clock.now()
        # A fresh key per call, from the governor's own ids (seeded in deterministic runs).
        key = f"call-{self.governor.ids.new(now)}"
        actor = {"id": self.actor, "kind": self.kind}
        return self.governor.submit(intent | {"actor": actor, "idempotency_key": key})

    def outcome(self, intent_id: str) -> Outcome:
        return self.governor.outcome(self.tenant, intent_id)

    def intent_hash(self, intent_id: str) -> str:
        return intent_state(self.governor.story(self.tenant, intent_id)).intent_hash

    def start(self, intent_id: str) -> Outcome | None:
        started = reported.start(
            self.governor, self.tenant, intent_id, self.actor, executor=IN_PROCESS
        )
        return None if started.go else started.outcome

    def finish(self, intent_id: str, status: Ended, result: Any, error: str | None) -> None:
        reported.finish(
            self.governor, self.tenant, intent_id, self.actor, status, result=result, error=error
        )


class _Remote:
    """The service, through the blocking client (the key's principal is the actor)."""

    def __init__(self, client: Client, tenant: str) -> None:
        self.client, self.tenant = client, tenant

    def submit(self, intent: dict[str, Any]) -> Outcome:
        return self.client.submit(intent)

    def outcome(self, intent_id: str) -> Outcome:
        return self.client.story(intent_id, tenant=self.tenant).outcome

    def intent_hash(self, intent_id: str) -> str:
        return self.client.story(intent_id, tenant=self.tenant).intent_hash

    def start(self, intent_id: str) -> Outcome | None:
        try:
            self.client.report_start(intent_id, tenant=self.tenant)
        except ConflictError:
            return self.outcome(intent_id)  # blocked (recorded), or no longer startable
        return None

    def finish(self, intent_id: str, status: Ended, result: Any, error: str | None) -> None:
        self.client.report_outcome(
            intent_id, status, result=result, error=error, tenant=self.tenant
        )


class _AsyncRemote:
    """The service, through the asyncio client."""

    def __init__(self, client: AsyncClient, tenant: str) -> None:
        self.client, self.tenant = client, tenant

    async def submit(self, intent: dict[str, Any]) -> Outcome:
        return await self.client.submit(intent)

    async def outcome(self, intent_id: str) -> Outcome:
        return (await self.client.story(intent_id, tenant=self.tenant)).outcome

    async def intent_hash(self, intent_id: str) -> str:
        return (await self.client.story(intent_id, tenant=self.tenant)).intent_hash

    async def start(self, intent_id: str) -> Outcome | None:
        try:
            await self.client.report_start(intent_id, tenant=self.tenant)
        except ConflictError:
            return await self.outcome(intent_id)
        return None

    async def finish(self, intent_id: str, status: Ended, result: Any, error: str | None) -> None:
        await self.client.report_outcome(
            intent_id, status, result=result, error=error, tenant=self.tenant
        )


class _Threaded:
    """A blocking backend driven from asyncio: each step in a worker thread."""

    def __init__(self, backend: _Backend) -> None:
        self.backend = backend

    async def submit(self, intent: dict[str, Any]) -> Outcome:
        return await asyncio.to_thread(self.backend.submit, intent)

    async def outcome(self, intent_id: str) -> Outcome:
        return await asyncio.to_thread(self.backend.outcome, intent_id)

    async def intent_hash(self, intent_id: str) -> str:
        return await asyncio.to_thread(self.backend.intent_hash, intent_id)

    async def start(self, intent_id: str) -> Outcome | None:
        return await asyncio.to_thread(self.backend.start, intent_id)

    async def finish(self, intent_id: str, status: Ended, result: Any, error: str | None) -> None:
        await asyncio.to_thread(self.backend.finish, intent_id, status, result, error)


# -- the governance of calls --------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """A call allowed to run now: its start is recorded; end it with its result or error."""

    intent_id: str


class Governance:
    """Governs calls as one actor in one tenant, through a governor or a client.

    ``actor`` names who calls when ``via`` is a governor in this process (a
    client acts as its key's principal, and refuses another name).
    """

    def __init__(
        self,
        via: Via,
        *,
        tenant: str,
        actor: str | None = None,
        actor_kind: str = "agent",
    ) -> None:
        self.tenant = tenant
        self._sync: _Backend | None = None
        self._async: _AsyncBackend
        if isinstance(via, Governor):
            if actor is None:
                raise InputError("actor: name who calls (a governor in process has no key)")
            self._sync = _InProcess(via, tenant, actor, actor_kind)
            self._async = _Threaded(self._sync)
        elif isinstance(via, Client):
            self._sync = _Remote(via, tenant)
            self._async = _Threaded(self._sync)
        elif isinstance(via, AsyncClient):
            self._async = _AsyncRemote(via, tenant)
        else:
            raise InputError(f"via: a Governor, Client or AsyncClient, not {type(via).__name__}")
        # Calls waiting for approval, by what they ask: the identical call resumes them.
        self._waiting: dict[str, str] = {}
        self._lock = threading.Lock()

    def intent(
        self, action: str, target: str, safety_class: str, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "action": action,
            "target": target,
            "safety_class": safety_class,
            "params": _params(arguments),
        }

    def _sync_backend(self) -> _Backend:
        if self._sync is None:
            raise InputError("via: an AsyncClient governs async calls only; use a Client")
        return self._sync

    # The steps below are written twice, blocking and async, line for line.

    def begin(self, intent: dict[str, Any]) -> Ticket | Outcome:
        """Submit (or resume) the call and record its start; an Outcome when ExoArmur ran it."""
        backend = self._sync_backend()
        call = content_hash(intent)
        with self._lock:
            waiting = self._waiting.get(call)
        outcome = backend.outcome(waiting) if waiting else backend.submit(intent)
        if outcome.status == OutcomeStatus.PENDING_APPROVAL:
            with self._lock:
                self._waiting[call] = outcome.intent_id
            raise CallRefused(_refusal(outcome, backend.intent_hash(outcome.intent_id)))
        with self._lock:
            self._waiting.pop(call, None)
        if outcome.status == OutcomeStatus.EXECUTED:
            return outcome  # an executor bound at ExoArmur carried it out
        if outcome.status not in (OutcomeStatus.DECIDED, OutcomeStatus.APPROVED):
            raise CallRefused(_refusal(outcome))
        blocked = backend.start(outcome.intent_id)
        if blocked is not None:
            raise CallRefused(_refusal(blocked))
        return Ticket(outcome.intent_id)

    def end(self, ticket: Ticket, value: Any = None, error: BaseException | None = None) -> None:
        """Record how the call ended (its value when it returned, the exception when it raised)."""
        backend = self._sync_backend()
        if error is None:
            backend.finish(ticket.intent_id, "succeeded", recordable(value), None)
        else:
            backend.finish(ticket.intent_id, "failed", None, _error(error))

    async def abegin(self, intent: dict[str, Any]) -> Ticket | Outcome:
        backend = self._async
        call = content_hash(intent)
        with self._lock:
            waiting = self._waiting.get(call)
        outcome = await (backend.outcome(waiting) if waiting else backend.submit(intent))
        if outcome.status == OutcomeStatus.PENDING_APPROVAL:
            with self._lock:
                self._waiting[call] = outcome.intent_id
            raise CallRefused(_refusal(outcome, await backend.intent_hash(outcome.intent_id)))
        with self._lock:
            self._waiting.pop(call, None)
        if outcome.status == OutcomeStatus.EXECUTED:
            return outcome
        if outcome.status not in (OutcomeStatus.DECIDED, OutcomeStatus.APPROVED):
            raise CallRefused(_refusal(outcome))
        blocked = await backend.start(outcome.intent_id)
        if blocked is not None:
            raise CallRefused(_refusal(blocked))
        return Ticket(outcome.intent_id)

    async def aend(
        self, ticket: Ticket, value: Any = None, error: BaseException | None = None
    ) -> None:
        if error is None:
            await self._async.finish(ticket.intent_id, "succeeded", recordable(value), None)
        else:
            await self._async.finish(ticket.intent_id, "failed", None, _error(error))

    def call(self, intent: dict[str, Any], fn: Callable[[], _R]) -> _R | Any:
        """Run ``fn()`` if and when ExoArmur allows ``intent``; raises :class:`CallRefused`."""
        ticket = self.begin(intent)
        if isinstance(ticket, Outcome):
            return ticket.result
        try:
            value = fn()
        except BaseException as exc:
            self.end(ticket, error=exc)
            raise
        self.end(ticket, value)
        return value

    async def acall(self, intent: dict[str, Any], fn: Callable[[], Awaitable[_R]]) -> _R | Any:
        ticket = await self.abegin(intent)
        if isinstance(ticket, Outcome):
            return ticket.result
        try:
            value = await fn()
        except BaseException as exc:
            await self.aend(ticket, error=exc)
            raise
        await self.aend(ticket, value)
        return value


Target = str | Callable[[Mapping[str, Any]], str]


def target_of(target: Target, arguments: Mapping[str, Any]) -> str:
    return target(arguments) if callable(target) else target


def governed(
    *,
    action: str,
    safety_class: str,
    target: Target,
    via: Via,
    tenant: str,
    actor: str | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Put a function (or a coroutine function) behind ExoArmur.

    Its bound arguments are the intent's params; ``target`` is a string or a
    function of those arguments. A call that may not run raises
    :class:`CallRefused` (its ``refusal.text`` says why); its exceptions are
    recorded as a failed execution and raised as they were.
    """
    governance = Governance(via, tenant=tenant, actor=actor)

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(fn)

        def intent_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            return governance.intent(action, target_of(target, arguments), safety_class, arguments)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def governed_coroutine(*args: Any, **kwargs: Any) -> Any:
                intent = intent_of(args, kwargs)
                return await governance.acall(intent, lambda: fn(*args, **kwargs))

            return governed_coroutine  # type: ignore[return-value]

        @functools.wraps(fn)
        def governed_call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            result: _R = governance.call(intent_of(args, kwargs), lambda: fn(*args, **kwargs))
            return result

        governed_call.governance = governance  # type: ignore[attr-defined]
        return governed_call

    return wrap
