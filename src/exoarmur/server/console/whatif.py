"""The console's replay and what-if page for one intent: read-only, nothing written.

The recorded decision, whether replay reproduces it from the ledger alone,
and the same intent decided again (on the control state and time it was
recorded with) by the bundle in force now or by a candidate pasted in the
form. It runs the what-if code of :mod:`exoarmur.replay.whatif` and the
policy tooling's ``explain``; it records nothing, not even the candidate.
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response

from ...errors import InputError, NotFound
from ...model.event import DECISION_RECORDED, INTENT_RECORDED
from ...pipeline import Governor
from ...policy.bundle import MAX_POLICY_BYTES, PolicyBundle
from ...policy.engine import PolicyEngine
from ...policy.tooling import explain
from ...replay import replay
from ...replay.whatif import redecide
from ..access import Right, permits
from .pages import (
    MAX_FORM_BYTES,
    _caller,
    _check_csrf,
    _form,
    _page,
    _run,
    _session,
    _tenant,
    router,
)
from .sessions import Session

ULID: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
#: the candidate's file name in its one-file bundle (what the page shows it decided by)
CANDIDATE_FILE: Final = "candidate.cedar"


def _intent_id(intent_id: str) -> str:
    if not ULID.fullmatch(intent_id):
        raise InputError("intent_id: not an intent id (a ULID)")
    return intent_id


def _candidate(text: str) -> PolicyEngine:
    if not text.strip():
        raise InputError("policy: paste the candidate's Cedar text")
    return PolicyEngine(PolicyBundle(((CANDIDATE_FILE, text),), None))


def _whatif_context(
    request: Request, session: Session, tenant: str, intent_id: str, candidate: str | None
) -> dict[str, Any]:
    caller = _caller(request, session)
    caller.require(Right.READ_LEDGER, tenant)
    governor: Governor = caller.governor
    store = governor.ledger.store
    story = store.events_for_intent(tenant, intent_id)
    if not story or story[0].type != INTENT_RECORDED:
        raise NotFound(f"no intent {intent_id} in tenant {tenant}")
    recorded = story[0]
    if candidate is None:
        engine, source = governor.policy_for(tenant), "the policy in force now"
    else:
        caller.require(Right.EXPLAIN_POLICY, tenant)
        engine, source = _candidate(candidate), "the candidate policy"
    decided = next((e for e in story if e.type == DECISION_RECORDED), None)
    posture = decided.payload.get("posture", "normal") if decided is not None else "normal"
    redecision = redecide(store, tenant, intent_id, engine)
    replayed = replay(store, tenant, correlation=recorded.correlation_id)
    divergences = [d for d in replayed.divergences if d.intent_id in (intent_id, None)]
    return {
        "tenant": tenant,
        "intent": redecision.intent,
        "intent_hash": recorded.payload["intent_hash"],
        "trace_id": recorded.payload.get("trace_id"),
        "posture": posture,
        "recorded": redecision.recorded,
        "redecided": redecision.redecided,
        "changed": redecision.changed,
        "policy_hash": redecision.candidate_hash,
        "source": source,
        "explained": explain(engine, redecision.intent, posture),
        "divergences": divergences,
        "candidate": candidate or "",
        "may_paste": permits(session.principal, Right.EXPLAIN_POLICY, tenant),
    }


@router.get("/tenants/{tenant}/intents/{intent_id}/replay")
async def whatif_page(request: Request, tenant: str, intent_id: str) -> Response:
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    wanted = _intent_id(intent_id)
    context = await _run(lambda: _whatif_context(request, session, chosen, wanted, None))
    return _page(request, "whatif.html", session, **context)


@router.post("/tenants/{tenant}/intents/{intent_id}/replay")
async def whatif_candidate(request: Request, tenant: str, intent_id: str) -> Response:
    """The same page under a pasted candidate: a form post (CSRF) that writes nothing."""
    form = await _form(request, MAX_FORM_BYTES + MAX_POLICY_BYTES)
    session = _session(request)
    _check_csrf(session, form)
    chosen = _tenant(request, session, tenant)
    assert chosen is not None
    wanted = _intent_id(intent_id)
    text = form.get("policy", "")
    context = await _run(lambda: _whatif_context(request, session, chosen, wanted, text))
    return _page(request, "whatif.html", session, **context)
