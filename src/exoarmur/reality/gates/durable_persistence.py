"""durable_persistence: every acknowledged outcome is in the ledger after the SIGKILL.

Read right after the kill, before any restart; the SQLite file's own settings
(WAL, ``synchronous=FULL``) are read back as the store's connection sees them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ...ledger.sqlite import SqliteStore
from ...model.event import DECISION_RECORDED, intent_key
from ..report import Gate
from ..scenario import AGENT, KILL_STEP, STEP_BY_NAME, TENANT
from ..state import Run, why


def observe_durability(run: Run) -> dict[str, Any]:
    """After the kill, before any restart: is every ACKed outcome in the ledger?"""
    first = run.children[0]
    ledger = run.home.ledger()
    missing: list[str] = []
    intents: set[str] = set()
    actions = 0
    try:
        store = ledger.store
        for ack in first.acks:
            if ack["kind"] == "submit":
                intents.add(ack["intent_id"])
                events = store.events_for_intent(TENANT, ack["intent_id"])
                decided = [e for e in events if e.type == DECISION_RECORDED]
                found = bool(decided) and (
                    decided[0].payload["decision"]["verdict"] == ack["verdict"]
                )
            else:
                actions += 1
                found = bool(ack["events"]) and all(
                    (event := store.event_by_id(TENANT, event_id)) is not None
                    and event.type == event_type
                    for event_id, event_type in ack["events"]
                )
            if not found:
                missing.append(f"{ack['step']}#{ack['delivery']}")
        landed = (
            store.intent_for_key(TENANT, intent_key(AGENT, STEP_BY_NAME[KILL_STEP].key)) is not None
        )
        size = store.size(TENANT)
    finally:
        ledger.store.close()
    return {
        "acks": len(first.acks),
        "intents_acked": len(intents),
        "operator_actions_acked": actions,
        "missing": missing,
        "in_flight_landed": landed,
        "tenant_size_after_kill": size,
    }


def storage_state(path: Path) -> dict[str, Any]:
    """The SQLite file as a store's own connection reads it back (its pragmas)."""
    with SqliteStore(path) as store:
        return _read_back(path, store)


def _read_back(path: Path, store: SqliteStore) -> dict[str, Any]:
    settings = store.settings()
    header = path.read_bytes()[:100]
    return {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "wal_bytes": _size(path.with_name(path.name + "-wal")),
        "tables": store.table_counts(),
        "journal_mode": settings["journal_mode"],
        "synchronous": int(settings["synchronous"]),
        "synchronous_name": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            int(settings["synchronous"]), "unknown"
        ),
        "header_wal_format": header[18] == 2 and header[19] == 2,
        "page_size": int(settings["page_size"]),
        "page_count": int(settings["page_count"]),
        "quick_check": store.integrity_check(),
        "sqlite_version": sqlite3.sqlite_version,
    }


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.exists() else None


def judge_durable(run: Run) -> Gate:
    durable, storage = run.durable, run.storage
    if not durable:
        return Gate("durable_persistence", False, why(run, "child-1", "durability"))
    wal = storage.get("journal_mode") == "wal" and storage.get("synchronous_name") == "FULL"
    ok = not durable["missing"] and durable["acks"] > 0 and durable["in_flight_landed"] and wal
    missing = f"; missing: {', '.join(durable['missing'][:5])}" if durable["missing"] else ""
    return Gate(
        "durable_persistence",
        ok,
        f"{durable['acks']} ACKs before SIGKILL ({durable['intents_acked']} intents, "
        f"{durable['operator_actions_acked']} operator actions): "
        f"{durable['acks'] - len(durable['missing'])} found in the ledger after the kill, "
        f"{len(durable['missing'])} missing{missing}; {KILL_STEP}, recorded and never "
        f"acknowledged, {'is there too' if durable['in_flight_landed'] else 'is MISSING'}; "
        f"journal_mode={storage.get('journal_mode')} synchronous={storage.get('synchronous_name')}",
    )
