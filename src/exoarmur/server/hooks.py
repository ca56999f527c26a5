"""Coding agents' tool hooks over HTTP: Claude Code's ``PreToolUse`` as an ``http`` hook.

The same decision as ``exoarmur hook claude-code``: the hook input becomes
an intent of the authenticated agent, and the answer is the hook protocol's
own ``hookSpecificOutput``. A refusal by policy is an answer (200, ``deny``),
never an error status: Claude Code treats a failed HTTP hook as non-blocking.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..integrations.claude_code import DEFAULT_CLASSES, decide_hook
from ..model.intent import TENANT_PATTERN
from ..model.trace import trace_id_of
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import intent_document
from .limits import write_slot
from .schemas import problems

router = APIRouter(prefix="/v1/hooks", tags=["hooks"], route_class=JSONBodyRoute)


class PreToolUseDecision(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    hook_event_name: Literal["PreToolUse"] = Field(alias="hookEventName")
    permission_decision: Literal["allow", "deny", "ask"] = Field(alias="permissionDecision")
    permission_decision_reason: str = Field(alias="permissionDecisionReason")


class HookAnswer(BaseModel):
    """Claude Code's hook output: ``ask`` means the intent waits for ExoArmur approvers."""

    model_config = ConfigDict(populate_by_name=True)

    hook_specific_output: PreToolUseDecision = Field(alias="hookSpecificOutput")


@router.post(
    "/claude-code",
    summary="Answer a Claude Code PreToolUse hook",
    response_model=HookAnswer,
    response_model_by_alias=True,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def claude_code_hook(
    request: Request,
    caller: CallerDep,
    document: Annotated[Any, Depends(intent_document)],
    tenant: Annotated[
        str, Query(pattern=TENANT_PATTERN, max_length=63, description="The tenant it acts in.")
    ],
) -> dict[str, Any]:
    """Govern one tool use of Claude Code as the authenticated agent: allow, deny or ask."""
    caller.has_role_for(Right.SUBMIT)
    caller.require(Right.SUBMIT, tenant)
    # `exoarmur serve` sets the classes from config.toml [claude_code]
    classes = getattr(request.app.state, "hook_classes", DEFAULT_CLASSES)
    trace_id = trace_id_of(request.headers.get("traceparent"))  # malformed: ignored
    return decide_hook(caller.governor, caller.principal, tenant, document, classes, trace_id)
