"""ReplayEngine: replay one audit stream (one correlation), as ExoArmur-Core's API spells it.

Two forms, one report:

- **The ledger form**, ``ReplayEngine(home_or_store).replay_correlation(cid)``:
  our decision-level replay (:mod:`.verify`) of the tenant log that holds
  the correlation. Every event's bytes are re-hashed into the Merkle tree,
  the tree is checked against the latest signed checkpoint, and every
  decision of the stream is re-derived from the ledger alone and compared
  field by field with the record.
- **The in-memory form**, ``ReplayEngine(audit_store={"corr-1": [event]})``,
  for events built by hand as :class:`CanonicalEvent`. It proves only that
  the given events are consistent: each payload hashes to its
  ``payload_hash`` (SHA-256 of the payload's RFC 8785 canonical JSON), each
  event belongs to the stream, ids are unique and the order holds. Nothing
  signs them, nothing shows they were ever recorded, and no decision is
  re-derived. ``docs/coming-from-core.md`` says the same for users.

The replay hash of a report is SHA-256 over the canonical JSON of the
stream id, its events' hashes and the re-derived decisions: it depends on
what happened in the stream, not on the home's key or checkpoint origin.

Pure apart from reading the store it is given: no clock, no environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..encoding import canonical_bytes, content_hash, sha256_hex
from ..errors import ExoArmurError, InputError
from ..ledger.keys import Verifier
from ..ledger.log import Ledger
from ..ledger.store import LedgerStore
from ..model.event import SYSTEM_LOG
from .verify import Replayer, ReplayReport


class ReplayResult(Enum):
    """What a replay found: every check held, or at least one did not."""

    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class ReplayFailure:
    """One thing that did not hold, naming the event and the field."""

    event_id: str
    field: str
    reason: str
    seq: int | None = None
    event_type: str | None = None
    recorded: Any = None
    replayed: Any = None

    def __str__(self) -> str:
        at = f" (seq {self.seq})" if self.seq is not None else ""
        return f"event {self.event_id}{at}, field {self.field}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "event_type": self.event_type,
            "field": self.field,
            "recorded": self.recorded,
            "replayed": self.replayed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CanonicalEvent:
    """An audit event built by hand, as in ExoArmur-Core's README."""

    event_id: str
    event_type: str
    actor: str
    correlation_id: str
    payload: Any
    payload_hash: str
    sequence_number: int | None = None
    parent_event_id: str | None = None

    def computed_hash(self) -> str:
        """SHA-256 (hex) of the payload's canonical JSON; InputError if JSON cannot carry it."""
        return sha256_hex(canonical_bytes(self.payload))

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "payload": self.payload,
            "payload_hash": self.payload_hash,
            "sequence_number": self.sequence_number,
            "parent_event_id": self.parent_event_id,
        }


@dataclass(frozen=True)
class CorrelationReplay:
    """The replay of one audit stream. ``result`` is SUCCESS only when ``failures`` is empty."""

    correlation_id: str
    failures: tuple[ReplayFailure, ...]
    events: int
    #: every event's hash, in stream order (leaf hashes in the ledger form)
    event_hashes: tuple[str, ...] = ()
    #: the decisions re-derived from the ledger (canonical form), in stream order
    decisions: tuple[dict[str, Any], ...] = ()
    tenant: str | None = None
    #: the full ledger replay behind the ledger form (None for the in-memory form)
    ledger: ReplayReport | None = None
    #: "ledger" or "in-memory": what the result proves differs (see the module docstring)
    form: str = "ledger"
    notes: tuple[str, ...] = field(default=())

    @property
    def result(self) -> ReplayResult:
        return ReplayResult.FAILURE if self.failures else ReplayResult.SUCCESS

    @property
    def replay_hash(self) -> str:
        return content_hash(
            {
                "correlation_id": self.correlation_id,
                "events": list(self.event_hashes),
                "decisions": list(self.decisions),
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "form": self.form,
            "tenant": self.tenant,
            "result": self.result.value,
            "events": self.events,
            "decisions": list(self.decisions),
            "replay_hash": self.replay_hash,
            "failures": [f.to_json() for f in self.failures],
            "notes": list(self.notes),
        }


class ReplayEngine:
    """Replay one correlation from a home, a store or a ledger, or from hand-built events."""

    def __init__(
        self,
        home_or_store: Any = None,
        *,
        audit_store: Mapping[str, Iterable[CanonicalEvent]] | None = None,
        tenant: str | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        if (home_or_store is None) == (audit_store is None):
            raise InputError(
                "ReplayEngine: give a home, store or ledger, or audit_store=, not both"
            )
        self._source = home_or_store
        self._audit_store = audit_store
        self._tenant = tenant
        self._verifier = verifier

    def replay_correlation(self, correlation_id: str) -> CorrelationReplay:
        if self._audit_store is not None:
            return replay_events(correlation_id, list(self._audit_store.get(correlation_id, ())))
        store, verifier, close = self._open()
        try:
            return replay_ledger(store, correlation_id, tenant=self._tenant, verifier=verifier)
        finally:
            if close:
                store.close()

    def _open(self) -> tuple[LedgerStore, Verifier | None, bool]:
        from ..home import Home

        source = self._source
        if isinstance(source, str | Path):
            source = Home(Path(source))
        if isinstance(source, Home):
            ledger = source.ledger()
            return ledger.store, self._verifier or ledger.verifier, True
        if isinstance(source, Ledger):
            return source.store, self._verifier or source.verifier, False
        if all(hasattr(source, name) for name in ("events", "events_for_correlation", "tenants")):
            store: LedgerStore = source  # a protocol: told apart by what it can do
            return store, self._verifier, False
        raise InputError(
            f"ReplayEngine: {type(source).__name__} is not a home, a ledger store or a ledger"
        )


def replay_ledger(
    store: LedgerStore,
    correlation_id: str,
    *,
    tenant: str | None = None,
    verifier: Verifier | None = None,
) -> CorrelationReplay:
    """Our decision-level replay of the tenant log holding ``correlation_id``, scoped to it."""
    if tenant is None:
        holders = [
            t
            for t in store.tenants()
            if t != SYSTEM_LOG and store.events_for_correlation(t, correlation_id)
        ]
        if len(holders) > 1:
            raise InputError(
                f"correlation {correlation_id!r} is in tenants {holders}: name one (tenant=)"
            )
        tenant = holders[0] if holders else None
    events = store.events_for_correlation(tenant, correlation_id) if tenant else []
    if tenant is None or not events:
        where = f"tenant {tenant!r}" if tenant else "any tenant"
        return CorrelationReplay(
            correlation_id,
            (ReplayFailure("-", "correlation_id", f"no events of this correlation in {where}"),),
            0,
            tenant=tenant,
        )
    replayer = Replayer(store, tenant, correlation=correlation_id)
    replayer.verifier = verifier
    report = replayer.run()
    failures = [
        ReplayFailure(d.event_id, d.field, d.reason, d.seq, d.event_type, d.recorded, d.replayed)
        for d in report.divergences
    ]
    notes = []
    if report.checkpoint_verified is False:
        failures.append(
            ReplayFailure(
                "-", "checkpoint", "the latest signed checkpoint does not verify for this log"
            )
        )
    elif verifier is None:
        notes.append("no verifier given: the checkpoint's signature was not checked")
    elif report.status == "UNANCHORED":
        notes.append("no signed checkpoint covers the log's end (replay verify: UNANCHORED)")
    return CorrelationReplay(
        correlation_id,
        tuple(failures),
        len(events),
        event_hashes=tuple(e.leaf_hash.hex() for e in events),
        decisions=tuple(d.to_canonical() for _, d in replayer.rederived),
        tenant=tenant,
        ledger=report,
        notes=tuple(notes),
    )


def replay_events(correlation_id: str, events: list[Any]) -> CorrelationReplay:
    """Check hand-built events for consistency: hashes, membership, ids and order."""
    failures: list[ReplayFailure] = []
    hashes: list[str] = []
    seen: set[str] = set()
    last_sequence: int | None = None
    if not events:
        failures.append(
            ReplayFailure("-", "correlation_id", "no events of this correlation in the audit store")
        )
    for index, event in enumerate(events):
        if not isinstance(event, CanonicalEvent):
            failures.append(
                ReplayFailure(
                    f"#{index}", "event", f"{type(event).__name__} is not a CanonicalEvent"
                )
            )
            continue
        name = event.event_id
        if event.correlation_id != correlation_id:
            failures.append(
                ReplayFailure(name, "correlation_id", f"belongs to {event.correlation_id!r}")
            )
        if name in seen:
            failures.append(ReplayFailure(name, "event_id", "appears twice in the stream"))
        if event.parent_event_id is not None and event.parent_event_id not in seen:
            failures.append(
                ReplayFailure(name, "parent_event_id", "names no earlier event of the stream")
            )
        seen.add(name)
        if event.sequence_number is not None:
            if last_sequence is not None and event.sequence_number <= last_sequence:
                failures.append(
                    ReplayFailure(
                        name,
                        "sequence_number",
                        f"{event.sequence_number} after {last_sequence}: out of order",
                    )
                )
            last_sequence = event.sequence_number
        try:
            computed = event.computed_hash()
        except (ExoArmurError, TypeError) as exc:
            failures.append(ReplayFailure(name, "payload", f"not canonical JSON: {exc}"))
            continue
        claimed = event.payload_hash.removeprefix("sha256:")
        if claimed != computed:
            failures.append(
                ReplayFailure(
                    name,
                    "payload_hash",
                    "does not match SHA-256 of the payload's canonical JSON",
                    recorded=event.payload_hash,
                    replayed=computed,
                )
            )
        hashes.append(content_hash(event.to_json() | {"payload_hash": computed}))
    return CorrelationReplay(
        correlation_id,
        tuple(failures),
        len(events),
        event_hashes=tuple(hashes),
        form="in-memory",
        notes=(
            "in-memory events: proves their consistency only (no signature, no inclusion, "
            "no re-decision)",
        ),
    )
