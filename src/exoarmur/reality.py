"""The reality check: one command that proves, on a real store, what ExoArmur claims.

    exoarmur reality [--out artifacts/RUN_ID] [--json]

It starts from an empty data directory on the embedded SQLite ledger,
creates an agent and two operators with keys on disk, and runs a known
scenario in a child process: allowed, denied and approval-requiring intents,
each delivered twice under one idempotency key, operator votes cast with the
operators' own keys, a kill switch engaged and released. The child prints one
``ACK`` line per acknowledged outcome and waits for the parent's ``go``; the
parent SIGKILLs it after a known number of ACKs, at the moment one more
intent is durably recorded but not yet acknowledged. It checks that every
acknowledged outcome is in the ledger, then runs the scenario again from the
start in a new child, which meets every earlier delivery (the unacknowledged
one included) as a duplicate and finishes. The parent then replays the
tenant from the ledger alone, exports and verifies the evidence bundle of the
intent approved by a quorum of two, and writes an evidence directory with
one line per gate in ``PASS_FAIL.txt`` (what each file and gate proves:
``docs/reality.md``).

Nothing here is mocked and nothing is written to the ledger except through
the governor. The wall clock and randomness appear only where a real
deployment has them: the run's name, the children's governors (the system
clock, recorded as such) and the timestamps of ``service.log``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from . import __version__
from .approvals import Vote
from .clock import SystemClock
from .encoding import content_hash, format_time, parse_time
from .errors import ExoArmurError, InputError
from .evidence import export_bundle, verify_bundle_text
from .executors import ExecutionFailed
from .home import Home, open_governor
from .ledger.sqlite import SqliteStore
from .ledger.transfer import dump_jsonl
from .model.event import (
    ACCESS_REFUSED,
    APPROVAL_GRANTED,
    APPROVAL_REFUSED,
    APPROVAL_REJECTED,
    CONFIG_SNAPSHOT,
    DECISION_RECORDED,
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
    RUN_STARTED,
    SYSTEM_LOG,
    Event,
    intent_key,
)
from .model.intent import ActionIntent
from .pipeline import Governor, outcome_from_events
from .policy import PolicyBundle
from .replay import ReplayReport, replay

if TYPE_CHECKING:
    from rich.console import Console

TENANT = "acme"
AGENT = "agent-7"
OPERATORS = ("alice", "bob")
#: where the scenario's executor appends one line per side effect (set for the children)
EFFECTS_ENV = "EXOARMUR_REALITY_EFFECTS"
#: the step whose first delivery is recorded, and not acknowledged, when child 1 is killed
KILL_STEP = "lookup-2"
CHILD_TIMEOUT_SECONDS = 120.0
GATES = (
    "durable_persistence",
    "restart_survival",
    "replay_equivalence",
    "deployment",
    "time_truth",
    "idempotency",
    "config_truth",
    "human_action_truth",
)

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
#: what a broken environment or corrupted evidence raises: a finding, recorded, never a crash
_FINDINGS = (
    ExoArmurError,
    OSError,
    sqlite3.Error,
    subprocess.SubprocessError,
    KeyError,
    TypeError,
    ValueError,
    StopIteration,
    IndexError,
)


# -- the scenario --------------------------------------------------------------


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


def _tagged(event: Event) -> str | None:
    """The reason an operator's event was recorded with (votes carry it in ``cast``)."""
    cast = event.payload.get("cast")
    if isinstance(cast, dict):
        return str(cast.get("reason"))
    if event.type in (KILLSWITCH_ENGAGED, KILLSWITCH_RELEASED, POSTURE_SET):
        return str(event.payload.get("reason"))
    return None


def _recorded_for(events: list[Event], step: Step) -> list[Event]:
    """The events a vote or control step recorded: its first one and the ruling after it."""
    for number, event in enumerate(events):
        if _tagged(event) == step.recorded_reason:
            found = [event]
            rest = [e for e in events[number + 1 :] if e.intent_id == event.intent_id]
            if event.intent_id is not None and rest and rest[0].type in _RULINGS:
                found.append(rest[0])
            return found
    return []


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
        governor.record_run(_run_settings(run_id, process))
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
            return _recorded_for(governor.story(TENANT, intent_id), step)
        return _recorded_for(list(store.events(TENANT)), step)

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


# -- the report ----------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    evidence: str

    def line(self) -> str:
        evidence = " ".join(self.evidence.split())
        return f"{self.name}={'PASS' if self.passed else 'FAIL'} {evidence}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence}


@dataclass(frozen=True)
class RealityReport:
    """What one reality run found; ``passed`` only when every gate passed."""

    run_id: str
    out: Path
    gates: tuple[Gate, ...]
    seconds: float
    artifacts: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return len(self.gates) == len(GATES) and all(gate.passed for gate in self.gates)

    @property
    def result(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def gate(self, name: str) -> Gate:
        return next(gate for gate in self.gates if gate.name == name)

    def lines(self) -> list[str]:
        return [gate.line() for gate in self.gates] + [f"REALITY_RESULT={self.result}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "out": str(self.out),
            "result": self.result,
            "seconds": round(self.seconds, 3),
            "gates": [gate.to_json() for gate in self.gates],
            "artifacts": list(self.artifacts),
        }


def new_run_id(now: datetime | None = None) -> str:
    """A UTC timestamp and a short random suffix: the one use of the clock that names a run."""
    moment = now or SystemClock().now()
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


# -- the parent: children, kill, restart -------------------------------------------


@dataclass
class ChildRun:
    index: int
    returncode: int | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    killed: bool = False
    finished: bool = False
    timed_out: bool = False


class ServiceLog:
    """What the children printed, each line stamped when the parent read it."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, source: str, stream: str, text: str) -> None:
        stamp = format_time(self.clock.now())
        with self._lock:
            self.lines.append(f"{stamp} {source} {stream} {text.rstrip()}")


def _drive(
    index: int, spec: dict[str, Any], effects: Path, log: ServiceLog, kill_in: str | None
) -> ChildRun:
    """Run child ``index``, answering each line with ``go``.

    With ``kill_in``, SIGKILL the child when it says the first delivery of
    that step is recorded: durable, and never acknowledged.
    """
    run = ChildRun(index)
    source = f"child-{index}"
    spec = spec | {"process": source}
    command = [sys.executable, "-m", "exoarmur.reality", "--child", json.dumps(spec)]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, EFFECTS_ENV: str(effects)},
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stderr is not None
        log.add(source, "parent", f"started pid {child.pid}: {sys.executable} -m exoarmur.reality")
        errors = child.stderr

        def drain_errors() -> None:
            for line in errors:
                log.add(source, "stderr", line)

        drain = threading.Thread(target=drain_errors, daemon=True)
        drain.start()

        def overdue() -> None:
            run.timed_out = True
            child.terminate()

        watchdog = threading.Timer(CHILD_TIMEOUT_SECONDS, overdue)
        watchdog.start()
        try:
            for line in child.stdout:
                log.add(source, "stdout", line)
                kind, _, body = line.partition(" ")
                record = json.loads(body) if body.startswith("{") else {}
                if kind == "RECORDED" and (record["step"], record["delivery"]) == (kill_in, 1):
                    os.kill(child.pid, signal.SIGKILL)
                    run.killed = True
                    log.add(
                        source,
                        "parent",
                        f"SIGKILL sent to pid {child.pid} after {len(run.acks)} ACKs: "
                        f"{kill_in} delivery 1 recorded, not acknowledged",
                    )
                    break
                if kind == "ACK":
                    run.acks.append(record)
                elif kind == "DONE":
                    run.finished = True
                if kind in ("RECORDED", "ACK"):
                    with contextlib.suppress(OSError):
                        child.stdin.write("go\n")
                        child.stdin.flush()
            run.returncode = child.wait()
        finally:
            watchdog.cancel()
        drain.join()
        log.add(source, "parent", f"exited with return code {run.returncode}")
    return run


# -- one run -----------------------------------------------------------------------


@dataclass
class _Run:
    """Everything one run gathers, phase by phase; a phase that fails leaves a problem."""

    out: Path
    run_id: str
    home: Home
    keys: Path
    effects: Path
    #: when the source (the scenario) says its events happened
    source_time: datetime
    problems: dict[str, str] = field(default_factory=dict)
    principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: list[ChildRun] = field(default_factory=list)
    durable: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    replay: ReplayReport | None = None
    bundle_passed: bool = False
    bundle_failures: list[str] = field(default_factory=list)
    logs: dict[str, list[Event]] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        try:
            yield
        except _FINDINGS as exc:
            self.problems[name] = f"{type(exc).__name__}: {exc}"


def run_reality(
    out: Path,
    *,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
    before_replay: Callable[[Path], None] | None = None,
) -> RealityReport:
    """Run the reality check into ``out`` (empty or absent) and write the evidence there.

    ``before_replay`` is called with the ledger file's path after the
    children are done and the checkpoints signed, before the replay: a test
    uses it to corrupt one byte and see the replay catch it.
    """
    started = time.monotonic()
    say = progress or (lambda _: None)
    run_id = run_id or new_run_id()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"out: {out} exists and is not an empty directory")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    source_time = SystemClock().now()
    run = _Run(out, run_id, Home(out / "home"), out / "keys", out / "side_effects.log", source_time)
    log = ServiceLog()

    say(f"initialising an empty home in {run.home.path}")
    with run.phase("setup"):
        run.principals = prepare(out, run_id)
    if "setup" not in run.problems:
        spec = {
            "home": str(run.home.path),
            "keys": str(run.keys),
            "source_time": format_time(source_time),
            "run_id": run_id,
        }
        say(f"child 1: running the scenario, SIGKILL once {KILL_STEP} is recorded")
        with run.phase("child-1"):
            run.children.append(_drive(1, spec, run.effects, log, KILL_STEP))
        say("checking every acknowledged outcome after the kill")
        with run.phase("durability"):
            run.durable = _durability(run)
        say("child 2: resuming the scenario from the start")
        with run.phase("child-2"):
            run.children.append(_drive(2, spec, run.effects, log, None))
        say("verifying the ledger and signing checkpoints")
        with run.phase("after"):
            run.after = _after(run)
        with run.phase("config"):
            run.config = _config_in_force(run)
    if before_replay is not None:
        before_replay(run.home.ledger_path)
    say(f"replaying tenant {TENANT} from the ledger alone; exporting the evidence bundle")
    with run.phase("replay"):
        _replay_and_bundle(run)
    if run.home.ledger_path.exists():  # opening a store on a missing file would create one
        with run.phase("storage"):
            run.storage = _storage_state(run.home.ledger_path)
    say("checking the deployment")
    with run.phase("deployment"):
        run.deployment = _deployment()
    say(f"writing the evidence to {out}")
    gates, artifacts = _write_evidence(run, log)
    report = RealityReport(
        run_id=run_id,
        out=out,
        gates=gates,
        seconds=time.monotonic() - started,
        artifacts=artifacts,
    )
    _write_manifest(run, report, source_time)
    return report


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
        governor.record_run(_run_settings(run_id, "setup"))
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


def _run_settings(run_id: str, process: str) -> dict[str, Any]:
    """What ``run.started`` records for each process: which clock and ids it uses."""
    return {
        "mode": "reality",
        "run_id": run_id,
        "process": process,
        "clock": {"kind": SystemClock.name, "source": "datetime.now(UTC)"},
        "ids": {"generator": "random-ulid", "source": "os.urandom"},
    }


def _durability(run: _Run) -> dict[str, Any]:
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


def _after(run: _Run) -> dict[str, Any]:
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


def _config_in_force(run: _Run) -> dict[str, Any]:
    """The config hash a fresh governor derives from config.toml, and what opening it wrote.

    The same governor signs a checkpoint of both logs: the replay and the
    evidence bundle are checked against them.
    """
    ledger = run.home.ledger()
    before = {log: ledger.size(log) for log in (SYSTEM_LOG, TENANT)}
    ledger.store.close()
    with open_governor(run.home.path) as governor:
        recomputed = governor.config_hash
        config = governor.config
        for log in (SYSTEM_LOG, TENANT):
            governor.ledger.checkpoint(log)
        after = {log: governor.ledger.size(log) for log in (SYSTEM_LOG, TENANT)}
    return {
        "recomputed_hash": recomputed,
        "recomputed": config,
        "reopen_wrote": {log: after[log] - before[log] for log in before},
        "config_toml_sha256": hashlib.sha256(run.home.config_path.read_bytes()).hexdigest(),
    }


def _replay_and_bundle(run: _Run) -> None:
    ledger = run.home.ledger()
    try:
        store = ledger.store
        run.replay = replay(store, TENANT, verifier=ledger.verifier)
        run.logs = {log: list(store.events(log)) for log in (SYSTEM_LOG, TENANT)}
        intent_id = store.intent_for_key(TENANT, intent_key(AGENT, STEP_BY_NAME["prod-delete"].key))
        if intent_id is None:
            raise InputError("the approved intent (prod-delete) is not in the ledger")
        correlation = store.events_for_intent(TENANT, intent_id)[0].correlation_id
        bundle = export_bundle(ledger, TENANT, correlation)
        text = json.dumps(bundle, indent=2, sort_keys=True) + "\n"
        (run.out / "bundle.json").write_text(text, encoding="utf-8")
        public_key = ledger.key.verifier_key()
        (run.out / "public_key.txt").write_text(public_key + "\n", encoding="utf-8")
        (run.out / "audit_export.jsonl").write_text(
            "".join(line + "\n" for log in (SYSTEM_LOG, TENANT) for line in dump_jsonl(store, log)),
            encoding="utf-8",
        )
    finally:
        ledger.store.close()
    verdict = verify_bundle_text((run.out / "bundle.json").read_text(encoding="utf-8"), public_key)
    _write_json(run.out / "bundle_verdict.json", verdict.to_json())
    run.bundle_passed = verdict.passed
    run.bundle_failures = verdict.failures


def _storage_state(path: Path) -> dict[str, Any]:
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


def _deployment() -> dict[str, Any]:
    """The installed package, its entry points, and the console script actually running."""
    found: dict[str, Any] = {"exoarmur_module": __version__}
    found["distribution"] = metadata.version("exoarmur")
    scripts = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "exoarmur"]
    found["entry_point"] = scripts[0].value if scripts else None
    found["entry_point_resolves"] = bool(scripts) and callable(scripts[0].load())
    executors = metadata.entry_points(group="exoarmur.executors")
    found["executor_plugins"] = {ep.name: callable(ep.load()) for ep in executors}
    script = shutil.which("exoarmur", path=str(Path(sys.executable).parent)) or shutil.which(
        "exoarmur"
    )
    found["script"] = script
    if script is not None:
        answer = subprocess.run(
            [script, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        found["script_version"] = answer.stdout.strip()
        found["script_returncode"] = answer.returncode
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in ("cedarpy", "cryptography", "pydantic", "typer", "rich", "rfc8785"):
        versions[name] = metadata.version(name)
    found["versions"] = versions
    found["platform"] = platform.platform()
    found["module_path"] = str(Path(__file__).resolve().parent)
    return found


# -- gates -------------------------------------------------------------------------


def _gate_durable(run: _Run) -> Gate:
    durable, storage = run.durable, run.storage
    if not durable:
        return Gate("durable_persistence", False, _why(run, "child-1", "durability"))
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


def _gate_restart(run: _Run, finals: dict[str, str]) -> Gate:
    if len(run.children) < 2 or not run.after:
        return Gate("restart_survival", False, _why(run, "child-1", "child-2", "after"))
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


def _finals(run: _Run) -> dict[str, str]:
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
            recorded = _recorded_for(events, step)
            if recorded:
                finals[step.name] = recorded[0].type
    return finals


def _gate_replay(run: _Run) -> Gate:
    report = run.replay
    if report is None:
        return Gate("replay_equivalence", False, _why(run, "replay"))
    ok = (
        report.verified
        and not report.divergences
        and report.checkpoint_verified is True
        and run.bundle_passed
    )
    first = report.first
    where = (
        f"; first divergence: seq {first.seq} {first.event_type} "
        f"field {first.field} ({first.reason})"
        if first
        else ""
    )
    bundle = "PASS" if run.bundle_passed else f"FAIL ({'; '.join(run.bundle_failures[:2])})"
    return Gate(
        "replay_equivalence",
        ok,
        f"replay of {TENANT}: verified={str(report.verified).lower()}, "
        f"{len(report.divergences)} divergences, {report.events} events, "
        f"{report.decisions} decisions, {report.votes} votes, "
        f"{report.executions} executions re-derived; "
        f"checkpoint_verified={str(report.checkpoint_verified).lower()} at size "
        f"{report.checkpoint_size}, root {report.root_hash[:16]}…; "
        f"evidence bundle verified offline with the public key: {bundle}{where}",
    )


def _gate_deployment(run: _Run) -> Gate:
    found = run.deployment
    if not found:
        return Gate("deployment", False, _why(run, "deployment"))
    script_ok = found["script"] is None or (
        found.get("script_returncode") == 0
        and found.get("script_version") == f"exoarmur {__version__}"
    )
    children_ran = bool(run.children) and run.children[-1].returncode == 0
    ok = (
        found["distribution"] == found["exoarmur_module"]
        and found["entry_point_resolves"]
        and all(found["executor_plugins"].values())
        and script_ok
        and children_ran
    )
    versions = ", ".join(f"{k} {v}" for k, v in found["versions"].items())
    return Gate(
        "deployment",
        ok,
        f"exoarmur {found['distribution']} installed (module {found['exoarmur_module']}); "
        f"console script exoarmur -> {found['entry_point']} resolves="
        f"{str(found['entry_point_resolves']).lower()}; "
        f"`{found['script'] or 'exoarmur (not on PATH)'} --version` -> "
        f"{found.get('script_version', 'not run')!r}; "
        f"children ran `python -m exoarmur.reality`: {'ok' if children_ran else 'FAILED'}; "
        f"{versions}",
    )


def _time_model(run: _Run) -> tuple[dict[str, Any], Gate]:
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


def _idempotency(run: _Run) -> tuple[dict[str, Any], Gate]:
    """Each key recorded once; every other delivery answered as a duplicate of it."""
    events = run.logs.get(TENANT, [])
    recorded = Counter(
        str(e.payload["intent"]["idempotency_key"]) for e in events if e.type == INTENT_RECORDED
    )
    per_type = Counter((str(e.intent_id), e.type) for e in events if e.intent_id is not None)
    effects = Counter(line.split()[0] for line in _read_lines(run.effects) if line.strip())
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
        times = sum(1 for e in events if _tagged(e) == step.recorded_reason)
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


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _config_truth(run: _Run) -> tuple[dict[str, Any], Gate]:
    snapshots = [e for e in run.logs.get(SYSTEM_LOG, []) if e.type == CONFIG_SNAPSHOT]
    if not snapshots or not run.config:
        return {}, Gate("config_truth", False, _why(run, "config", "replay"))
    in_force = snapshots[-1]
    payload = in_force.payload
    hashed = content_hash(payload["config"]) == payload["config_hash"]
    recomputed = run.config["recomputed_hash"] == payload["config_hash"]
    wrote = sum(run.config["reopen_wrote"].values())
    named = [
        e.payload["decision"].get("config_hash")
        for e in run.logs.get(TENANT, [])
        if e.type == DECISION_RECORDED
    ]
    votes = [
        e.payload["cast"].get("config_hash")
        for e in run.logs.get(TENANT, [])
        if isinstance(e.payload.get("cast"), dict)
    ]
    agree = sum(1 for h in named if h == payload["config_hash"])
    votes_agree = sum(1 for h in votes if h == payload["config_hash"])
    ok = (
        hashed
        and recomputed
        and wrote == 0
        and bool(named)
        and agree == len(named)
        and votes_agree == len(votes)
    )
    gate = Gate(
        "config_truth",
        ok,
        f"config {payload['config_hash']} in force (config.snapshot seq {in_force.seq} of "
        f"{len(snapshots)}), hashes to itself={str(hashed).lower()}; a fresh governor derives "
        f"the same hash from config.toml={str(recomputed).lower()} and wrote {wrote} events; "
        f"{agree}/{len(named)} decisions and {votes_agree}/{len(votes)} votes name it",
    )
    return payload, gate


def _principal_keys(run: _Run) -> dict[str, str]:
    return {
        str(e.payload["name"]): str(e.payload["key_id"])
        for e in run.logs.get(SYSTEM_LOG, [])
        if e.type == PRINCIPAL_ADDED
    }


def _human_truth(run: _Run) -> Gate:
    ledger_keys = _principal_keys(run)
    events = run.logs.get(TENANT, [])
    problems: list[str] = []
    bound = 0
    for step in (s for s in STEPS if s.kind != "submit"):
        recorded = _recorded_for(events, step)
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
        for line in _read_lines(run.effects)
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


def _operator_actions(run: _Run) -> list[dict[str, Any]]:
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
                    "why": _tagged(event) or payload.get("reason") or payload.get("refused"),
                    "when": format_time(event.process_time),
                }
            )
    return actions


def _why(run: _Run, *phases: str) -> str:
    found = [f"{p}: {run.problems[p]}" for p in phases if p in run.problems]
    return "; ".join(found) or "not reached (an earlier phase failed)"


# -- writing the evidence ------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", "utf-8")


def _judged(
    name: str, judge: Callable[[], tuple[dict[str, Any], Gate]]
) -> tuple[dict[str, Any], Gate]:
    """A gate that cannot even be judged (unreadable evidence) fails; it never crashes the run."""
    try:
        return judge()
    except _FINDINGS as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}, Gate(
            name, False, f"could not be judged: {type(exc).__name__}: {exc}"
        )


def _write_evidence(run: _Run, log: ServiceLog) -> tuple[tuple[Gate, ...], tuple[str, ...]]:
    out = run.out
    time_model, time_gate = _judged("time_truth", lambda: _time_model(run))
    idempotency, idempotency_gate = _judged("idempotency", lambda: _idempotency(run))
    config, config_gate = _judged("config_truth", lambda: _config_truth(run))
    gates = (
        _judged("durable_persistence", lambda: ({}, _gate_durable(run)))[1],
        _judged("restart_survival", lambda: ({}, _gate_restart(run, _finals(run))))[1],
        _judged("replay_equivalence", lambda: ({}, _gate_replay(run)))[1],
        _judged("deployment", lambda: ({}, _gate_deployment(run)))[1],
        time_gate,
        idempotency_gate,
        config_gate,
        _judged("human_action_truth", lambda: ({}, _human_truth(run)))[1],
    )
    actions: list[dict[str, Any]] = []
    with run.phase("operator_actions"):
        actions = _operator_actions(run)
    (out / "service.log").write_text("".join(line + "\n" for line in log.lines), "utf-8")
    _write_json(out / "storage_state.json", run.storage)
    _write_json(out / "replay_report.json", run.replay.to_json() if run.replay else None)
    _write_json(out / "config_snapshot.json", config)
    (out / "config_hash.txt").write_text(str(config.get("config_hash", "")) + "\n", "utf-8")
    _write_json(out / "time_model.json", time_model)
    _write_json(out / "idempotency_report.json", idempotency)
    (out / "operator_actions.jsonl").write_text(
        "".join(json.dumps(a, sort_keys=True) + "\n" for a in actions), "utf-8"
    )
    _write_json(out / "deployment.json", run.deployment)
    lines = [gate.line() for gate in gates]
    passed = all(gate.passed for gate in gates)
    lines.append(f"REALITY_RESULT={'PASS' if passed else 'FAIL'}")
    (out / "PASS_FAIL.txt").write_text("\n".join(lines) + "\n", "utf-8")
    artifacts = (*sorted(p.name for p in out.iterdir() if p.is_file()), "manifest.json")
    return gates, artifacts


def _write_manifest(run: _Run, report: RealityReport, source_time: datetime) -> None:
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.out.iterdir())
        if p.is_file()
    }
    _write_json(
        run.out / "manifest.json",
        {
            "run_id": run.run_id,
            "started_at": format_time(source_time),
            "seconds": round(report.seconds, 3),
            "result": report.result,
            "tenant": TENANT,
            "home": str(run.home.path),
            "principals": run.principals,
            "scenario": [step.name for step in STEPS],
            "kill_step": KILL_STEP,
            "acks_before_kill": ACKS_BEFORE_KILL,
            "children": [
                {
                    "process": f"child-{c.index}",
                    "returncode": c.returncode,
                    "acks": len(c.acks),
                    "killed": c.killed,
                    "finished": c.finished,
                    "timed_out": c.timed_out,
                }
                for c in run.children
            ],
            "problems": run.problems,
            "sha256": files,
        },
    )


# -- the command ---------------------------------------------------------------------


@contextlib.contextmanager
def step_display(console: Console, quiet: bool) -> Iterator[Callable[[str], None] | None]:
    """Steps as they run: a spinner per step on a terminal, one line per step elsewhere."""
    if quiet:
        yield None
        return
    if not console.is_terminal:
        yield lambda message: console.print(f"[dim]·[/] {message}")
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: list[TaskID] = []

        def step(message: str) -> None:
            if tasks:
                bar.update(tasks[-1], completed=1)
            tasks.append(bar.add_task(message, total=1))

        yield step
        if tasks:
            bar.update(tasks[-1], completed=1)


def reality(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Evidence directory, empty or absent (default artifacts/<RUN_ID>).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """Prove it for real: kill -9, restart, replay, verify offline; prints REALITY_RESULT last."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
    run_id = new_run_id()
    target = out if out is not None else Path("artifacts") / run_id
    try:
        with step_display(err_console, as_json) as progress:
            report = run_reality(target, progress=progress, run_id=run_id)
    except ExoArmurError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        table = Table(title=f"ExoArmur reality — run {report.run_id}")
        for column in ("gate", "result", "evidence"):
            table.add_column(column, overflow="fold")
        for gate in report.gates:
            verdict = "[bold green]PASS[/]" if gate.passed else "[bold red]FAIL[/]"
            table.add_row(gate.name, verdict, gate.evidence)
        console.print(table)
        typer.echo(f"EVIDENCE_DIR={report.out}")
        typer.echo(f"RUN_ID={report.run_id}")
        typer.echo(f"SECONDS={report.seconds:.1f}")
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(0 if report.passed else 1)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], sys.stdin, sys.stdout))
