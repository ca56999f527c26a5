"""The demos ``exoarmur verify-all`` runs, one entry each.

Adding a demo is one line in :data:`DEMOS`: its name, the arguments after
``exoarmur --home HOME``, the markers it must print (``KEY=value`` for an
exact value, ``KEY`` for one that must be present and non-empty), the markers
whose values must be equal in two fresh homes, and whether it runs seeded
(then every marker but those in :data:`PER_HOME_MARKERS` must be equal).
"""

from __future__ import annotations

from dataclasses import dataclass

#: markers that name a place in the home, so differ between any two homes by design
PER_HOME_MARKERS = frozenset({"ARTIFACT_PATH"})


@dataclass(frozen=True)
class Demo:
    """One demo: how to run it and what its output must show."""

    name: str
    argv: tuple[str, ...]
    required: tuple[str, ...]
    stable: tuple[str, ...] = ()
    deterministic: bool = False


DEMOS: tuple[Demo, ...] = (
    Demo(
        "quickstart",
        ("demo", "quickstart", "--deterministic"),
        ("DEMO_RESULT=PASS", "CHECKPOINT_VERIFIED=true", "PROOFS_VERIFIED=true", "ROOT_HASH"),
        ("ROOT_HASH", "TREE_SIZE"),
        deterministic=True,
    ),
    Demo(
        "golden",
        ("demo", "golden"),
        ("DEMO_RESULT=DENIED", "ACTION_EXECUTED=false", "REPLAY_VERDICT=PASS"),
        ("AUDIT_STREAM_ID",),
        deterministic=True,
    ),
    Demo(
        "primitives_approve",
        ("demo", "primitives", "--approve", "--deterministic"),
        ("DEMO_RESULT=approved", "ACTIONS_EXECUTED=3", "REPLAY_VERIFIED=true"),
        ("ACTIONS_EXECUTED", "CONTROLS_IN_FORCE_AFTER_EXPIRY"),
        deterministic=True,
    ),
    Demo(
        "primitives_deny",
        ("demo", "primitives", "--deny", "--deterministic"),
        ("DEMO_RESULT=denied", "ACTIONS_EXECUTED=0", "REPLAY_VERIFIED=true"),
        ("ACTIONS_EXECUTED",),
        deterministic=True,
    ),
    Demo(
        "dominance_plan",
        ("demo", "dominance_plan", "--approve", "--fail-at", "3"),
        ("COMPENSATION_APPLIED=true", "PLAN_HASH", "REPLAY_VERIFIED=true"),
        ("PLAN_HASH", "ACTION_SEQUENCE", "ACTIONS_EXECUTED"),
    ),
    Demo(
        "posture_lockdown",
        ("demo", "posture_lockdown"),
        ("POSTURE=lockdown", "LOCKDOWN_VERDICT=require_approval", "REPLAY_VERIFIED=true"),
        ("POLICY_HASH_IN_EFFECT", "LOCKDOWN_VERDICT"),
    ),
    Demo(
        "identity_shadow",
        ("demo", "identity_shadow", "--deterministic"),
        (
            "SHADOW_CREATED=true",
            "SHADOW_KEY",
            "PLAN_SELECTED",
            "AUDIT_STREAM_ID",
            "REPLAY_VERIFIED=true",
        ),
        ("SHADOW_KEY", "PLAN_SELECTED", "AUDIT_STREAM_ID"),
        deterministic=True,
    ),
    Demo(
        "evidence_pack",
        ("demo", "evidence_pack", "--deterministic"),
        ("EVIDENCE_HASH", "ARTIFACT_PATH", "PACK_VERIFIED=true", "REPLAY_VERIFIED=true"),
        ("EVIDENCE_HASH", "PLAN_HASH", "POLICY_HASH_IN_EFFECT", "AUDIT_STREAM_ID"),
        deterministic=True,
    ),
    Demo(
        "memory_snapshot",
        ("demo", "memory_snapshot", "--deterministic"),
        ("MEMORY_HASH", "MEMORY_STABLE=true", "RECORDED_AGAIN=0", "REPLAY_VERIFIED=true"),
        ("MEMORY_HASH", "MEMORY_POSITION", "RECOMMENDATIONS"),
        deterministic=True,
    ),
    Demo(
        "trust_influence",
        ("demo", "trust_influence", "--deterministic"),
        (
            "TRUST_SCORE",
            "REQUIRED_EVIDENCE_LEVEL",
            "EXECUTION_ALLOWED=false",
            "REPLAY_VERIFIED=true",
        ),
        ("TRUST_SCORE", "REQUIRED_EVIDENCE_LEVEL", "AUDIT_STREAM_ID"),
        deterministic=True,
    ),
    Demo(
        "wow",
        ("demo", "wow", "--deterministic"),
        (
            "SHADOW_KEY",
            "PLAN_HASH",
            "POLICY_HASH_IN_EFFECT",
            "AUDIT_STREAM_ID",
            "ACTIONS_EXECUTED=4",
            "EVIDENCE_HASH",
            "ARTIFACT_PATH",
            "MEMORY_HASH",
            "REPLAY_VERIFIED=true",
        ),
        (
            "SHADOW_KEY",
            "PLAN_HASH",
            "POLICY_HASH_IN_EFFECT",
            "AUDIT_STREAM_ID",
            "ACTIONS_EXECUTED",
            "EVIDENCE_HASH",
            "MEMORY_HASH",
        ),
        deterministic=True,
    ),
)
