"""Verifying an evidence pack offline: the bundle's checks, plus the pack's own.

Beyond what a bundle's verifier checks (signed checkpoints, inclusion proofs,
canonical event bytes, the story of every intent decided again), a pack must:

1. be exactly its canonical bytes and one newline, so any edited byte shows;
2. hash (its ``evidence`` member) to ``evidence_hash``;
3. hold, besides the stream's events, exactly the events the provenance rule
   chooses among its own events (nothing unrelated slipped in), and file each
   under the stage the chain rule gives it;
4. name the plan, policy and configuration hashes its decisions name.

Pure: no store, no clock, no network.
"""

from __future__ import annotations

from typing import Any

from ..encoding import canonical_bytes
from ..errors import ExoArmurError
from ..model.event import CONFIG_SNAPSHOT, POLICY_ACTIVATED, SYSTEM_LOG
from .pack import PACK_FORMAT
from .provenance import PROVENANCE_TYPES, chain, missing, provenance, summary
from .verify import (
    BundleVerdict,
    _checkpoints,
    _content_hash,
    _entries,
    _redecide,
    _verifier,
    unencodable,
)

_TOP = frozenset({"format", "evidence", "evidence_hash", "attestation"})
_EVIDENCE = frozenset(
    {
        "tenant",
        "audit_stream_id",
        "policy_hash",
        "policy_hashes",
        "config_hashes",
        "plan_hash",
        "chain",
        "events",
    }
)
_ATTESTATION = frozenset({"public_key", "checkpoints", "proofs", "context"})


def verify_pack(
    pack: Any,
    raw: bytes | None,
    trusted_key: str | None,
    verdict: BundleVerdict,
    *,
    plain: bool | None = None,
) -> BundleVerdict:
    """Verify a parsed pack; ``raw`` the file's bytes when it was read from one.

    ``plain``: what ``jsontext.loads_plain`` found reading it (None: not read so).
    """
    # a plain document's members are plain; otherwise canonical_bytes finds out
    plain = plain or None
    if raw is not None:
        try:
            canonical = canonical_bytes(pack, plain=plain) + b"\n"
        except (ExoArmurError, UnicodeEncodeError) as exc:
            verdict.fail("pack", f"not canonical JSON: {unencodable(exc)}")
            return verdict
        if raw != canonical:
            verdict.fail(
                "pack", "the file is not the pack's canonical bytes (RFC 8785) and one newline"
            )
    if not _shaped(pack, verdict):
        return verdict
    evidence, attestation = pack["evidence"], pack["attestation"]
    verdict.evidence_hash = str(pack["evidence_hash"])
    try:
        if _content_hash(evidence, plain) != pack["evidence_hash"]:
            verdict.fail("evidence_hash", "does not match the content hash of evidence")
    except (ExoArmurError, UnicodeEncodeError) as exc:
        verdict.fail("evidence", unencodable(exc))
        return verdict
    verifier = _verifier(attestation, trusted_key, verdict)
    if verifier is None:
        return verdict
    roots = _checkpoints(attestation, verifier, verdict)
    tenant, stream_id = evidence["tenant"], evidence["audit_stream_id"]
    plain_events: set[int] = set()
    proved = _proved_events(evidence, attestation, roots, verdict, plain_events)
    context = _entries(
        {"attestation.context": attestation["context"]},
        "attestation.context",
        roots,
        verdict,
        {tenant, SYSTEM_LOG},
    )
    for where, event in context:
        if event.get("type") not in (POLICY_ACTIVATED, CONFIG_SNAPSHOT):
            verdict.fail(
                where, f"context may hold policy and config events, not {event.get('type')!r}"
            )
    verdict.events = len(proved) + len(context)
    _order(proved, context, verdict)
    if verdict.failures:
        return verdict
    events = [event for _, event in proved]
    stream = [(w, e) for w, e in proved if e.get("correlation_id") == stream_id]
    _joined(events, [e for _, e in stream], proved, stream_id, verdict)
    if chain(events, stream_id) != evidence["chain"]:
        verdict.fail("evidence.chain", "differs from the chain its events make (by the chain rule)")
    said = {name: evidence[name] for name in ("policy_hash", "policy_hashes", "config_hashes")}
    said["plan_hash"] = evidence["plan_hash"]
    derived = summary([e for _, e in stream])
    for name in sorted(said):
        if said[name] != derived[name]:
            verdict.fail(
                f"evidence.{name}", f"{said[name]!r}; the stream's events say {derived[name]!r}"
            )
    if not verdict.failures:  # _redecide re-checks the containment plans too
        _redecide(tenant, stream, context, verdict, plain_events=plain_events)
    return verdict


def _shaped(pack: Any, verdict: BundleVerdict) -> bool:
    for where, value, fields in (
        ("pack", pack, _TOP),
        ("evidence", pack.get("evidence") if isinstance(pack, dict) else None, _EVIDENCE),
        ("attestation", pack.get("attestation") if isinstance(pack, dict) else None, _ATTESTATION),
    ):
        if not isinstance(value, dict) or set(value) != fields:
            found = set(value) if isinstance(value, dict) else set()
            verdict.fail(
                where,
                f"must be an object with exactly the fields {sorted(fields)}"
                + "".join(f"; unexpected field {n!r}" for n in sorted(found - fields))
                + "".join(f"; missing field {n!r}" for n in sorted(fields - found)),
            )
            return False
        if where == "pack" and pack["format"] != PACK_FORMAT:
            verdict.fail("format", f"expected {PACK_FORMAT!r}, found {pack['format']!r}")
            return False
    evidence = pack["evidence"]
    for name in ("tenant", "audit_stream_id"):
        if not isinstance(evidence[name], str) or not evidence[name]:
            verdict.fail(f"evidence.{name}", "must be a non-empty string")
            return False
    if not isinstance(evidence["events"], list) or not isinstance(
        pack["attestation"]["proofs"], list
    ):
        verdict.fail("evidence.events", "events and attestation.proofs must be lists")
        return False
    if len(evidence["events"]) != len(pack["attestation"]["proofs"]):
        verdict.fail(
            "attestation.proofs",
            f"{len(pack['attestation']['proofs'])} proofs for {len(evidence['events'])} events",
        )
        return False
    if not evidence["events"]:
        verdict.fail("evidence.events", "is empty: a pack proves at least one event")
        return False
    return True


def _proved_events(
    evidence: dict[str, Any],
    attestation: dict[str, Any],
    roots: dict[str, Any],
    verdict: BundleVerdict,
    plain_events: set[int],
) -> list[tuple[str, dict[str, Any]]]:
    """Each event with its proof, checked as a bundle's events are (in the tenant's log)."""
    tenant = evidence["tenant"]
    entries: list[dict[str, Any]] = []
    for index, (entry, proof) in enumerate(
        zip(evidence["events"], attestation["proofs"], strict=True)
    ):
        if not isinstance(entry, dict) or set(entry) != {"leaf_index", "event"}:
            verdict.fail(
                f"evidence.events[{index}]", "must be an object with exactly leaf_index and event"
            )
            entries.append({})
            continue
        entries.append({"log": tenant, **entry, "proof": proof})
    return _entries(
        {"evidence.events": entries}, "evidence.events", roots, verdict, {tenant}, plain_events
    )


def _order(
    events: list[tuple[str, dict[str, Any]]],
    context: list[tuple[str, dict[str, Any]]],
    verdict: BundleVerdict,
) -> None:
    seen: dict[str, str] = {}
    for entries in (events, context):
        previous: tuple[str, int] | None = None
        for where, event in entries:
            place = (str(event["tenant"]), int(event["seq"]))
            if previous is not None and place <= previous:
                verdict.fail(where, "out of log order, or twice: events come in log order, once")
            previous = place
            event_id = str(event.get("event_id"))
            if event_id in seen:
                verdict.fail(where, f"event {event_id} appears twice (also {seen[event_id]})")
            seen.setdefault(event_id, where)


def _joined(
    events: list[dict[str, Any]],
    stream: list[dict[str, Any]],
    proved: list[tuple[str, dict[str, Any]]],
    stream_id: str,
    verdict: BundleVerdict,
) -> None:
    """Every event outside the stream is one the provenance rule chooses; say what is absent."""
    if not stream:
        verdict.fail("evidence.events", f"hold no event of audit stream {stream_id!r}")
        return
    chosen = {id(e) for e in provenance(stream, events)}
    for where, event in proved:
        if event.get("correlation_id") == stream_id:
            continue
        if event.get("type") not in PROVENANCE_TYPES:
            verdict.fail(
                where,
                f"an event of correlation {event.get('correlation_id')!r} and type "
                f"{event.get('type')!r}: only observations, beliefs, shadows, attestations "
                "and posture join",
            )
        elif id(event) not in chosen:
            verdict.fail(where, "joins the stream by no reference, subject or decision")
    chosen_events = [e for e in events if id(e) in chosen]
    absent = missing(stream, chosen_events)
    if absent:
        verdict.notes.append(
            "the stream references what the pack does not hold: "
            + ", ".join(absent)
            + " (not in the log before the stream ended)"
        )
