"""time_truth: sequence numbers without gaps, a process time that never goes back, and
the source's event time kept; which clock each process used is read from the ledger.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from ...clock import SystemClock
from ...encoding import format_time, parse_time
from ...model.event import INTENT_RECORDED, RUN_STARTED, SYSTEM_LOG
from ..report import Gate
from ..scenario import AGENT, STEPS, TENANT, intent_request
from ..state import Run


def judge_time(run: Run) -> tuple[dict[str, Any], Gate]:
    logs = {}
    ok = bool(run.logs)
    for log, events in run.logs.items():
        gap_free = [e.seq for e in events] == list(range(len(events)))
        backwards = [
            {
                "seq": b.seq,
                "process_time": format_time(b.process_time),
                "previous": format_time(a.process_time),
            }
            for a, b in pairwise(events)
            if b.process_time < a.process_time
        ]
        ok = ok and gap_free and not backwards
        logs[log] = {
            "events": len(events),
            "seq_gap_free": gap_free,
            "process_time_non_decreasing": not backwards,
            "backwards": backwards,
            "first_process_time": format_time(events[0].process_time) if events else None,
            "last_process_time": format_time(events[-1].process_time) if events else None,
        }
    runs = [
        e.payload
        for e in run.logs.get(SYSTEM_LOG, [])
        if e.type == RUN_STARTED and e.payload.get("run_id") == run.run_id
    ]
    clocks = {str(p.get("process")): p.get("clock", {}).get("kind") for p in runs}
    wanted = {"setup", "child-1", "child-2"}
    ok = ok and wanted <= set(clocks) and set(clocks.values()) == {SystemClock.name}
    intents = []
    source_kept = 0
    for event in run.logs.get(TENANT, []):
        if event.intent_id is None:
            continue
        intents.append(
            {
                "seq": event.seq,
                "type": event.type,
                "intent_id": event.intent_id,
                "event_time": format_time(event.event_time),
                "process_time": format_time(event.process_time),
                "lag_seconds": round((event.process_time - event.event_time).total_seconds(), 6),
            }
        )
        if event.type == INTENT_RECORDED:
            step = next(s for s in STEPS if s.key == event.payload["intent"]["idempotency_key"])
            said = parse_time(intent_request(step, run.source_time, AGENT)["event_time"])
            source_kept += event.event_time == said and event.process_time >= said
    recorded = sum(1 for e in run.logs.get(TENANT, []) if e.type == INTENT_RECORDED)
    ok = ok and recorded > 0 and source_kept == recorded
    model = {
        "clock": {
            "kind_recorded": clocks,
            "note": "process_time comes from the governor's injected clock (here the system "
            "clock, as recorded in run.started); event_time is what the source said",
        },
        "logs": logs,
        "intents_keeping_source_event_time": f"{source_kept}/{recorded}",
        "intent_events": intents,
    }
    lags = [
        (e.process_time - e.event_time).total_seconds()
        for e in run.logs.get(TENANT, [])
        if e.type == INTENT_RECORDED
    ]
    gate = Gate(
        "time_truth",
        ok,
        "; ".join(
            f"{log}: {v['events']} events, seq gap-free={str(v['seq_gap_free']).lower()}, "
            f"process_time non-decreasing={str(v['process_time_non_decreasing']).lower()}"
            for log, v in logs.items()
        )
        + f"; clock recorded by {', '.join(f'{p}={k}' for p, k in sorted(clocks.items()))}; "
        f"{source_kept}/{recorded} intents keep the source's event_time"
        + (f" (ingest lag {min(lags):.3f}–{max(lags):.3f} s)" if lags else ""),
    )
    return model, gate
