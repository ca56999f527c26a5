"""The provenance chain of an audit stream: which events a pack holds, and in which stage.

Pure: functions of event objects (each event as the JSON object its
canonical bytes encode), so that export (over a tenant's log), replay
(over a log read back and verified) and the offline verifier (over the
pack's own events) all derive the same chain and hence the same
``evidence_hash``.

An audit stream is a correlation id. Its own events are those with that
correlation. The observations, beliefs and shadows an action rests on join
it through references, not through the correlation:

- an intent's ``params.evidence_refs`` names observation and belief ids;
- a belief so named brings the observations it rests on (``observation_ids``);
- a shadow event joins when it names such a belief or is about the subject
  of such an observation or belief, or about a scope the stream contains;
- an ``evidence.attested`` joins when its ``payload.intent_id`` is an intent
  of the stream;
- the posture in force at each decision joins: the latest ``posture.set`` or
  ``posture.expired`` of the tenant's log before that decision.

Only events before the stream's last event can join, so a later event of the
log never changes a pack of a stream that has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

OBSERVATION_RECORDED = "observation.recorded"
BELIEF_FORMED = "belief.formed"
SHADOW_EVENTS = ("shadow.created", "shadow.updated", "shadow.closed")
POSTURE_EVENTS = ("posture.set", "posture.expired")
#: an operator's attestation of an intent's evidence (payload names the intent_id)
EVIDENCE_ATTESTED = "evidence.attested"
#: the types an event outside the stream may have to join a pack
PROVENANCE_TYPES = frozenset(
    (OBSERVATION_RECORDED, BELIEF_FORMED, *SHADOW_EVENTS, EVIDENCE_ATTESTED, *POSTURE_EVENTS)
)

#: the chain's stages, in the order the story runs
STAGES = (
    "observations",
    "beliefs",
    "shadows",
    "attestations",
    "posture",
    "approvals",
    "plan",
    "actions",
    "outcomes",
    "other",
)
_APPROVALS = frozenset(
    {
        "approval.requested",
        "approval.granted",
        "approval.rejected",
        "approval.refused",
        "intent.approved",
        "intent.rejected",
        "intent.expired",
    }
)
_PLAN_RUN = frozenset({"plan.started", "plan.completed", "plan.compensated"})
_ACTIONS = frozenset(
    {"execution.started", "execution.retry", "execution.blocked", "plan.step.started"}
)
_OUTCOMES = frozenset(
    {
        "execution.finished",
        "execution.outcome_unknown",
        "plan.step.finished",
        "containment.expired",
        "containment.reverted",
    }
)
#: events of an intent that belong to its decision (plan or action, by the intent's action)
_DECIDING = frozenset({"intent.recorded", "decision.recorded", "gate.blocked"})
PLAN_ACTION = "containment.plan"

Event = Mapping[str, Any]


def _payload(event: Event) -> Mapping[str, Any]:
    payload = event.get("payload")
    return payload if isinstance(payload, Mapping) else {}


def _subject(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping) and isinstance(value.get("kind"), str):
        ident = value.get("id")
        if isinstance(ident, str):
            return (value["kind"], ident)
    return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class References:
    """What a stream's own events point at."""

    def __init__(self) -> None:
        self.observations: set[str] = set()
        self.beliefs: set[str] = set()
        self.subjects: set[tuple[str, str]] = set()
        #: the seq of each decision of the stream (the posture in force before each joins)
        self.decisions: list[int] = []
        #: the stream's intents (an attestation of one joins)
        self.intents: set[str] = set()
        #: the seq of the stream's last event (nothing at or after it joins)
        self.end = 0

    def read(self, stream: Sequence[Event]) -> References:
        for event in stream:
            seq = event.get("seq")
            if isinstance(seq, int):
                self.end = max(self.end, seq)
                if event.get("type") == "decision.recorded":
                    self.decisions.append(seq)
            if event.get("type") != "intent.recorded":
                continue
            if isinstance(event.get("intent_id"), str):
                self.intents.add(event["intent_id"])
            intent = _payload(event).get("intent")
            params = intent.get("params") if isinstance(intent, Mapping) else None
            if not isinstance(params, Mapping):
                continue
            refs = params.get("evidence_refs")
            if isinstance(refs, Mapping):
                self.observations.update(_strings(refs.get("observations")))
                self.beliefs.update(_strings(refs.get("beliefs")))
            self._scopes(params)
        return self

    def _scopes(self, params: Mapping[str, Any]) -> None:
        containment = params.get("containment")
        if isinstance(containment, Mapping):
            found = _subject(containment.get("scope"))
            if found is not None:
                self.subjects.add(found)
        plan = params.get("plan")
        steps = plan.get("steps") if isinstance(plan, Mapping) else None
        for step in steps if isinstance(steps, list) else []:
            found = _subject(step.get("scope")) if isinstance(step, Mapping) else None
            if found is not None:
                self.subjects.add(found)


def provenance(stream: Sequence[Event], log: Iterable[Event]) -> list[Event]:
    """The events of ``log`` outside ``stream`` that join its pack, in log order.

    ``log`` is the tenant's log (or any part of it holding what joins, such
    as a pack's own events); events of the stream in it are skipped.
    """
    if not stream:
        return []
    refs = References().read(stream)
    correlation = stream[0].get("correlation_id")
    observations: list[Event] = []
    beliefs: list[Event] = []
    shadows: list[Event] = []
    postures: list[Event] = []
    chosen: list[Event] = []
    for event in log:
        seq = event.get("seq")
        if not isinstance(seq, int) or seq >= refs.end:
            break
        kind = event.get("type")
        if kind not in PROVENANCE_TYPES or event.get("correlation_id") == correlation:
            continue
        if kind == OBSERVATION_RECORDED:
            observations.append(event)
        elif kind == BELIEF_FORMED:
            beliefs.append(event)
        elif kind in SHADOW_EVENTS:
            shadows.append(event)
        elif kind == EVIDENCE_ATTESTED:
            if _payload(event).get("intent_id") in refs.intents:
                chosen.append(event)
        else:
            postures.append(event)
    belief_ids = set(refs.beliefs)
    observation_ids = set(refs.observations)
    subjects = set(refs.subjects)
    for event in beliefs:
        belief = _payload(event).get("belief")
        if isinstance(belief, Mapping) and belief.get("belief_id") in belief_ids:
            chosen.append(event)
            observation_ids.update(_strings(belief.get("observation_ids")))
            found = _subject(belief.get("subject"))
            if found is not None:
                subjects.add(found)
    for event in observations:
        observation = _payload(event).get("observation")
        if isinstance(observation, Mapping) and observation.get("observation_id") in (
            observation_ids
        ):
            chosen.append(event)
            found = _subject(observation.get("subject"))
            if found is not None:
                subjects.add(found)
    for event in shadows:
        shadow = _payload(event).get("shadow")
        if not isinstance(shadow, Mapping):
            continue
        if _subject(shadow.get("subject")) in subjects or belief_ids & set(
            _strings(shadow.get("belief_ids"))
        ):
            chosen.append(event)
    chosen.extend(_postures_in_force(refs.decisions, postures, stream))
    return sorted({id(e): e for e in chosen}.values(), key=lambda e: int(e["seq"]))


def _postures_in_force(
    decisions: list[int], postures: list[Event], stream: Sequence[Event]
) -> list[Event]:
    """The latest posture event before each decision, when it is not the stream's own."""
    own = [e for e in stream if e.get("type") in POSTURE_EVENTS]
    outside = {int(e["seq"]) for e in postures}
    every = sorted([*postures, *own], key=lambda e: int(e["seq"]))
    chosen: dict[int, Event] = {}
    index = -1
    for decision in sorted(decisions):
        while index + 1 < len(every) and int(every[index + 1]["seq"]) < decision:
            index += 1
        if index >= 0 and int(every[index]["seq"]) in outside:
            chosen[int(every[index]["seq"])] = every[index]
    return list(chosen.values())


def chain(events: Sequence[Event], correlation: str) -> dict[str, list[str]]:
    """Each event's id under its stage, in log order (``events``: the pack's, in log order)."""
    plans = {
        event.get("intent_id")
        for event in events
        if event.get("type") == "intent.recorded"
        and isinstance(_payload(event).get("intent"), Mapping)
        and _payload(event)["intent"].get("action") == PLAN_ACTION
    }
    stages: dict[str, list[str]] = {stage: [] for stage in STAGES}
    for event in events:
        stages[stage_of(event, plans, correlation)].append(str(event.get("event_id")))
    return stages


def stage_of(event: Event, plans: set[Any], correlation: str) -> str:
    kind = event.get("type")
    if kind == OBSERVATION_RECORDED:
        return "observations"
    if kind == BELIEF_FORMED:
        return "beliefs"
    if kind in SHADOW_EVENTS:
        return "shadows"
    if kind == EVIDENCE_ATTESTED:
        return "attestations"
    if kind in POSTURE_EVENTS:
        return "posture"
    if event.get("correlation_id") != correlation:
        return "other"  # never chosen by provenance(): the verifier refuses it
    if kind in _APPROVALS:
        return "approvals"
    if kind in _PLAN_RUN:
        return "plan"
    if kind in _DECIDING and event.get("intent_id") is not None:
        return "plan" if event.get("intent_id") in plans else "actions"
    if kind in _ACTIONS:
        return "actions"
    if kind in _OUTCOMES:
        return "outcomes"
    return "other"


def summary(events: Sequence[Event]) -> dict[str, Any]:
    """``policy_hash``, ``policy_hashes``, ``config_hashes`` and ``plan_hash`` of a stream.

    ``policy_hash`` is the one the stream's last decision names (the policy in
    effect at its end); ``plan_hash`` the last plan intent's (null without one).
    """
    policies: list[str] = []
    configs: set[str] = set()
    plan_hash: str | None = None
    for event in events:
        payload = _payload(event)
        if event.get("type") == "decision.recorded":
            decision = payload.get("decision")
            if isinstance(decision, Mapping):
                if isinstance(decision.get("policy_hash"), str):
                    policies.append(decision["policy_hash"])
                if isinstance(decision.get("config_hash"), str):
                    configs.add(decision["config_hash"])
        elif event.get("type") == "intent.recorded":
            intent = payload.get("intent")
            if isinstance(intent, Mapping) and intent.get("action") == PLAN_ACTION:
                params = intent.get("params")
                if isinstance(params, Mapping) and isinstance(params.get("plan_hash"), str):
                    plan_hash = params["plan_hash"]
    return {
        "policy_hash": policies[-1] if policies else None,
        "policy_hashes": sorted(set(policies)),
        "config_hashes": sorted(configs),
        "plan_hash": plan_hash,
    }


def missing(stream: Sequence[Event], chosen: Sequence[Event]) -> list[str]:
    """References the stream (or a belief it holds) makes that nothing chosen answers."""
    refs = References().read(stream)
    have_obs = set()
    have_beliefs = set()
    for event in chosen:
        payload = _payload(event)
        if event.get("type") == OBSERVATION_RECORDED:
            observation = payload.get("observation")
            if isinstance(observation, Mapping):
                have_obs.add(observation.get("observation_id"))
        elif event.get("type") == BELIEF_FORMED:
            belief = payload.get("belief")
            if isinstance(belief, Mapping):
                have_beliefs.add(belief.get("belief_id"))
                # a belief held rests on its observations: they are wanted too
                refs.observations.update(_strings(belief.get("observation_ids")))
    return [f"observation {i}" for i in sorted(refs.observations - have_obs)] + [
        f"belief {i}" for i in sorted(refs.beliefs - have_beliefs)
    ]
