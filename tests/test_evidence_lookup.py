"""Export finds the policy and configuration its decisions name by type, not by reading logs.

On every store: what a log scan hands back is counted, through the store's
own ``events`` (which a store may use inside itself too) and, on JetStream,
through the messages of the ledger stream its client reads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from exoarmur.clock import StepClock
from exoarmur.evidence import export_bundle, export_pack, verify_bundle_text
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.jetstream import JetStreamStore
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.store import LedgerStore
from exoarmur.model.event import Event
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

if TYPE_CHECKING:
    from backends import Backend

pytest_plugins = ["backends"]

KEY = SigningKey.from_seed("lookup.exoarmur/log", hashlib.sha256(b"lookup").digest())


class LogWalks:
    """Counts the events a store hands back by walking a log, however it is asked."""

    def __init__(self, store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.walked = 0
        events = store.events

        def counted(tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
            for event in events(tenant, start, stop):
                self.walked += 1
                yield event

        # on the object, so that the store's own calls of ``self.events`` count too
        monkeypatch.setattr(store, "events", counted)
        if isinstance(store, JetStreamStore):
            client, stream = store._client, store.layout.stream
            scan = client.scan

            async def scanned(on: str, *args: Any, **options: Any) -> Any:
                page, more = await scan(on, *args, **options)
                if on == stream:  # the log itself, not a bucket of its indexes
                    self.walked += len(page)
                return page, more

            monkeypatch.setattr(client, "scan", scanned)


def test_export_reads_no_log_to_find_what_its_decisions_name(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ExecutorRegistry()
    registry.bind("*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(backend.open(), KEY),
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
    governor.close()
    # exported by another store object, as `exoarmur evidence export` in its own process
    store = backend.open()
    walks = LogWalks(store, monkeypatch)
    ledger = Ledger(store, KEY)
    bundle = export_bundle(ledger, "acme", "incident-7")
    pack = export_pack(ledger, "acme", "incident-7")
    assert walks.walked == 0
    assert {json.loads(e["event"])["type"] for e in bundle["context"]} >= {"policy.activated"}
    assert pack["attestation"]["context"] == bundle["context"]
    assert verify_bundle_text(json.dumps(bundle), KEY.verifier_key()).passed
