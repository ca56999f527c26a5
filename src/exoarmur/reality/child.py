"""The child process: ``python -m exoarmur.reality --child SPEC``.

It runs the scenario from the start through a real governor and prints one
line per step event, waiting for the parent's ``go`` after each ``RECORDED``
and ``ACK`` so that a SIGKILL lands at a known point.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..approvals import Vote
from ..encoding import content_hash, parse_time
from ..errors import InputError
from ..home import open_governor
from ..model.event import Event, intent_key
from ..pipeline import Governor
from .scenario import (
    AGENT,
    STEP_BY_NAME,
    STEPS,
    TENANT,
    Say,
    Step,
    intent_request,
    read_key,
    recorded_for,
    run_settings,
)


def run_scenario(
    home: Path, keys: Path, source_time: datetime, say: Say, *, process: str, run_id: str
) -> None:
    """Run every step from the start; what the ledger already holds is met as a duplicate.

    Intents are delivered twice each and the governor recognises the second
    (and any delivery after a restart) by its idempotency key. Votes and kill
    switches are not idempotent by nature, so like an operator's console
    that resumes, the scenario looks for the step's tagged reason in the
    ledger first and only acts when it is not there.
    """
    with open_governor(home) as governor:
        governor.record_run(run_settings(run_id, process))
        agent = governor.authenticate(read_key(keys, AGENT))
        say("READY", {"process": process, "pid": os.getpid(), "agent": agent.name})
        for step in STEPS:
            say("BEGIN", {"step": step.name})
            if step.kind == "submit":
                _deliver(governor, step, intent_request(step, source_time, agent.name), say)
            else:
                _act(governor, keys, step, say)
        say("DONE", {"process": process, "steps": len(STEPS)})


def _deliver(governor: Governor, step: Step, intent: dict[str, Any], say: Say) -> None:
    for delivery in (1, 2):  # at-least-once: the same intent, the same key, twice
        outcome = governor.submit(intent)
        # durable now, not yet acknowledged: the window a crash makes a caller deliver again
        say("RECORDED", {"step": step.name, "delivery": delivery})
        say(
            "ACK",
            {
                "step": step.name,
                "kind": step.kind,
                "delivery": delivery,
                "key": step.key,
                "intent_id": outcome.intent_id,
                "status": outcome.status.value,
                "verdict": outcome.decision.verdict.value,
                "decision_hash": content_hash(outcome.decision.to_canonical()),
                "duplicate": outcome.duplicate,
            },
        )


def _act(governor: Governor, keys: Path, step: Step, say: Say) -> None:
    """A vote or a kill switch, by the principal whose key file is used."""
    principal = governor.authenticate(read_key(keys, step.operator))
    store = governor.ledger.store
    intent_id: str | None = None
    if step.kind == "vote":
        intent_id = store.intent_for_key(
            TENANT, intent_key(AGENT, STEP_BY_NAME[step.intent_of].key)
        )
        if intent_id is None:
            raise InputError(f"step {step.name}: intent of {step.intent_of} is not recorded")

    def recorded() -> list[Event]:
        if intent_id is not None:
            return recorded_for(governor.story(TENANT, intent_id), step)
        return recorded_for(list(store.events(TENANT)), step)

    found = recorded()
    duplicate = bool(found)
    if not duplicate:
        if intent_id is not None:
            story = governor.story(TENANT, intent_id)
            governor.vote(
                TENANT,
                intent_id,
                principal,
                Vote(step.vote),
                step.recorded_reason,
                story[0].payload["intent_hash"],  # bind to the exact intent seen
            )
        elif step.kind == "engage":
            governor.engage_killswitch(step.scope, step.recorded_reason, principal)
        else:
            governor.release_killswitch(step.scope, step.recorded_reason, principal)
        found = recorded()
    say(
        "ACK",
        {
            "step": step.name,
            "kind": step.kind,
            "delivery": 1,
            "intent_id": intent_id,
            "principal": principal.name,
            "key_id": principal.key_id,
            "status": governor.outcome(TENANT, intent_id).status.value if intent_id else None,
            "events": [[e.event_id, e.type] for e in found],
            "duplicate": duplicate,
        },
    )


def child_main(argv: list[str], stdin: IO[str], stdout: IO[str]) -> int:
    """``python -m exoarmur.reality --child SPEC``: run the scenario, lock-step with the parent."""
    if len(argv) != 2 or argv[0] != "--child":
        sys.stderr.write("usage: python -m exoarmur.reality --child SPEC_JSON\n")
        return 2
    spec = json.loads(argv[1])

    def say(kind: str, record: dict[str, Any]) -> None:
        stdout.write(f"{kind} {json.dumps(record, sort_keys=True)}\n")
        stdout.flush()
        if kind in ("RECORDED", "ACK"):
            stdin.readline()  # the parent's "go": a kill lands at a known point

    run_scenario(
        Path(spec["home"]),
        Path(spec["keys"]),
        parse_time(spec["source_time"]),
        say,
        process=spec["process"],
        run_id=spec["run_id"],
    )
    return 0
