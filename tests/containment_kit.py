"""Shared parts for the containment tests (tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any

from exoarmur.clock import StepClock
from exoarmur.containment.effectors import (
    PlanRunner,
    disable_workload,
    freeze_identity,
    isolate_endpoint,
    rate_limit,
    revoke_sessions,
)
from exoarmur.executors import ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.log import Ledger
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

CONTAINMENT_POLICY = """
@id("allow-containment")
@ttl_max("7200")
permit (principal, action, resource)
when { context.action like "containment.*" };
"""


def registry(fail_on: dict[str, list[str]] | None = None) -> ExecutorRegistry:
    executors = ExecutorRegistry()
    fails = fail_on or {}
    for factory in (
        revoke_sessions,
        isolate_endpoint,
        freeze_identity,
        rate_limit,
        disable_workload,
    ):
        name = factory.__name__
        executors.bind(f"containment.{name}", factory({"fail_on": fails.get(name, [])}))
    executors.bind("containment.plan", PlanRunner())
    return executors


def governor(
    ledger: Ledger, fail_on: dict[str, list[str]] | None = None, seed: int = 7
) -> Governor:
    return Governor(
        ledger=ledger,
        policy=PolicyEngine(PolicyBundle.from_text(CONTAINMENT_POLICY)),
        executors=registry(fail_on),
        clock=StepClock(),
        ids=SeededIds(seed),
    )


def action(effector: str, scope: str, ttl: int = 600, **overrides: Any) -> dict[str, Any]:
    kind, _, ident = scope.partition(":")
    klass = (
        "A2" if effector in ("isolate_endpoint", "freeze_identity", "disable_workload") else "A1"
    )
    base: dict[str, Any] = {
        "tenant": "acme",
        "actor": {"id": "soc-bot", "kind": "agent"},
        "action": f"containment.{effector}",
        "target": scope,
        "safety_class": klass,
        "params": {"containment": {"scope": {"kind": kind, "id": ident}, "ttl_seconds": ttl}},
    }
    base.update(overrides)
    return base
