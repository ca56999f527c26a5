"""Replay: re-decide every recorded intent from the ledger alone, and compare.

The ledger holds everything a decision was made from: the intent, the
policy bundle (``policy.activated``), the configuration
(``config.snapshot``), the control events (kill switches, posture,
principals, votes) and, for every judgement, the recorded time and the
positions of the control state it read. Replay rebuilds exactly those
inputs, runs the same pure functions again (Cedar, the gate, the approval
book) and compares every field with the record. It reads no clock, no
environment, no configuration file and no live state: only the stored
events. It also re-hashes every event, rebuilds the Merkle tree and checks
it against the latest signed checkpoint.

A difference is a divergence, reported with the first differing event, the
field, the recorded value and the replayed value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from ..approvals.book import (
    Vote,
    approval_request,
    escalation_due,
    escalation_record,
    expiry_record,
    intent_state,
    is_due,
    rule_on,
)
from ..collector import PAUSED
from ..containment.audit import ContainmentAudit
from ..encoding import content_hash, exactly_plain
from ..errors import ExoArmurError
from ..evidence_levels import (
    EVIDENCE_SATISFIED,
    TRUST_SCORED,
    level_met,
    parse_refs,
    rank,
    released,
)
from ..gate import GateConfig, recheck, revoked, vote_over_limit
from ..gate.controls import Controls
from ..governor.deciding import decide, engine_in_force, gate_many
from ..ledger.checkpoint import open_checkpoint
from ..ledger.keys import Verifier
from ..ledger.merkle import Frontier, consistency_proof, leaf_hash, verify_consistency
from ..ledger.store import LedgerStore
from ..model.decision import Decision, Verdict
from ..model.event import (
    APPROVAL_ESCALATED,
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    APPROVAL_REQUESTED,
    CONFIG_SNAPSHOT,
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
    POLICY_ACTIVATED,
    SYSTEM_LOG,
    Event,
    intent_key,
)
from ..model.intent import ActionIntent
from ..observations.beliefs import BeliefAudit
from ..policy import PolicyEngine
from ..policy.engine import engine_from_activation
from ..principals import PRINCIPAL_EVENTS, PrincipalBook
from .folds import LogFold
from .recorded import recorded_intent
from .seen_keys import SeenKeys

_DEFAULT_WINDOW = 3600
#: intents' events kept in memory, in bytes of their canonical form (parsed, they
#: take a few times more); the least recently seen beyond are dropped, and read
#: again from the store if a later event names them
_OPEN_BYTES = 4 * 1024 * 1024
#: after these, the pipeline records nothing more for an intent: its events are dropped
_TERMINAL = frozenset({EXECUTION_FINISHED, INTENT_REJECTED, INTENT_EXPIRED})
#: events read ahead to decide their decisions' policy part in Cedar batches
_AHEAD = 512
#: chunks between two collections of young cycles while the collector is paused
_COLLECT_EVERY = 64
_SORTED = orjson.OPT_SORT_KEYS
_MAX_DIVERGENCES = 50


@dataclass(frozen=True)
class Divergence:
    """Where the record and the replay disagree."""

    seq: int
    event_id: str
    event_type: str
    intent_id: str | None
    field: str
    recorded: Any
    replayed: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "intent_id": self.intent_id,
            "field": self.field,
            "recorded": self.recorded,
            "replayed": self.replayed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ReplayReport:
    """The result of a replay. ``verified`` only when nothing diverged."""

    tenant: str
    events: int
    intents: int
    decisions: int
    votes: int
    executions: int
    tree_size: int
    root_hash: str
    checkpoint_size: int | None
    checkpoint_verified: bool | None
    divergences: tuple[Divergence, ...]
    correlation: str | None = None
    start: int = 0
    fold_rebuilds: int = 0

    @property
    def verified(self) -> bool:
        return not self.divergences and self.checkpoint_verified is not False

    @property
    def status(self) -> str:
        """VERIFIED; UNANCHORED: it replays, no verified checkpoint covers the end; or FAILED."""
        if not self.verified:
            return "FAILED"
        anchored = self.checkpoint_verified is True and self.checkpoint_size == self.tree_size
        return "VERIFIED" if anchored else "UNANCHORED"

    @property
    def first(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "verified": self.verified,
            "status": self.status,
            "events": self.events,
            "intents": self.intents,
            "decisions": self.decisions,
            "votes": self.votes,
            "executions": self.executions,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_verified": self.checkpoint_verified,
            "correlation": self.correlation,
            "from_seq": self.start,
            "first_divergence": self.first.to_json() if self.first else None,
            "divergences": [d.to_json() for d in self.divergences],
        }


def same_json(recorded: Any, replayed: Any) -> bool:
    """True only when :func:`first_difference` would find nothing, mostly in C.

    Both made of exactly the plain JSON types with no float (``exactly_plain``:
    no subclass or enum, which the walk tells from its base type), and one
    sorted JSON text for both, which tells ``true`` from ``1`` from ``"1"`` as
    the walk does. False means "walk them".
    """
    if not (exactly_plain(recorded) and exactly_plain(replayed)):
        return False
    try:
        left = orjson.dumps(recorded, option=_SORTED)
        right = orjson.dumps(replayed, option=_SORTED)
    except orjson.JSONEncodeError:  # nested past 254, a lone surrogate, a key not a str
        return False
    return left == right


def first_difference(recorded: Any, replayed: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (depth-first, sorted keys) field where two JSON values differ."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in sorted(set(recorded) | set(replayed)):
            where = f"{path}.{key}" if path else key
            if key not in recorded or key not in replayed:
                return where, recorded.get(key), replayed.get(key)
            found = first_difference(recorded[key], replayed[key], where)
            if found is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return path or "(value)", recorded, replayed
        for index, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if recorded != replayed or type(recorded) is not type(replayed):
        return path or "(value)", recorded, replayed
    return None


class SystemHistory:
    """The system log, read once: controls, principals, bundles and configs by position."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.events = list(store.events(SYSTEM_LOG))
        self.fold = LogFold(SYSTEM_LOG, lambda a, b: iter(self.events[a:b]))
        for event in self.events:
            self.fold.offer(event)
        self._configs: dict[str, tuple[int, dict[str, Any]]] = {}
        #: policy hash -> the first activation of it in the system log
        self.activations: dict[str, str] = {}
        for event in self.events:
            if event.type == CONFIG_SNAPSHOT:
                self._configs.setdefault(
                    event.payload["config_hash"], (event.seq, event.payload["config"])
                )
            elif event.type == POLICY_ACTIVATED:
                self.activations.setdefault(str(event.payload["policy_hash"]), event.event_id)
        self._books: dict[int, PrincipalBook] = {}
        # What any recorded configuration needs a fold to keep: the longest window,
        # and per key kind the most recent times its largest limit can count.
        gates = [GateConfig.from_recorded(config["gate"]) for _, config in self._configs.values()]
        self.horizon_seconds = max((g.horizon_seconds for g in gates), default=0)
        self.retention: dict[str, int] = {}
        for gate in gates:
            for kind, keep in gate.retention().items():
                self.retention[kind] = max(self.retention.get(kind, 0), keep)

    def controls(self, position: int) -> Controls:
        return self.fold.at(position)

    def config(self, position: int, config_hash: str | None) -> dict[str, Any] | None:
        if config_hash is None:
            return None
        found = self._configs.get(config_hash)
        if found is None or found[0] >= position:
            return None
        return found[1]

    def any_config(self, config_hash: str) -> dict[str, Any] | None:
        """The configuration with this hash wherever it lies (a guess, for reading ahead)."""
        found = self._configs.get(config_hash)
        return found[1] if found is not None else None

    def principals(self, position: int) -> PrincipalBook:
        book = self._books.get(position)
        if book is None:
            book = PrincipalBook.from_events(
                e for e in self.events[:position] if e.type in PRINCIPAL_EVENTS
            )
            self._books = {position: book}  # votes come in order: one is enough
        return book


@dataclass
class _Tracked:
    """What replay keeps of one intent while reading on."""

    events: list[Event] = field(default_factory=list)
    #: ruling records still expected after the first one of a vote
    expected: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    decision: Decision | None = None
    #: the recorded intent, once parsed
    intent: ActionIntent | None = None
    #: bytes of ``events``
    size: int = 0


class Replayer:
    """One pass over a tenant's log. Use :func:`replay` (or :func:`whatif`)."""

    def __init__(
        self,
        store: LedgerStore,
        tenant: str,
        *,
        correlation: str | None = None,
        start: int = 0,
        candidate: PolicyEngine | None = None,
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.correlation = correlation
        self.start = start
        self.candidate = candidate
        self.system = SystemHistory(store)
        self.fold = LogFold(
            tenant,
            lambda a, b: store.events(tenant, a, b),
            self.system.horizon_seconds,
            self.system.retention,
        )
        self.engines: dict[str, PolicyEngine] = {}
        self.gates: dict[str, GateConfig] = {}
        #: policy hash -> (log, event id) of an activation of it, for loading engines ahead
        self.activations: dict[str, tuple[str, str]] = {
            policy_hash: (SYSTEM_LOG, event_id)
            for policy_hash, event_id in self.system.activations.items()
        }
        #: policy's decisions made ahead, by (intent event's seq, engine, posture, config hash)
        self.ahead: dict[tuple[int, int, str, str | None], Decision] = {}
        #: recently recorded intents by id: (the intent.recorded event's seq, the intent,
        #: the hash of its canonical bytes)
        self.recent: dict[str, tuple[int, ActionIntent, str]] = {}
        #: the idempotency keys of the intents met so far
        self.seen_keys = SeenKeys(store.size(tenant))
        #: keep every (decision event, re-derived decision): a correlation's are few,
        #: a whole log's are not (memory would grow with the log)
        self.keep_rederived = correlation is not None
        #: bytes of events held in ``intents``
        self.held = 0
        #: decisions whose policy part came from a batch (the rest were decided alone)
        self.batched = 0
        self.containment = ContainmentAudit(tenant)
        self.beliefs = BeliefAudit()
        self.intents: OrderedDict[str, _Tracked] = OrderedDict()
        #: intents dropped from memory and read again from the store
        self.reread = 0
        self.divergences: list[Divergence] = []
        self.counts = {"intents": 0, "decisions": 0, "votes": 0, "executions": 0}
        #: (intent, recorded decision, candidate decision) for what-if
        self.changes: list[tuple[ActionIntent, Decision, Decision]] = []
        #: every candidate decision, changed or not (``changes`` is the changed part)
        self.redecided: list[tuple[ActionIntent, Decision, Decision]] = []
        #: (decision event, re-derived decision) of every decision checked
        self.rederived: list[tuple[Event, Decision]] = []

    # -- reporting ---------------------------------------------------------

    def diverge(self, event: Event, where: str, recorded: Any, replayed: Any, reason: str) -> None:
        if len(self.divergences) < _MAX_DIVERGENCES:
            self.divergences.append(
                Divergence(
                    event.seq,
                    event.event_id,
                    event.type,
                    event.intent_id,
                    where,
                    recorded,
                    replayed,
                    reason,
                )
            )

    def compare(self, event: Event, where: str, recorded: Any, replayed: Any, reason: str) -> bool:
        if same_json(recorded, replayed):
            return True
        found = first_difference(recorded, replayed)
        if found is None:
            return True
        path, a, b = found
        self.diverge(event, f"{where}.{path}" if path != "(value)" else where, a, b, reason)
        return False

    # -- inputs rebuilt from the ledger ----------------------------------------

    def engine(self, system: Controls, tenant: Controls) -> PolicyEngine | None:
        return engine_in_force(system, tenant, self._load_engine)

    def _load_engine(self, log: str, policy_hash: str, event_id: str) -> PolicyEngine | None:
        engine = self.engines.get(policy_hash)
        if engine is None:
            event = self.store.event_by_id(log, event_id)
            if event is None:
                return None
            engine = engine_from_activation(event)
            self.engines[policy_hash] = engine
        return engine

    def gate_config(
        self, event: Event, position: int, config_hash: str | None
    ) -> GateConfig | None:
        config = self.system.config(position, config_hash)
        if config is None:
            self.diverge(
                event,
                "config_hash",
                config_hash,
                None,
                "no config.snapshot with this hash precedes the decision in the system log",
            )
            return None
        # content-addressed: a hash names one configuration, read once
        gate = self.gates.get(config_hash) if config_hash is not None else None
        if gate is None:
            gate = GateConfig.from_recorded(config["gate"])
            if config_hash is not None:
                self.gates[config_hash] = gate
        return gate

    def window(self, position: int, config_hash: str | None) -> int:
        config = self.system.config(position, config_hash) or {}
        return int(config.get("approvals", {}).get("window_seconds", _DEFAULT_WINDOW))

    # -- the pass ------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> ReplayReport:
        frontier = Frontier()
        roots: dict[int, bytes] = {}
        latest = self.store.latest_checkpoint(self.tenant)
        want_root = latest[0] if latest else None
        if want_root == 0:
            roots[0] = frontier.root()
        size = self.store.size(self.tenant)
        events = iter(self.store.events(self.tenant, 0, size))
        with PAUSED:
            chunks = 0
            while chunk := list(islice(events, _AHEAD)):
                self.decide_ahead(chunk)
                for event in chunk:
                    self.replay_event(event, frontier, want_root, roots)
                    if progress is not None:
                        progress(1)
                chunks += 1
                if chunks % _COLLECT_EVERY == 0:
                    PAUSED.collect_young()
        self.ahead.clear()
        for event, (where, recorded, replayed, reason) in self.beliefs.missing():
            if event.seq >= self.start:
                self.diverge(event, where, recorded, replayed, reason)
        root = frontier.root()
        checkpoint_size, checkpoint_verified = None, None
        if latest is not None:
            checkpoint_size = latest[0]
            checkpoint_verified = self.check_checkpoint(latest[1], roots, frontier, root)
        for tracked in self.intents.values():
            if tracked.expected:
                last = tracked.events[-1]
                self.diverge(
                    last,
                    "records",
                    None,
                    tracked.expected[0][0],
                    "a vote's ruling is missing records the replay expects",
                )
        return ReplayReport(
            tenant=self.tenant,
            events=frontier.size,
            intents=self.counts["intents"],
            decisions=self.counts["decisions"],
            votes=self.counts["votes"],
            executions=self.counts["executions"],
            tree_size=frontier.size,
            root_hash=root.hex(),
            checkpoint_size=checkpoint_size,
            checkpoint_verified=checkpoint_verified,
            divergences=tuple(sorted(self.divergences, key=lambda d: d.seq)),
            correlation=self.correlation,
            start=self.start,
            fold_rebuilds=self.fold.rebuilds + self.system.fold.rebuilds,
        )

    def replay_event(
        self, event: Event, frontier: Frontier, want_root: int | None, roots: dict[int, bytes]
    ) -> None:
        leaf = leaf_hash(event.canonical)
        self.check_bytes(event, frontier.size, leaf)
        frontier.append(leaf)
        if frontier.size == want_root:
            roots[want_root] = frontier.root()
        if event.intent_id is not None:
            try:
                self.on_intent_event(event)
            except (ExoArmurError, KeyError, TypeError, ValueError) as exc:
                self.diverge(event, "payload", None, None, f"cannot replay: {exc}")
        for where, recorded, replayed, reason in self.containment.check(event):
            if event.seq >= self.start:
                self.diverge(event, where, recorded, replayed, reason)
        for where, recorded, replayed, reason in self.beliefs.check(event):
            if event.seq >= self.start:
                self.diverge(event, where, recorded, replayed, reason)
        if event.type == TRUST_SCORED and event.seq >= self.start:
            self.on_trust(event)
        self.fold.offer(event)

    def decide_ahead(self, chunk: list[Event]) -> None:
        """Policy's decision for the chunk's decisions, one Cedar call per engine and posture.

        A guess at the inputs (the engine the decision names, the posture it
        records), keyed by every input policy reads: :meth:`on_decision` uses a
        result only when the inputs it derives from the folds are the same ones,
        and decides alone otherwise. Cedar decides each request of a batch on its
        own, so a result used is exactly what deciding alone gives.
        """
        self.ahead.clear()
        if len(self.recent) > 2 * _AHEAD:
            self.recent = dict(list(self.recent.items())[-_AHEAD:])
        runs: dict[tuple[int, str, str | None], list[tuple[int, ActionIntent]]] = {}
        engines: dict[int, tuple[PolicyEngine, GateConfig]] = {}
        for event in chunk:
            if event.type == INTENT_RECORDED and event.intent_id is not None:
                try:
                    intent, computed = recorded_intent(event.payload)
                except (ExoArmurError, KeyError, TypeError, ValueError):
                    continue  # on_decision reads it again and reports why
                self.recent[event.intent_id] = (event.seq, intent, computed)
                continue
            if event.type == POLICY_ACTIVATED and event.tenant == self.tenant:
                with suppress(KeyError, TypeError):
                    self.activations.setdefault(
                        str(event.payload["policy_hash"]), (self.tenant, event.event_id)
                    )
                continue
            if event.type != DECISION_RECORDED or event.intent_id not in self.recent:
                continue
            try:
                named = event.payload["decision"]
                engine = (
                    self.candidate
                    if self.candidate is not None
                    else self.engine_named(str(named["policy_hash"]))
                )
                config_hash = named.get("config_hash")
                config = self.gate_named(config_hash)
                posture = str(event.payload["posture"])
            except (ExoArmurError, KeyError, TypeError, AttributeError, ValueError):
                continue  # a guess only: on_decision decides it alone and reports why
            if engine is None or config is None:
                continue
            engines[id(engine)] = (engine, config)
            seq, intent, _ = self.recent[str(event.intent_id)]
            runs.setdefault((id(engine), posture, config_hash), []).append((seq, intent))
        for (engine_id, posture, config_hash), cases in runs.items():
            engine, config = engines[engine_id]
            try:
                tightened = config.policy_context(posture)
            except (ExoArmurError, KeyError, TypeError, ValueError):
                continue
            batch = engine.decide_batch([intent for _, intent in cases], posture, tightened)
            for (seq, _), decision in zip(cases, batch, strict=True):
                self.ahead[(seq, engine_id, posture, config_hash)] = decision

    def engine_named(self, policy_hash: str) -> PolicyEngine | None:
        """The engine of a policy hash a decision names, loaded from an activation of it."""
        engine = self.engines.get(policy_hash)
        if engine is None and policy_hash in self.activations:
            log, event_id = self.activations[policy_hash]
            # content-addressed: any activation holding this hash holds this bundle
            engine = self._load_engine(log, policy_hash, event_id)
        return engine

    def gate_named(self, config_hash: Any) -> GateConfig | None:
        """The gate configuration of a config hash a decision names, read once."""
        if not isinstance(config_hash, str):
            return None
        gate = self.gates.get(config_hash)
        if gate is None:
            config = self.system.any_config(config_hash)
            if config is None:
                return None
            gate = self.gates[config_hash] = GateConfig.from_recorded(config["gate"])
        return gate

    def check_bytes(self, event: Event, seq: int, leaf: bytes) -> None:
        if leaf != event.leaf_hash:
            self.diverge(
                event,
                "leaf_hash",
                event.leaf_hash.hex(),
                leaf.hex(),
                "the event's bytes do not hash to its stored leaf hash",
            )
        if event.seq != seq:
            self.diverge(event, "seq", event.seq, seq, "the event is not where it says it is")
        if event.tenant != self.tenant:
            self.diverge(
                event, "tenant", event.tenant, self.tenant, "the event names another tenant"
            )

    def check_checkpoint(
        self, note: str, roots: dict[int, bytes], frontier: Frontier, root: bytes
    ) -> bool:
        verifier = self.verifier
        if verifier is None:
            return True
        try:
            checkpoint = open_checkpoint(note, verifier)
        except ExoArmurError:
            return False
        if checkpoint.size > frontier.size:
            return False
        return roots.get(checkpoint.size) == checkpoint.root_hash and verify_consistency(
            checkpoint.size,
            frontier.size,
            checkpoint.root_hash,
            root,
            consistency_proof(
                checkpoint.size,
                frontier.size,
                lambda keys: dict(self.store.read_nodes(self.tenant, keys)),
            ),
        )

    verifier: Verifier | None = None

    def tracked(self, event: Event) -> _Tracked:
        assert event.intent_id is not None
        tracked = self.intents.get(event.intent_id)
        if tracked is None and event.type == INTENT_RECORDED:
            tracked = _Tracked()  # its first event: nothing earlier to read
            self.intents[event.intent_id] = tracked
        elif tracked is None:
            # Dropped (or first seen): its earlier events are in the ledger.
            self.reread += 1
            earlier = [
                e
                for e in self.store.events_for_intent(self.tenant, event.intent_id)
                if e.seq < event.seq
            ]
            tracked = _Tracked(events=earlier, size=sum(len(e.canonical) for e in earlier))
            for e in earlier:
                if e.type == DECISION_RECORDED:
                    tracked.decision = Decision.from_canonical(e.payload["decision"])
            self.intents[event.intent_id] = tracked
            self.held += tracked.size
        else:
            self.intents.move_to_end(event.intent_id)
        return tracked

    def hold(self, event: Event, tracked: _Tracked) -> None:
        """Keep ``event`` with its intent's; drop what later events will not need."""
        tracked.events.append(event)
        tracked.size += len(event.canonical)
        self.held += len(event.canonical)
        if event.type in _TERMINAL and not tracked.expected:
            assert event.intent_id is not None
            if self.intents.pop(event.intent_id, None) is tracked:
                self.held -= tracked.size
        while self.held > _OPEN_BYTES and len(self.intents) > 1:
            _, oldest = self.intents.popitem(last=False)
            self.held -= oldest.size

    def checking(self, event: Event, tracked: _Tracked) -> bool:
        if event.seq < self.start:
            return False
        if self.correlation is None:
            return True
        return event.correlation_id == self.correlation

    def on_intent_event(self, event: Event) -> None:
        tracked = self.tracked(event)
        check = self.checking(event, tracked)
        kind = event.type
        if tracked.expected:
            expected_type, expected_payload = tracked.expected.pop(0)
            if check:
                self.compare(event, "type", kind, expected_type, "the vote's ruling differs")
                self.compare(
                    event, "payload", event.payload, expected_payload, "the vote's ruling differs"
                )
        elif kind == INTENT_RECORDED:
            self.on_recorded(event, check)
        elif kind == DECISION_RECORDED:
            self.on_decision(event, tracked, check)
        elif kind == GATE_BLOCKED:
            if check and tracked.decision is not None:
                gate = tracked.decision.gate or {}
                expected = gate | {
                    "verdict": tracked.decision.verdict.value,
                    "intent_hash": tracked.events[0].payload["intent_hash"],
                }
                self.compare(
                    event, "payload", event.payload, expected, "the gate's block record differs"
                )
        elif kind == APPROVAL_REQUESTED:
            self.on_requested(event, tracked, check)
        elif kind == EVIDENCE_SATISFIED:
            self.on_satisfied(event, tracked, check)
        elif "cast" in event.payload and kind in (
            APPROVAL_ESCALATED,
            APPROVAL_GRANTED,
            APPROVAL_REJECTED,
            APPROVAL_REFUSED,
            INTENT_EXPIRED,
        ):
            self.on_vote(event, tracked, check)
        elif kind == INTENT_EXPIRED:
            self.on_expiry(event, tracked, check)
        elif kind == APPROVAL_ESCALATED:
            self.on_escalation(event, tracked, check)
        elif kind in (EXECUTION_STARTED, EXECUTION_RETRY, EXECUTION_FINISHED, EXECUTION_BLOCKED):
            self.on_execution(event, tracked, check)
        elif kind == EXECUTION_OUTCOME_UNKNOWN:
            started = any(e.type == EXECUTION_STARTED for e in tracked.events)
            finished = any(e.type == EXECUTION_FINISHED for e in tracked.events)
            if check and (not started or finished):
                self.diverge(
                    event, "type", kind, None, "outcome_unknown without an unfinished execution"
                )
        elif kind in (INTENT_APPROVED, INTENT_REJECTED) and check:
            self.diverge(event, "type", kind, None, "no vote in the record leads to this")
        self.hold(event, tracked)

    def on_recorded(self, event: Event, check: bool) -> None:
        self.counts["intents"] += 1
        intent = event.payload["intent"]
        key, actor = intent["idempotency_key"], intent["actor"]["id"]
        indexed = event.intent_id
        # A key met for the first time in the log cannot be a second use of it. One
        # the filter may have met is looked up in the store's idempotency index, which
        # holds one intent per key: another intent there is a key already used.
        if self.seen_keys.add(str(key)):
            indexed = self.store.intent_for_key(self.tenant, intent_key(actor, key))
            if indexed is None:  # a ledger written before keys were scoped to the actor
                indexed = self.store.intent_for_key(self.tenant, key)
        if indexed != event.intent_id and check:
            self.diverge(
                event,
                "intent.idempotency_key",
                intent["idempotency_key"],
                indexed,
                "the idempotency index names another intent for this key: already used",
            )
        if check:
            seen = self.recent.get(str(event.intent_id))
            computed = seen[2] if seen is not None and seen[0] == event.seq else None
            self.compare(
                event,
                "intent_hash",
                event.payload["intent_hash"],
                computed or content_hash(intent),
                "the recorded intent does not hash to its recorded hash",
            )

    def on_decision(self, event: Event, tracked: _Tracked, check: bool) -> None:
        recorded = Decision.from_canonical(event.payload["decision"])
        tracked.decision = recorded
        if not tracked.events or tracked.events[0].type != INTENT_RECORDED:
            if check:
                self.diverge(
                    event,
                    "type",
                    event.type,
                    INTENT_RECORDED,
                    "a decision with no intent before it",
                )
            return
        self.counts["decisions"] += 1
        intent_event = tracked.events[0]
        # read ahead from this very event (same log position), so read once
        seen = self.recent.get(str(event.intent_id))
        if seen is not None and seen[0] == intent_event.seq:
            intent = seen[1]
        else:
            intent = ActionIntent.from_canonical(intent_event.payload["intent"])
        tracked.intent = intent
        positions = event.payload["controls"]
        if not self.positions_ok(event, positions, "controls"):
            return
        system = self.system.controls(positions["system"])
        tenant = self.fold.at(positions["tenant"])
        engine = self.candidate or self.engine(system, tenant)
        if engine is None:
            if check:
                self.diverge(
                    event,
                    "decision.policy_hash",
                    recorded.policy_hash,
                    None,
                    "no policy was in force",
                )
            return
        at = intent_event.process_time
        config = self.gate_config(event, positions["system"], recorded.config_hash)
        if config is None:
            return
        state = tenant.posture_at(at)
        key = (intent_event.seq, id(engine), state.posture, recorded.config_hash)
        ahead = self.ahead.pop(key, None)
        if ahead is not None and self.gates.get(recorded.config_hash or "") is config:
            # decide() is this policy decision, then the gate (see decide_many)
            ruled = [(ahead.model_copy(update={"config_hash": recorded.config_hash}), state)]
            decided = gate_many([(intent, at)], ruled, system, tenant, config)[0]
            self.batched += 1
        else:
            decided = decide(intent, engine, system, tenant, config, at, recorded.config_hash)
        posture = decided.posture
        if check and event.payload.get("posture") != posture:
            self.diverge(
                event, "posture", event.payload.get("posture"), posture, "the posture differs"
            )
        replayed = decided.decision
        if self.candidate is not None:
            self.redecided.append((intent, recorded, replayed))
            if replayed.verdict != recorded.verdict or replayed.reasons != recorded.reasons:
                self.changes.append((intent, recorded, replayed))
            return
        if check:
            if self.keep_rederived:
                self.rederived.append((event, replayed))
            self.compare(
                event,
                "decision",
                recorded.to_canonical(),
                replayed.to_canonical(),
                "the decision re-derived from the ledger differs from the recorded one",
            )

    def on_trust(self, event: Event) -> None:
        """Recorded trust scores must be what the log before them says, at their position."""
        try:
            position = int(event.payload["controls"]["tenant"])
            if not self.positions_ok(event, {"tenant": position}, "controls"):
                return
            scores = [t.to_canonical() for t in self.fold.at(position).evidence.trust()]
            self.compare(
                event,
                "scores",
                event.payload["scores"],
                scores,
                "the trust scores re-derived from the log differ",
            )
        except (ExoArmurError, KeyError, TypeError, ValueError) as exc:
            self.diverge(event, "payload", None, None, f"cannot replay: {exc}")

    def on_satisfied(self, event: Event, tracked: _Tracked, check: bool) -> None:
        """Evidence released a held intent: it must really meet the level, at that position."""
        held = tracked.decision
        if held is None or held.verdict != Verdict.PENDING_EVIDENCE or not tracked.events:
            if check:
                self.diverge(event, "type", event.type, None, "nothing was waiting for evidence")
            return
        intent = tracked.intent or ActionIntent.from_canonical(tracked.events[0].payload["intent"])
        intent_hash = tracked.events[0].payload["intent_hash"]
        position = event.payload["controls"]["tenant"]
        if not self.positions_ok(event, {"tenant": position}, "controls"):
            return
        fold = self.fold.at(position).evidence
        then = released(held)
        expected = {
            "intent_hash": intent_hash,
            "required": (held.gate or {})["evidence"]["required"],
            "met": level_met(parse_refs(intent.params), fold, intent.intent_id, intent_hash),
            "controls": {"tenant": position},
            "verdict": then.verdict.value,
        }
        if check:
            self.compare(event, "payload", event.payload, expected, "the evidence release differs")
            if rank(expected["met"]) < rank(expected["required"]):
                self.diverge(
                    event,
                    "met",
                    expected["met"],
                    expected["required"],
                    "released with less evidence than required",
                )
        tracked.decision = then

    def on_requested(self, event: Event, tracked: _Tracked, check: bool) -> None:
        decided = next(
            (e for e in reversed(tracked.events) if e.type == EVIDENCE_SATISFIED),
            next((e for e in tracked.events if e.type == DECISION_RECORDED), None),
        )
        if decided is None or tracked.decision is None:
            return
        if tracked.decision.verdict != Verdict.REQUIRE_APPROVAL:
            if check:
                self.diverge(
                    event,
                    "type",
                    event.type,
                    None,
                    "approval requested for a decision that needs none",
                )
            return
        first = next(e for e in tracked.events if e.type == DECISION_RECORDED)
        window = self.window(first.payload["controls"]["system"], tracked.decision.config_hash)
        expected = approval_request(tracked.decision, decided.process_time, window) | {
            "intent_hash": tracked.events[0].payload["intent_hash"]
        }
        if check:
            self.compare(event, "payload", event.payload, expected, "the approval request differs")

    def positions_ok(self, event: Event, positions: dict[str, int], where: str) -> bool:
        """A record can only have read events before it: anything else is a gap in the log."""
        if positions["tenant"] <= event.seq:
            return True
        self.diverge(
            event,
            f"{where}.tenant",
            positions["tenant"],
            event.seq,
            "the record read more of its log than lies before it: an event before it was removed",
        )
        return False

    def on_vote(self, event: Event, tracked: _Tracked, check: bool) -> None:
        self.counts["votes"] += 1
        cast = event.payload["cast"]
        name = cast["voter"]
        positions = cast["controls"]
        if not self.positions_ok(event, positions, "cast.controls"):
            return
        book = self.system.principals(positions["system"])
        principal = book.latest(name)
        if principal is None:
            if check:
                self.diverge(event, "cast.voter", name, None, "no such principal in the system log")
            return
        now = event.process_time
        over_limit: str | None
        if book.get(name) != principal:
            over_limit = revoked(name)
        else:
            config = self.gate_config(event, positions["system"], cast.get("config_hash"))
            if config is None:
                return
            over_limit = vote_over_limit(self.fold.at(positions["tenant"]), config, name, now)
        ruling = rule_on(
            intent_state(tracked.events),
            principal,
            Vote(cast["vote"]),
            cast["reason"],
            cast["presented_hash"],
            now,
            over_limit=over_limit,
        )
        records = [
            (kind, body if number else body | {"cast": cast})
            for number, (kind, body) in enumerate(ruling.records)
        ]
        first_type, first_payload = records[0]
        tracked.expected = records[1:]
        if check:
            self.compare(event, "type", event.type, first_type, "the vote's ruling differs")
            self.compare(
                event, "payload", event.payload, first_payload, "the vote's ruling differs"
            )

    def on_escalation(self, event: Event, tracked: _Tracked, check: bool) -> None:
        """A ladder's rung recorded by the tick: due at its recorded time, and as the book says."""
        state = intent_state(tracked.events)
        if not check:
            return
        if not escalation_due(state, event.process_time):
            self.diverge(event, "type", event.type, None, "no escalation was due at this time")
            return
        _, expected = escalation_record(state)
        self.compare(event, "payload", event.payload, expected, "the escalation differs")

    def on_expiry(self, event: Event, tracked: _Tracked, check: bool) -> None:
        state = intent_state(tracked.events)
        if not check:
            return
        if not is_due(state, event.process_time):
            self.diverge(
                event,
                "process_time",
                event.process_time.isoformat(),
                state.deadline.isoformat() if state.deadline else None,
                "expired before its deadline (or while not pending)",
            )
            return
        _, expected = expiry_record(state)
        self.compare(event, "payload", event.payload, expected, "the expiry record differs")

    def on_execution(self, event: Event, tracked: _Tracked, check: bool) -> None:
        kinds = [e.type for e in tracked.events]
        decision = tracked.decision
        if event.type == EXECUTION_STARTED:
            self.counts["executions"] += 1
            allowed = decision is not None and (
                decision.verdict == Verdict.ALLOW or INTENT_APPROVED in kinds
            )
            if check and not allowed:
                self.diverge(
                    event, "type", event.type, None, "started without an allow or an approval"
                )
            if check and EXECUTION_STARTED in kinds:
                self.diverge(event, "type", event.type, None, "started a second time")
            return
        # An approved intent whose re-check refused the start records the block
        # instead of a start: nothing was attempted, so nothing claims it was.
        # So does an allowed one its caller asked to start (exoarmur.reported:
        # recorded with no binding, since no executor is bound to it).
        reported = "binding" in event.payload and event.payload["binding"] is None
        blocked_before_start = event.type == EXECUTION_BLOCKED and (
            INTENT_APPROVED in kinds
            or (reported and decision is not None and decision.verdict == Verdict.ALLOW)
        )
        if EXECUTION_STARTED not in kinds and not blocked_before_start:
            if check:
                self.diverge(event, "type", event.type, None, "no execution.started before it")
            return
        positions = event.payload.get("controls")
        intent = tracked.intent or ActionIntent.from_canonical(tracked.events[0].payload["intent"])
        if positions is not None and check and self.positions_ok(event, positions, "controls"):
            verdict = recheck(
                intent, self.system.controls(positions["system"]), self.fold.at(positions["tenant"])
            )
            recorded = (
                [event.payload["control"], event.payload["reason"]]
                if event.type == EXECUTION_BLOCKED
                else None
            )
            self.compare(
                event,
                "recheck",
                recorded,
                list(verdict) if verdict is not None else None,
                "the gate's re-check before the side effect differs",
            )
        if event.type == EXECUTION_FINISHED and check and event.payload["status"] == "succeeded":
            self.compare(
                event,
                "result_hash",
                event.payload["result_hash"],
                content_hash(event.payload["result"]),
                "the recorded result does not hash to its recorded hash",
            )


def replay(
    store: LedgerStore,
    tenant: str,
    *,
    verifier: Verifier | None = None,
    correlation: str | None = None,
    start: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Re-decide a tenant's log from the ledger alone; a frozen report of what matched."""
    replayer = Replayer(store, tenant, correlation=correlation, start=start)
    replayer.verifier = verifier
    return replayer.run(progress)


def iter_tenants(store: LedgerStore) -> Iterator[str]:
    return (t for t in store.tenants() if t != SYSTEM_LOG)
