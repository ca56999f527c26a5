"""Policies in force: which bundle decides for a tenant, and activating one.

A bundle is in force because a ``policy.activated`` event says so; engines
are cached by policy hash, so a bundle is parsed once per process.
"""

from __future__ import annotations

from ..errors import LedgerCorrupt, PolicyError
from ..gate import Controls
from ..model.event import POLICY_ACTIVATED, SYSTEM_LOG, Event
from ..policy import PolicyBundle, PolicyEngine
from ..policy.engine import engine_from_activation
from .deciding import engine_in_force
from .drafts import Drafts
from .state import ControlState


class Policies:
    """The engines activated in the ledger, cached by policy hash."""

    def __init__(self, state: ControlState, drafts: Drafts) -> None:
        self.state = state
        self.drafts = drafts
        self._engines: dict[str, PolicyEngine] = {}

    def remember(self, engine: PolicyEngine) -> None:
        self._engines[engine.policy_hash] = engine

    def active_activation(self, log: str) -> Event | None:
        return self.state.ledger.store.latest_of_type(log, POLICY_ACTIVATED)

    def load(self, log: str, policy_hash: str, event_id: str) -> PolicyEngine:
        engine = self._engines.get(policy_hash)
        if engine is None:
            event = self.state.ledger.store.event_by_id(log, event_id)
            if event is None:  # pragma: no cover - the fold just read it
                raise LedgerCorrupt(f"policy activation {event_id} vanished from {log}")
            engine = engine_from_activation(event)
            self._engines[policy_hash] = engine
        return engine

    def engine(self, system: Controls, tenant: Controls) -> PolicyEngine:
        """The engine in force on these folds; no activation at all is a refusal."""
        engine = engine_in_force(system, tenant, self.load)
        if engine is None:
            raise PolicyError(
                "no policy is active; run `exoarmur policy activate DIR` (init activates a default)"
            )
        return engine

    def for_tenant(self, tenant: str) -> PolicyEngine:
        """The bundle in force for a tenant: its own activation, else the global one."""
        with self.state.lock:
            return self.engine(self.state.fold(SYSTEM_LOG), self.state.fold(tenant))

    def activate(self, bundle: PolicyBundle, *, tenant: str | None, actor: str) -> Event:
        """Record a bundle (full text, schema, hash) as the one in force."""
        engine = PolicyEngine(bundle)  # refuses a bundle that does not parse
        log = tenant or SYSTEM_LOG
        draft = self.drafts.for_log(
            log,
            POLICY_ACTIVATED,
            {
                "policy_hash": engine.policy_hash,
                "bundle": bundle.to_canonical(),
                "scope": "tenant" if tenant else "global",
            },
            {"id": actor, "kind": "operator" if actor != "exoarmur" else "system"},
        )
        event = self.state.append_one(log, draft)
        self.remember(engine)
        return event
