"""Sample intents and policies shared by the tests (tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any

POLICY = """
@id("allow-read-only")
permit (principal, action, resource) when { context.safety_class == "A0" };

@id("allow-tickets")
permit (principal, action == Action::"ticket.create", resource);

@id("never-prod-db")
forbid (principal, action, resource == Target::"db/prod");
"""


def intent(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": "acme",
        "actor": {"id": "agent-1", "kind": "agent"},
        "action": "fs.read",
        "target": "reports/q3.txt",
        "safety_class": "A0",
        "params": {"bytes": 10},
    }
    base.update(overrides)
    return base
