"""Evidence packs: one canonical JSON artifact proving an audit stream from telemetry to outcome.

A pack extends the evidence bundle (``docs/evidence-bundle.md``). Its
``evidence`` member is a pure function of the tenant's log: the stream's
events and the observations, beliefs, shadows and posture they rest on
(:mod:`.provenance`), each as its exact canonical bytes, and the chain that
files every one of them under its stage. ``evidence_hash`` is the content
hash of that member, so it is the same in any home whose log holds the same
events and never holds an export time. The ``attestation`` member proves
the evidence: the public key, signed checkpoints, an inclusion proof per
event, and the policy and configuration events the decisions name.

Export reads the ledger and asks it for signed checkpoints (not events);
it writes no event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..encoding import canonical_bytes, content_hash
from ..errors import NotFound
from ..jsontext import loads_recorded
from ..ledger.log import Ledger
from ..model.event import DECISION_RECORDED, Event
from .bundle import _context, _entry
from .provenance import PROVENANCE_TYPES, chain, provenance, summary

PACK_FORMAT = "exoarmur.evidence-pack/v1"


def derive_evidence(
    tenant: str, stream_id: str, stream: list[Event], log: Iterable[Event]
) -> dict[str, Any]:
    """The ``evidence`` member for a stream, from its events and its tenant's log (in order)."""
    own = [loads_recorded(e.canonical) for e in stream]
    # only events of the types that may join are parsed: the log before a stream can be long
    joined = provenance(
        own, (loads_recorded(e.canonical) for e in log if e.type in PROVENANCE_TYPES)
    )
    events = sorted([*own, *joined], key=lambda e: int(e["seq"]))
    return {
        "tenant": tenant,
        "audit_stream_id": stream_id,
        **summary(own),
        "chain": chain(events, stream_id),
        "events": [{"leaf_index": e["seq"], "event": canonical_bytes(e).decode()} for e in events],
    }


def evidence_hash(evidence: dict[str, Any]) -> str:
    return content_hash(evidence)


def stream_events(ledger: Ledger, tenant: str, stream_id: str) -> list[Event]:
    events = ledger.store.events_for_correlation(tenant, stream_id)
    if not events:
        raise NotFound(f"no events of audit stream {stream_id!r} in tenant {tenant!r}")
    return events


def export_pack(ledger: Ledger, tenant: str, stream_id: str) -> dict[str, Any]:
    """The evidence pack of one audit stream (NotFound when the stream has no events)."""
    stream = stream_events(ledger, tenant, stream_id)
    end = max(e.seq for e in stream)
    # only the types that may join, through the store's by-type index: the log can be long
    joining = ledger.store.events_of_type(tenant, *sorted(PROVENANCE_TYPES), stop=end)
    evidence = derive_evidence(tenant, stream_id, stream, joining)
    decisions = [e for e in stream if e.type == DECISION_RECORDED]
    context, logs = _context(ledger, tenant, decisions)
    checkpoints = {log: ledger.current_checkpoint(log) for log in sorted({tenant, *logs})}
    size = checkpoints[tenant].checkpoint.size
    proofs = [
        [digest.hex() for digest in ledger.inclusion(tenant, entry["leaf_index"], size).hashes]
        for entry in evidence["events"]
    ]
    return {
        "format": PACK_FORMAT,
        "evidence": evidence,
        "evidence_hash": evidence_hash(evidence),
        "attestation": {
            "public_key": ledger.key.verifier_key(),
            "checkpoints": {log: signed.note for log, signed in checkpoints.items()},
            "proofs": proofs,
            "context": [
                _entry(ledger, e.tenant, e, checkpoints[e.tenant].checkpoint.size) for e in context
            ],
        },
    }


def pack_bytes(pack: dict[str, Any]) -> bytes:
    """The pack as written: its canonical bytes and one newline (nothing else verifies)."""
    return canonical_bytes(pack) + b"\n"
