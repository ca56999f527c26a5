"""Recording observations, and the beliefs and shadows they lead to.

The only writer of ``observation.recorded``, ``belief.formed``,
``detectors.configured`` and the shadow lifecycle. Every event goes through
the ledger's append (so SQLite, PostgreSQL and JetStream all hold them) in
the tenant's log. Observations and beliefs carry uniqueness keys the store
enforces, so a redelivered observation records nothing new even when two
processes race; beliefs are derived by :class:`ObservationLog` exactly as
replay derives them. Nothing here submits, approves or allows an intent.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..encoding import content_hash
from ..errors import DuplicateIntent, NotFound, ObservationError, PermissionDenied
from ..governor.drafts import Drafts
from ..governor.facade import Governor
from ..governor.state import ControlState
from ..model.decision import Outcome
from ..model.event import Event, EventDraft
from ..model.intent import SYSTEM_ACTOR
from ..principals import Principal
from .beliefs import ObservationLog
from .detectors import detectors_config
from .model import (
    BELIEF_FORMED,
    DETECTORS_CONFIGURED,
    OBSERVATION_RECORDED,
    SHADOW_CLOSED,
    Observation,
)
from .shadow import Shadow, ShadowStatus, change_for

#: roles that may close a shadow by hand
CLOSERS = frozenset({"operator", "admin"})
#: roles that may record observations: those that may submit intents
RECORDERS = frozenset({"agent", "admin"})


def recording_actor(principal: Principal, tenant: str) -> dict[str, str]:
    """The actor observations are recorded under; PermissionDenied if it may not record."""
    if principal.role not in RECORDERS or not principal.acts_for(tenant):
        raise PermissionDenied(
            f"principal {principal.name}: {principal.role} may not record observations in {tenant}"
        )
    return {"id": principal.name, "kind": "agent" if principal.role == "agent" else "operator"}


@dataclass
class Recorded:
    """What one observation led to: recorded or already there, beliefs and shadow changes."""

    observation_id: str
    recorded: bool
    seq: int
    beliefs: list[str] = field(default_factory=list)
    shadows: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "observation_id": self.observation_id,
            "recorded": self.recorded,
            "seq": self.seq,
            "beliefs": self.beliefs,
            "shadows": self.shadows,
        }


class Batch(list[Recorded]):
    """What a batch of observations led to, and the waiting intents it released."""

    def __init__(self, done: Sequence[Recorded], released: Sequence[str] = ()) -> None:
        super().__init__(done)
        #: ids of intents that waited for evidence (``pending_evidence``) and now went on
        self.released = list(released)


class ObservationDesk:
    """Records observations for every tenant of one governor; keeps each tenant's fold.

    ``release`` is called with the tenant after every batch: evidence that has
    just arrived releases the intents waiting for it at once, not at the next
    tick. It returns what it released (the governor's ``recheck_evidence``).
    """

    def __init__(
        self,
        state: ControlState,
        drafts: Drafts,
        release: Callable[[str], Sequence[Outcome]] | None = None,
    ) -> None:
        self.state = state
        self.drafts = drafts
        self.release = release
        self.lock = threading.RLock()
        self._logs: dict[str, ObservationLog] = {}

    def log(self, tenant: str) -> ObservationLog:
        """The tenant's observations, beliefs and shadows, caught up with its log."""
        with self.lock:
            fold = self._logs.setdefault(tenant, ObservationLog())
            size = self.state.ledger.size(tenant)
            if fold.position < size:
                for event in self.state.ledger.store.events(tenant, fold.position, size):
                    fold.apply(event)
            return fold

    def _append(self, tenant: str, draft: EventDraft) -> Event | None:
        """Append one event; None when its uniqueness key is already recorded."""
        try:
            return self.state.append_one(tenant, draft)
        except DuplicateIntent:
            return None

    def _draft(
        self,
        tenant: str,
        kind: str,
        payload: dict[str, Any],
        actor: dict[str, str],
        key: str | None = None,
        correlation: str | None = None,
    ) -> EventDraft:
        draft = self.drafts.for_log(tenant, kind, payload, actor, idempotency_key=key)
        return draft if correlation is None else replace(draft, correlation_id=correlation)

    def configure(self, tenant: str, raw: object = None) -> bool:
        """Record the detector settings for ``tenant`` if they differ from those in force.

        ``raw`` None keeps what is in force (the shipped rules when nothing is).
        """
        with self.lock:
            fold = self.log(tenant)
            if raw is None and fold.config is not None:
                return False
            config = detectors_config(raw)
            if content_hash(config) == fold.config_hash:
                return False
            self.state.append_one(
                tenant,
                self._draft(
                    tenant, DETECTORS_CONFIGURED, {"detectors": config}, SYSTEM_ACTOR.to_canonical()
                ),
            )
            return True

    def record(
        self,
        tenant: str,
        observations: Sequence[Observation],
        actor: dict[str, str],
        detectors: object = None,
    ) -> Batch:
        """Record a checked batch in order; refuse it whole if an id is reused for other content.

        Then release what waited for this evidence (outside the desk's lock:
        releasing takes the governor's own locks and may run executors).
        """
        done = self._record(tenant, observations, actor, detectors)
        if self.release is None:
            return Batch(done)
        return Batch(done, [o.intent_id for o in self.release(tenant)])

    def _record(
        self,
        tenant: str,
        observations: Sequence[Observation],
        actor: dict[str, str],
        detectors: object,
    ) -> list[Recorded]:
        with self.lock:
            fold = self.log(tenant)
            batch: dict[str, dict[str, Any]] = {}
            for number, observation in enumerate(observations):
                canonical = observation.to_canonical()
                known = fold.observations.get(observation.observation_id)
                first = batch.setdefault(observation.observation_id, canonical)
                if (known is not None and known[1] != canonical) or first != canonical:
                    raise ObservationError(
                        f"{number}.observation_id: {observation.observation_id!r} is already "
                        "recorded with other content; nothing was recorded"
                    )
            self.configure(tenant, detectors)
            return [self._one(tenant, o, actor) for o in observations]

    def _one(self, tenant: str, observation: Observation, actor: dict[str, str]) -> Recorded:
        ident = observation.observation_id
        self.expire(tenant)
        fold = self.log(tenant)
        event = None
        if ident not in fold.observations:
            draft = self._draft(
                tenant,
                OBSERVATION_RECORDED,
                {"observation": observation.to_canonical()},
                actor,
                key=f"observation {ident}",
            )
            event = self._append(tenant, replace(draft, event_time=observation.event_time))
            fold = self.log(tenant)
        seen, _ = fold.observations[ident]
        done = Recorded(ident, event is not None, seen.seq)
        # derived again on a redelivery: beliefs a crash left unrecorded are recorded now
        for belief in fold.beliefs_on(ident):
            if belief["belief_id"] in fold.beliefs:
                continue
            formed = self._append(
                tenant,
                self._draft(
                    tenant,
                    BELIEF_FORMED,
                    {"belief": belief},
                    SYSTEM_ACTOR.to_canonical(),
                    key=f"belief {belief['belief_id']}",
                ),
            )
            fold = self.log(tenant)
            if formed is None:
                continue
            done.beliefs.append(belief["belief_id"])
            subject = belief["subject"]
            cluster = fold.correlation.cluster(f"{subject['kind']}:{subject['id']}")
            change = change_for(fold.shadows, cluster, belief)
            if change is not None:
                kind, payload = change
                key = payload["shadow"]["shadow_key"]
                self.state.append_one(
                    tenant,
                    self._draft(
                        tenant, kind, payload, SYSTEM_ACTOR.to_canonical(), correlation=key
                    ),
                )
                done.shadows.append({"type": kind, "shadow_key": key})
                fold = self.log(tenant)
        return done

    def expire(self, tenant: str) -> list[Event]:
        """Close every shadow no belief has touched for the TTL in force, as of the clock now."""
        fold = self.log(tenant)
        closed = []
        for shadow in fold.shadows.due(self.drafts.now(), fold.shadow_ttl):
            closed.append(
                self._close(tenant, shadow, SYSTEM_ACTOR.to_canonical(), {"cause": "ttl"})
            )
        return closed

    def _close(
        self, tenant: str, shadow: Shadow, actor: dict[str, str], why: dict[str, str]
    ) -> Event:
        payload = {"shadow": shadow.to_canonical(), **why}
        draft = self._draft(tenant, SHADOW_CLOSED, payload, actor, correlation=shadow.shadow_key)
        return self.state.append_one(tenant, draft)

    def close(self, tenant: str, shadow_key: str, principal: Principal, reason: str) -> Event:
        """An operator closes a shadow: recorded with who and why."""
        if principal.role not in CLOSERS or not principal.acts_for(tenant):
            raise PermissionDenied(
                f"principal {principal.name}: {principal.role} may not close shadows in {tenant}"
            )
        if not reason.strip():
            raise ObservationError("--reason: say why the shadow is closed (recorded)")
        with self.lock:
            shadow = self.log(tenant).shadows.shadows.get(shadow_key)
            if shadow is None or not shadow.open:
                raise NotFound(f"no open shadow {shadow_key!r} in tenant {tenant!r}")
            actor = {"id": principal.name, "kind": "operator"}
            return self._close(tenant, shadow, actor, {"cause": "operator", "reason": reason})

    def shadows(self, tenant: str) -> list[Shadow]:
        return self.log(tenant).shadows.listing()

    def status(self, tenant: str, identifier: str) -> ShadowStatus:
        return self.log(tenant).shadows.status(identifier)


_DESKS: weakref.WeakKeyDictionary[Governor, ObservationDesk] = weakref.WeakKeyDictionary()
_DESKS_LOCK = threading.Lock()


def desk_of(governor: Governor) -> ObservationDesk:
    """The one desk of a governor (its folds are kept between requests)."""
    with _DESKS_LOCK:
        desk = _DESKS.get(governor)
        if desk is None:
            desk = _DESKS[governor] = ObservationDesk(
                governor.state, governor.drafts, governor.recheck_evidence
            )
        return desk
