"""The story a bundle tells, checked: every event of an intent must follow from those before it.

Signatures and inclusion proofs show that the bytes are the log's. They
cannot show that the log makes sense: whoever holds the signing key can
sign any log. What such a forger cannot make consistent is checked here:

- every decision is decided again from the bundle's own policy text and
  configuration, through the same policy engine and safety gate that made
  it (posture as recorded), and must match field for field;
- the quorum every vote and approval is held to is the re-derived
  decision's, never the one an approval event claims;
- every reference binds: each event of an intent follows its
  ``intent.recorded``, carries that intent's hash, and comes where the
  pipeline and the approval book put it (one decision, one start, one end);
- each intent's state at export is reported, so that a story cut short
  (a pending approval, a start with no end) is visible, never a silent pass;
- (format v2) an intent held for evidence is held exactly as policy's
  minimum raised by its recorded influences says, is released only at a
  level that meets it (``attested`` only after an operator's attestation),
  and an escalation raises the quorum only as its request's ladder says.

Pure: no store, no clock, no network.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..approvals.book import approval_request
from ..encoding import canonical_bytes, content_hash, format_time, parse_time, sha256_hex
from ..errors import ExoArmurError
from ..evidence_levels import (
    EVIDENCE_ATTESTED,
    EVIDENCE_SATISFIED,
    LEVELS,
    Influence,
    rank,
    released,
    required_level,
    strictest,
)
from ..gate import POSTURES, Controls, GateConfig, Posture, parse_scope
from ..gate import check as gate_check
from ..gate.gate import held_for_evidence, own_evidence
from ..model.decision import Decision, Verdict
from ..model.event import (
    APPROVAL_ESCALATED,
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    APPROVAL_REQUESTED,
    DECISION_RECORDED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_RETRY,
    EXECUTION_STARTED,
    GATE_BLOCKED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    SYSTEM_LOG,
)
from ..model.intent import ActionIntent
from ..policy import PolicyEngine

#: a failure: where (``events[3]``) and what
Fail = Callable[[str, str], None]

_STRICTNESS = {
    Verdict.ALLOW: 0,
    Verdict.REQUIRE_APPROVAL: 1,
    Verdict.PENDING_EVIDENCE: 1,
    Verdict.DENY: 2,
}
#: what format v2 adds to an intent's story (a v1 bundle holding any of it fails)
V2_TYPES = frozenset({EVIDENCE_ATTESTED, EVIDENCE_SATISFIED, APPROVAL_ESCALATED})
#: approval window when the configuration names none (as replay assumes)
_DEFAULT_WINDOW = 3600
#: gate controls whose state lives outside any bundle (control logs, recorded times):
#: the bundle shows that such a control denied, not that it was engaged
_OUTSIDE = ("killswitch:", "rate_limit:", "controls:unreadable")
#: events that must carry the intent's hash
_BOUND = frozenset(
    {
        DECISION_RECORDED,
        GATE_BLOCKED,
        APPROVAL_REQUESTED,
        APPROVAL_GRANTED,
        APPROVAL_REJECTED,
        EXECUTION_STARTED,
        EXECUTION_BLOCKED,
        EXECUTION_RETRY,
        EXECUTION_FINISHED,
        EVIDENCE_ATTESTED,
        EVIDENCE_SATISFIED,
    }
)

# Where an intent stands. The open ones are stories that may go on after the checkpoint.
RECORDED = "recorded, not decided"
DENIED = "denied"
ALLOWED = "allowed; nothing started in ExoArmur (the caller carries it out)"
PENDING = "pending approval"
WAITING = "waiting for evidence"
APPROVED = "approved, not started"
REJECTED = "rejected"
EXPIRED = "expired"
STARTED = "started, not finished"
BLOCKED = "blocked before the side effect"
UNKNOWN = "outcome unknown"
FINISHED = "finished"
OPEN_STATES = frozenset({RECORDED, PENDING, WAITING, APPROVED, STARTED})


class Malformed(ValueError):
    """A payload field missing or of the wrong type."""


def _get(payload: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise Malformed(f"payload.{name}: missing")
    value = payload[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise Malformed(f"payload.{name}: {value!r} is not of type {names}")
    return value


@dataclass
class Context:
    """The policy engines and configurations the bundle carries, by hash."""

    engines: dict[str, PolicyEngine] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: each configuration's gate as recorded, read once per config hash
    gates: dict[str, GateConfig] = field(default_factory=dict)
    #: the same, with the evidence check left to :func:`_evidence_held`
    unenforced: dict[str, GateConfig] = field(default_factory=dict)

    def gate(self, config_hash: str, config: dict[str, Any]) -> GateConfig:
        """The gate ``config`` records (``config`` is the one ``config_hash`` names)."""
        found = self.gates.get(config_hash)
        if found is None:
            found = self.gates[config_hash] = GateConfig.from_recorded(config.get("gate"))
        return found

    def gate_without_evidence(self, config_hash: str, recorded: GateConfig) -> GateConfig:
        """``recorded`` (the gate of ``config_hash``) with its evidence check off."""
        found = self.unenforced.get(config_hash)
        if found is None:
            found = self.unenforced[config_hash] = replace(recorded, evidence_enforced=False)
        return found


@dataclass
class Ruled:
    """Policy's decisions, made ahead in one Cedar call per run of like decisions.

    Keyed by the very intent object a story holds (its ``id``), with the policy,
    configuration and posture the decision names: a story whose intent is not
    the one decided ahead falls back to deciding alone, never to another's result.
    """

    #: intent objects by the ``intent.recorded`` payload they were read from (``id``)
    intents: dict[int, ActionIntent] = field(default_factory=dict)
    decided: dict[tuple[str, str, str, int], Decision] = field(default_factory=dict)
    #: events (``id``) read as plain: the canonical bytes of their parts need no walk
    plain: Collection[int] = ()


@dataclass
class Story:
    """One intent, as its events so far tell it."""

    intent_id: str
    intent: ActionIntent
    intent_hash: str
    #: the intent's recorded process time: the gate's only notion of now
    recorded_at: datetime
    state: str = RECORDED
    decision: Decision | None = None
    decided_at: datetime | None = None
    config: dict[str, Any] | None = None
    #: event types that must come next, in this order (one append writes them together)
    expect: list[str] = field(default_factory=list)
    quorum: int = 0
    deadline: datetime | None = None
    approvers: list[str] = field(default_factory=list)
    rejected_by: str | None = None
    #: the escalation ladder its approval request set: (raised quorum, from when)
    ladder: tuple[int, datetime] | None = None
    escalated: bool = False
    #: operators who attested its evidence
    attested_by: list[str] = field(default_factory=list)
    started_id: str | None = None
    attempts: int = 0
    outcome: str = ""

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def describe(self) -> str:
        return f"{self.state}: {self.outcome}" if self.outcome else self.state


@dataclass
class Told:
    """What the story check found besides failures."""

    stories: dict[str, Story] = field(default_factory=dict)
    decisions: int = 0
    #: policy and config hashes the decisions name (the context must hold exactly these)
    named: set[tuple[str, str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    #: the bundle format's version (v1 knows no evidence holds)
    version: int = 2


def needs_v2(events: list[dict[str, Any]]) -> bool:
    """Whether a story uses what format v2 adds (evidence holds, releases, escalations)."""
    return any(
        e.get("type") in V2_TYPES
        or (
            e.get("type") == DECISION_RECORDED
            and isinstance(e.get("payload"), dict)
            and isinstance(e["payload"].get("decision"), dict)
            and e["payload"]["decision"].get("verdict") == Verdict.PENDING_EVIDENCE.value
        )
        for e in events
    )


def check_story(
    tenant: str,
    events: list[tuple[str, dict[str, Any]]],
    context: Context,
    fail: Fail,
    version: int = 2,
    plain: Collection[int] = (),
) -> Told:
    """Check every intent's story; ``version`` is the bundle format's (1 lacks V2_TYPES).

    ``plain``: the ids of the events read as plain (``jsontext.loads_plain``).
    """
    told = Told(version=version)
    ruled = rule_ahead(events, context, plain)
    for where, event in events:
        kind = event.get("type")
        intent_id = event.get("intent_id")
        try:
            payload = event.get("payload")
            if not isinstance(payload, dict):
                raise Malformed("payload: not an object")
            if kind == INTENT_RECORDED:
                _recorded(tenant, where, event, payload, told, fail, ruled)
                continue
            if intent_id is None and kind not in _STEPS and kind != APPROVAL_REFUSED:
                continue  # an event of no intent (a control event sharing the correlation)
            story = told.stories.get(intent_id) if isinstance(intent_id, str) else None
            if story is None:
                fail(where, f"{kind} of intent {intent_id!r}: no recorded intent before it")
                continue
            if kind in _BOUND and _get(payload, "intent_hash", str) != story.intent_hash:
                fail(
                    where,
                    f"payload.intent_hash: bound to {payload['intent_hash']}, "
                    f"the intent's hash is {story.intent_hash}",
                )
                continue
            if story.expect and kind != story.expect[0]:
                fail(where, f"{kind} where the story needs {story.expect[0]} next")
                continue
            if story.expect:
                story.expect.pop(0)
            if kind == APPROVAL_REFUSED:
                if story.decision is None:
                    fail(where, "a vote refused before the intent was decided")
                continue
            step = _STEPS.get(str(kind))
            if step is None or (version < 2 and kind in V2_TYPES):
                fail(
                    where,
                    f"type {kind!r} is not part of an intent's story (bundle format v{version})",
                )
                continue
            if kind == DECISION_RECORDED:
                _decided(where, event, payload, story, context, told, fail, ruled)
            else:
                step(where, event, payload, story, context, told, fail)
        except (Malformed, KeyError, TypeError, ValueError, ExoArmurError) as exc:
            fail(where, f"cannot be checked: {explain(exc)}")
    for story in told.stories.values():
        if story.expect:
            fail(
                f"intent {story.intent_id}",
                f"the story stops before {story.expect[0]} (recorded in the same append)",
            )
    return told


def rule_ahead(
    events: list[tuple[str, dict[str, Any]]], context: Context, plain: Collection[int] = ()
) -> Ruled:
    """Policy's decision for every decision the events record, batched by policy, config, posture.

    Only the cost is shared: Cedar decides each request of a batch on its own,
    so each result is what :meth:`PolicyEngine.decide` gives for it alone. A
    decision whose inputs cannot be read here is left to :func:`_rederive`,
    which decides it alone and reports what is wrong with it.
    """
    ruled = Ruled(plain=plain)
    first: dict[str, ActionIntent] = {}
    runs: dict[tuple[str, str, str], list[ActionIntent]] = {}
    for _, event in events:
        payload = event.get("payload")
        if not isinstance(payload, dict):
            continue
        kind = event.get("type")
        if kind == INTENT_RECORDED:
            raw = payload.get("intent")
            if not isinstance(raw, dict):
                continue
            try:
                intent = ActionIntent.from_canonical(raw)
            except (KeyError, TypeError, ValueError, ExoArmurError):
                continue  # _recorded reads it again and reports why
            ruled.intents[id(raw)] = intent
            first.setdefault(intent.intent_id, intent)
        elif kind == DECISION_RECORDED:
            decision, posture = payload.get("decision"), payload.get("posture")
            named = first.get(str(event.get("intent_id")))
            if named is None or not isinstance(decision, dict) or posture not in POSTURES:
                continue
            policy_hash, config_hash = decision.get("policy_hash"), decision.get("config_hash")
            if not isinstance(policy_hash, str) or not isinstance(config_hash, str):
                continue
            if policy_hash in context.engines and config_hash in context.configs:
                runs.setdefault((policy_hash, config_hash, posture), []).append(named)
    for (policy_hash, config_hash, posture), intents in runs.items():
        try:
            tightened = context.gate(config_hash, context.configs[config_hash]).policy_context(
                posture
            )
        except (KeyError, TypeError, ValueError, ExoArmurError):
            continue  # _rederive meets the same error and reports it
        batch = context.engines[policy_hash].decide_batch(intents, posture, tightened)
        for intent, decision in zip(intents, batch, strict=True):
            ruled.decided[(policy_hash, config_hash, posture, id(intent))] = decision
    return ruled


def explain(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} is missing"
    return str(exc)


def _recorded(
    tenant: str,
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    told: Told,
    fail: Fail,
    ruled: Ruled | None = None,
) -> None:
    raw = _get(payload, "intent", dict)
    known = ruled.intents.get(id(raw)) if ruled is not None else None
    intent = known if known is not None else ActionIntent.from_canonical(raw)
    if intent.intent_id in told.stories:
        fail(where, f"intent {intent.intent_id} is recorded twice")
        return
    recorded_hash = _get(payload, "intent_hash", str)
    if intent.to_canonical() != raw:
        fail(where, "payload.intent is not in its canonical form")
        return
    canonical = canonical_bytes(raw, plain=True if ruled and id(event) in ruled.plain else None)
    if "sha256:" + sha256_hex(canonical) != recorded_hash:
        fail(where, "payload.intent_hash: the intent does not hash to its recorded hash")
        return
    for name, found, wanted in (
        ("intent_id", event.get("intent_id"), intent.intent_id),
        ("correlation_id", event.get("correlation_id"), intent.correlation_id),
        ("tenant", tenant, intent.tenant),
        ("actor", event.get("actor"), intent.actor.to_canonical()),
    ):
        if found != wanted:
            fail(where, f"{name}: the event says {found!r}, the intent {wanted!r}")
            return
    told.stories[intent.intent_id] = Story(
        intent.intent_id, intent, recorded_hash, parse_time(_get(event, "process_time", str))
    )


def _decided(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
    ruled: Ruled | None = None,
) -> None:
    if story.state != RECORDED:
        fail(where, f"a second decision for intent {story.intent_id}")
        return
    told.decisions += 1
    recorded = Decision.from_canonical(_get(payload, "decision", dict))
    if recorded.verdict == Verdict.PENDING_EVIDENCE and told.version < 2:
        fail(where, "decision.verdict: pending_evidence is not a verdict of bundle format v1")
        return
    told.named.add(("policy", recorded.policy_hash))
    if recorded.config_hash is not None:
        told.named.add(("config", recorded.config_hash))
    story.decided_at = parse_time(_get(event, "process_time", str))
    derived = _rederive(where, story, recorded, payload, context, told, fail, ruled)
    decision = derived or recorded
    story.decision = decision
    story.state = {
        Verdict.ALLOW: ALLOWED,
        Verdict.DENY: DENIED,
        Verdict.REQUIRE_APPROVAL: PENDING,
        Verdict.PENDING_EVIDENCE: WAITING,
    }[decision.verdict]
    if decision.gate is not None:
        story.expect.append(GATE_BLOCKED)
    if decision.verdict == Verdict.REQUIRE_APPROVAL:
        story.expect.append(APPROVAL_REQUESTED)
        story.quorum = int(decision.obligations["approval"])


def _rederive(
    where: str,
    story: Story,
    recorded: Decision,
    payload: dict[str, Any],
    context: Context,
    told: Told,
    fail: Fail,
    ruled: Ruled | None = None,
) -> Decision | None:
    """The decision as the bundle's policy and configuration make it (None if they cannot)."""
    engine = context.engines.get(recorded.policy_hash)
    if engine is None:
        fail(where, f"the bundle lacks the policy {recorded.policy_hash} this decision names")
        return None
    if recorded.config_hash is None:
        fail(where, "decision.config_hash: missing; the gate cannot be decided again without it")
        return None
    config = context.configs.get(recorded.config_hash)
    if config is None:
        fail(where, f"the bundle lacks the configuration {recorded.config_hash}")
        return None
    story.config = config
    posture = _get(payload, "posture", str)
    if posture not in POSTURES:
        fail(where, f"payload.posture: {posture!r} is not one of {', '.join(POSTURES)}")
        return None
    intent = story.intent
    # as recorded: rules that came later read as they were then (replay does the same)
    gate_config = context.gate(recorded.config_hash, config)
    key = (recorded.policy_hash, recorded.config_hash, posture, id(intent))
    ahead = ruled.decided.get(key) if ruled is not None else None
    if ahead is None:
        ahead = engine.decide(intent, posture, gate_config.policy_context(posture))
    policy = ahead.model_copy(update={"config_hash": recorded.config_hash})
    gate = recorded.gate
    said = Verdict(gate["policy_verdict"]) if gate is not None else recorded.verdict
    if policy.verdict != said:
        fail(
            where,
            f"decision.verdict: the policy decides {policy.verdict.value}, "
            f"the record says {said.value}",
        )
        return None
    if gate is not None:
        if not gate.get("controls"):
            fail(where, "the gate changed the verdict without naming a control")
            return None
        if _STRICTNESS[recorded.verdict] < _STRICTNESS[policy.verdict]:
            fail(where, "the gate loosened the policy's verdict (it may only tighten)")
            return None
    if gate is not None and _outside(gate):
        derived = _denied_outside(where, intent, policy, gate, config, told, fail)
        if derived is None:
            return None
    else:
        tenant = Controls(intent.tenant)
        tenant.posture = Posture(posture)
        derived = gate_check(
            intent,
            policy,
            system=Controls(SYSTEM_LOG),
            tenant=tenant,
            # the evidence a tenant's log holds is not in the bundle: checked apart
            config=context.gate_without_evidence(recorded.config_hash, gate_config),
            now=story.recorded_at,
        )
        if gate_config.evidence_enforced:
            held = _evidence_held(where, intent, derived, recorded, told, fail)
            if held is None:
                return None
            derived = held
    wanted, found = derived.to_canonical(), recorded.to_canonical()
    for name in ("verdict", "reasons", "obligations", "errors", "policy_hash", "gate"):
        if wanted.get(name) != found.get(name):
            fail(
                where,
                f"decision.{name}: decided again it is {wanted.get(name)!r}, "
                f"the record says {found.get(name)!r}",
            )
            return derived
    return derived


def _influences(raw: object) -> list[Influence]:
    if not isinstance(raw, list):
        raise Malformed("decision.gate.evidence.influences: not a list")
    found = []
    for number, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or set(item) != {"origin", "level", "reason"}
            or not all(isinstance(v, str) for v in item.values())
            or item["level"] not in LEVELS
        ):
            raise Malformed(
                f"decision.gate.evidence.influences[{number}]: must be an object of origin, "
                f"level (one of {', '.join(LEVELS)}) and reason"
            )
        found.append(Influence(item["origin"], item["level"], item["reason"]))
    return found


def _evidence_held(
    where: str,
    intent: ActionIntent,
    base: Decision,
    recorded: Decision,
    told: Told,
    fail: Fail,
) -> Decision | None:
    """The evidence check, as far as a bundle can make it (format v2).

    The level an intent's evidence met, and the influences (shadows, trust)
    that raised its requirement, are folded from the whole tenant log, which
    a bundle does not carry: they are taken as recorded, and noted. What is
    checked is that the requirement is exactly policy's minimum raised by the
    recorded influences (never lower), that a held intent's evidence was below
    it, and that the hold is the gate's record of exactly that.
    """
    if base.verdict == Verdict.DENY:
        return base
    minimum = strictest([base.obligations.get("evidence", "none"), own_evidence(intent)])
    gate = recorded.gate or {}
    if recorded.verdict == Verdict.PENDING_EVIDENCE:
        record = gate.get("evidence")
        if not isinstance(record, dict) or set(record) != {"required", "met", "influences"}:
            raise Malformed("decision.gate.evidence: must hold required, met and influences")
        influences = _influences(record["influences"])
        required, met = record["required"], record["met"]
    else:
        control = next(
            (c for c in gate.get("controls") or () if str(c).startswith("evidence:")), None
        )
        if control is None:
            if minimum != "none":
                told.notes.append(
                    f"intent {intent.intent_id}: its evidence met the level it required "
                    f"(at least {minimum}) as recorded; the tenant log shows it (replay)"
                )
            return base
        # denied for evidence (@evidence_unmet("deny")): the record names no influences
        required = str(control).removeprefix("evidence:")
        met = str(gate.get("reason", "")).rpartition(f"evidence: {required} required, ")[2]
        met = met.removesuffix(" met")
        influences = [Influence("recorded", required, "as recorded")] if required in LEVELS else []
    if required not in LEVELS or met not in LEVELS:
        fail(where, f"decision.gate.evidence: {required!r} and {met!r} must be evidence levels")
        return None
    wanted = required_level(minimum, influences)
    if required != wanted:
        fail(
            where,
            f"decision.gate.evidence.required: policy asks {minimum} and the recorded influences "
            f"raise it to {wanted}; the record says {required}",
        )
        return None
    if rank(met) >= rank(required):
        fail(where, f"held for evidence it met: {met} meets {required}")
        return None
    told.notes.append(
        f"intent {intent.intent_id} was held for evidence: {required} required, {met} met, as "
        "recorded (the level met and the influences are the tenant log's; replay shows them)"
    )
    return held_for_evidence(base, required, met, influences)


def _outside(gate: dict[str, Any]) -> bool:
    controls = gate.get("controls")
    return (
        isinstance(controls, list)
        and len(controls) == 1
        and isinstance(controls[0], str)
        and controls[0].startswith(_OUTSIDE)
    )


def _denied_outside(
    where: str,
    intent: ActionIntent,
    policy: Decision,
    gate: dict[str, Any],
    config: dict[str, Any],
    told: Told,
    fail: Fail,
) -> Decision | None:
    """A deny by a control whose state no bundle carries: checked as far as the bundle can."""
    control = str(gate["controls"][0])
    if control.startswith("killswitch:"):
        scope = parse_scope(control.removeprefix("killswitch:"))
        if not scope.covers(intent.tenant, intent.action):
            fail(where, f"decision.gate.controls: {control} does not cover this intent")
            return None
    elif control.startswith("rate_limit:"):
        limit = control.removeprefix("rate_limit:")
        # "actor" is a base limit, "actor:lockdown" one a posture's tightening adds
        key, _, posture = limit.partition(":")
        recorded = GateConfig.from_recorded(config.get("gate"))
        tables = (
            [t.rate_limits for t in recorded.tightenings(posture)]
            if posture
            else [recorded.rate_limits]
        )
        if not any(key in table for table in tables):
            fail(where, f"decision.gate.controls: the configuration sets no {limit} rate limit")
            return None
    told.notes.append(
        f"intent {intent.intent_id} was denied by {control}: the bundle shows the denial, "
        "not the control's state (replay of the full log does)"
    )
    return policy.model_copy(
        update={
            "verdict": Verdict.DENY,
            "obligations": {},
            "gate": {
                "policy_verdict": policy.verdict.value,
                "controls": [control],
                "reason": gate.get("reason"),
            },
        }
    )


def _gate_blocked(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    decision = story.decision
    if decision is None or decision.gate is None:  # expected only after such a decision
        fail(where, "gate.blocked for a decision the gate did not change")
        return
    wanted = decision.gate | {"verdict": decision.verdict.value, "intent_hash": story.intent_hash}
    if payload != wanted:
        fail(where, "gate.blocked does not repeat the decision's gate record")


def _requested(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    decision = story.decision
    if (
        decision is None
        or story.decided_at is None
        or decision.verdict != Verdict.REQUIRE_APPROVAL
        or story.deadline is not None
    ):
        fail(where, "an approval request the decision does not make")
        return
    window = int((story.config or {}).get("approvals", {}).get("window_seconds", _DEFAULT_WINDOW))
    wanted = approval_request(decision, story.decided_at, window) | {
        "intent_hash": story.intent_hash
    }
    story.deadline = parse_time(wanted["deadline"])
    ladder = wanted.get("escalate")
    if isinstance(ladder, dict):
        story.ladder = (int(ladder["quorum"]), parse_time(str(ladder["at"])))
    if _get(payload, "quorum", int) != wanted["quorum"]:
        fail(
            where,
            f"payload.quorum: {payload['quorum']}, the decision requires {wanted['quorum']}",
        )
    elif payload != wanted:
        fail(where, "the approval request differs from the one the decision makes")


def _voted(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    approver = _get(payload, "approver", str)
    if story.state != PENDING or story.deadline is None:
        fail(where, f"a vote counted while the intent was {story.state}")
        return
    at = parse_time(_get(event, "process_time", str))
    if at > story.deadline:
        fail(
            where,
            f"a vote counted after the approval window closed at {format_time(story.deadline)}",
        )
        return
    if approver == story.intent.actor.id:
        fail(where, f"{approver} requested this intent and may not vote on it")
        return
    if approver in story.approvers:
        fail(where, f"{approver} has already approved: one principal counts once")
        return
    if event["type"] == APPROVAL_REJECTED:
        story.rejected_by = approver
        story.expect.append(INTENT_REJECTED)
        return
    story.approvers.append(approver)
    if _get(payload, "quorum", int) != story.quorum:
        fail(where, f"payload.quorum: {payload['quorum']}, the decision requires {story.quorum}")
        return
    if _get(payload, "count", int) != len(story.approvers):
        fail(
            where,
            f"payload.count: {payload['count']}, distinct approvals so far {len(story.approvers)}",
        )
        return
    if len(story.approvers) >= story.quorum:
        story.expect.append(INTENT_APPROVED)


def _approved(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    count = len(story.approvers)
    if story.state != PENDING or count < story.quorum:
        fail(
            where,
            f"approved with {count} distinct approval(s) before it; "
            f"the decision requires {story.quorum}",
        )
        return
    if _get(payload, "quorum", int) != story.quorum:
        fail(where, f"payload.quorum: {payload['quorum']}, the decision requires {story.quorum}")
        return
    if _get(payload, "approvers", list) != story.approvers:
        fail(where, f"payload.approvers: {payload['approvers']}, the votes say {story.approvers}")
        return
    story.state = APPROVED


def _rejected(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.rejected_by is None or _get(payload, "rejected_by", str) != story.rejected_by:
        fail(where, "intent.rejected follows no rejection by that approver")
        return
    story.state = REJECTED


def _expired(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.state != PENDING or story.deadline is None:
        fail(where, f"expired while the intent was {story.state}")
        return
    if parse_time(_get(event, "process_time", str)) <= story.deadline:
        fail(where, f"expired before its deadline {format_time(story.deadline)}")
        return
    wanted = {
        "deadline": format_time(story.deadline),
        "approvals": story.approvers,
        "quorum": story.quorum,
    }
    if payload != wanted:
        fail(where, "the expiry record differs from the intent's deadline, approvals and quorum")
        return
    story.state = EXPIRED


def _started(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.started_id is not None:
        fail(where, "execution started twice (it would have run twice)")
        return
    if story.state not in (ALLOWED, APPROVED):
        fail(where, "execution started without an allow or an approval")
        return
    story.started_id = str(_get(event, "event_id", str))
    story.state = STARTED


def _retried(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.state != STARTED:
        fail(where, f"a retry while the intent was {story.state}")
        return
    story.attempts += 1
    if _get(payload, "attempt", int) != story.attempts:
        fail(where, f"payload.attempt: {payload['attempt']}, this is attempt {story.attempts}")


def _blocked(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    # Blocked right before the side effect: after its start, or in place of one.
    if story.state not in (STARTED, ALLOWED, APPROVED):
        fail(where, f"blocked while the intent was {story.state}")
        return
    story.state = BLOCKED
    story.outcome = f"by {_get(payload, 'control', str)}"


def _finished(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.state != STARTED:
        fail(where, f"execution finished while the intent was {story.state}")
        return
    if _get(payload, "attempt", int) != story.attempts + 1:
        fail(where, f"payload.attempt: {payload['attempt']}, this is attempt {story.attempts + 1}")
        return
    status = _get(payload, "status", str)
    if status == "succeeded":
        if content_hash(payload["result"]) != _get(payload, "result_hash", str):
            fail(where, "payload.result_hash: the result does not hash to it")
            return
    elif status != "failed":
        fail(where, f"payload.status: {status!r} is neither succeeded nor failed")
        return
    story.state = FINISHED
    story.outcome = status


def _unknown(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.state != STARTED:
        fail(where, f"outcome unknown while the intent was {story.state}")
        return
    if _get(payload, "started_event_id", str) != story.started_id:
        fail(where, "payload.started_event_id: not this intent's execution.started")
        return
    story.state = UNKNOWN


def _attested(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    principal = _get(payload, "principal", str)
    if _get(payload, "intent_id", str) != story.intent_id:
        fail(where, f"payload.intent_id: {payload['intent_id']}, the event's is {story.intent_id}")
        return
    if principal == story.intent.actor.id:
        fail(where, f"{principal} requested this intent and may not attest its evidence")
        return
    _get(payload, "note", str)
    story.attested_by.append(principal)


def _satisfied(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    decision = story.decision
    if story.state != WAITING or decision is None or decision.gate is None:
        fail(where, f"evidence.satisfied while the intent was {story.state}, not waiting for it")
        return
    fields = {"intent_hash", "required", "met", "controls", "verdict"}
    if set(payload) != fields:
        fail(where, f"payload: must hold exactly {', '.join(sorted(fields))}")
        return
    required = decision.gate["evidence"]["required"]
    met = _get(payload, "met", str)
    if payload["required"] != required:
        fail(where, f"payload.required: {payload['required']}, the decision required {required}")
        return
    if met not in LEVELS or rank(met) < rank(required):
        fail(where, f"payload.met: {met!r} does not meet the {required} the decision required")
        return
    if met == "attested" and not story.attested_by:
        fail(where, "payload.met: attested, but no evidence.attested of this intent comes before")
        return
    then = released(decision)
    if payload["verdict"] != then.verdict.value:
        fail(where, f"payload.verdict: {payload['verdict']}, the held verdict is {then.verdict}")
        return
    if met != "attested":
        told.notes.append(
            f"intent {story.intent_id} was released at {met} as recorded (the evidence is the "
            "tenant log's; replay re-checks the release)"
        )
    story.decision = then
    if then.verdict == Verdict.REQUIRE_APPROVAL:
        story.state = PENDING
        story.decided_at = parse_time(_get(event, "process_time", str))
        story.quorum = int(then.obligations["approval"])
        story.expect.append(APPROVAL_REQUESTED)
    else:
        story.state = ALLOWED


def _escalated(
    where: str,
    event: dict[str, Any],
    payload: dict[str, Any],
    story: Story,
    context: Context,
    told: Told,
    fail: Fail,
) -> None:
    if story.state != PENDING or story.ladder is None or story.escalated:
        fail(where, "an escalation its approval request's ladder does not make")
        return
    quorum, at = story.ladder
    wanted = {"quorum": quorum, "from": story.quorum, "at": format_time(at)}
    if payload != wanted:
        fail(where, f"payload: {payload!r}, the ladder says {wanted!r}")
        return
    if parse_time(_get(event, "process_time", str)) < at:
        fail(where, f"escalated before {format_time(at)}, when its ladder allows")
        return
    story.quorum = max(story.quorum, quorum)
    story.escalated = True


_Step = Callable[
    [str, dict[str, Any], dict[str, Any], Story, Context, Told, Fail],
    None,
]
_STEPS: dict[str, _Step] = {
    DECISION_RECORDED: _decided,
    GATE_BLOCKED: _gate_blocked,
    APPROVAL_REQUESTED: _requested,
    APPROVAL_GRANTED: _voted,
    APPROVAL_REJECTED: _voted,
    INTENT_APPROVED: _approved,
    INTENT_REJECTED: _rejected,
    INTENT_EXPIRED: _expired,
    EXECUTION_STARTED: _started,
    EXECUTION_RETRY: _retried,
    EXECUTION_BLOCKED: _blocked,
    EXECUTION_FINISHED: _finished,
    EXECUTION_OUTCOME_UNKNOWN: _unknown,
    EVIDENCE_ATTESTED: _attested,
    EVIDENCE_SATISFIED: _satisfied,
    APPROVAL_ESCALATED: _escalated,
}
