"""OpenAI Agents SDK function tools behind ExoArmur.

:func:`govern_function_tool` wraps a ``FunctionTool``: same name, description
and JSON schema; its invocation submits an intent (``<prefix><tool name>``,
the arguments as params) and runs the original only when ExoArmur allows it,
its start recorded before and its end after. A denial, a wait for approval or
a block is returned as the tool's output, text the model reads and acts on.

:func:`tool_guardrails` does the same through the SDK's tool guardrails, for
tools you would rather not wrap: the input guardrail decides and records the
start (or rejects the call with the same text), the output guardrail records
the end. The wrapper is the stronger form: a tool that raises with no failure
function skips output guardrails, so its end is never reported and its story
stays open (started, not finished). Needs the ``openai-agents`` extra.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from agents import (
    FunctionTool,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from agents.tool_context import ToolContext

from ..errors import InputError
from ..model.decision import Outcome
from .governed import CallRefused, Governance, Target, Ticket, Via, target_of

__all__ = ["govern_function_tool", "tool_guardrails"]

PREFIX = "openai_agents."


def _arguments(raw: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InputError("arguments: the tool call's arguments are not a JSON object")
    return arguments


def _unreadable(exc: InputError) -> str:
    return f"ExoArmur: {exc}. The call did not run; send the arguments as a JSON object."


def _pick(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, default)
    return default if value is None else value


def govern_function_tool(
    tool: FunctionTool,
    via: Via,
    *,
    tenant: str,
    actor: str | None = None,
    safety_class: str = "A2",
    target: Target | None = None,
    action_prefix: str = PREFIX,
) -> FunctionTool:
    """``tool`` behind ExoArmur (a copy: the original is left as it was).

    ``target`` is a string or a function of the call's arguments (default:
    the tool's name); ``actor`` names the caller when ``via`` is a governor
    in this process.
    """
    governance = Governance(via, tenant=tenant, actor=actor)
    action = f"{action_prefix}{tool.name}"
    invoke = tool.on_invoke_tool

    async def governed_invoke(context: ToolContext[Any], raw: str) -> Any:
        try:
            arguments = _arguments(raw)
            intent = governance.intent(
                action, target_of(target or tool.name, arguments), safety_class, arguments
            )
        except InputError as exc:
            return _unreadable(exc)
        try:
            return await governance.acall(intent, lambda: invoke(context, raw))
        except CallRefused as refused:
            return refused.refusal.text

    return dataclasses.replace(tool, on_invoke_tool=governed_invoke)


def tool_guardrails(
    via: Via,
    *,
    tenant: str,
    actor: str | None = None,
    safety_class: str | Mapping[str, str] = "A2",
    target: Target | Mapping[str, Target] | None = None,
    action_prefix: str = PREFIX,
) -> tuple[ToolInputGuardrail[Any], ToolOutputGuardrail[Any]]:
    """An input and an output tool guardrail that govern any function tool they are put on.

    Put both on a tool: ``function_tool(fn, tool_input_guardrails=[i],
    tool_output_guardrails=[o])``. ``safety_class`` and ``target`` are one
    value or a mapping by tool name (default A2 and the tool's name).
    """
    governance = Governance(via, tenant=tenant, actor=actor)
    # Calls allowed and started, by the SDK's call id, until their output is reported.
    started: dict[str, Ticket] = {}

    async def decide(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        context = data.context
        name = context.tool_name
        try:
            arguments = _arguments(context.tool_arguments)
            intent = governance.intent(
                f"{action_prefix}{name}",
                target_of(_pick(target, name, None) or name, arguments),
                _pick(safety_class, name, "A2"),
                arguments,
            )
            ticket = await governance.abegin(intent)
        except InputError as exc:
            return ToolGuardrailFunctionOutput.reject_content(_unreadable(exc))
        except CallRefused as refused:
            return ToolGuardrailFunctionOutput.reject_content(
                refused.refusal.text, output_info=refused.refusal.status.value
            )
        if isinstance(ticket, Outcome):
            # An executor bound at ExoArmur already carried it out: never run it twice.
            return ToolGuardrailFunctionOutput.reject_content(
                f"ExoArmur carried this call out itself; its result: {json.dumps(ticket.result)}",
                output_info="executed",
            )
        started[context.tool_call_id] = ticket
        return ToolGuardrailFunctionOutput.allow(output_info=ticket.intent_id)

    async def report(data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        ticket = started.pop(data.context.tool_call_id, None)
        if ticket is not None:
            await governance.aend(ticket, data.output)
        return ToolGuardrailFunctionOutput.allow()

    return (
        ToolInputGuardrail(guardrail_function=decide, name="exoarmur"),
        ToolOutputGuardrail(guardrail_function=report, name="exoarmur"),
    )
