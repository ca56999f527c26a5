"""The governed side of the proxy: tools/call → intent → (maybe) the upstream call.

A call is one intent whose idempotency key is derived from the call's
content (action, target, arguments, safety class) and a round number: the
identical call while it waits for approval finds the same intent, once
approved it runs that intent (at most once, whoever asks), and only after
an intent has settled (ran, was denied, rejected, expired) does the next
identical call become a new intent. A call whose execution started and
never finished answers ``outcome_unknown`` and is never run again.

Denials and waits are ordinary ``CallToolResult``s with ``isError`` and no
``structuredContent``: clients validate structured content against the
tool's output schema even on errors, and some break on JSON-RPC errors.
The governor is blocking and thread-safe; it runs in worker threads, and
the upstream call (the side effect) is made from there back on the loop.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from pydantic import ValidationError

from ... import __version__
from ...approvals import intent_state
from ...encoding import canonical_bytes
from ...errors import ExoArmurError, InputError, PermissionDenied
from ...executors.base import ExecutionFailed
from ...model.decision import Outcome, OutcomeStatus, Verdict
from ...model.intent import ACTION_PATTERN, ActionIntent, Actor, IntentRequest
from ...model.trace import trace_id_of
from ...pipeline import Governor
from ...principals import Principal
from ..console_link import console_link
from ..reasons import refusal_reasons as _reasons
from .mapping import ProxySettings

STATUS_TOOL: Final = "exoarmur_status"
META_PREFIX: Final = "exoarmur/"
_POLL_SECONDS: Final = 0.5
#: an intent in one of these has had its say: the identical call after it is a new intent
_SETTLED: Final = frozenset(
    {
        OutcomeStatus.EXECUTED,
        OutcomeStatus.FAILED,
        OutcomeStatus.BLOCKED,
        OutcomeStatus.DENIED,
        OutcomeStatus.DECIDED,
        OutcomeStatus.REJECTED,
        OutcomeStatus.EXPIRED,
    }
)
_REFUSED: Final = frozenset(
    {
        OutcomeStatus.DENIED,
        OutcomeStatus.BLOCKED,
        OutcomeStatus.REJECTED,
        OutcomeStatus.EXPIRED,
    }
)
_PROBE_ID: Final = "0" * 26
#: where the listen side puts the authenticated principal of an HTTP request (ASGI scope)
CALLER_SCOPE_KEY: Final = "exoarmur.principal"


def may_submit(principal: Principal, tenant: str) -> bool:
    """Whether ``principal`` may propose actions in ``tenant`` (agents and admins do)."""
    return principal.role in ("agent", "admin") and principal.acts_for(tenant)


class UpstreamLost(BaseException):
    """The upstream went away while a call was in flight.

    A ``BaseException`` on purpose: the governor records an ordinary
    exception as a failed execution, but nobody knows whether the upstream
    acted, so nothing may be recorded as finished. The execution stays
    started-not-finished and recovery records it as ``outcome_unknown``.
    """


class UpstreamCall:
    """The executor of ``mcp.<server>.*``: the upstream ``tools/call``, from a worker thread."""

    kind = "mcp"

    def __init__(self, session: ClientSession, server: str) -> None:
        self._session = session
        self._prefix = f"mcp.{server}."
        self.lost = False

    def execute(self, intent: ActionIntent) -> Any:
        tool = intent.action.removeprefix(self._prefix)
        if self.lost:
            raise ExecutionFailed("the upstream server is gone; the call was not sent")
        return anyio.from_thread.run(self._call, tool, dict(intent.params))

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
        try:
            result = await self._session.call_tool(tool, arguments)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self.lost = True
            raise UpstreamLost(f"{type(exc).__name__}") from None
        except ValidationError as exc:
            raise ExecutionFailed(
                f"the upstream answered with something that is not a tool result: {exc}"
            ) from None
        except Exception as exc:
            if _connection_closed(exc):
                self.lost = True
                raise UpstreamLost(str(exc)) from None
            raise ExecutionFailed(f"upstream refused the call: {exc}") from None
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _connection_closed(exc: Exception) -> bool:
    # The SDK reports a peer that died as an MCP error with code CONNECTION_CLOSED.
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) == types.CONNECTION_CLOSED


class GovernedTools:
    """The proxy's MCP server handlers, over one upstream session and one governor."""

    def __init__(
        self,
        governor: Governor,
        principal: Principal | None,
        settings: ProxySettings,
        upstream: ClientSession,
    ) -> None:
        self.governor = governor
        #: the stdio client's identity; None when every client brings its own (``--listen``)
        self.principal = principal
        self.settings = settings
        self.upstream = upstream
        self.executor = UpstreamCall(upstream, settings.server)
        # Bound in this process only: an approval recorded elsewhere (CLI, HTTP)
        # finds no executor there and is carried out here, on the identical call.
        governor.executors.bind(f"mcp.{settings.server}.*", self.executor)
        self._tools: dict[str, types.Tool] = {}
        self._rounds: dict[tuple[str, str], int] = {}
        self._rounds_lock = threading.Lock()

    # -- the MCP server ------------------------------------------------------

    def server(self) -> Server[Any]:
        return Server(
            f"exoarmur-{self.settings.server}",
            version=__version__,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
            on_list_prompts=self.list_prompts,
            on_get_prompt=self.get_prompt,
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = await self.upstream.list_tools(params=params)
        for tool in listed.tools:
            self._tools[tool.name] = tool
        hidden = await anyio.to_thread.run_sync(
            self._always_denied, [tool.name for tool in listed.tools], self._caller(ctx)
        )
        tools = [tool for tool in listed.tools if tool.name not in hidden]
        if params is None or params.cursor is None:
            tools.append(_status_tool())
        return types.ListToolsResult(tools=tools, next_cursor=listed.next_cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        caller = self._caller(ctx)
        if params.name == STATUS_TOOL:
            return await anyio.to_thread.run_sync(self._status, arguments, caller)
        if params.name not in self._tools:
            listed = await self.upstream.list_tools()
            self._tools.update({tool.name: tool for tool in listed.tools})
        tool = self._tools.get(params.name)
        try:
            request = self._request(params.name, arguments, tool, caller)
        except InputError as exc:
            return _refusal("invalid", str(exc), {})
        trace_id = trace_id_of(_traceparent(ctx, params))
        try:
            outcome = await anyio.to_thread.run_sync(self._govern, request, trace_id)
            if outcome.status == OutcomeStatus.PENDING_APPROVAL:
                outcome = await self._hold(ctx, outcome)
        except UpstreamLost:
            return _refusal(
                OutcomeStatus.OUTCOME_UNKNOWN.value,
                "the upstream server stopped during the call: whether it acted is unknown, "
                "and the call will not be run again",
                {},
            )
        return await anyio.to_thread.run_sync(self._answer, outcome)

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await self.upstream.list_resources(params=params)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await self.upstream.list_resource_templates(params=params)

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await self.upstream.read_resource(params.uri)

    async def list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return await self.upstream.list_prompts(params=params)

    async def get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return await self.upstream.get_prompt(params.name, params.arguments)

    def _caller(self, ctx: ServerRequestContext[Any]) -> Principal:
        """Who calls: the HTTP client's authenticated key, else the proxy's own (stdio)."""
        request = ctx.request
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict) and isinstance(scope.get(CALLER_SCOPE_KEY), Principal):
            principal: Principal = scope[CALLER_SCOPE_KEY]
            return principal
        if self.principal is None:  # fail closed: never act for nobody
            raise PermissionDenied("no authenticated caller for this request")
        return self.principal

    # -- governing (worker threads) ------------------------------------------

    def _request(
        self, tool: str, arguments: dict[str, Any], known: types.Tool | None, caller: Principal
    ) -> IntentRequest:
        action = f"mcp.{self.settings.server}.{tool}"
        if not re.match(ACTION_PATTERN, action) or len(action) > 128:
            raise InputError(f"tool {tool!r}: its name cannot be governed as action {action!r}")
        target, safety = self.settings.rule_for(tool, known.annotations if known else None)
        content = {
            "action": action,
            "target": target,
            "params": arguments,
            "safety_class": safety.value,
        }
        try:
            digest = hashlib.sha256(canonical_bytes(content)).hexdigest()
        except InputError as exc:
            raise InputError(f"arguments: {exc}") from None
        return IntentRequest(
            tenant=self.settings.tenant,
            actor=Actor(id=caller.name, kind="agent"),
            action=action,
            target=target,
            params=arguments,
            safety_class=safety,
            idempotency_key=f"mcp-call:{digest}",
        )

    def _govern(self, request: IntentRequest, trace_id: str | None = None) -> Outcome:
        content_key = request.idempotency_key or ""
        rounds_key = (request.actor.id, content_key)
        with self._rounds_lock:
            round_number = self._rounds.get(rounds_key, 0)
        while True:
            keyed = request.model_copy(update={"idempotency_key": f"{content_key}:{round_number}"})
            outcome = self.governor.submit(keyed, trace_id=trace_id)
            if outcome.duplicate and outcome.status in _SETTLED:
                round_number += 1
                continue
            with self._rounds_lock:
                self._rounds[rounds_key] = round_number
            if outcome.status == OutcomeStatus.APPROVED:
                return self._run_approved(outcome)
            return outcome

    def _run_approved(self, outcome: Outcome) -> Outcome:
        state = intent_state(self.governor.story(outcome.tenant, outcome.intent_id))
        # The governor's own at-most-once start of an approved intent (a precondition
        # on the intent's last event), as recovery uses it, with the executor bound here.
        ran = self.governor.runner.start_approved(state)
        return ran if ran is not None else self.governor.outcome(outcome.tenant, outcome.intent_id)

    async def _hold(self, ctx: ServerRequestContext[Any], outcome: Outcome) -> Outcome:
        """Wait a short while for the quorum, telling the client we are alive."""
        with anyio.move_on_after(self.settings.hold_seconds):
            waited = 0.0
            while outcome.status == OutcomeStatus.PENDING_APPROVAL:
                await ctx.session.report_progress(
                    waited, None, f"waiting for approval of intent {outcome.intent_id}"
                )
                await anyio.sleep(_POLL_SECONDS)
                waited += _POLL_SECONDS
                outcome = await anyio.to_thread.run_sync(
                    self.governor.outcome, outcome.tenant, outcome.intent_id
                )
        if outcome.status == OutcomeStatus.APPROVED:
            outcome = await anyio.to_thread.run_sync(self._run_approved, outcome)
        return outcome

    def _answer(self, outcome: Outcome) -> types.CallToolResult:
        state = intent_state(self.governor.story(outcome.tenant, outcome.intent_id))
        meta: dict[str, Any] = {
            "intent_id": outcome.intent_id,
            "intent_hash": state.intent_hash,
            "reasons": _reasons(outcome),
        }
        status = outcome.status
        if status == OutcomeStatus.EXECUTED and isinstance(outcome.result, dict):
            result = types.CallToolResult.model_validate(outcome.result)
            merged = dict(result.meta or {}) | _meta(
                status.value, meta | {"result_hash": outcome.result_hash}
            )
            return result.model_copy(update={"meta": merged})
        if status == OutcomeStatus.PENDING_APPROVAL:
            deadline = state.deadline
            meta["deadline"] = _time(deadline)
            link = console_link(self.settings.public_url, outcome.tenant, outcome.intent_id)
            where = ""
            if link is not None:
                meta["console_url"] = link
                where = f"; approvers decide at {link}"
            return _refusal(
                status.value,
                f"waiting for approval (intent {outcome.intent_id}, hash {state.intent_hash}, "
                f"until {_time(deadline)}): call again with the same arguments once approved, "
                f"or ask {STATUS_TOOL}{where}",
                meta,
            )
        if status in _REFUSED:
            why = "; ".join(meta["reasons"]) or "no policy permits it (default deny)"
            return _refusal(status.value, f"ExoArmur {status.value} this call: {why}", meta)
        if status == OutcomeStatus.OUTCOME_UNKNOWN:
            return _refusal(
                status.value,
                f"intent {outcome.intent_id} started and has not finished (or its process "
                "stopped): whether it acted is unknown, and it will not be run again",
                meta,
            )
        return _refusal(
            status.value, f"the call {status.value}: {outcome.error or ''}".strip(), meta
        )

    def _status(self, arguments: Mapping[str, Any], caller: Principal) -> types.CallToolResult:
        intent_id = arguments.get("intent_id")
        if not isinstance(intent_id, str):
            return _refusal("invalid", "intent_id: required, the id a held call answered", {})
        try:
            events = self.governor.story(self.settings.tenant, intent_id)
        except ExoArmurError:
            events = []
        if not events or events[0].actor.get("id") != caller.name:
            # another actor's intent answers like a missing one
            return _refusal("unknown", f"no intent {intent_id!r} of yours", {})
        outcome = self.governor.outcome(self.settings.tenant, intent_id)
        state = intent_state(events)
        meta = {
            "intent_id": intent_id,
            "intent_hash": state.intent_hash,
            "reasons": _reasons(outcome),
            "deadline": _time(state.deadline),
        }
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text=f"intent {intent_id}: {outcome.status.value}")
            ],
            meta=_meta(outcome.status.value, meta),
        )

    def _always_denied(self, tools: list[str], caller: Principal) -> set[str]:
        """Tools that a forbid policy refuses to this caller whatever the arguments."""
        engine = self.governor.policy_for(self.settings.tenant)
        now = self.governor.clock.now()
        hidden = set()
        for name in tools:
            action = f"mcp.{self.settings.server}.{name}"
            try:
                target, safety = self.settings.rule_for(name, self._tools[name].annotations)
                probe = ActionIntent(
                    intent_id=_PROBE_ID,
                    tenant=self.settings.tenant,
                    actor=Actor(id=caller.name, kind="agent"),
                    action=action,
                    target=target,
                    params={},
                    safety_class=safety,
                    idempotency_key="probe",
                    correlation_id="probe",
                    event_time=now,
                )
            except ValueError:
                continue  # not an action name: every call answers why, the listing keeps it
            decision = engine.decide(probe, "normal", self.governor.gate.policy_context("normal"))
            forbidden = any(
                engine.policies[r].effect == "forbid"
                for r in decision.reasons
                if r in engine.policies
            )
            if decision.verdict == Verdict.DENY and not decision.errors and forbidden:
                hidden.add(name)
        return hidden


def _status_tool() -> types.Tool:
    return types.Tool(
        name=STATUS_TOOL,
        description="The state of an intent a governed call answered (pending approval, "
        "approved, executed, denied…).",
        input_schema={
            "type": "object",
            "properties": {"intent_id": {"type": "string", "description": "the intent's id"}},
            "required": ["intent_id"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    )


def _traceparent(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> str | None:
    """The caller's W3C traceparent: in the call's ``_meta``, else the HTTP request's header."""
    meta = params.meta
    found = meta.get("traceparent") if isinstance(meta, dict) else None
    if isinstance(found, str):
        return found
    headers = getattr(ctx.request, "headers", None)
    header = headers.get("traceparent") if headers is not None else None
    return header if isinstance(header, str) else None


def _meta(status: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{META_PREFIX}status": status} | {f"{META_PREFIX}{k}": v for k, v in fields.items()}


def _refusal(status: str, text: str, fields: Mapping[str, Any]) -> types.CallToolResult:
    # No structured content: clients validate it against the output schema even on errors.
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        is_error=True,
        meta=_meta(status, fields),
    )


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
