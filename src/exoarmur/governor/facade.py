"""The Governor: one object over the rooms that govern intents.

It wires its collaborators in its constructor and forwards to them; it holds
no logic of its own beyond the configuration it records. Each collaborator
is an attribute (``governor.votes``, ``governor.switches``, ...) for code
that wants one room; the methods here are the public API that the CLI, the
HTTP API and embedders use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..approvals.book import IntentState, Vote
from ..clock import Clock
from ..containment.room import Containment
from ..encoding import content_hash
from ..errors import PermissionDenied
from ..executors import CallableExecutor, ExecutorRegistry
from ..executors.guard import guard
from ..executors.registry import Binding
from ..gate import GateConfig
from ..ids import IdGenerator
from ..ledger.log import Ledger
from ..ledger.store import CommitsObserved
from ..model.decision import Outcome
from ..model.event import CONFIG_SNAPSHOT, SYSTEM_LOG, Event
from ..model.intent import ActionIntent, IntentRequest, parse_intent
from ..policy import PolicyBundle, PolicyEngine
from ..principals import ALL_TENANTS, Principal, PrincipalBook
from .access import Access
from .drafts import Drafts, operator
from .drain import GovernedCalls
from .evidence import Evidence
from .intake import Decider, Intake
from .observing import Monotonic, Observer, Observers
from .outcomes import outcome_from_events, read_story
from .policies import Policies
from .principals import Principals
from .recovery import Recovery
from .running import Runner
from .state import ControlState
from .switches import Switches
from .votes import VoteResult, Votes

#: who acts when the command line is used without credentials: whoever can
#: read the data directory (and its signing key) already holds every power
LOCAL_ADMIN = Principal("local-admin", "admin", (ALL_TENANTS,), "local")
#: approval window when neither policy nor configuration sets one (seconds)
DEFAULT_APPROVAL_WINDOW = 3600


def _request(intent: IntentRequest | Mapping[str, Any]) -> IntentRequest:
    return intent if isinstance(intent, IntentRequest) else parse_intent(dict(intent))


class Governor:
    """Governs intents: decide, record, approve, execute, record. Thread-safe.

    Build one with :func:`exoarmur.home.open_governor` for a data directory,
    or directly from its parts (tests, embedding). ``policy``, when given, is
    activated in the ledger (if it is not already the bundle in force), so
    that every decision's bundle is recorded where replay can find it.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: PolicyEngine | None = None,
        executors: ExecutorRegistry | None = None,
        clock: Clock,
        ids: IdGenerator,
        approval_window: int = DEFAULT_APPROVAL_WINDOW,
        gate: GateConfig | None = None,
        randomness: Callable[[int], bytes] | None = None,
        evidence: dict[str, Any] | None = None,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.ledger = ledger
        #: the home's [evidence] settings; recorded in the config snapshot when any is set
        self.evidence = dict(evidence or {})
        self.approval_window = approval_window
        self.gate = gate or GateConfig()
        self.randomness = randomness or os.urandom
        self._close_hooks: list[Callable[[], None]] = []
        self.drafts = Drafts(clock, ids)
        #: told each stage's time (on ``monotonic``) and each group commit's size; see observe()
        self.observers = Observers(monotonic)
        if isinstance(ledger.store, CommitsObserved):
            ledger.store.observe_commits(self.observers.batch_committed)
        self.state = ControlState(ledger, self.gate, self.observers)
        self.runner = Runner(
            self.state, self.drafts, executors if executors is not None else ExecutorRegistry()
        )
        self.containment = Containment(self.state, self.drafts, self.runner)
        self.config = self.effective_config()
        self.config_hash = content_hash(self.config)
        self.policies = Policies(self.state, self.drafts)
        self.access = Access(self.state, self.drafts)
        self.switches = Switches(self.state, self.drafts, self.access.refuse)
        self.principal_book = Principals(self.state, self.drafts, self.randomness)
        self.intake = Intake(
            self.state,
            self.drafts,
            Decider(self.state, self.policies, self.gate, self.config_hash),
            self.runner,
            approval_window=lambda: self.approval_window,
            posture_lapsed=self.switches.posture_lapsed,
        )
        self.votes = Votes(
            self.state,
            self.drafts,
            self.runner,
            self.principal_book,
            refuse=self.access.refuse,
            config_hash=self.config_hash,
        )
        self.recovery = Recovery(self.state, self.drafts, self.runner)
        self.evidence_desk = Evidence(
            self.state, self.drafts, self.runner, lambda: self.approval_window, self.principal_book
        )
        self.calls = GovernedCalls()
        self._record_config()
        if policy is not None:
            self.policies.remember(policy)
            active = self.policies.active_activation(SYSTEM_LOG)
            if active is None or active.payload["policy_hash"] != policy.policy_hash:
                self.activate_policy(policy.bundle)

    # -- what the rooms share, settable by tests and embedders ----------------

    @property
    def clock(self) -> Clock:
        return self.drafts.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.drafts.clock = clock

    @property
    def ids(self) -> IdGenerator:
        return self.drafts.ids

    @property
    def executors(self) -> ExecutorRegistry:
        return self.runner.executors

    @executors.setter
    def executors(self, executors: ExecutorRegistry) -> None:
        self.runner.executors = executors
        self.containment.attach(executors)

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` each stage's time and each group commit's size.

        Advice only: an observer that raises is logged and skipped; it never
        changes a decision, a write or an outcome.
        """
        self.observers.add(observer)

    def unobserve(self, observer: Observer) -> None:
        self.observers.remove(observer)

    # -- configuration ----------------------------------------------------------

    def effective_config(self) -> dict[str, Any]:
        """Everything configured that changes behaviour; its hash is named by every decision."""
        return {
            "format": "exoarmur.config/v1",
            "approvals": {"window_seconds": self.approval_window},
            "gate": self.gate.to_canonical(),
            "executors": self.executors.describe(),
        } | ({"evidence": self.evidence} if self.evidence else {})

    def _record_config(self) -> None:
        latest = self.ledger.store.latest_of_type(SYSTEM_LOG, CONFIG_SNAPSHOT)
        if latest is not None and latest.payload["config_hash"] == self.config_hash:
            return
        payload = {"config_hash": self.config_hash, "config": self.config}
        draft = self.drafts.for_log(SYSTEM_LOG, CONFIG_SNAPSHOT, payload, operator("exoarmur"))
        self.state.append_one(SYSTEM_LOG, draft)

    # -- policy -----------------------------------------------------------------

    def policy_for(self, tenant: str) -> PolicyEngine:
        """The bundle in force for a tenant: its own activation, else the global one."""
        return self.policies.for_tenant(tenant)

    def activate_policy(
        self, bundle: PolicyBundle, *, tenant: str | None = None, actor: str = "exoarmur"
    ) -> Event:
        """Record a bundle (full text, schema, hash) as the one in force."""
        return self.policies.activate(bundle, tenant=tenant, actor=actor)

    # -- governing --------------------------------------------------------------

    def submit(
        self, intent: IntentRequest | Mapping[str, Any], *, trace_id: str | None = None
    ) -> Outcome:
        """Govern one intent with the executor bound to its action (if any).

        ``trace_id``: the caller's W3C trace id (32 hex digits), recorded in
        ``intent.recorded`` beside the intent; see :func:`exoarmur.model.trace.trace_id_of`.
        """
        with self.calls.governed():
            return self.intake.govern(_request(intent), None, trace_id)

    def run(
        self,
        intent: IntentRequest | Mapping[str, Any],
        fn: Callable[[ActionIntent], Any],
        *,
        trace_id: str | None = None,
    ) -> Outcome:
        """Govern a Python call: ``fn(intent)`` runs only if the intent is allowed.

        An intent that requires approval does not wait: the outcome is
        ``pending_approval`` and ``fn`` is not called.
        """
        with self.calls.governed():
            binding = Binding("python-call", guard(CallableExecutor(fn)))
            return self.intake.govern(_request(intent), binding, trace_id)

    def outcome(self, tenant: str, intent_id: str, *, duplicate: bool = False) -> Outcome:
        """An intent's outcome as the ledger tells it."""
        return outcome_from_events(self.story(tenant, intent_id), duplicate)

    def story(self, tenant: str, intent_id: str) -> list[Event]:
        """Every event of one intent, in order."""
        return read_story(self.ledger, tenant, intent_id)

    # -- approvals --------------------------------------------------------------

    def vote(
        self,
        tenant: str,
        intent_id: str,
        principal: Principal,
        vote: Vote,
        reason: str,
        intent_hash: str | None = None,
    ) -> VoteResult:
        """Record one approver's vote; run the intent if it completes the quorum.

        ``principal`` comes from authenticated credentials. ``intent_hash``
        binds the vote to exactly the intent the approver saw; when omitted,
        the vote binds to the recorded intent's hash.
        """
        with self.calls.governed():
            return self.votes.vote(tenant, intent_id, principal, vote, reason, intent_hash)

    def attest_evidence(
        self, tenant: str, intent_id: str, principal: Principal, note: str
    ) -> tuple[Event, list[Outcome]]:
        """Record an operator's attestation (``principal`` from credentials), then re-check.

        Returns the attestation and the outcomes of the intents it released.
        """
        with self.calls.governed():
            event = self.evidence_desk.attest(tenant, intent_id, principal, note)
            return event, self.evidence_desk.recheck(tenant)

    def record_trust(self, tenant: str, principal: Principal) -> Event:
        """Record the tenant's trust scores with their inputs (``trust.scored``)."""
        if not principal.acts_for(tenant):
            raise PermissionDenied(f"principal {principal.name} does not act for tenant {tenant}")
        return self.evidence_desk.record_trust(tenant, principal.name)

    def recheck_evidence(self, tenant: str) -> list[Outcome]:
        """Release the tenant's intents whose referenced evidence has since arrived."""
        with self.calls.governed():
            return self.evidence_desk.recheck(tenant)

    def pending(self, tenant: str) -> list[IntentState]:
        """Intents waiting for approval (expiring the overdue ones on the way)."""
        return self.votes.pending(tenant)

    def expire_due(self, tenant: str) -> list[str]:
        """Record ``intent.expired`` for pending intents past their window."""
        return self.votes.expire_due(tenant)

    def escalate_due(self, tenant: str, at: datetime | None = None) -> list[Event]:
        """Record ``approval.escalated`` where an escalation ladder's window has passed."""
        return self.votes.escalate_due(tenant, at)

    # -- principals and access --------------------------------------------------

    def principals(self) -> PrincipalBook:
        """The principals in force (cached until the system log grows)."""
        return self.principal_book.current()

    def authenticate(self, api_key: str) -> Principal:
        return self.principal_book.authenticate(api_key)

    def add_principal(
        self, name: str, role: str, tenants: list[str], *, actor: str = "local-admin"
    ) -> tuple[Principal, str]:
        """Create a principal; returns it and its API key (shown once, stored hashed)."""
        return self.principal_book.add(name, role, tenants, actor)

    def revoke_principal(self, name: str, *, actor: str = "local-admin") -> None:
        self.principal_book.revoke(name, actor)

    def rotate_principal_key(
        self, name: str, *, grace_seconds: int = 0, actor: str = "local-admin"
    ) -> tuple[Event, str]:
        """A new API key for ``name`` (shown once); the old one stops after ``grace_seconds``."""
        return self.principal_book.rotate(name, grace_seconds, actor)

    def authorize_read(self, principal: Principal, tenant: str, what: str) -> None:
        """Refuse (and record) a read of ``tenant`` by a principal not acting for it."""
        self.access.authorize_read(principal, tenant, what)

    def record_access_refused(
        self, principal: Principal, tenant: str | None, attempted: str, detail: str
    ) -> None:
        """Record that an authenticated principal was refused (an HTTP 403)."""
        self.access.record_access_refused(principal, tenant, attempted, detail)

    def record_unauthenticated(
        self, attempted: str, detail: str, *, source: str | None = None
    ) -> Event:
        """Record a request that presented no valid credentials (an HTTP 401)."""
        return self.access.record_unauthenticated(attempted, detail, source=source)

    def record_refusals_counted(self, summary: dict[str, Any]) -> Event:
        """Record refusals counted but not recorded one by one (``access.refused.counted``)."""
        return self.access.record_refusals_counted(summary)

    # -- controls: kill switches and posture ------------------------------------

    def engage_killswitch(self, scope: str, reason: str, principal: Principal) -> Event:
        """Stop every matching action, including ones approved and not yet run."""
        return self.switches.engage(scope, reason, principal)

    def release_killswitch(self, scope: str, reason: str, principal: Principal) -> Event:
        return self.switches.release(scope, reason, principal)

    def killswitches(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Engaged switches: those affecting ``tenant``, or every one when None."""
        return self.switches.engaged(tenant)

    def set_posture(
        self,
        tenant: str,
        posture: str,
        reason: str,
        principal: Principal,
        ttl_seconds: int | None = None,
    ) -> Event:
        """Set a tenant's posture; with a TTL it returns to normal by itself."""
        return self.switches.set_posture(tenant, posture, reason, principal, ttl_seconds)

    def posture(self, tenant: str) -> dict[str, Any]:
        return self.switches.posture(tenant)

    # -- runs, recovery and stopping --------------------------------------------

    def record_run(self, settings: Mapping[str, Any]) -> Event | None:
        """Record how this run makes time and ids (e.g. a deterministic seed).

        Goes to the system log, once per distinct settings: running the same
        deterministic scenario again records nothing new.
        """
        return self.recovery.record_run(settings)

    def record_service(self, settings: Mapping[str, Any]) -> Event | None:
        """Record the settings a service runs with, once per distinct settings."""
        return self.recovery.record_service(settings)

    def recover(self) -> list[Outcome]:
        """Finish what a stopped process left: run approved intents, mark cut executions.

        See :mod:`exoarmur.governor.recovery`. Only safe when no other process
        is executing on this ledger; the data directory's run lock ensures that.
        """
        return self.containment.recover() + self.recovery.recover()

    @property
    def in_flight(self) -> int:
        """Governed calls (submit, run, vote) running now."""
        return self.calls.count

    def drain(self, timeout: float) -> bool:
        """Take no new governed call; wait up to ``timeout`` s for the running ones.

        True when none runs any more: their outcomes are recorded and the
        ledger may be closed. False when some still run: closing now would
        cut their executions, which the next start records as outcome_unknown.
        A new submit, run or vote raises :class:`StoreUnavailable` from now on.
        """
        return self.calls.drain(timeout)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        self._close_hooks.append(hook)

    def close(self) -> None:
        self.ledger.store.close()
        for hook in reversed(self._close_hooks):
            hook()
        self._close_hooks.clear()

    def __enter__(self) -> Governor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
