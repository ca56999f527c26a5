"""idempotency: each key recorded once, every other delivery answered as its duplicate."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

from ...model.event import DECISION_RECORDED, EXECUTION_FINISHED, EXECUTION_STARTED, INTENT_RECORDED
from ..report import Gate
from ..scenario import KILL_STEP, STEP_BY_NAME, STEPS, TENANT, tagged
from ..state import Run, read_lines


def judge_idempotency(run: Run) -> tuple[dict[str, Any], Gate]:
    """Each key recorded once; every other delivery answered as a duplicate of it."""
    events = run.logs.get(TENANT, [])
    recorded = Counter(
        str(e.payload["intent"]["idempotency_key"]) for e in events if e.type == INTENT_RECORDED
    )
    per_type = Counter((str(e.intent_id), e.type) for e in events if e.intent_id is not None)
    effects = Counter(line.split()[0] for line in read_lines(run.effects) if line.strip())
    acks = [(child.index, ack) for child in run.children for ack in child.acks]
    fields = ("delivery", "duplicate", "intent_id", "status", "decision_hash")
    keys: dict[str, Any] = {}
    problems: list[str] = []
    injections = duplicates = 0
    for step in (s for s in STEPS if s.kind == "submit"):
        deliveries = [
            {"child": index} | {k: ack[k] for k in fields}
            for index, ack in acks
            if ack["step"] == step.name
        ]
        intent_ids = {str(d["intent_id"]) for d in deliveries}
        intent_id = min(intent_ids) if len(intent_ids) == 1 else ""
        firsts = sum(1 for d in deliveries if not d["duplicate"])
        same_decision = len({d["decision_hash"] for d in deliveries}) == 1
        same_status = all(
            a["status"] == b["status"] for a, b in pairwise(deliveries) if a["child"] == b["child"]
        )
        started = per_type[(intent_id, EXECUTION_STARTED)]
        finished = per_type[(intent_id, EXECUTION_FINISHED)]
        injections += len(deliveries)
        duplicates += len(deliveries) - firsts
        keys[step.key] = {
            "recorded": recorded[step.key],
            "intent_id": intent_id or None,
            "deliveries": deliveries,
            "first_outcomes": firsts,
            "duplicates": len(deliveries) - firsts,
            "same_intent": bool(intent_id),
            "same_decision": same_decision,
            "same_status_within_a_child": same_status,
            "decisions_recorded": per_type[(intent_id, DECISION_RECORDED)],
            "executions_started": started,
            "executions_finished": finished,
            "side_effects": effects[intent_id],
        }
        # the delivery recorded when child 1 was killed was never answered: every later one
        # is a duplicate of it
        if not (
            recorded[step.key] == 1
            and firsts == (0 if step.name == KILL_STEP else 1)
            and intent_id
            and same_decision
            and same_status
            and per_type[(intent_id, DECISION_RECORDED)] == 1
            and started <= 1
            and effects[intent_id] == finished
        ):
            problems.append(step.key)
    actions: dict[str, Any] = {}
    for step in (s for s in STEPS if s.kind != "submit"):
        delivered = [ack for _, ack in acks if ack["step"] == step.name]
        times = sum(1 for e in events if tagged(e) == step.recorded_reason)
        actions[step.name] = {
            "deliveries": len(delivered),
            "recorded": times,
            "duplicates": sum(1 for ack in delivered if ack["duplicate"]),
        }
        if times != 1:
            problems.append(step.name)
    finished_total = sum(n for (_, kind), n in per_type.items() if kind == EXECUTION_FINISHED)
    intents = sum(recorded.values())
    report = {
        "injections": injections,
        "injections_answered_duplicate": duplicates,
        "distinct_keys": len(keys),
        "recorded_unacknowledged_at_kill": STEP_BY_NAME[KILL_STEP].key,
        "intents_recorded": intents,
        "every_key_recorded_once": all(k["recorded"] == 1 for k in keys.values()),
        "side_effects_total": sum(effects.values()),
        "executions_finished_total": finished_total,
        "keys": keys,
        "operator_actions": actions,
        "problems": problems,
    }
    ok = (
        not problems
        and injections > 0
        and intents == len(keys)
        and sum(effects.values()) == finished_total
    )
    gate = Gate(
        "idempotency",
        ok,
        f"{injections} injections of {len(keys)} keys ({duplicates} answered duplicate: true) "
        f"-> {intents} intents recorded, every key once="
        f"{str(report['every_key_recorded_once']).lower()}; same intent and decision on every "
        f"delivery; {KILL_STEP} (recorded, unacknowledged at the kill) answered only as a "
        f"duplicate; {sum(effects.values())} side effects for {finished_total} finished "
        f"executions; {len(actions)} operator actions delivered "
        f"{sum(len([a for _, a in acks if a['step'] == n]) for n in actions)} times, "
        f"recorded once each" + (f"; problems: {', '.join(problems)}" if problems else ""),
    )
    return report, gate
