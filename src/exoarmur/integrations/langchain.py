"""LangChain tools behind ExoArmur: ``govern_tools(tools, via, …)``.

Each tool comes back as a ``StructuredTool`` with the same name, description
and argument schema, sync and async; calling it submits an intent
(``<prefix><tool name>``, the arguments as params) and runs the original tool
only when ExoArmur allows it, recording its start before and its end after.
A denial, a wait for approval or a block is the tool's output: text the model
reads and can act on (call again unchanged once approved). Needs the
``langchain`` extra (``langchain-core``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from .governed import CallRefused, Governance, Target, Via, target_of

__all__ = ["govern_tools"]


def govern_tools(
    tools: Iterable[BaseTool],
    via: Via,
    *,
    tenant: str,
    actor: str | None = None,
    safety_class: str | Mapping[str, str] = "A2",
    target: Target | Mapping[str, Target] | None = None,
    action_prefix: str = "langchain.",
) -> list[BaseTool]:
    """The tools, each behind ExoArmur.

    ``safety_class`` and ``target`` are one value for every tool or a mapping
    by tool name (default: A2, and the tool's name as the target); a target
    may be a function of the call's arguments. ``actor`` names the caller
    when ``via`` is a governor in this process.
    """
    governance = Governance(via, tenant=tenant, actor=actor)
    return [
        _governed(
            tool,
            governance,
            _pick(safety_class, tool.name, "A2"),
            _pick(target, tool.name, None) or tool.name,
            action_prefix,
        )
        for tool in tools
    ]


def _pick(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, default)
    return default if value is None else value


def _governed(
    tool: BaseTool, governance: Governance, safety_class: str, target: Target, prefix: str
) -> BaseTool:
    action = f"{prefix}{tool.name}"

    def run(**arguments: Any) -> Any:
        intent = governance.intent(action, target_of(target, arguments), safety_class, arguments)
        try:
            return governance.call(intent, lambda: tool.invoke(arguments))
        except CallRefused as refused:
            return refused.refusal.text

    async def arun(**arguments: Any) -> Any:
        intent = governance.intent(action, target_of(target, arguments), safety_class, arguments)
        try:
            return await governance.acall(intent, lambda: tool.ainvoke(arguments))
        except CallRefused as refused:
            return refused.refusal.text

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        infer_schema=False,
    )
