"""The fold of a tenant's observations, beliefs and shadows, and replay's check of beliefs.

Pure. :class:`ObservationLog` applies recorded events one by one: the
observations per subject (with recorded times), the detector settings in
force, the beliefs recorded, the correlation of identifiers and the shadow
book. :meth:`ObservationLog.beliefs_on` is the one derivation of beliefs,
used by intake when it records them and by :class:`BeliefAudit` when replay
re-derives them: same observations, same beliefs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..encoding import content_hash
from ..errors import ConfigError, ExoArmurError
from ..model.event import Event
from .detectors import Detector, Seen, derive, load
from .model import (
    BELIEF_FORMED,
    DETECTORS_CONFIGURED,
    OBSERVATION_RECORDED,
    SHADOW_CREATED,
    SHADOW_EVENTS,
    Observation,
)
from .shadow import Correlation, ShadowBook, select_plan, shadow_key

#: (field, recorded, replayed, reason), as containment's audit
Finding = tuple[str, Any, Any, str]


class ObservationLog:
    """Observations, beliefs, detector settings and shadows of one log, up to :attr:`position`."""

    def __init__(self) -> None:
        self.position = 0
        self.observations: dict[str, tuple[Seen, dict[str, Any]]] = {}
        self.by_subject: dict[str, list[Seen]] = {}
        self.beliefs: dict[str, dict[str, Any]] = {}
        self.config: dict[str, Any] | None = None
        self.config_hash: str | None = None
        self.detectors: list[Detector] = []
        #: why the recorded detector settings cannot be built here (a plugin not installed)
        self.config_problem: str | None = None
        self.correlation = Correlation()
        self.shadows = ShadowBook()

    def apply(self, event: Event) -> None:
        self.position = event.seq + 1
        kind = event.type
        if kind == OBSERVATION_RECORDED:
            body = event.payload["observation"]
            observation = Observation.from_canonical(body)
            seen = Seen(observation, event.process_time, event.seq)
            self.observations[observation.observation_id] = (seen, body)
            self.by_subject.setdefault(observation.subject.text, []).append(seen)
            self.correlation.join([observation.subject.text, *observation.correlated])
        elif kind == BELIEF_FORMED:
            belief = event.payload["belief"]
            self.beliefs[belief["belief_id"]] = belief
        elif kind == DETECTORS_CONFIGURED:
            self.config = event.payload["detectors"]
            self.config_hash = content_hash(self.config)
            try:
                self.detectors, self.config_problem = load(self.config), None
            except ConfigError as exc:
                self.detectors, self.config_problem = [], str(exc)
        elif kind in SHADOW_EVENTS:
            self.shadows.apply(event)

    def beliefs_on(self, observation_id: str) -> list[dict[str, Any]]:
        """The beliefs the detectors in force form on this recorded observation."""
        seen, _ = self.observations[observation_id]
        history = [s for s in self.by_subject[seen.observation.subject.text] if s.seq <= seen.seq]
        return derive(history, self.detectors)

    @property
    def shadow_ttl(self) -> int:
        return int((self.config or {}).get("shadow_ttl_seconds", 86_400))


class BeliefAudit:
    """Replay's check: every recorded belief re-derives, and every derived one is recorded."""

    def __init__(self) -> None:
        self.log = ObservationLog()
        #: derived and not yet met among the recorded beliefs: id -> (observation event, belief)
        self.owed: dict[str, tuple[Event, dict[str, Any]]] = {}
        self.derived: dict[str, dict[str, Any]] = {}

    def check(self, event: Event) -> list[Finding]:
        """How ``event`` differs from what its observations re-derive (empty: it agrees)."""
        try:
            return list(self._check(event))
        except (ExoArmurError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return [("payload", None, None, f"cannot replay: {exc!r}")]

    def _check(self, event: Event) -> Iterator[Finding]:
        kind = event.type
        if kind == BELIEF_FORMED:
            recorded = event.payload.get("belief")
            belief_id = recorded.get("belief_id") if isinstance(recorded, dict) else None
            replayed = self.derived.get(str(belief_id))
            if replayed is None:
                yield (
                    "payload.belief",
                    recorded,
                    None,
                    "no detector in force re-derives this belief from the recorded observations",
                )
            elif replayed != recorded:
                yield (
                    "payload.belief",
                    recorded,
                    replayed,
                    "the recorded belief differs from the one its observations re-derive",
                )
            self.owed.pop(str(belief_id), None)
        elif kind in SHADOW_EVENTS:
            yield from self._shadow(event)
        self.log.apply(event)
        if kind == DETECTORS_CONFIGURED and self.log.config_problem is not None:
            yield (
                "payload.detectors",
                event.payload.get("detectors"),
                None,
                f"cannot rebuild the recorded detectors: {self.log.config_problem}",
            )
        elif kind == OBSERVATION_RECORDED:
            ident = event.payload["observation"]["observation_id"]
            for belief in self.log.beliefs_on(ident):
                if belief["belief_id"] not in self.log.beliefs:
                    self.owed.setdefault(belief["belief_id"], (event, belief))
                self.derived[belief["belief_id"]] = belief

    def _shadow(self, event: Event) -> Iterator[Finding]:
        """A lifecycle event must fit the shadows before it and the beliefs recorded."""
        body = event.payload["shadow"]
        key, identifiers = body["shadow_key"], body["identifiers"]
        known = self.log.shadows.shadows.get(key)
        if event.type == SHADOW_CREATED:
            if key != shadow_key(identifiers):
                why = "a shadow's key is the hash of its identifiers"
                yield ("payload.shadow.shadow_key", key, shadow_key(identifiers), why)
            if known is not None and known.open:
                yield ("payload.shadow.shadow_key", key, None, "this shadow is already open")
        elif known is None or not known.open:
            yield ("payload.shadow.shadow_key", key, None, "no open shadow has this key")
        if body["plan"] != select_plan(identifiers):
            why = "the ready plan follows from the shadow's identifiers"
            yield ("payload.shadow.plan", body["plan"], select_plan(identifiers), why)
        unknown = [b for b in body["belief_ids"] if b not in self.log.beliefs]
        if unknown:
            yield ("payload.shadow.belief_ids", unknown[0], None, "no such belief is recorded")

    def missing(self) -> Iterator[tuple[Event, Finding]]:
        """Beliefs the recorded observations form that the log never recorded."""
        for belief_id in sorted(self.owed):
            event, belief = self.owed[belief_id]
            yield (
                event,
                (
                    "belief",
                    None,
                    belief,
                    "the detectors form this belief on the observation; it is not recorded",
                ),
            )
