"""What the HTTP API tests share: a real governor over a temporary home, and its people.

Not a test module (it holds no tests); named ``test_server_*`` only so that
it lives beside the tests it serves. tests/ is on sys.path, so the other
``test_server*`` modules import it by name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exoarmur.home import Home, open_governor
from exoarmur.model.event import ACCESS_REFUSED, SYSTEM_LOG, Event
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle
from exoarmur.server import Limits, create_app

with warnings.catch_warnings():
    # Starlette's test client now prefers the httpx2 package and warns (at import
    # time) when it finds only httpx; the client works the same with either.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

#: reads allowed; production deletes need two approvers; customers' database untouchable
POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("prod-delete") @approval("2") @evidence("high")
permit (principal is Agent, action == Action::"demo.delete", resource)
when { context.params.env == "prod" };
@id("protected") forbid (principal, action, resource == Target::"db/customers");
"""

#: name → (role, tenants)
PEOPLE: dict[str, tuple[str, list[str]]] = {
    "agent-7": ("agent", ["acme"]),
    "agent-8": ("agent", ["acme"]),
    "agent-g": ("agent", ["globex"]),
    "alice": ("operator", ["acme"]),
    "bob": ("operator", ["acme"]),
    "mallory": ("operator", ["globex"]),
    "audrey": ("auditor", ["acme"]),
    "root": ("admin", []),
}

READ = {"tenant": "acme", "action": "demo.read", "target": "reports/q3.txt", "safety_class": "A0"}
FORBIDDEN = {
    "tenant": "acme",
    "action": "demo.read",
    "target": "db/customers",
    "safety_class": "A0",
}
DELETE = {
    "tenant": "acme",
    "action": "demo.delete",
    "target": "db/orders",
    "params": {"env": "prod"},
    "safety_class": "A2",
}


@dataclass
class Deployment:
    """One data directory, its governor, an app over it and everyone's API key."""

    home: Path
    governor: Governor
    keys: dict[str, str]
    client: TestClient

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def refusals(self) -> list[Event]:
        """Every ``access.refused`` event in the system log, oldest first."""
        store = self.governor.ledger.store
        return [
            e
            for e in store.events(SYSTEM_LOG, 0, store.size(SYSTEM_LOG))
            if e.type == ACCESS_REFUSED
        ]

    def size(self, tenant: str) -> int:
        return self.governor.ledger.size(tenant)


def deploy(path: Path, *, limits: Limits | None = None, policy: str = POLICY) -> Deployment:
    """Initialise a home, activate ``policy``, add :data:`PEOPLE`; the caller closes it."""
    Home(path).init()
    governor = open_governor(path)
    governor.activate_policy(PolicyBundle.from_text(policy))
    keys = {
        name: governor.add_principal(name, role, tenants)[1]
        for name, (role, tenants) in PEOPLE.items()
    }
    client = TestClient(create_app(governor, limits=limits), raise_server_exceptions=False)
    return Deployment(path, governor, keys, client)


def submit(deployment: Deployment, who: str, intent: dict[str, Any], status: int) -> dict[str, Any]:
    answer = deployment.client.post("/v1/intents", json=intent, headers=deployment.auth(who))
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body
