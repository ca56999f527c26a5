"""Simulated effectors: executor plugins whose world is the ledger's fold.

``revoke_sessions``, ``isolate_endpoint``, ``freeze_identity``,
``rate_limit`` and ``disable_workload`` register in the ``exoarmur.executors``
entry-point group like any executor, so a real one drops in beside them. A
simulated effector changes nothing outside the process: what it "did" is
what the ledger records, and the controls in force are the fold of those
records. It reads the fold and the clock through the containment room that
attaches it; an effector nobody attached fails closed.

``fail_on`` (configuration) lists scope texts (``endpoint:laptop-7``) on
which the effector fails: it is how demos and tests make a step fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..errors import ConfigError
from ..executors.base import ExecutionFailed, check_fields
from ..model.intent import ActionIntent
from .fold import ControlsInForce, change_for
from .model import ContainmentSpec, containment_spec

#: (tenant) -> the controls in force now; and the clock
World = tuple[Callable[[str], ControlsInForce], Callable[[], datetime]]


class Effector:
    """Applies one kind of control; its inverse is recorded by the room."""

    def __init__(self, name: str, fail_on: tuple[str, ...] = ()) -> None:
        self.kind = name
        self.fail_on = fail_on
        self.world: World | None = None

    def attach(self, world: World) -> None:
        self.world = world

    def apply(self, tenant: str, spec: ContainmentSpec) -> dict[str, Any]:
        """The change applying ``spec`` makes now; ExecutionFailed if the effector fails."""
        if self.world is None:
            raise ExecutionFailed(f"{self.kind}: not attached to a governor; nothing applied")
        if spec.scope.text in self.fail_on:
            raise ExecutionFailed(f"{self.kind}: could not apply to {spec.scope.text}")
        view, now = self.world
        return change_for(view(tenant).controls.get(spec.control), spec, now())

    def execute(self, intent: ActionIntent) -> dict[str, Any]:
        spec = containment_spec(intent)
        if spec.effector != self.kind:
            raise ExecutionFailed(f"{self.kind}: bound to {intent.action}, which it does not apply")
        return {"containment": self.apply(intent.tenant, spec)}


def _factory(name: str) -> Callable[[Mapping[str, Any]], Effector]:
    def build(config: Mapping[str, Any]) -> Effector:
        check_fields(config, allowed={"fail_on"})
        fail_on = config.get("fail_on", [])
        if not isinstance(fail_on, list) or not all(isinstance(s, str) for s in fail_on):
            raise ConfigError("field 'fail_on': must be a list of scopes like 'endpoint:x'")
        return Effector(name, tuple(fail_on))

    build.__name__ = name
    return build


revoke_sessions = _factory("revoke_sessions")
isolate_endpoint = _factory("isolate_endpoint")
freeze_identity = _factory("freeze_identity")
rate_limit = _factory("rate_limit")
disable_workload = _factory("disable_workload")


class PlanRunner:
    """The executor of ``containment.plan``: hands the plan to the room that runs it."""

    kind = "containment_plan"

    def __init__(self) -> None:
        self.run: Callable[[ActionIntent], Any] | None = None

    def execute(self, intent: ActionIntent) -> Any:
        if self.run is None:
            raise ExecutionFailed("containment_plan: not attached to a governor; nothing applied")
        return self.run(intent)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlanRunner:
        check_fields(config, allowed=())
        return cls()
