"""human_action_truth: each operator action is recorded under the principal whose key
file was used, the quorum of two approved, and the rejected intent never ran.

Also lists every operator action for ``operator_actions.jsonl``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from ...encoding import format_time
from ...model.event import (
    ACCESS_REFUSED,
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POLICY_ACTIVATED,
    POSTURE_EXPIRED,
    POSTURE_SET,
    PRINCIPAL_ADDED,
    PRINCIPAL_REVOKED,
    SYSTEM_LOG,
    Event,
)
from ..report import Gate
from ..scenario import STEP_BY_NAME, STEPS, TENANT, read_key, recorded_for, tagged
from ..state import Run, read_lines

_OPERATOR_TYPES = frozenset(
    {
        APPROVAL_GRANTED,
        APPROVAL_REJECTED,
        APPROVAL_REFUSED,
        INTENT_APPROVED,
        INTENT_REJECTED,
        INTENT_EXPIRED,
        KILLSWITCH_ENGAGED,
        KILLSWITCH_RELEASED,
        POSTURE_SET,
        POSTURE_EXPIRED,
        PRINCIPAL_ADDED,
        PRINCIPAL_REVOKED,
        POLICY_ACTIVATED,
        ACCESS_REFUSED,
    }
)
_KEY_ID = re.compile(r"^exo_([0-9a-f]{16})_")


def _principal_keys(run: Run) -> dict[str, str]:
    return {
        str(e.payload["name"]): str(e.payload["key_id"])
        for e in run.logs.get(SYSTEM_LOG, [])
        if e.type == PRINCIPAL_ADDED
    }


def judge_human(run: Run) -> Gate:
    ledger_keys = _principal_keys(run)
    events = run.logs.get(TENANT, [])
    problems: list[str] = []
    bound = 0
    for step in (s for s in STEPS if s.kind != "submit"):
        recorded = recorded_for(events, step)
        if not recorded:
            problems.append(f"{step.name}: not recorded")
            continue
        first = recorded[0]
        who = str(first.payload.get("approver", first.actor["id"]))
        match = _KEY_ID.match(read_key(run.keys, step.operator)) if run.keys.exists() else None
        used = match.group(1) if match else None
        if who != first.actor["id"] or ledger_keys.get(who) != used or used is None:
            problems.append(f"{step.name}: recorded {who}, key file of {step.operator}")
        elif first.type != step.expect:
            problems.append(f"{step.name}: recorded {first.type}, expected {step.expect}")
        else:
            bound += 1
    votes = sum(1 for s in STEPS if s.kind == "vote")
    cast = sum(
        1 for e in events if e.type in (APPROVAL_GRANTED, APPROVAL_REJECTED, APPROVAL_REFUSED)
    )
    if cast != votes:
        problems.append(f"{cast} approval events in the ledger for {votes} votes cast")
    modes = {
        name: oct(Path(info["key_file"]).stat().st_mode & 0o777)
        for name, info in run.principals.items()
    }
    if not modes or set(modes.values()) != {"0o600"}:
        problems.append(f"key file modes {modes}")
    approved = _story_of(events, "prod-delete")
    kinds = Counter(e.type for e in approved)
    verdicts = [e.payload for e in approved if e.type == INTENT_APPROVED]
    finished = [e.payload for e in approved if e.type == EXECUTION_FINISHED]
    effects = sum(
        1
        for line in read_lines(run.effects)
        if approved and line.startswith(str(approved[0].intent_id))
    )
    once = (
        kinds[EXECUTION_STARTED] == 1
        and len(finished) == 1
        and finished[0]["status"] == "succeeded"
        and effects == 1
    )
    quorum = (
        bool(verdicts)
        and sorted(verdicts[0]["approvers"]) == ["alice", "bob"]
        and (verdicts[0]["quorum"] == 2)
    )
    rejected = _story_of(events, "stale-delete")
    never = bool(rejected) and not any(e.type == EXECUTION_STARTED for e in rejected)
    if not once:
        problems.append(f"prod-delete: started {kinds[EXECUTION_STARTED]}x, {effects} side effects")
    if not quorum:
        problems.append("prod-delete: not approved by alice and bob with quorum 2")
    if not never:
        problems.append("stale-delete: rejected intent started (or missing)")
    actions = len([s for s in STEPS if s.kind != "submit"])
    return Gate(
        "human_action_truth",
        not problems,
        f"{bound}/{actions} operator actions recorded under the principal of the key file used "
        f"(key id in principal.added = key id of the file; key files mode 0600); prod-delete "
        f"approved by alice (before the kill) and bob (after) with quorum 2, started "
        f"{kinds[EXECUTION_STARTED]}x, finished {len(finished)}x, side effect {effects}x; "
        f"the agent's self-approval refused; the rejected intent never started"
        + (f"; problems: {'; '.join(problems)}" if problems else ""),
    )


def _story_of(events: list[Event], step_name: str) -> list[Event]:
    key = STEP_BY_NAME[step_name].key
    intent_id = next(
        (
            e.intent_id
            for e in events
            if e.type == INTENT_RECORDED and e.payload["intent"]["idempotency_key"] == key
        ),
        None,
    )
    return [e for e in events if intent_id is not None and e.intent_id == intent_id]


def operator_actions(run: Run) -> list[dict[str, Any]]:
    """Every approval, rejection, refusal, kill switch, posture and principal event."""
    ledger_keys = _principal_keys(run)
    intents = {
        e.intent_id: e.payload["intent"]
        for e in run.logs.get(TENANT, [])
        if e.type == INTENT_RECORDED
    }
    actions = []
    for log in (SYSTEM_LOG, TENANT):
        for event in run.logs.get(log, []):
            if event.type not in _OPERATOR_TYPES:
                continue
            payload = event.payload
            what: dict[str, Any] = {
                k: payload[k]
                for k in (
                    "scope",
                    "posture",
                    "until",
                    "name",
                    "role",
                    "tenants",
                    "policy_hash",
                    "attempted",
                    "intent_hash",
                    "approvers",
                    "quorum",
                    "vote",
                )
                if k in payload
            }
            if event.intent_id is not None:
                intent = intents.get(event.intent_id, {})
                what |= {
                    "intent_id": event.intent_id,
                    "action": intent.get("action"),
                    "target": intent.get("target"),
                }
            who = str(event.actor["id"])
            actions.append(
                {
                    "log": log,
                    "seq": event.seq,
                    "event_id": event.event_id,
                    "type": event.type,
                    "who": who,
                    "who_kind": event.actor.get("kind"),
                    "key_id": ledger_keys.get(who),
                    "what": what,
                    "why": tagged(event) or payload.get("reason") or payload.get("refused"),
                    "when": format_time(event.process_time),
                }
            )
    return actions
