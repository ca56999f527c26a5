"""restart_survival: the second child finishes the scenario on the killed child's ledger.

Both logs verify from their bytes, nothing is left unfinished, and every step
reaches its expected outcome as the final ledger tells it.
"""

from __future__ import annotations

import signal
from typing import Any

from ...model.event import EXECUTION_STARTED, INTENT_APPROVED, INTENT_RECORDED, SYSTEM_LOG, Event
from ...pipeline import outcome_from_events
from ..report import Gate
from ..scenario import ACKS_BEFORE_KILL, KILL_STEP, STEPS, TENANT, recorded_for
from ..state import Run, why


def observe_after(run: Run) -> dict[str, Any]:
    """After the second child: verify both logs from their bytes, look for unfinished work."""
    ledger = run.home.ledger()
    try:
        store = ledger.store
        verified = {log: ledger.verify(log) for log in (SYSTEM_LOG, TENANT)}
        unfinished = store.unfinished_executions(TENANT)
        approved_not_started = store.intents_with(TENANT, INTENT_APPROVED, (EXECUTION_STARTED,))
        sizes = {log: store.size(log) for log in (SYSTEM_LOG, TENANT)}
    finally:
        ledger.store.close()
    return {
        "verify": {log: list(v.problems) for log, v in verified.items()},
        "sizes": sizes,
        "unfinished": unfinished,
        "approved_not_started": approved_not_started,
    }


def judge_restart(run: Run, finals: dict[str, str]) -> Gate:
    if len(run.children) < 2 or not run.after:
        return Gate("restart_survival", False, why(run, "child-1", "child-2", "after"))
    first, second = run.children
    after = run.after
    problems = [f"{log}: {p[0]}" for log, p in after["verify"].items() if p]
    wrong = [f"{s.name}={finals.get(s.name)}" for s in STEPS if finals.get(s.name) != s.expect]
    ok = (
        first.killed
        and first.returncode == -signal.SIGKILL
        and len(first.acks) == ACKS_BEFORE_KILL
        and second.finished
        and second.returncode == 0
        and not problems
        and not after["unfinished"]
        and not after["approved_not_started"]
        and not wrong
    )
    return Gate(
        "restart_survival",
        ok,
        f"child 1 rc={first.returncode} after {len(first.acks)}/{ACKS_BEFORE_KILL} ACKs "
        f"(SIGKILL with {KILL_STEP} recorded, unacknowledged); child 2 rc={second.returncode} "
        f"{'finished' if second.finished else 'did not finish'} {len(STEPS)} steps; "
        f"Ledger.verify {'ok' if not problems else 'FAILED ' + '; '.join(problems)} "
        f"({', '.join(f'{log}={n}' for log, n in after['sizes'].items())} events); "
        f"{len(after['unfinished'])} unfinished executions, "
        f"{len(after['approved_not_started'])} approved-not-started; "
        f"{len(STEPS) - len(wrong)}/{len(STEPS)} steps reached their expected outcome"
        + (f" (wrong: {', '.join(wrong)})" if wrong else ""),
    )


def finals(run: Run) -> dict[str, str]:
    """Each step's outcome as the final ledger tells it."""
    events = run.logs.get(TENANT, [])
    by_intent: dict[str, list[Event]] = {}
    keys: dict[str, str] = {}
    for event in events:
        if event.intent_id is not None:
            by_intent.setdefault(event.intent_id, []).append(event)
        if event.type == INTENT_RECORDED:
            keys[event.payload["intent"]["idempotency_key"]] = str(event.intent_id)
    finals: dict[str, str] = {}
    for step in STEPS:
        if step.kind == "submit":
            intent_id = keys.get(step.key)
            if intent_id is not None:
                finals[step.name] = outcome_from_events(by_intent[intent_id]).status.value
        else:
            recorded = recorded_for(events, step)
            if recorded:
                finals[step.name] = recorded[0].type
    return finals
