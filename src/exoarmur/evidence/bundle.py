"""Evidence bundles: one self-contained JSON file a cold reviewer verifies offline.

A bundle holds the events of one correlation of one tenant, each with an
inclusion proof against one signed checkpoint of that tenant's log; the
policy bundles and configuration snapshots those decisions name, each with
an inclusion proof against a signed checkpoint of the log that holds it;
the public key; and a hash over all of it. The format is specified in
``docs/evidence-bundle.md``.

Export reads the ledger; nothing here writes to it except the signed
checkpoints it asks the ledger for (checkpoints are not events).
"""

from __future__ import annotations

from typing import Any

from ..encoding import content_hash
from ..errors import NotFound
from ..ledger.log import Ledger
from ..model.event import (
    CONFIG_SNAPSHOT,
    DECISION_RECORDED,
    POLICY_ACTIVATED,
    SYSTEM_LOG,
    Event,
)
from .story import needs_v2

BUNDLE_FORMAT = "exoarmur.evidence-bundle/v1"
#: v2 adds evidence holds and releases and approval escalations to an intent's story;
#: a bundle is written as v2 only when its story needs it, so v1 readers keep reading the rest
BUNDLE_FORMAT_V2 = "exoarmur.evidence-bundle/v2"
BUNDLE_FORMATS = (BUNDLE_FORMAT, BUNDLE_FORMAT_V2)


def _entry(ledger: Ledger, log: str, event: Event, size: int) -> dict[str, Any]:
    proof = ledger.inclusion(log, event.seq, size)
    return {
        "log": log,
        "leaf_index": event.seq,
        "event": event.canonical.decode(),
        "proof": [digest.hex() for digest in proof.hashes],
    }


def _context(ledger: Ledger, tenant: str, decisions: list[Event]) -> tuple[list[Event], set[str]]:
    """The policy activations and config snapshots the decisions name, and the logs they are in."""
    policy_hashes = {d.payload["decision"]["policy_hash"] for d in decisions}
    config_hashes = {
        d.payload["decision"]["config_hash"]
        for d in decisions
        if d.payload["decision"].get("config_hash")
    }
    found: dict[tuple[str, str], Event] = {}
    # through the store's by-type index: the logs themselves can be long
    for log in (tenant, SYSTEM_LOG):
        for event_type, kind, field, wanted in (
            (POLICY_ACTIVATED, "policy", "policy_hash", policy_hashes),
            (CONFIG_SNAPSHOT, "config", "config_hash", config_hashes),
        ):
            if not wanted:
                continue
            for event in ledger.store.events_of_type(log, event_type):
                key = (kind, event.payload[field])
                if key[1] in wanted and key not in found:
                    found[key] = event
    missing = [f"policy {h}" for h in policy_hashes if ("policy", h) not in found]
    missing += [f"config {h}" for h in config_hashes if ("config", h) not in found]
    if missing:
        raise NotFound(f"the ledger does not hold what these decisions name: {', '.join(missing)}")
    events = sorted(found.values(), key=lambda e: (e.tenant, e.seq))
    return events, {e.tenant for e in events}


def export_bundle(
    ledger: Ledger,
    tenant: str,
    correlation: str,
    artifacts: list[tuple[str, bool]] | None = None,
) -> dict[str, Any]:
    """The evidence bundle of one correlation (raises NotFound when it has no events).

    ``artifacts``: (type, required_for_verdict) of governance artifacts to
    attach, each built by its installed provider (see :mod:`.artifacts`).
    """
    events = ledger.store.events_for_correlation(tenant, correlation)
    if not events:
        raise NotFound(f"no events with correlation {correlation!r} in tenant {tenant!r}")
    decisions = [e for e in events if e.type == DECISION_RECORDED]
    context, logs = _context(ledger, tenant, decisions)
    checkpoints = {log: ledger.current_checkpoint(log) for log in sorted({tenant, *logs})}
    v2 = needs_v2([{"type": e.type, "payload": e.payload} for e in events])
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT_V2 if v2 else BUNDLE_FORMAT,
        "tenant": tenant,
        "correlation_id": correlation,
        "public_key": ledger.key.verifier_key(),
        "checkpoints": {log: signed.note for log, signed in checkpoints.items()},
        "events": [_entry(ledger, tenant, e, checkpoints[tenant].checkpoint.size) for e in events],
        "context": [
            _entry(ledger, e.tenant, e, checkpoints[e.tenant].checkpoint.size) for e in context
        ],
    }
    if artifacts:
        from .artifacts import attach

        attach(bundle, artifacts)
    bundle["bundle_hash"] = content_hash(bundle)
    return bundle
