"""Deciding an intent with Cedar: a pure function of the intent and the bundle.

The policy set is parsed once per bundle and reused. The intent maps to a
Cedar request (documented in the README):

- principal: ``<Kind>::"<actor id>"`` where Kind is Agent, Service, Operator
  or System, with attribute ``kind``;
- action: ``Action::"<action>"`` (the dotted name as is);
- resource: ``Target::"<target>"``;
- context: ``params`` (floats and out-of-range integers become their JSON
  text, nulls are dropped: Cedar has neither), ``safety_class``, ``tenant``.

Default deny: no determining permit is a deny. Any evaluation error denies
(fail closed) and is recorded. Nothing here reads a clock, a file or the
environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cedarpy

from ..encoding import canonical_bytes
from ..errors import PolicyError
from ..model.decision import Decision, Verdict
from ..model.intent import ActionIntent
from .bundle import PolicyBundle

_PRINCIPAL_TYPES = {
    "agent": "Agent",
    "service": "Service",
    "operator": "Operator",
    "system": "System",
}
_CEDAR_LONG = 2**63


def _cedar_value(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_CEDAR_LONG <= value < _CEDAR_LONG else str(value)
    if isinstance(value, float):
        return canonical_bytes(value).decode()
    if isinstance(value, list):
        return [_cedar_value(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: _cedar_value(v) for k, v in value.items() if v is not None}
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PolicyEngine:
    """Decides intents under one parsed policy bundle."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
        self.policy_hash = bundle.hash
        for name, text in bundle.files:
            try:
                cedarpy.PolicySet.from_str(text)
            except ValueError as exc:
                raise PolicyError(f"{name}: {exc}") from None
        try:
            self._policies = cedarpy.PolicySet.from_str("\n".join(t for _, t in bundle.files))
        except ValueError as exc:
            raise PolicyError(f"policy bundle does not parse as one set: {exc}") from None

    @staticmethod
    def request(intent: ActionIntent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Cedar request and entities for ``intent``."""
        principal_type = _PRINCIPAL_TYPES[intent.actor.kind]
        request: dict[str, Any] = {
            "principal": f"{principal_type}::{_quote(intent.actor.id)}",
            "action": f"Action::{_quote(intent.action)}",
            "resource": f"Target::{_quote(intent.target)}",
            "context": {
                "params": _cedar_value(intent.params),
                "safety_class": intent.safety_class.value,
                "tenant": intent.tenant,
            },
        }
        entities: list[dict[str, Any]] = [
            {
                "uid": {"type": principal_type, "id": intent.actor.id},
                "attrs": {"kind": intent.actor.kind},
                "parents": [],
            },
            {"uid": {"type": "Target", "id": intent.target}, "attrs": {}, "parents": []},
        ]
        return request, entities

    def _decision(self, result: Any) -> Decision:
        diagnostics = result.diagnostics
        names = diagnostics.id_annotations_by_reason
        reasons = tuple(sorted(names.get(r, r) for r in diagnostics.reasons))
        errors = tuple(str(e) for e in diagnostics.errors)
        if result.decision == cedarpy.Decision.Allow and not errors:
            verdict = Verdict.ALLOW
        else:
            verdict = Verdict.DENY
        return Decision(
            verdict=verdict, reasons=reasons, policy_hash=self.policy_hash, errors=errors
        )

    def decide(self, intent: ActionIntent) -> Decision:
        request, entities = self.request(intent)
        return self._decision(cedarpy.is_authorized(request, self._policies, entities))

    def decide_batch(self, intents: Sequence[ActionIntent]) -> list[Decision]:
        """Decide many intents in one Cedar call (same results as one by one)."""
        if not intents:
            return []
        requests = []
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        for intent in intents:
            request, ents = self.request(intent)
            requests.append(request)
            for entity in ents:
                entities[(entity["uid"]["type"], entity["uid"]["id"])] = entity
        results = cedarpy.is_authorized_batch(requests, self._policies, list(entities.values()))
        return [self._decision(result) for result in results]
