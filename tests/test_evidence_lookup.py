"""Export finds the policy and configuration its decisions name by type, not by reading logs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exoarmur.clock import StepClock
from exoarmur.evidence import export_bundle, export_pack, verify_bundle_text
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import Event
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

KEY = SigningKey.from_seed("lookup.exoarmur/log", hashlib.sha256(b"lookup").digest())


class _CountingStore:
    """A store that counts the events its whole-log reads hand back."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.walked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        for event in self.inner.events(tenant, start, stop):
            self.walked += 1
            yield event


def test_export_reads_no_log_to_find_what_its_decisions_name(tmp_path: Path) -> None:
    store = _CountingStore(SqliteStore(tmp_path / "l.db"))
    registry = ExecutorRegistry()
    registry.bind("*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(store, KEY),  # type: ignore[arg-type]
        policy=PolicyEngine(
            PolicyBundle.from_text(
                '@id("reads") permit (principal, action, resource) '
                'when { context.safety_class == "A0" };'
            )
        ),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(5),
    )
    for n in range(40):  # a log much longer than the stream exported
        governor.submit(
            {
                "tenant": "acme",
                "actor": {"id": "agent-1"},
                "action": "fs.read",
                "target": f"t/{n}",
                "safety_class": "A0",
                "correlation_id": "incident-7" if n == 39 else f"other-{n}",
            }
        )
    governor.ledger.checkpoint("acme")
    store.walked = 0
    bundle = export_bundle(governor.ledger, "acme", "incident-7")
    pack = export_pack(governor.ledger, "acme", "incident-7")
    assert store.walked == 0
    assert {json.loads(e["event"])["type"] for e in bundle["context"]} >= {"policy.activated"}
    assert pack["attestation"]["context"] == bundle["context"]
    assert verify_bundle_text(json.dumps(bundle), KEY.verifier_key()).passed
    governor.close()
