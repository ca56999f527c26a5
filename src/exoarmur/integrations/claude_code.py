"""Claude Code's ``PreToolUse`` hook: its built-in tools (Bash, Edit, …) governed as intents.

Claude Code runs the tool itself; ExoArmur decides and records. The answer
is the hook protocol's own ``hookSpecificOutput`` with ``permissionDecision``
``allow``, ``deny`` (with the reasons) or ``ask`` (the intent waits for
approval). Used by ``exoarmur hook claude-code`` (stdin → stdout) and by
``POST /v1/hooks/claude-code``; both go through :func:`decide_hook`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ..approvals import intent_state
from ..errors import ConfigError, IntentError
from ..model.decision import Outcome, OutcomeStatus
from ..model.intent import TOKEN_PATTERN, IntentRequest, SafetyClass, parse_intent
from ..pipeline import Governor
from ..principals import Principal
from .reasons import refusal_reasons

EVENT: Final = "PreToolUse"
#: how much harm each kind of built-in tool can do; ``[claude_code] classes`` overrides
DEFAULT_CLASSES: Final[Mapping[str, SafetyClass]] = {
    "Read": SafetyClass.A0,
    "Glob": SafetyClass.A0,
    "Grep": SafetyClass.A0,
    "LS": SafetyClass.A0,
    "NotebookRead": SafetyClass.A0,
    "TodoWrite": SafetyClass.A0,
    "Edit": SafetyClass.A1,
    "MultiEdit": SafetyClass.A1,
    "NotebookEdit": SafetyClass.A1,
    "Write": SafetyClass.A2,
    "Bash": SafetyClass.A2,
}
_TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,100}$")
_PATH_FIELDS: Final = ("file_path", "notebook_path", "path")


def tool_classes(config: Mapping[str, Any]) -> dict[str, SafetyClass]:
    """The default classes, overridden by ``[claude_code] classes = {Bash = "A3"}``."""
    section = config.get("claude_code", {})
    if not isinstance(section, dict):
        raise ConfigError("claude_code: must be a table")
    unknown = sorted(set(section) - {"classes"})
    if unknown:
        raise ConfigError(f"claude_code: field {unknown[0]!r}: unknown (known: ['classes'])")
    raw = section.get("classes", {})
    if not isinstance(raw, dict):
        raise ConfigError("claude_code: field 'classes': must be a table of tool = class")
    classes = dict(DEFAULT_CLASSES)
    for tool, value in raw.items():
        try:
            classes[str(tool)] = SafetyClass(value)
        except ValueError:
            raise ConfigError(
                f"claude_code.classes.{tool}: {value!r} is not one of A0-A3"
            ) from None
    return classes


def hook_intent(
    document: object, tenant: str, principal: Principal, classes: Mapping[str, SafetyClass]
) -> IntentRequest:
    """The intent for one hook input; :class:`IntentError` names the field that is wrong."""
    if not isinstance(document, dict):
        raise IntentError([("hook input", "must be a JSON object")])
    event = document.get("hook_event_name", EVENT)
    if event != EVENT:
        raise IntentError([("hook_event_name", f"must be {EVENT!r}, got {event!r}")])
    tool = document.get("tool_name")
    if not isinstance(tool, str) or not _TOOL_NAME.match(tool):
        raise IntentError([("tool_name", "required: a tool name (letters, digits, '_', '-')")])
    tool_input = document.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise IntentError([("tool_input", "must be a JSON object")])
    session = document.get("session_id")
    use_id = document.get("tool_use_id")
    key = None
    if isinstance(session, str) and isinstance(use_id, str):
        # One tool use is one intent: a hook delivered twice is a duplicate.
        key = f"claude-code:{session}:{use_id}"[:256]
    return parse_intent(
        {
            "tenant": tenant,
            "actor": {"id": principal.name, "kind": "agent"},
            "action": f"claude-code.{tool}",
            "target": _target(tool_input, document.get("cwd")),
            "params": tool_input,
            "safety_class": classes.get(tool, SafetyClass.A2).value,
            "idempotency_key": key if key and re.match(TOKEN_PATTERN, key) else None,
        }
    )


def _target(tool_input: Mapping[str, Any], cwd: object) -> str:
    for name in _PATH_FIELDS:
        value = tool_input.get(name)
        if isinstance(value, str) and re.match(TOKEN_PATTERN, value) and len(value) <= 1024:
            return value
    if isinstance(cwd, str) and re.match(TOKEN_PATTERN, cwd) and len(cwd) <= 1024:
        return cwd
    return "claude-code"


def decide_hook(
    governor: Governor,
    principal: Principal,
    tenant: str,
    document: object,
    classes: Mapping[str, SafetyClass],
    trace_id: str | None = None,
) -> dict[str, Any]:
    """Submit the hook's intent and answer in the hook protocol's output format."""
    intent = hook_intent(document, tenant, principal, classes)
    outcome = governor.submit(intent, trace_id=trace_id)
    return hook_answer(outcome, intent_state(governor.story(tenant, outcome.intent_id)).intent_hash)


def hook_answer(outcome: Outcome, intent_hash: str) -> dict[str, Any]:
    status = outcome.status
    where = f"ExoArmur intent {outcome.intent_id} ({intent_hash})"
    if status in (OutcomeStatus.DECIDED, OutcomeStatus.APPROVED, OutcomeStatus.EXECUTED):
        decision, reason = "allow", f"allowed by policy: {where}"
    elif status == OutcomeStatus.PENDING_APPROVAL:
        decision = "ask"
        reason = f"{where} waits for approval by ExoArmur approvers"
    else:
        reasons = refusal_reasons(outcome)
        why = "; ".join(reasons) or "no policy permits it (default deny)"
        decision, reason = "deny", f"{where} {status.value}: {why}"
    return {
        "hookSpecificOutput": {
            "hookEventName": EVENT,
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }
