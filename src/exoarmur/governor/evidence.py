"""Evidence: operators' attestations, and releasing what waited for evidence.

An intent decided ``pending_evidence`` waits until the evidence it references
reaches the level its decision recorded as required. :meth:`Evidence.recheck`
looks again, on the tenant's evidence fold as it is now; when the level is
met it records ``evidence.satisfied`` (with the level met and the position
read, so replay judges it on the same prefix) together with what the held
verdict leads to: an approval request, or the start of its execution. It
never lowers a requirement and never starts what its decision did not allow.
"""

from __future__ import annotations

from collections.abc import Callable

from ..approvals.book import approval_request
from ..errors import Conflict, InputError, PermissionDenied
from ..evidence_levels import (
    EVIDENCE_ATTESTED,
    EVIDENCE_SATISFIED,
    TRUST_SCORED,
    level_met,
    parse_refs,
    rank,
    released,
)
from ..gate import revoked
from ..model.decision import Decision, Outcome, Verdict
from ..model.event import APPROVAL_REQUESTED, DECISION_RECORDED, Event
from ..model.intent import ActionIntent
from ..principals import Principal
from .drafts import Drafts, operator
from .outcomes import outcome_from_events, read_story
from .principals import Principals
from .running import Runner
from .state import ControlState
from .switches import required_reason


class Evidence:
    """Records attestations and releases intents whose evidence has arrived."""

    def __init__(
        self,
        state: ControlState,
        drafts: Drafts,
        runner: Runner,
        approval_window: Callable[[], int],
        principals: Principals,
    ) -> None:
        self.principals = principals
        self.state = state
        self.drafts = drafts
        self.runner = runner
        self.approval_window = approval_window

    def attest(self, tenant: str, intent_id: str, principal: Principal, note: str) -> Event:
        """Record that ``principal`` (from credentials) attests this intent's evidence."""
        note = required_reason(note)
        _, book = self.principals.book()
        if book.get(principal.name) != principal:
            raise PermissionDenied(revoked(principal.name))
        if not principal.may_approve(tenant):
            raise PermissionDenied(
                f"principal {principal.name} may not attest evidence in tenant {tenant}"
            )
        story = read_story(self.state.ledger, tenant, intent_id)
        intent = ActionIntent.from_canonical(story[0].payload["intent"])
        if intent.actor.id == principal.name:
            raise InputError("principal: the intent's own actor cannot attest its evidence")
        payload = {
            "intent_id": intent_id,
            "intent_hash": story[0].payload["intent_hash"],
            "principal": principal.name,
            "note": note,
        }
        draft = self.drafts.for_intent(
            intent, EVIDENCE_ATTESTED, payload, actor=operator(principal.name)
        )
        return self.state.append_one(tenant, draft)

    def record_trust(self, tenant: str, by: str) -> Event:
        """Record ``trust.scored``: every score with its inputs and the log position it read."""
        with self.state.lock:
            fold = self.state.fold(tenant)
            payload = {
                "scores": [t.to_canonical() for t in fold.evidence.trust()],
                "controls": {"tenant": fold.position},
            }
            draft = self.drafts.for_log(tenant, TRUST_SCORED, payload, operator(by))
            return self.state.append_one(tenant, draft)

    def recheck(self, tenant: str) -> list[Outcome]:
        """Release every intent of ``tenant`` whose evidence now meets its requirement."""
        with self.state.lock:
            waiting = sorted(self.state.fold(tenant).evidence.pending)
        return [o for o in (self._release(tenant, i) for i in waiting) if o is not None]

    def _release(self, tenant: str, intent_id: str) -> Outcome | None:
        story = read_story(self.state.ledger, tenant, intent_id)
        if any(e.type == EVIDENCE_SATISFIED for e in story):
            return None
        decided = next(e for e in story if e.type == DECISION_RECORDED)
        decision = Decision.from_canonical(decided.payload["decision"])
        intent = ActionIntent.from_canonical(story[0].payload["intent"])
        intent_hash = story[0].payload["intent_hash"]
        required = (decision.gate or {})["evidence"]["required"]
        with self.state.lock:
            fold = self.state.fold(tenant)
            met = level_met(parse_refs(intent.params), fold.evidence, intent_id, intent_hash)
            position = fold.position
        if rank(met) < rank(required):
            return None
        then = released(decision)
        satisfied = self.drafts.for_intent(
            intent,
            EVIDENCE_SATISFIED,
            {
                "intent_hash": intent_hash,
                "required": required,
                "met": met,
                "controls": {"tenant": position},
                "verdict": then.verdict.value,
            },
        )
        drafts = [satisfied]
        binding = self.runner.binding_for(intent.action)
        if then.verdict == Verdict.REQUIRE_APPROVAL:
            request = approval_request(then, satisfied.process_time, self.approval_window())
            drafts.append(
                self.drafts.for_intent(
                    intent, APPROVAL_REQUESTED, request | {"intent_hash": intent_hash}
                )
            )
        elif then.verdict == Verdict.ALLOW and binding is not None:
            drafts.append(self.runner.start_draft(intent, intent_hash, binding))
        try:
            self.state.append(tenant, drafts, expect=(intent_id, story[-1].seq))
        except Conflict:
            return None  # someone else released it (or it moved on) meanwhile
        if then.verdict == Verdict.ALLOW and binding is not None:
            return self.runner.execute(intent, intent_hash, then, binding)
        return outcome_from_events(read_story(self.state.ledger, tenant, intent_id))
