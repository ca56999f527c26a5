"""Evidence levels: what an intent's referenced evidence meets, and what it must meet.

Levels are ordered ``none < observed < corroborated < attested``:

- ``observed``: at least one referenced observation or belief is recorded in
  the intent's own tenant log;
- ``corroborated``: the referenced evidence comes from two or more distinct
  sources (an observation's ``source``; a belief's ``sources``);
- ``attested``: an authenticated operator recorded ``evidence.attested`` for
  this very intent (bound to its hash).

An intent names its evidence in ``params.evidence_refs``:
``{"observations": [ids], "beliefs": [ids]}``. An id that is not in the
tenant's log counts for nothing: another tenant's evidence is never read, so
it can never count.

Everything here is pure: :class:`EvidenceFold` is folded from the tenant's
events (as part of the gate's control state, so a decision and its replay
read the same prefix), and :func:`level_met` / :func:`required_level` are
functions of their arguments. Influences (shadows, trust) can only raise a
requirement: :func:`required_level` takes the maximum, never anything lower
than policy's minimum. Nothing here allows, approves or executes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InputError
from .model.decision import Decision, Verdict
from .model.intent import ActionIntent

LEVELS = ("none", "observed", "corroborated", "attested")
#: the names ``@evidence`` and ``params.containment.evidence`` accepted before
#: levels were enforced, and the level each now means
LEGACY_NAMES = {"low": "observed", "standard": "corroborated", "high": "attested"}
REFS_KEY = "evidence_refs"
_REF_KINDS = ("beliefs", "observations")
MAX_REFS = 256

OBSERVATION_RECORDED = "observation.recorded"
BELIEF_FORMED = "belief.formed"
EVIDENCE_ATTESTED = "evidence.attested"
EVIDENCE_SATISFIED = "evidence.satisfied"
TRUST_SCORED = "trust.scored"
SHADOW_OPENED = ("shadow.created", "shadow.updated")
SHADOW_CLOSED = "shadow.closed"
#: what an unmet requirement does: wait for evidence (default) or deny at once
UNMET_ACTIONS = ("wait", "deny")

#: trust below this (in basis points) raises the requirement of what rests on it
LOW_TRUST = 5000
#: the level low trust raises a requirement to
LOW_TRUST_LEVEL = "corroborated"
#: the level an open identity shadow raises the requirement of what concerns its subject to
SHADOW_LEVEL = "corroborated"
#: the subject kinds an intent's ``target`` may name (``kind:id``)
SUBJECT_KINDS = ("identity", "endpoint", "workload", "service")


def level_of(name: str) -> str:
    """The level a name means (legacy names mapped); ValueError if it is none."""
    level = LEGACY_NAMES.get(name, name)
    if level not in LEVELS:
        raise ValueError(
            f"must be one of {', '.join(LEVELS)} (or legacy {', '.join(LEGACY_NAMES)}), "
            f"not {name!r}"
        )
    return level


def rank(level: str) -> int:
    return LEVELS.index(level_of(level))


def strictest(levels: Iterable[str]) -> str:
    return max((level_of(v) for v in levels), key=LEVELS.index, default="none")


@dataclass(frozen=True)
class Influence:
    """Something that asks for more evidence than policy does, and why."""

    origin: str  #: e.g. ``trust:detector:failed-logins`` or ``shadow:<key>``
    level: str
    reason: str

    def to_canonical(self) -> dict[str, str]:
        return {"origin": self.origin, "level": level_of(self.level), "reason": self.reason}


class InfluenceSource(Protocol):
    """Anything that may raise an intent's requirement (the identity shadow's fold, trust).

    It is given the intent, its referenced evidence, the tenant's evidence
    fold and the tenant log position the decision read (a source with a fold
    of its own, such as the shadows, folds to that same position, so replay
    sees what the decision saw); it returns influences, which can only raise
    the requirement.
    """

    def influences(
        self, intent: ActionIntent, refs: EvidenceRefs, fold: EvidenceFold, position: int
    ) -> Sequence[Influence]: ...


def required_level(policy_minimum: str, influences: Iterable[Influence]) -> str:
    """max(policy's minimum, every influence): an influence never lowers it."""
    return strictest([policy_minimum, *(i.level for i in influences)])


@dataclass(frozen=True)
class EvidenceRefs:
    observations: tuple[str, ...] = ()
    beliefs: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.observations and not self.beliefs


def parse_refs(params: Mapping[str, Any], where: str = "params") -> EvidenceRefs:
    """An intent's ``evidence_refs`` (InputError naming the field and the rule if malformed)."""
    raw = params.get(REFS_KEY)
    where = f"{where}.{REFS_KEY}"
    if raw is None:
        return EvidenceRefs()
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: must be an object with observations and/or beliefs")
    extra = set(raw) - set(_REF_KINDS)
    if extra:
        raise InputError(f"{where}: unknown field {sorted(extra)[0]!r}")
    found: dict[str, tuple[str, ...]] = {}
    for kind in _REF_KINDS:
        ids = raw.get(kind, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise InputError(f"{where}.{kind}: must be a list of non-empty strings")
        if len(ids) > MAX_REFS:
            raise InputError(f"{where}.{kind}: at most {MAX_REFS} ids")
        if ids != sorted(set(ids)):
            raise InputError(f"{where}.{kind}: ids must be sorted and distinct")
        found[kind] = tuple(ids)
    return EvidenceRefs(found["observations"], found["beliefs"])


@dataclass
class _Tally:
    acted: int = 0
    reverted: int = 0


@dataclass
class EvidenceFold:
    """A tenant's evidence, folded from its log: observations, beliefs, attestations, trust.

    Malformed evidence events are skipped: evidence that cannot be read
    counts for nothing (fail closed for evidence) without blocking the tenant.
    """

    #: observation id -> its source
    observations: dict[str, str] = field(default_factory=dict)
    #: belief id -> (detector, its sources)
    beliefs: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: observation or belief id -> the subject it is about (``kind:id``)
    subjects: dict[str, str] = field(default_factory=dict)
    #: open identity shadows: shadow key -> the identifiers it follows
    shadows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: intent id -> (intent hash, principal) of each attestation
    attested: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: intents waiting for evidence (decided pending_evidence, not yet satisfied)
    pending: set[str] = field(default_factory=set)
    #: intent id -> what it rested on, for trust: ("detector"|"source", name) pairs
    _rested: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _reverted: set[str] = field(default_factory=set)
    _tallies: dict[tuple[str, str], _Tally] = field(default_factory=dict)

    def apply(self, kind: str, payload: Mapping[str, Any], intent_id: str | None) -> None:
        try:
            self._apply(kind, payload, intent_id)
        except (KeyError, TypeError, ValueError, AttributeError, InputError):
            return  # unreadable evidence counts for nothing

    def _apply(self, kind: str, payload: Mapping[str, Any], intent_id: str | None) -> None:
        if kind == OBSERVATION_RECORDED:
            observation = payload["observation"]
            oid, source = observation["observation_id"], observation["source"]
            if isinstance(oid, str) and isinstance(source, str):
                self.observations.setdefault(oid, source)
                self.subjects.setdefault(oid, _subject(observation["subject"]))
        elif kind == BELIEF_FORMED:
            belief = payload["belief"]
            sources = tuple(sorted({str(s) for s in belief["sources"]}))
            self.beliefs.setdefault(str(belief["belief_id"]), (str(belief["detector"]), sources))
            self.subjects.setdefault(str(belief["belief_id"]), _subject(belief["subject"]))
        elif kind in SHADOW_OPENED:
            shadow = payload["shadow"]
            self.shadows[str(shadow["shadow_key"])] = tuple(str(i) for i in shadow["identifiers"])
        elif kind == SHADOW_CLOSED:
            self.shadows.pop(str(payload["shadow"]["shadow_key"]), None)
        elif kind == EVIDENCE_ATTESTED and intent_id is not None:
            record = (str(payload["intent_hash"]), str(payload["principal"]))
            self.attested.setdefault(intent_id, []).append(record)
        elif kind == "intent.recorded":
            intent = payload["intent"]
            refs = parse_refs(intent["params"])
            if not refs.empty:
                self._rested[str(intent["intent_id"])] = self._rests_on(refs)
                for key in self._rested[str(intent["intent_id"])]:
                    self._tallies.setdefault(key, _Tally()).acted += 1
        elif kind == "decision.recorded" and intent_id is not None:
            if payload["decision"]["verdict"] == "pending_evidence":
                self.pending.add(intent_id)
        elif kind == EVIDENCE_SATISFIED and intent_id is not None:
            self.pending.discard(intent_id)
        elif kind in ("containment.reverted", "plan.compensated"):
            undone = payload.get("intent_id")
            early = kind == "plan.compensated" or payload.get("cause") != "expired"
            if early and undone in self._rested and undone not in self._reverted:
                self._reverted.add(undone)
                for key in self._rested[undone]:
                    self._tallies[key].reverted += 1

    def _rests_on(self, refs: EvidenceRefs) -> tuple[tuple[str, str], ...]:
        keys: set[tuple[str, str]] = set()
        for oid in refs.observations:
            if oid in self.observations:
                keys.add(("source", self.observations[oid]))
        for bid in refs.beliefs:
            if bid in self.beliefs:
                detector, sources = self.beliefs[bid]
                keys.add(("detector", detector))
                keys.update(("source", s) for s in sources)
        return tuple(sorted(keys))

    def sources_of(self, refs: EvidenceRefs) -> tuple[str, ...]:
        """The distinct sources of the referenced evidence this tenant has recorded."""
        sources: set[str] = set()
        for oid in refs.observations:
            if oid in self.observations:
                sources.add(self.observations[oid])
        for bid in refs.beliefs:
            if bid in self.beliefs:
                sources.update(self.beliefs[bid][1])
        return tuple(sorted(sources))

    def known(self, refs: EvidenceRefs) -> bool:
        return any(o in self.observations for o in refs.observations) or any(
            b in self.beliefs for b in refs.beliefs
        )

    def trust(self) -> list[TrustScore]:
        """Every source's and detector's reliability, from what its evidence led to."""
        return [
            TrustScore(kind, name, tally.acted, tally.reverted)
            for (kind, name), tally in sorted(self._tallies.items())
        ]


@dataclass(frozen=True)
class TrustScore:
    """How often actions resting on a source's or detector's evidence stood.

    ``score`` is in basis points: (acted - reverted + 1) / (acted + 2), so a
    newcomer starts at 5000 (neither trusted nor distrusted) and one outcome
    never swings it to an extreme. Integers only: the same in every home.
    """

    kind: str  #: "source" or "detector"
    name: str
    acted: int  #: actions that rested on its evidence
    reverted: int  #: of those, later reverted early or compensated

    @property
    def score(self) -> int:
        return (self.acted - self.reverted + 1) * 10000 // (self.acted + 2)

    @property
    def text(self) -> str:
        return f"{self.score // 10000}.{self.score % 10000:04d}"

    def to_canonical(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "acted": self.acted,
            "reverted": self.reverted,
            "score_bp": self.score,
        }


class TrustInfluence:
    """Low trust in what an intent rests on raises its requirement to corroborated."""

    def influences(
        self, intent: ActionIntent, refs: EvidenceRefs, fold: EvidenceFold, position: int
    ) -> Sequence[Influence]:
        rests_on = set(fold._rests_on(refs))
        return [
            Influence(
                f"trust:{t.kind}:{t.name}",
                LOW_TRUST_LEVEL,
                f"{t.kind} {t.name} has trust {t.text} (below {LOW_TRUST / 10000:.4f})",
            )
            for t in fold.trust()
            if (t.kind, t.name) in rests_on and t.score < LOW_TRUST
        ]


def _subject(raw: Mapping[str, Any]) -> str:
    return f"{raw['kind']}:{raw['id']}"


def concerned(intent: ActionIntent, refs: EvidenceRefs, fold: EvidenceFold) -> set[str]:
    """The subjects (``kind:id``) an intent concerns, as far as a shadow is concerned.

    Its ``target`` when it names a subject, its ``params.containment.scope``,
    every step scope of a ``params.plan``, and the subjects of the
    observations and beliefs it references. Anything unreadable among them
    names nothing (the gate refuses malformed containment on its own).
    """
    found: set[str] = set()
    kind, _, ident = intent.target.partition(":")
    if kind in SUBJECT_KINDS and ident:
        found.add(intent.target)
    scopes: list[object] = []
    containment = intent.params.get("containment")
    if isinstance(containment, Mapping):
        scopes.append(containment.get("scope"))
    plan = intent.params.get("plan")
    steps = plan.get("steps") if isinstance(plan, Mapping) else None
    if isinstance(steps, list):
        scopes.extend(s.get("scope") for s in steps if isinstance(s, Mapping))
    for scope in scopes:
        if isinstance(scope, Mapping) and isinstance(scope.get("kind"), str):
            found.add(f"{scope['kind']}:{scope.get('id')}")
    found.update(
        fold.subjects[i] for i in (*refs.observations, *refs.beliefs) if i in fold.subjects
    )
    return found


class ShadowInfluence:
    """An open identity shadow raises what concerns its subject to :data:`SHADOW_LEVEL`.

    Read from the tenant's evidence fold, so the live decision and its replay
    see the shadows open at the same log position. It never lowers anything.
    """

    def influences(
        self, intent: ActionIntent, refs: EvidenceRefs, fold: EvidenceFold, position: int
    ) -> Sequence[Influence]:
        subjects = concerned(intent, refs, fold)
        return [
            Influence(
                f"shadow:{key}",
                SHADOW_LEVEL,
                f"{', '.join(sorted(subjects.intersection(ids)))} is shadowed ({key})",
            )
            for key, ids in sorted(fold.shadows.items())
            if subjects.intersection(ids)
        ]


#: the influences every evidence check reads (live, replay and verify-bundle alike)
STANDING: tuple[InfluenceSource, ...] = (TrustInfluence(), ShadowInfluence())


def level_met(refs: EvidenceRefs, fold: EvidenceFold, intent_id: str, intent_hash: str) -> str:
    """The level this intent's referenced evidence meets in its own tenant's log."""
    if any(h == intent_hash for h, _ in fold.attested.get(intent_id, ())):
        return "attested"
    if not fold.known(refs):
        return "none"
    return "corroborated" if len(fold.sources_of(refs)) >= 2 else "observed"


def released(decision: Decision) -> Decision:
    """The decision a pending_evidence one becomes once its evidence is there."""
    held = (decision.gate or {}).get("held", Verdict.DENY.value)
    return decision.model_copy(update={"verdict": Verdict(held)})
