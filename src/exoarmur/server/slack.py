"""Slack's interaction callback: a signed button press becomes a vote of the bound principal.

An unsigned or stale request is 401 and writes nothing: whoever sent it is
unknown, and a forger must not be able to grow the ledger. A click Slack
signed but by a Slack user bound to no active principal is 403 and recorded
as ``access.refused`` (source ``slack:<user id>``) within the same refusal
budget as strangers' 401s, so a person clicking in a loop cannot either. A
bound principal's vote takes the one vote path, whose own refusals (a
principal not acting for the tenant, a role that may not vote, a second
vote) are recorded as they are for every other face; the first two are 403.
Slack shows the answer's ``text`` to the person who clicked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from ..approvals import Vote
from ..errors import InputError, NotFound, PermissionDenied
from ..integrations.slack import (
    REASON_BLOCK,
    SlackBindings,
    SlackSettings,
    SlackUnavailable,
    parse_click,
    verify_request,
)
from .audit import RefusalAudit
from .errors import error_response
from .limits import write_slot
from .schemas import problems

router = APIRouter(prefix="/v1/integrations/slack", tags=["integrations"])
_ASK_WHY = "Say why in the form that opened: the rejection is recorded when you submit it."


@router.post(
    "/interactions",
    summary="Slack interaction callback: Approve / Reject buttons",
    responses=problems(401, 403, 404, 409, 422, 503),
    dependencies=[Depends(write_slot)],
)
async def slack_interactions(request: Request) -> Any:
    """Verify Slack's signature, map the Slack user to its bound principal, record the vote."""
    settings: SlackSettings | None = getattr(request.app.state, "slack", None)
    if settings is None:
        raise NotFound("Slack approvals are not configured ([slack] in config.toml)")
    governor = request.app.state.governor
    body = await request.body()
    verify_request(settings.secret(), request.headers, body, governor.clock.now())
    click = parse_click(body)
    bindings: SlackBindings = request.app.state.slack_bindings
    name = bindings.current().get(click.slack_user)
    principal = None if name is None else governor.principals().get(name)
    if principal is None:
        detail = f"Slack user {click.slack_user} is bound to no active principal"
        audit: RefusalAudit = request.app.state.refusals
        source = request.client.host if request.client else "unknown"
        attempted = f"slack {click.vote.value} {click.tenant}/{click.intent_id}"
        key = f"slack:{click.slack_user}"
        await run_in_threadpool(audit.refuse, source, key, attempted, detail)
        raise PermissionDenied(detail)
    if click.vote == Vote.REJECT and click.reason is None:
        try:
            opened = await run_in_threadpool(settings.open_reason_modal, click)
        except SlackUnavailable as exc:
            return error_response(503, str(exc), headers={"Retry-After": "1"})
        if opened:  # the vote comes with the reason, when the form is submitted
            return {"response_type": "ephemeral", "replace_original": False, "text": _ASK_WHY}
    reason = click.reason or f"{click.vote.value} from Slack (user {click.slack_user})"
    try:
        result = await run_in_threadpool(
            governor.vote,
            click.tenant,
            click.intent_id,
            principal,
            click.vote,
            reason,
            click.intent_hash,
        )
    except InputError as exc:
        if click.reason is None:
            raise
        return {"response_action": "errors", "errors": {REASON_BLOCK: str(exc)}}
    if result.forbidden:  # recorded as approval.refused by the vote path
        raise PermissionDenied(result.message)
    if click.reason is not None:  # a modal: close it, or say in it why the vote was refused
        if result.accepted:
            return {}
        return {"response_action": "errors", "errors": {REASON_BLOCK: result.message}}
    verdict = "counted" if result.accepted else "refused"
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": f"Your {click.vote.value} as {principal.name} was {verdict}: {result.message} "
        f"(intent {click.intent_id} is {result.status.value})",
    }


def install(app: Any, settings: SlackSettings | None) -> None:
    """Enable the callback (it answers 404 until ``[slack]`` is configured)."""
    app.state.slack = settings
    app.state.slack_bindings = SlackBindings(app.state.governor)
