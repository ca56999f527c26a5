"""The scenario the reality check runs, and the home it runs in.

Its tenant, principals, policy and configuration; the steps (each intent
delivered twice under one key, votes, a kill switch); the side effect its
executor carries out; and how a step's earlier doing is found in the ledger
so that a resumed run never acts twice. Nothing here judges a gate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import SystemClock
from ..encoding import format_time
from ..errors import InputError
from ..executors import ExecutionFailed
from ..home import Home, open_governor
from ..model.event import (
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    INTENT_APPROVED,
    INTENT_REJECTED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POSTURE_SET,
    Event,
)
from ..model.intent import ActionIntent
from ..policy import PolicyBundle

TENANT = "acme"
AGENT = "agent-7"
OPERATORS = ("alice", "bob")
#: where the scenario's executor appends one line per side effect (set for the children)
EFFECTS_ENV = "EXOARMUR_REALITY_EFFECTS"
#: the step whose first delivery is recorded, and not acknowledged, when child 1 is killed
KILL_STEP = "lookup-2"

POLICY = """\
// The reality scenario's policy: reads are allowed, production deletes need
// two approvers, the customers' database is untouchable.

@id("reads")
permit (principal, action, resource) when { context.safety_class == "A0" };

@id("prod-delete") @approval("2") @evidence("high")
permit (principal is Agent, action == Action::"demo.delete", resource)
when { context.params.env == "prod" };

@id("protected")
forbid (principal, action, resource == Target::"db/customers");
"""

CONFIG = """\
# The reality scenario's configuration: every demo.* action is carried out by
# a Python function that appends one line per side effect to a file, so that
# "ran exactly once" is counted on the effect itself, not only in the ledger.
[executors]
"demo.*" = { type = "python", callable = "exoarmur.reality:carry_out" }

[approvals]
window_seconds = 3600

[gate.rate_limits]
tenant = "6000/60s"
actor = "1200/60s"
action = "3000/60s"
approvals_per_operator = "120/3600s"

[gate.posture]
lockdown_approval_above = "A0"
heightened_classes = ["A2", "A3"]
heightened_extra_approvals = 1

[gate.protected]
targets = []
principals = []
quorum = 2
"""


@dataclass(frozen=True)
class Step:
    """One step of the scenario: an intent delivered twice, a vote, or a kill switch."""

    name: str
    kind: str  #: submit | vote | engage | release
    #: final status of a submitted intent, or the type of the event a vote/control records
    expect: str
    action: str = ""
    target: str = ""
    safety_class: str = "A0"
    params: Mapping[str, Any] = field(default_factory=dict)
    #: whose key file the step is performed with (votes and kill switches)
    operator: str = ""
    #: the submit step whose intent a vote is about
    intent_of: str = ""
    vote: str = ""
    reason: str = ""
    scope: str = ""

    @property
    def key(self) -> str:
        return f"reality-{self.name}"

    @property
    def recorded_reason(self) -> str:
        """The reason as recorded: tagged, so a resumed run finds what it already did."""
        return f"{self.reason} [{self.name}]"


_FREEZE = "tenant:acme/action:demo.read"
_PROD = {"env": "prod"}

STEPS: tuple[Step, ...] = (
    Step("read-1", "submit", "executed", "demo.read", "reports/q3.txt", params={"bytes": 4096}),
    Step("lookup-1", "submit", "decided", "inventory.lookup", "host/db-01"),
    Step("wipe-1", "submit", "denied", "demo.wipe", "host/db-01", "A2"),
    Step("protected-1", "submit", "denied", "demo.delete", "db/customers", "A2", _PROD),
    Step("prod-delete", "submit", "executed", "demo.delete", "db/orders", "A2", _PROD),
    Step(
        "approve-alice",
        "vote",
        APPROVAL_GRANTED,
        operator="alice",
        intent_of="prod-delete",
        vote="approve",
        reason="CHG-1042 reviewed",
    ),
    Step("stale-delete", "submit", "rejected", "demo.delete", "db/sessions", "A2", _PROD),
    Step(
        "reject-bob",
        "vote",
        APPROVAL_REJECTED,
        operator="bob",
        intent_of="stale-delete",
        vote="reject",
        reason="sessions are still in use",
    ),
    Step(
        "freeze",
        "engage",
        KILLSWITCH_ENGAGED,
        operator="alice",
        scope=_FREEZE,
        reason="unexpected burst of reads",
    ),
    Step("read-frozen", "submit", "denied", "demo.read", "reports/q4.txt"),
    Step(
        "thaw",
        "release",
        KILLSWITCH_RELEASED,
        operator="alice",
        scope=_FREEZE,
        reason="burst explained by the nightly report",
    ),
    Step(KILL_STEP, "submit", "decided", "inventory.lookup", "host/db-02"),
    Step(
        "self-approve",
        "vote",
        APPROVAL_REFUSED,
        operator=AGENT,
        intent_of="prod-delete",
        vote="approve",
        reason="the agent tries to approve its own delete",
    ),
    Step(
        "approve-bob",
        "vote",
        APPROVAL_GRANTED,
        operator="bob",
        intent_of="prod-delete",
        vote="approve",
        reason="second pair of eyes",
    ),
    Step("read-2", "submit", "executed", "demo.read", "reports/q4.txt"),
)
STEP_BY_NAME = {step.name: step for step in STEPS}
#: ACK lines the first child prints before it is killed (two per delivered intent)
ACKS_BEFORE_KILL = sum(
    2 if step.kind == "submit" else 1 for step in STEPS[: [s.name for s in STEPS].index(KILL_STEP)]
)

Say = Callable[[str, dict[str, Any]], None]
#: what a vote's ruling may record right after the vote itself
_RULINGS = (INTENT_APPROVED, INTENT_REJECTED)


def carry_out(intent: ActionIntent) -> dict[str, Any]:
    """The scenario's side effect: append one durable line naming the intent."""
    where = os.environ.get(EFFECTS_ENV)
    if not where:
        raise ExecutionFailed(f"{EFFECTS_ENV} is not set: nowhere to carry out {intent.action}")
    line = f"{intent.intent_id} {intent.action} {intent.target}\n".encode()
    fd = os.open(where, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"action": intent.action, "target": intent.target, "effect": "line appended"}


def intent_request(step: Step, source_time: datetime, agent: str) -> dict[str, Any]:
    """The intent a step delivers: identical on every delivery (same key, same event time)."""
    index = STEPS.index(step)
    return {
        "tenant": TENANT,
        "actor": {"id": agent, "kind": "agent"},
        "action": step.action,
        "target": step.target,
        "params": dict(step.params),
        "safety_class": step.safety_class,
        "idempotency_key": step.key,
        "event_time": format_time(source_time + timedelta(milliseconds=index)),
    }


def read_key(keys: Path, name: str) -> str:
    return (keys / f"{name}.key").read_text(encoding="utf-8").strip()


def tagged(event: Event) -> str | None:
    """The reason an operator's event was recorded with (votes carry it in ``cast``)."""
    cast = event.payload.get("cast")
    if isinstance(cast, dict):
        return str(cast.get("reason"))
    if event.type in (KILLSWITCH_ENGAGED, KILLSWITCH_RELEASED, POSTURE_SET):
        return str(event.payload.get("reason"))
    return None


def recorded_for(events: list[Event], step: Step) -> list[Event]:
    """The events a vote or control step recorded: its first one and the ruling after it."""
    for number, event in enumerate(events):
        if tagged(event) == step.recorded_reason:
            found = [event]
            rest = [e for e in events[number + 1 :] if e.intent_id == event.intent_id]
            if event.intent_id is not None and rest and rest[0].type in _RULINGS:
                found.append(rest[0])
            return found
    return []


def prepare(out: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """An empty home in ``out/home`` with the scenario's config and policy, and three principals.

    Each principal's API key is written to ``out/keys/<name>.key`` (mode 0600);
    returns, per principal, its role, key id and key file.
    """
    home = Home(out / "home")
    if home.path.exists():
        raise InputError(f"out: {home.path} already exists; the run needs an empty home")
    home.init()
    home.config_path.write_text(CONFIG, encoding="utf-8")
    policy_dir = out / "policy"
    policy_dir.mkdir(mode=0o700)
    (policy_dir / "reality.cedar").write_text(POLICY, encoding="utf-8")
    keys = out / "keys"
    keys.mkdir(mode=0o700)
    principals: dict[str, dict[str, Any]] = {}
    with open_governor(home.path) as governor:
        governor.record_run(run_settings(run_id, "setup"))
        governor.activate_policy(PolicyBundle.from_dir(policy_dir), actor="local-admin")
        roles = {AGENT: "agent", **dict.fromkeys(OPERATORS, "operator")}
        for name, role in roles.items():
            principal, api_key = governor.add_principal(name, role, [TENANT])
            path = keys / f"{name}.key"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(api_key + "\n")
            principals[name] = {"role": role, "key_id": principal.key_id, "key_file": str(path)}
    return principals


def run_settings(run_id: str, process: str) -> dict[str, Any]:
    """What ``run.started`` records for each process: which clock and ids it uses."""
    return {
        "mode": "reality",
        "run_id": run_id,
        "process": process,
        "clock": {"kind": SystemClock.name, "source": "datetime.now(UTC)"},
        "ids": {"generator": "random-ulid", "source": "os.urandom"},
    }
