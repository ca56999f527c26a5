"""Policy over HTTP: what ``exoarmur policy activate``, ``explain`` and ``test`` do.

A bundle travels as its files' text (``files``: name → Cedar text, and an
optional ``schema``), the content a ``policy.activated`` event records, so
the hash answered here is the one the ledger holds. Activating for a tenant
is an operator's or an admin's act; for every tenant without its own, an
admin's. Explaining and testing decide nothing and write nothing: they run
the pure tooling of :mod:`exoarmur.policy.tooling`, over the bundle given or
the one in force for the tenant named.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..errors import InputError, IntentError, PolicyError
from ..model.intent import TENANT_PATTERN, parse_intent
from ..policy.bundle import MAX_POLICY_BYTES, PolicyBundle
from ..policy.engine import PolicyEngine
from ..policy.tooling import cases_of, complete_intent, explain, run_cases
from .access import Caller, Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import read_slot, write_slot
from .schemas import EventRecord, problems

router = APIRouter(prefix="/v1/policy", tags=["policy"], route_class=JSONBodyRoute)

CEDAR_FILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,122}\.cedar$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleBody(_Request):
    """A policy bundle as a directory would hold it: ``.cedar`` files and an optional schema."""

    files: dict[StrictStr, StrictStr] = Field(
        min_length=1,
        description="File name (`*.cedar`) → Cedar policy text; decided in name order.",
    )
    schema_text: StrictStr | None = Field(
        default=None, alias="schema", description="The `schema.cedarschema` text, if any."
    )

    def bundle(self) -> PolicyBundle:
        total = 0
        for name, text in self.files.items():
            if not re.match(CEDAR_FILE_PATTERN, name):
                raise InputError(f"bundle.files: {name!r} does not match {CEDAR_FILE_PATTERN}")
            total += len(text)
        if total > MAX_POLICY_BYTES:
            raise InputError(f"bundle.files: exceed {MAX_POLICY_BYTES} characters in all")
        return PolicyBundle(tuple(sorted(self.files.items())), self.schema_text)


class ActivateRequest(_Request):
    bundle: BundleBody
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        max_length=63,
        description="Only for this tenant; omit for every tenant without its own (admin only).",
    )


class ActivateAnswer(BaseModel):
    policy_hash: str
    tenant: str | None
    files: int
    event: EventRecord


class ExplainRequest(_Request):
    intent: dict[str, Any] = Field(description="An intent, as `POST /v1/intents` takes it.")
    bundle: BundleBody | None = Field(
        default=None, description="Explain under this bundle; omit for the one in force."
    )
    posture: str = Field(default="normal", min_length=1, max_length=64)


class CaseRunRequest(_Request):
    cases: dict[str, Any] = Field(
        description="A case document, as a case file holds it: `defaults` and `cases`."
    )
    bundle: BundleBody | None = Field(
        default=None, description="The bundle under test; omit to test the one in force."
    )
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        max_length=63,
        description="Whose bundle in force to test (required when no bundle is given).",
    )


def _engine(caller: Caller, bundle: BundleBody | None, tenant: str) -> PolicyEngine:
    """The engine of the given bundle (a bad one is the caller's 422), else the one in force."""
    if bundle is None:
        return caller.governor.policy_for(tenant)
    try:
        return PolicyEngine(bundle.bundle())
    except PolicyError as exc:
        raise InputError(f"bundle: {exc}") from None


@router.post(
    "/activate",
    summary="Activate a policy bundle",
    response_model=ActivateAnswer,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def activate(body: ActivateRequest, caller: CallerDep) -> ActivateAnswer:
    """Record the bundle (full text, schema, hash) as the one in force, like `policy activate`."""
    caller.require(Right.ACTIVATE_POLICY, body.tenant)
    bundle = body.bundle.bundle()
    try:
        PolicyEngine(bundle)  # refuse what the engine would refuse, before recording it
    except PolicyError as exc:
        raise InputError(f"bundle: {exc}") from None
    event = caller.governor.activate_policy(bundle, tenant=body.tenant, actor=caller.principal.name)
    return ActivateAnswer(
        policy_hash=event.payload["policy_hash"],
        tenant=body.tenant,
        files=len(bundle.files),
        event=EventRecord.of(event),
    )


@router.post(
    "/explain",
    summary="Explain one intent's verdict",
    response_model=dict[str, Any],
    responses={
        200: {"description": "The verdict, the Cedar request and the policies that decided."},
        **problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    },
    dependencies=[Depends(read_slot)],
)
def explain_intent(body: ExplainRequest, caller: CallerDep) -> dict[str, Any]:
    """Why an intent gets its verdict, under the bundle given or the one in force."""
    caller.has_role_for(Right.EXPLAIN_POLICY)
    try:
        request = parse_intent(body.intent)
    except IntentError as exc:
        field, rule = exc.problems[0]
        raise InputError(f"intent.{field}: {rule}") from None
    caller.require(Right.EXPLAIN_POLICY, request.tenant)
    engine = _engine(caller, body.bundle, request.tenant)
    # "What if this came in now": the injected clock fills a missing time.
    intent = complete_intent(request, caller.governor.clock.now())
    # what the posture tightens, as this server's gate configuration sets it (as a submit sees it)
    tightened = caller.governor.gate.policy_context(body.posture)
    explanation = explain(engine, intent, body.posture, tightened)
    return explanation.to_json() | {"bundle_hash": engine.policy_hash}


@router.post(
    "/test",
    summary="Run policy test cases",
    response_model=dict[str, Any],
    responses={
        200: {"description": "Each case's result; `failed` counts the cases that failed."},
        **problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    },
    dependencies=[Depends(read_slot)],
)
def run_policy_cases(body: CaseRunRequest, caller: CallerDep) -> dict[str, Any]:
    """Run cases against the bundle given or the tenant's bundle in force; writes nothing."""
    caller.has_role_for(Right.EXPLAIN_POLICY)
    if body.bundle is None and body.tenant is None:
        raise InputError("tenant: is required when no bundle is given")
    if body.tenant is not None:
        caller.require(Right.EXPLAIN_POLICY, body.tenant)
    engine = _engine(caller, body.bundle, body.tenant or "")
    cases = cases_of(body.cases, "cases", "request")
    results = run_cases(engine, cases, caller.governor.gate.policy_context)
    failed = sum(1 for r in results if not r.passed)
    return {
        "bundle_hash": engine.policy_hash,
        "passed": len(results) - failed,
        "failed": failed,
        "cases": [result.to_json() for result in results],
    }
