"""``exoarmur demo wow``: a suspicious identity contained end to end, and proven.

Alice's account signs in from two continents within a minute. An operator
tightens the tenant's posture; the SOC agent proposes Door Net on Alice's
identity, laptop and workload; because of the posture, the plan needs two
operators (the class floor asks one, ``heightened`` one more), and two
approve; the plan runs on the simulated effectors; its audit stream is
exported as an evidence bundle and verified offline with nothing but the
file and the public key; the tenant's log is replayed from the ledger alone.

The story is a list of named steps (:data:`STEPS`), each one function over
the shared :class:`Wow` state that returns its verdict and one line of
detail. A failed step ends the run: every later step rests on it.

Steps still to come, each inserted into :data:`STEPS` as its room lands
(observations, beliefs and shadows; evidence packs; defensive memory):

- TODO ``telemetry observed`` (before ``posture tightened``)
- TODO ``belief formed``
- TODO ``identity shadowed``
- TODO ``evidence pack exported and verified offline`` (after ``door net executed``)
- TODO ``memory snapshot`` (before ``replay verified``)

Until the evidence pack lands, ``EVIDENCE_HASH`` is the hash of the
bundle's audit stream (its events with their inclusion proofs): the same in
any two fresh homes with ``--deterministic``, unlike the bundle's own
``bundle_hash``, which also covers the home's key, its checkpoints and the
system events written when the home was made.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .approvals.book import Vote
from .containment.demos import DEMO_TENANT, DOOR_NET_TARGETS, operators, replay_verified
from .containment.fold import PLAN_STEP_FINISHED
from .containment.plans import Plan, door_net
from .containment.room import plan_intent
from .encoding import content_hash
from .evidence import export_bundle, verify_bundle_text
from .governor.facade import Governor
from .home import Home
from .model.decision import Outcome, OutcomeStatus

#: the audit stream every event of the plan shares
AUDIT_STREAM = "wow-alice-two-continents"
REASON = "alice signed in from two continents within a minute"
POSTURE_TTL = 3600
#: containment is allowed by policy; approvals come from the class floor and the posture
WOW_POLICY = """\
// The wow demo: containment actions and plans are allowed within four hours of
// TTL. Approvals come from the gate: the class floor, and the posture on top.
@id("allow-containment")
@ttl_max("14400")
permit (principal, action, resource)
when { context.action like "containment.*" };
"""


@dataclass
class Wow:
    """What the steps share: the governor, the home, and what earlier steps found."""

    governor: Governor
    home: Home
    markers: dict[str, str] = field(default_factory=dict)
    plan: Plan | None = None
    proposed: Outcome | None = None
    bundle_path: Path | None = None
    key_path: Path | None = None

    def need_plan(self) -> tuple[Plan, Outcome]:
        if self.plan is None or self.proposed is None:
            raise RuntimeError("no plan proposed yet")  # only by misordered STEPS
        return self.plan, self.proposed


@dataclass(frozen=True)
class StepResult:
    name: str
    passed: bool
    detail: str


Step = Callable[[Wow], tuple[bool, str]]


def posture_tightened(wow: Wow) -> tuple[bool, str]:
    (operator,) = operators(wow.governor, 1)
    wow.governor.set_posture(DEMO_TENANT, "heightened", REASON, operator, POSTURE_TTL)
    posture = wow.governor.posture(DEMO_TENANT)["posture"]
    return posture == "heightened", (
        f"{operator.name} set {DEMO_TENANT} to {posture} for {POSTURE_TTL} s: {REASON}"
    )


def door_net_proposed(wow: Wow) -> tuple[bool, str]:
    plan = door_net(DEMO_TENANT, DOOR_NET_TARGETS)
    intent = plan_intent(plan, DEMO_TENANT, "soc-agent") | {"correlation_id": AUDIT_STREAM}
    outcome = wow.governor.submit(intent)
    wow.plan, wow.proposed = plan, outcome
    wow.markers["PLAN_HASH"] = plan.plan_hash
    wow.markers["POLICY_HASH_IN_EFFECT"] = wow.governor.policy_for(DEMO_TENANT).policy_hash
    wow.markers["AUDIT_STREAM_ID"] = outcome.correlation_id
    quorum = outcome.decision.obligations.get("approval", "0")
    waits = outcome.status == OutcomeStatus.PENDING_APPROVAL and quorum == "2"
    return waits, (
        f"Door Net {' -> '.join(plan.sequence)} ({plan.plan_hash[:19]}…): "
        f"{outcome.status.value}, quorum {quorum} (posture raised it from 1)"
    )


def two_operators_approved(wow: Wow) -> tuple[bool, str]:
    _, proposed = wow.need_plan()
    statuses = []
    for operator in operators(wow.governor, 2):
        wow.governor.vote(DEMO_TENANT, proposed.intent_id, operator, Vote.APPROVE, REASON)
        statuses.append(wow.governor.outcome(DEMO_TENANT, proposed.intent_id).status)
    waited = statuses[0] == OutcomeStatus.PENDING_APPROVAL
    return waited and statuses[1] == OutcomeStatus.EXECUTED, (
        f"operator-1 approved ({statuses[0].value}), operator-2 approved ({statuses[1].value})"
    )


def door_net_executed(wow: Wow) -> tuple[bool, str]:
    plan, proposed = wow.need_plan()
    events = wow.governor.containment.plan_events(DEMO_TENANT, proposed.intent_id)
    done = [e for e in events if e.type == PLAN_STEP_FINISHED]
    succeeded = sum(1 for e in done if e.payload["status"] == "succeeded")
    in_force = wow.governor.containment.status(DEMO_TENANT)
    wow.markers["ACTIONS_EXECUTED"] = str(succeeded)
    return succeeded == len(plan.steps) == len(in_force), (
        f"{succeeded}/{len(plan.steps)} steps on the simulated effectors, "
        f"{len(in_force)} controls in force with their TTLs"
    )


def evidence_exported(wow: Wow) -> tuple[bool, str]:
    ledger = wow.governor.ledger
    bundle = export_bundle(ledger, DEMO_TENANT, AUDIT_STREAM)
    folder = wow.home.path / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    wow.bundle_path = folder / f"{AUDIT_STREAM}.json"
    wow.bundle_path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", "utf-8")
    wow.key_path = folder / "verifier.pub"
    wow.key_path.write_text(ledger.key.verifier_key() + "\n", encoding="utf-8")
    stream = {k: bundle[k] for k in ("format", "tenant", "correlation_id", "events")}
    wow.markers["EVIDENCE_HASH"] = content_hash(stream)
    wow.markers["ARTIFACT_PATH"] = str(wow.bundle_path)
    return True, f"{len(bundle['events'])} events with inclusion proofs, {wow.bundle_path}"


def evidence_verified_offline(wow: Wow) -> tuple[bool, str]:
    if wow.bundle_path is None or wow.key_path is None:
        raise RuntimeError("no evidence exported yet")  # only by misordered STEPS
    key = wow.key_path.read_text(encoding="utf-8").strip()
    verdict = verify_bundle_text(wow.bundle_path.read_bytes(), key)
    story = "COMPLETE" if verdict.complete else "OPEN"
    return verdict.passed and verdict.complete, (
        f"{'PASS' if verdict.passed else 'FAIL'} from the file and the public key alone: "
        f"{verdict.events} events, {verdict.decisions} decision(s), story {story}"
        + "".join(f"; {failure}" for failure in verdict.failures)
    )


def replay_matches(wow: Wow) -> tuple[bool, str]:
    verified = replay_verified(wow.governor)
    wow.markers["REPLAY_VERIFIED"] = "true" if verified else "false"
    return verified, f"tenant {DEMO_TENANT} re-decided from the ledger alone, every hash equal"


STEPS: tuple[tuple[str, Step], ...] = (
    ("posture tightened", posture_tightened),
    ("door net proposed", door_net_proposed),
    ("two operators approved", two_operators_approved),
    ("door net executed", door_net_executed),
    ("evidence exported", evidence_exported),
    ("evidence verified offline", evidence_verified_offline),
    ("replay verified", replay_matches),
)


@dataclass(frozen=True)
class WowReport:
    steps: tuple[StepResult, ...]
    markers: dict[str, str]
    bundle_path: Path | None
    key_path: Path | None

    @property
    def passed(self) -> bool:
        return len(self.steps) == len(STEPS) and all(s.passed for s in self.steps)

    def verify_command(self) -> str | None:
        """The one command that verifies the evidence offline."""
        if self.bundle_path is None or self.key_path is None:
            return None
        return (
            f"exoarmur verify-bundle {shlex.quote(str(self.bundle_path))} "
            f"--public-key @{shlex.quote(str(self.key_path))}"
        )


def prepare(home: Home) -> None:
    """A home for the demo: made if missing, with the wow policy beside the default one."""
    if not home.exists():
        home.init()
    policy = home.policy_dir / "containment.cedar"
    if not policy.exists():
        policy.write_text(WOW_POLICY, encoding="utf-8")


def run_wow(
    governor: Governor,
    home: Home,
    steps: tuple[tuple[str, Step], ...] = STEPS,
    shown: Callable[[StepResult], None] | None = None,
) -> WowReport:
    """Every step in order, until one fails; ``shown`` hears each as it ends."""
    bundle = home.policy()
    if governor.policy_for(DEMO_TENANT).policy_hash != bundle.policy_hash:
        governor.activate_policy(bundle.bundle)
    wow = Wow(governor, home)
    results = []
    for name, step in steps:
        passed, detail = step(wow)
        results.append(StepResult(name, passed, detail))
        if shown is not None:
            shown(results[-1])
        if not passed:
            break
    return WowReport(tuple(results), wow.markers, wow.bundle_path, wow.key_path)


def summary(report: WowReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "steps": [vars(s) for s in report.steps],
        "markers": report.markers,
        "verify_command": report.verify_command(),
    }
