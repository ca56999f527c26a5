"""What a delivery's body says: ExoArmur's JSON, or a Slack Block Kit message.

The JSON body carries the ledger event as recorded (its canonical content
and leaf hash, so a receiver can ask for its inclusion proof). A Slack body
shows untrusted text (actions, targets, reasons) as ``plain_text`` only, so
nothing an agent wrote can format, mention or link in the channel; an
``approval.requested`` message carries Approve / Reject buttons bound to the
intent's hash, which the interaction endpoint checks again.
"""

from __future__ import annotations

from typing import Any, Final

from ...approvals.book import IntentState
from ...encoding import canonical_bytes, format_time
from ...model.event import APPROVAL_REQUESTED, Event

BODY_FORMAT: Final = "exoarmur.webhook/v1"
APPROVE_ACTION: Final = "exoarmur.approve"
REJECT_ACTION: Final = "exoarmur.reject"
#: Slack's limit on a plain_text object
_TEXT_LIMIT: Final = 3000


def exoarmur_body(event: Event, delivery_id: str, webhook: str, console_url: str | None) -> bytes:
    body: dict[str, Any] = {
        "format": BODY_FORMAT,
        "delivery_id": delivery_id,
        "webhook": webhook,
        "event": event.to_json(),
        "leaf_hash": event.leaf_hash.hex(),
    }
    if console_url is not None:
        body["console_url"] = console_url
    return canonical_bytes(body)


def _plain(text: str) -> dict[str, Any]:
    cut = text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"
    return {"type": "plain_text", "text": cut, "emoji": False}


def summary(event: Event, state: IntentState | None) -> str:
    """One line saying what happened, for a chat channel."""
    where = f"[{event.tenant}]"
    if state is not None:
        intent = state.intent
        what = f"{intent.action} on {intent.target} ({intent.safety_class.value})"
        return f"{where} {event.type}: {what}, intent {intent.intent_id}"
    details = ", ".join(f"{k}={v}" for k, v in sorted(event.payload.items()) if isinstance(v, str))
    return f"{where} {event.type}" + (f": {details}" if details else "")


def slack_body(event: Event, state: IntentState | None, console_url: str | None) -> bytes:
    buttons = event.type == APPROVAL_REQUESTED
    return canonical_bytes(slack_message(event, state, console_url, buttons=buttons))


def slack_message(
    event: Event, state: IntentState | None, console_url: str | None, *, buttons: bool
) -> dict[str, Any]:
    """``text`` and ``blocks`` saying what ``event`` did; the vote buttons while ``buttons``."""
    text = summary(event, state)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _plain(text)}]
    if state is not None:
        intent = state.intent
        deadline = event.payload.get("deadline") or (
            "-" if state.deadline is None else format_time(state.deadline)
        )
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _plain(f"actor: {intent.actor.id}"),
                    _plain(f"quorum: {state.quorum}"),
                    _plain(f"intent hash: {state.intent_hash}"),
                    _plain(f"deadline: {deadline}"),
                ],
            }
        )
    if buttons and state is not None:
        value = canonical_bytes(
            {"tenant": event.tenant, "intent_id": state.intent.intent_id, "hash": state.intent_hash}
        ).decode()
        blocks.append(
            {
                "type": "actions",
                "block_id": "exoarmur.vote",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ACTION,
                        "style": "primary",
                        "text": _plain("Approve"),
                        "value": value,
                    },
                    {
                        "type": "button",
                        "action_id": REJECT_ACTION,
                        "style": "danger",
                        "text": _plain("Reject"),
                        "value": value,
                    },
                ],
            }
        )
    if state is not None and event.type != APPROVAL_REQUESTED:
        votes = ", ".join(f"{a.vote.value} by {a.approver}" for a in state.approvals) or "none"
        line = f"status: {state.status.value}; votes: {votes}"
        blocks.append({"type": "section", "text": _plain(line)})
    if console_url is not None:
        blocks.append({"type": "context", "elements": [_plain(f"console: {console_url}")]})
    return {"text": text, "blocks": blocks}
