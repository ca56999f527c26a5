"""Influences (shadows, trust) only raise: one property per "never"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.evidence_levels import (
    LEVELS,
    EvidenceFold,
    EvidenceRefs,
    Influence,
    TrustInfluence,
    rank,
    required_level,
)
from exoarmur.gate import Controls, GateConfig
from exoarmur.gate import check as gate_check
from exoarmur.model.decision import Decision, Verdict
from exoarmur.model.intent import ActionIntent, Actor, SafetyClass

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
levels = st.sampled_from(LEVELS)
influences = st.lists(
    st.builds(Influence, st.sampled_from(["shadow:k", "trust:x"]), levels, st.just("why")),
    max_size=4,
)
_STRICT = {
    Verdict.ALLOW: 0,
    Verdict.REQUIRE_APPROVAL: 1,
    Verdict.PENDING_EVIDENCE: 2,
    Verdict.DENY: 3,
}


class Fixed:
    def __init__(self, found: Sequence[Influence]) -> None:
        self.found = found

    def influences(
        self, intent: ActionIntent, refs: EvidenceRefs, fold: EvidenceFold, position: int
    ) -> Sequence[Influence]:
        return self.found


def _intent(klass: SafetyClass, refs: list[str]) -> ActionIntent:
    return ActionIntent(
        intent_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
        tenant="acme",
        actor=Actor(id="agent-1", kind="agent"),
        action="ticket.create",
        target="queue/soc",
        params={"evidence_refs": {"observations": refs}} if refs else {},
        safety_class=klass,
        idempotency_key="k",
        correlation_id="c",
        event_time=NOW,
    )


@settings(deadline=None, max_examples=50)
@given(levels, influences)
def test_an_influence_never_lowers_the_requirement_below_policy(
    minimum: str, found: list[Influence]
) -> None:
    required = required_level(minimum, found)
    assert rank(required) >= rank(minimum)
    assert all(rank(required) >= rank(i.level) for i in found)


@settings(deadline=None, max_examples=50)
@given(
    st.sampled_from([Verdict.ALLOW, Verdict.REQUIRE_APPROVAL, Verdict.DENY]),
    st.sampled_from(list(SafetyClass)),
    levels,
    st.sampled_from(["wait", "deny"]),
    st.integers(0, 3),
    st.lists(st.sampled_from(["o1", "o2", "o3"]), unique=True).map(sorted),
    st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), st.sampled_from(["a", "b"]))),
    influences,
)
def test_an_influence_never_allows_never_lowers_a_quorum_never_starts_anything(
    verdict: Verdict,
    klass: SafetyClass,
    minimum: str,
    unmet: str,
    quorum: int,
    refs: list[str],
    observed: list[tuple[str, str]],
    found: list[Influence],
) -> None:
    tenant = Controls("acme")
    for oid, source in observed:
        tenant.evidence.apply(
            "observation.recorded", {"observation": {"observation_id": oid, "source": source}}, None
        )
    obligations = {"evidence": minimum, "evidence_unmet": unmet}
    if quorum:
        obligations["approval"] = str(quorum)
    decision = Decision(verdict=verdict, obligations=obligations, policy_hash="sha256:p")
    intent = _intent(klass, refs)
    config = GateConfig(evidence_enforced=True)

    def judged(extra: Sequence[Fixed]) -> Decision:
        return gate_check(
            intent,
            decision,
            system=Controls("_system"),
            tenant=tenant,
            config=config,
            now=NOW,
            influences=extra,
        )

    plain, raised = judged(()), judged((Fixed(found),))
    # never turns deny or pending into allow (nor anything into something looser)
    assert _STRICT[raised.verdict] >= _STRICT[plain.verdict]
    # never reduces the quorum
    assert (
        int(raised.obligations.get("approval", "0")) >= int(plain.obligations.get("approval", "0"))
        or raised.verdict == Verdict.DENY
    )
    # never triggers an execution: only an allow starts one, and only if it was one already
    if raised.verdict == Verdict.ALLOW:
        assert plain.verdict == Verdict.ALLOW


def _history(acted: int, reverted: int) -> EvidenceFold:
    fold = EvidenceFold()
    fold.apply(
        "belief.formed",
        {"belief": {"belief_id": "b1", "detector": "stuffing", "sources": ["idp"]}},
        None,
    )
    for n in range(acted):
        intent = {"intent_id": f"i{n}", "params": {"evidence_refs": {"beliefs": ["b1"]}}}
        fold.apply("intent.recorded", {"intent": intent}, f"i{n}")
    for n in range(reverted):
        fold.apply("plan.compensated", {"intent_id": f"i{n}"}, None)
        fold.apply("containment.reverted", {"intent_id": f"i{n}", "cause": "manual"}, None)
    fold.apply("containment.reverted", {"intent_id": "i0", "cause": "expired"}, None)
    return fold


def test_trust_is_the_share_of_actions_that_stood_and_low_trust_asks_for_more() -> None:
    fold = _history(acted=4, reverted=3)
    scores = {(t.kind, t.name): (t.acted, t.reverted, t.text) for t in fold.trust()}
    assert scores == {
        ("detector", "stuffing"): (4, 3, "0.3333"),
        ("source", "idp"): (4, 3, "0.3333"),
    }
    (raised, _) = TrustInfluence().influences(
        _intent(SafetyClass.A1, []), EvidenceRefs(beliefs=("b1",)), fold, 0
    )
    assert raised.level == "corroborated"
    assert raised.origin == "trust:detector:stuffing"
    assert (
        TrustInfluence().influences(
            _intent(SafetyClass.A1, []), EvidenceRefs(beliefs=("b1",)), _history(4, 0), 0
        )
        == []
    )


@settings(deadline=None, max_examples=50)
@given(st.integers(0, 30), st.integers(0, 30))
def test_trust_is_deterministic_bounded_and_only_ever_raises(acted: int, undone: int) -> None:
    reverted = min(acted, undone)
    fold = _history(acted, reverted)
    again = _history(acted, reverted)
    assert [t.to_canonical() for t in fold.trust()] == [t.to_canonical() for t in again.trust()]
    for score in fold.trust():
        assert 0 <= score.score <= 10000
    for influence in TrustInfluence().influences(
        _intent(SafetyClass.A1, []), EvidenceRefs(beliefs=("b1",)), fold, 0
    ):
        assert rank(influence.level) > rank("none")


@settings(deadline=None, max_examples=50)
@given(
    st.sampled_from([Verdict.ALLOW, Verdict.REQUIRE_APPROVAL, Verdict.DENY]),
    levels,
    st.integers(0, 3),
    st.integers(0, 12),
    st.integers(0, 12),
)
def test_low_trust_never_allows_never_lowers_a_quorum_never_lowers_the_level(
    verdict: Verdict, minimum: str, quorum: int, acted: int, undone: int
) -> None:
    obligations = {"evidence": minimum} | ({"approval": str(quorum)} if quorum else {})
    decision = Decision(verdict=verdict, obligations=obligations, policy_hash="sha256:p")
    intent = _intent(SafetyClass.A1, []).model_copy(
        update={"params": {"evidence_refs": {"beliefs": ["b1"]}}}
    )

    def judged(fold: EvidenceFold) -> Decision:
        tenant = Controls("acme")
        tenant.evidence = fold
        return gate_check(
            intent,
            decision,
            system=Controls("_system"),
            tenant=tenant,
            config=GateConfig(evidence_enforced=True),
            now=NOW,
        )

    neutral, judged_by_history = judged(_history(0, 0)), judged(_history(acted, min(acted, undone)))
    assert _STRICT[judged_by_history.verdict] >= _STRICT[neutral.verdict]
    if judged_by_history.verdict != Verdict.DENY:
        assert int(judged_by_history.obligations.get("approval", "0")) >= int(
            neutral.obligations.get("approval", "0")
        )
    for which in (neutral, judged_by_history):
        required = (which.gate or {}).get("evidence", {}).get("required")
        if required is not None:
            assert rank(required) >= rank(minimum)
