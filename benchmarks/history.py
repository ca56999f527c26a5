"""Benchmark homes and long histories: the data the suite's measurements run on.

A *benchmark home* is a real data directory made by ``Home.init`` with the
suite's policy (reads allowed, one forbidden target, two-person approval for
``bench.deploy``) and a configuration that binds ``bench.read`` and
``bench.deploy`` to the echo executor and sets no rate limits (the gate's
limits would rightly stop one agent's thousands of intents a minute; this
measures governance, not the limits).

A *long history* (100,000 or 1,000,000 events) would take many minutes to
govern one intent at a time, so it is **stamped**: a block of three intents
(one executed by the echo executor, one decided with no executor bound, one
denied) is governed for real by a deterministic governor, and copies of that
block are appended through the store's own ``append`` (so the same canonical
encoding, leaf hashes and Merkle nodes), each copy with fresh ids,
idempotency keys and times, and the intent hashes and control positions that
follow from them. Replay re-derives every one of those events; the suite
aborts if a stamped history does not replay without a divergence, so a
benchmark can never run on a log the pipeline would not have written.

Nothing here reads a clock: stamped times are the template's times shifted,
stamped ids come from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from exoarmur.encoding import content_hash, format_time, parse_time
from exoarmur.home import Home, open_governor
from exoarmur.ids import SeededIds
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import (
    DECISION_RECORDED,
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    INTENT_RECORDED,
    Event,
    EventDraft,
)

TENANT = "acme"
AGENT = {"id": "agent-1", "kind": "agent"}
OPERATORS = ("alice", "bob")

POLICY = """\
@id("allow-read-only")
permit (principal, action, resource)
when { context.safety_class == "A0" };

@id("never-prod-db")
forbid (principal, action, resource == Target::"db/prod");

@id("two-person-deploy")
@approval("2")
permit (principal, action == Action::"bench.deploy", resource)
when { context.safety_class == "A2" };
"""

CONFIG = """\
[executors]
"bench.read" = { type = "echo" }
"bench.deploy" = { type = "echo" }
"""

#: event types a stamped block may hold; anything else would need its own rewriting rule
_STAMPABLE = (INTENT_RECORDED, DECISION_RECORDED, EXECUTION_STARTED, EXECUTION_FINISHED)
#: drafts per store append while stamping: one transaction each
_STAMP_BATCH = 4000


def make_home(path: Path) -> Home:
    """A fresh benchmark home at ``path`` (which must not hold one yet)."""
    home = Home(path)
    path.mkdir(mode=0o700, parents=True)
    home.policy_dir.mkdir(mode=0o700)
    (home.policy_dir / "bench.cedar").write_text(POLICY, encoding="utf-8")
    home.config_path.write_text(CONFIG, encoding="utf-8")
    home.init()
    return home


def block(number: int, correlation: str | None = None) -> list[dict[str, Any]]:
    """The three intents of one block: executed, decided, denied."""
    common: dict[str, Any] = {"tenant": TENANT, "actor": dict(AGENT), "safety_class": "A0"}
    if correlation is not None:
        common["correlation_id"] = correlation
    return [
        common
        | {
            "action": "bench.read",
            "target": "reports/q3.txt",
            "params": {"bytes": 4096},
            "idempotency_key": f"hist-{number}-read",
        },
        common
        | {
            "action": "bench.lookup",
            "target": "hosts/db-01",
            "params": {"fields": ["owner", "os"]},
            "idempotency_key": f"hist-{number}-lookup",
        },
        common
        | {
            "action": "bench.read",
            "target": "db/prod",
            "params": {"bytes": 4096},
            "idempotency_key": f"hist-{number}-prod",
        },
    ]


EVENTS_PER_BLOCK = 8  # 4 (executed) + 2 (decided) + 2 (denied)


@dataclass(frozen=True)
class History:
    home: Home
    tenant: str
    events: int
    governed: int  #: events written by the real governor (the template)
    stamped: int  #: events stamped from it


def build_history(
    path: Path,
    events: int,
    *,
    seed: int = 7,
    correlation: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> History:
    """A benchmark home whose tenant log holds at least ``events`` events.

    The first block is governed for real; the rest is stamped from it. With
    ``correlation`` every intent carries that correlation id (one evidence
    bundle covers the whole log). A checkpoint is signed at the end.
    """
    home = make_home(path)
    with open_governor(home.path, seed=seed) as governor:
        for intent in block(0, correlation):
            governor.submit(intent)
        governed = governor.ledger.size(TENANT)
        if progress is not None:
            progress(governed)
    blocks = max(1, -(-events // EVENTS_PER_BLOCK))
    store = SqliteStore(home.ledger_path)
    try:
        stamp(store, TENANT, blocks - 1, seed=seed, progress=progress)
        total = store.size(TENANT)
    finally:
        store.close()
    ledger = home.ledger()
    try:
        ledger.current_checkpoint(TENANT)
    finally:
        ledger.store.close()
    return History(home, TENANT, total, governed, total - governed)


def stamp(
    store: SqliteStore,
    tenant: str,
    copies: int,
    *,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append ``copies`` copies of the tenant's log (whole intents only) to itself."""
    template = list(store.events(tenant))
    if not template:
        raise ValueError(f"tenant {tenant!r} has no events to stamp from")
    unknown = sorted({e.type for e in template} - set(_STAMPABLE))
    if unknown:
        raise ValueError(f"cannot stamp events of type {unknown}")
    first = min(e.process_time for e in template)
    period = max(e.process_time for e in template) - first + timedelta(milliseconds=1)
    ids = SeededIds(seed + 1_000_003)  # distinct from the template's own ids
    pending: list[EventDraft] = []
    size = store.size(tenant)
    for copy in range(1, copies + 1):
        pending.extend(_copy(template, copy, copy * period, size - template[0].seq, ids))
        size += len(template)
        if len(pending) >= _STAMP_BATCH or copy == copies:
            store.append(tenant, pending)
            if progress is not None:
                progress(len(pending))
            pending = []


def _copy(
    template: list[Event], copy: int, shift: timedelta, delta: int, ids: SeededIds
) -> list[EventDraft]:
    """One copy of the template: new ids, keys and times; hashes and positions to match."""
    intent_ids: dict[str, str] = {}
    hashes: dict[str, str] = {}
    drafts = []
    for event in template:
        old_id = event.intent_id
        assert old_id is not None  # only intents' events are stamped
        process_time = event.process_time + shift
        if old_id not in intent_ids:
            intent_ids[old_id] = ids.new(process_time)
        new_id = intent_ids[old_id]
        correlation = new_id if event.correlation_id == old_id else event.correlation_id
        payload = dict(event.payload)
        key = None
        if event.type == INTENT_RECORDED:
            intent = dict(payload["intent"])
            key = f"{intent['idempotency_key']}~{copy}"
            intent.update(
                intent_id=new_id,
                idempotency_key=key,
                correlation_id=correlation,
                event_time=format_time(parse_time(intent["event_time"]) + shift),
            )
            payload["intent"] = intent
            hashes[old_id] = content_hash(intent)
        if "intent_hash" in payload:
            payload["intent_hash"] = hashes[old_id]
        if "controls" in payload:
            payload["controls"] = payload["controls"] | {
                "tenant": payload["controls"]["tenant"] + delta
            }
        drafts.append(
            EventDraft(
                event_id=ids.new(process_time),
                tenant=event.tenant,
                type=event.type,
                correlation_id=correlation,
                event_time=event.event_time + shift,
                process_time=process_time,
                actor=event.actor,
                payload=payload,
                intent_id=new_id,
                idempotency_key=key,
            )
        )
    return drafts
