"""``exoarmur demo wow``: a suspicious identity contained end to end, and proven.

Alice's account fails to sign in five times (two identity providers report
it) and then signs in from Lagos, fifty seconds after a sign-in from Lyon;
her two identifiers are correlated. The detectors form two beliefs; the
first opens an identity shadow on Alice, which makes Door Net the ready
plan. An operator tightens the tenant's posture; the SOC agent proposes
Door Net on Alice's identity, laptop and workload, citing the beliefs;
because of the posture, the plan needs two operators (the class floor asks
one, ``heightened`` one more), and two approve; the plan runs on the
simulated effectors; its audit stream is exported as an evidence pack
(observations to outcomes, with inclusion proofs) and verified offline with
nothing but the file and the public key; the tenant's memory is taken as a
snapshot; the log is replayed from the ledger alone, which forms the
beliefs again and derives the same ``evidence_hash``.

The story is a list of named steps (:data:`STEPS`), each one function over
the shared :class:`Wow` state that returns its verdict and one line of
detail. A failed step ends the run: every later step rests on it.

With a seeded governor every marker but ``ARTIFACT_PATH`` is the same in any
two fresh homes: ``SHADOW_KEY``, ``PLAN_HASH`` and ``POLICY_HASH_IN_EFFECT``
depend on content only, and ``EVIDENCE_HASH`` and ``MEMORY_HASH`` on the
tenant's log, which seeded ids and a stepped clock make the same.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .approvals.book import Vote
from .containment.demos import DEMO_TENANT, DOOR_NET_TARGETS, operators, prepare_home
from .containment.fold import PLAN_STEP_FINISHED
from .containment.plans import Plan, door_net
from .containment.room import plan_intent
from .evidence.pack import derive_evidence, evidence_hash, export_pack, pack_bytes, stream_events
from .evidence.verify import verify_bundle_text
from .governor.facade import Governor
from .home import Home
from .memory.room import record_recommendations
from .model.decision import Outcome, OutcomeStatus
from .model.event import SYSTEM_LOG
from .observations.intake import desk_of
from .observations.model import BELIEF_FORMED, Observation, parse_observation
from .observations.shadow import DOOR_NET, shadow_status
from .replay import replay

#: the audit stream every event of the plan shares
AUDIT_STREAM = "wow-alice-two-continents"
#: the identity the story is about, and the identifier it is also seen under
SUBJECT = "identity:alice"
ALIAS = "identity:alice@acme.example"
#: who reports the telemetry (an agent may record observations)
TELEMETRY = {"id": "telemetry", "kind": "agent"}
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


def telemetry() -> list[Observation]:
    """Five failed logins from two providers, then a login from a new continent."""
    failed = [
        {
            "source": source,
            "subject": {"kind": "identity", "id": "alice@acme.example"},
            "kind": "login.failed",
            "attributes": {"attempt": n, "correlated_ids": [SUBJECT]},
            "event_time": f"2026-11-30T08:00:{10 + n:02d}Z",
        }
        for n, source in enumerate(("okta", "okta", "okta", "entra-id", "entra-id"), 1)
    ]
    logins = [
        {
            "source": "vpn",
            "subject": {"kind": "identity", "id": "alice"},
            "kind": "login.succeeded",
            "attributes": {"location": where, "correlated_ids": [ALIAS]},
            "event_time": at,
        }
        for where, at in (("Lyon", "2026-11-30T08:00:00Z"), ("Lagos", "2026-11-30T08:00:50Z"))
    ]
    return [parse_observation(o) for o in [logins[0], *failed, logins[1]]]


@dataclass
class Wow:
    """What the steps share: the governor, the home, and what earlier steps found."""

    governor: Governor
    home: Home
    markers: dict[str, str] = field(default_factory=dict)
    observations: list[str] = field(default_factory=list)
    beliefs: list[str] = field(default_factory=list)
    ready_plan: str | None = None
    plan: Plan | None = None
    proposed: Outcome | None = None
    pack_path: Path | None = None
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


def telemetry_observed(wow: Wow) -> tuple[bool, str]:
    observations = telemetry()
    recorded = desk_of(wow.governor).record(DEMO_TENANT, observations, TELEMETRY)
    wow.observations = sorted(r.observation_id for r in recorded)
    fresh = sum(r.recorded for r in recorded)
    if fresh != len(observations):
        return False, (
            f"{len(observations) - fresh} of {len(observations)} observations were already "
            "recorded in this home: the story needs a fresh one"
        )
    sources = sorted({o.source for o in observations})
    return True, (
        f"{fresh} observations from {', '.join(sources)} on {SUBJECT} and {ALIAS} "
        "(correlated): 5 failed logins, then Lyon and Lagos 50 s apart"
    )


def belief_formed(wow: Wow) -> tuple[bool, str]:
    known = set(wow.observations)
    found = sorted(
        (belief for belief in desk_of(wow.governor).log(DEMO_TENANT).beliefs.values()),
        key=lambda b: b["belief_id"],
    )
    mine = [b for b in found if known and set(b["observation_ids"]) <= known]
    wow.beliefs = [b["belief_id"] for b in mine]
    kinds = {b["kind"] for b in mine}
    told = "; ".join(
        f"{b['kind']} on {b['subject']['kind']}:{b['subject']['id']} "
        f"({len(b['observation_ids'])} observations, {', '.join(b['sources'])})"
        for b in mine
    )
    wanted = {"repeated_failed_logins", "access_from_new_location"}
    return wanted <= kinds, told or "no detector formed a belief"


def identity_shadowed(wow: Wow) -> tuple[bool, str]:
    store = wow.governor.ledger.store
    status = shadow_status(store.events(DEMO_TENANT, 0, store.size(DEMO_TENANT)), SUBJECT)
    if not status.shadowed or status.shadow_key is None:
        return False, f"no shadow follows {SUBJECT}"
    shadow = desk_of(wow.governor).log(DEMO_TENANT).shadows.shadows[status.shadow_key]
    wow.ready_plan = status.plan
    wow.markers["SHADOW_KEY"] = status.shadow_key
    return status.plan == DOOR_NET, (
        f"{status.shadow_key} follows {', '.join(shadow.identifiers)} on "
        f"{len(shadow.belief_ids)} beliefs; ready plan: {status.plan or 'none'}"
    )


def posture_tightened(wow: Wow) -> tuple[bool, str]:
    (operator,) = operators(wow.governor, 1)
    wow.governor.set_posture(DEMO_TENANT, "heightened", REASON, operator, POSTURE_TTL)
    posture = wow.governor.posture(DEMO_TENANT)["posture"]
    return posture == "heightened", (
        f"{operator.name} set {DEMO_TENANT} to {posture} for {POSTURE_TTL} s: {REASON}"
    )


def door_net_proposed(wow: Wow) -> tuple[bool, str]:
    if wow.ready_plan != DOOR_NET:
        raise RuntimeError("no shadow made Door Net ready")  # only by misordered STEPS
    plan = door_net(DEMO_TENANT, DOOR_NET_TARGETS)
    intent = plan_intent(plan, DEMO_TENANT, "soc-agent") | {"correlation_id": AUDIT_STREAM}
    # the beliefs it rests on: they (and their observations) join the plan's audit stream
    intent["params"]["evidence_refs"] = {"beliefs": wow.beliefs}
    outcome = wow.governor.submit(intent)
    wow.plan, wow.proposed = plan, outcome
    wow.markers["PLAN_HASH"] = plan.plan_hash
    wow.markers["POLICY_HASH_IN_EFFECT"] = wow.governor.policy_for(DEMO_TENANT).policy_hash
    wow.markers["AUDIT_STREAM_ID"] = outcome.correlation_id
    quorum = outcome.decision.obligations.get("approval", "0")
    waits = outcome.status == OutcomeStatus.PENDING_APPROVAL and quorum == "2"
    return waits, (
        f"Door Net {' -> '.join(plan.sequence)} ({plan.plan_hash[:19]}…) citing "
        f"{len(wow.beliefs)} beliefs: {outcome.status.value}, quorum {quorum} "
        "(posture raised it from 1)"
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


def evidence_pack_exported(wow: Wow) -> tuple[bool, str]:
    ledger = wow.governor.ledger
    pack = export_pack(ledger, DEMO_TENANT, AUDIT_STREAM)
    folder = wow.home.path / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    wow.pack_path = folder / f"{AUDIT_STREAM}.pack.json"
    wow.pack_path.write_bytes(pack_bytes(pack))
    wow.key_path = folder / "verifier.pub"
    wow.key_path.write_text(ledger.key.verifier_key() + "\n", encoding="utf-8")
    wow.markers["EVIDENCE_HASH"] = pack["evidence_hash"]
    wow.markers["ARTIFACT_PATH"] = str(wow.pack_path)
    chain = {stage: len(ids) for stage, ids in pack["evidence"]["chain"].items() if ids}
    told = " -> ".join(f"{stage} {n}" for stage, n in chain.items())
    telemetry_to_outcome = {"observations", "beliefs", "shadows", "posture", "outcomes"}
    return telemetry_to_outcome <= set(chain), f"{told}: {wow.pack_path}"


def pack_verified_offline(wow: Wow) -> tuple[bool, str]:
    if wow.pack_path is None or wow.key_path is None:
        raise RuntimeError("no evidence pack exported yet")  # only by misordered STEPS
    key = wow.key_path.read_text(encoding="utf-8").strip()
    # the verifier of `exoarmur verify-bundle`, on the file as written
    verdict = verify_bundle_text(wow.pack_path.read_bytes(), key)
    same = verdict.evidence_hash == wow.markers.get("EVIDENCE_HASH")
    story = "COMPLETE" if verdict.complete else "OPEN"
    return verdict.passed and verdict.complete and same, (
        f"{'PASS' if verdict.passed else 'FAIL'} from the file and the public key alone: "
        f"{verdict.events} events, {verdict.decisions} decision(s), story {story}, "
        f"evidence_hash {'as exported' if same else 'DIFFERS'}"
        + "".join(f"; {failure}" for failure in verdict.failures)
    )


def memory_snapshot(wow: Wow) -> tuple[bool, str]:
    (operator,) = operators(wow.governor, 1)
    # advice is recorded, never applied: only `exoarmur memory apply` by a person does that
    snapshot, made, _ = record_recommendations(wow.governor, DEMO_TENANT, operator)
    wow.markers["MEMORY_HASH"] = snapshot.memory_hash
    detectors = snapshot.body["detectors"]
    acted = ", ".join(
        f"{name} {counts['acted_on']}/{counts['beliefs']} acted on"
        for name, counts in detectors.items()
    )
    advice = "; ".join(r.text for r in made)
    return bool(detectors), (
        f"{snapshot.memory_hash[:19]}… at position {snapshot.position}: {acted}; "
        + (f"advice recorded, not applied: {advice}" if advice else "no advice drawn")
    )


def replay_matches(wow: Wow) -> tuple[bool, str]:
    ledger = wow.governor.ledger
    # the system log too: a home the demo leaves behind verifies whole, never unanchored
    ledger.checkpoint(SYSTEM_LOG)
    ledger.checkpoint(DEMO_TENANT)
    report = replay(ledger.store, DEMO_TENANT, verifier=ledger.verifier)
    # the pack's evidence derived again from the log replay has just verified
    stream = stream_events(ledger, DEMO_TENANT, AUDIT_STREAM)
    log = ledger.store.events(DEMO_TENANT, 0, max(e.seq for e in stream))
    again = evidence_hash(derive_evidence(DEMO_TENANT, AUDIT_STREAM, stream, log))
    same = again == wow.markers.get("EVIDENCE_HASH")
    beliefs = sum(
        1
        for e in ledger.store.events(DEMO_TENANT, 0, ledger.size(DEMO_TENANT))
        if e.type == BELIEF_FORMED
    )
    verified = report.verified and same
    wow.markers["REPLAY_VERIFIED"] = "true" if verified else "false"
    return verified, (
        f"tenant {DEMO_TENANT} {report.status}: {report.decisions} decision(s) re-decided and "
        f"{beliefs} beliefs formed again from the ledger alone; evidence_hash "
        f"{'the same' if same else 'DIFFERS'}"
    )


STEPS: tuple[tuple[str, Step], ...] = (
    ("telemetry observed", telemetry_observed),
    ("belief formed", belief_formed),
    ("identity shadowed", identity_shadowed),
    ("posture tightened", posture_tightened),
    ("door net proposed", door_net_proposed),
    ("two operators approved", two_operators_approved),
    ("door net executed", door_net_executed),
    ("evidence pack exported", evidence_pack_exported),
    ("pack verified offline", pack_verified_offline),
    ("memory snapshot", memory_snapshot),
    ("replay verified", replay_matches),
)


@dataclass(frozen=True)
class WowReport:
    steps: tuple[StepResult, ...]
    markers: dict[str, str]
    pack_path: Path | None
    key_path: Path | None

    @property
    def passed(self) -> bool:
        return len(self.steps) == len(STEPS) and all(s.passed for s in self.steps)

    def verify_command(self) -> str | None:
        """The one command that verifies the evidence pack offline."""
        if self.pack_path is None or self.key_path is None:
            return None
        return (
            f"exoarmur verify-bundle {shlex.quote(str(self.pack_path))} "
            f"--public-key @{shlex.quote(str(self.key_path))}"
        )


def prepare(home: Home) -> None:
    """A home for the demo: made if missing, with the wow policy beside the default one."""
    prepare_home(home, WOW_POLICY)


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
    return WowReport(tuple(results), wow.markers, wow.pack_path, wow.key_path)


def summary(report: WowReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "steps": [vars(s) for s in report.steps],
        "markers": report.markers,
        "verify_command": report.verify_command(),
    }
