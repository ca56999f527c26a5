"""An evidence-pack checker written from docs/evidence-bundle.md ("Evidence packs") alone.

It imports nothing from ``exoarmur``. For the steps the spec says a pack
shares with a bundle (checkpoints, proofs, the story decided again) it
hands the stream's events to :mod:`spec_checker`, itself written from the
same page; the rest (the file's bytes, ``evidence_hash``, which events join,
the chain, the summary hashes) is written here from the spec's words.
Returns the list of problems found (empty: PASS).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature

from spec_checker import chash, check, included, jcs, open_note

EVIDENCE = {
    "tenant",
    "audit_stream_id",
    "policy_hash",
    "policy_hashes",
    "config_hashes",
    "plan_hash",
    "chain",
    "events",
}
ATTESTATION = {"public_key", "checkpoints", "proofs", "context"}
SHADOW = {"shadow.created", "shadow.updated", "shadow.closed"}
POSTURE = {"posture.set", "posture.expired"}
JOINING = {"observation.recorded", "belief.formed", "evidence.attested", *SHADOW, *POSTURE}
APPROVALS = {
    "approval.requested",
    "approval.granted",
    "approval.rejected",
    "approval.refused",
    "intent.approved",
    "intent.rejected",
    "intent.expired",
}
OUTCOMES = {
    "execution.finished",
    "execution.outcome_unknown",
    "plan.step.finished",
    "containment.expired",
    "containment.reverted",
}
STAGE_NAMES = [
    "observations",
    "beliefs",
    "shadows",
    "attestations",
    "posture",
    "approvals",
    "plan",
    "actions",
    "outcomes",
    "other",
]


def check_pack(raw: bytes, vkey: str) -> list[str]:
    problems: list[str] = []
    try:
        _check(raw, vkey, problems)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problems.append(f"malformed: {exc!r}")
    except InvalidSignature:
        problems.append("signature")
    return problems


def _check(raw: bytes, vkey: str, problems: list[str]) -> None:
    bad = problems.append
    pack = json.loads(raw)
    if raw != jcs(pack) + b"\n":
        return bad("file bytes")
    if set(pack) != {"format", "evidence", "evidence_hash", "attestation"}:
        return bad("fields")
    ev, at = pack["evidence"], pack["attestation"]
    if set(ev) != EVIDENCE or set(at) != ATTESTATION:
        return bad("fields")
    if pack["format"] != "exoarmur.evidence-pack/v1" or at["public_key"] != vkey:
        return bad("format or key")
    if chash(ev) != pack["evidence_hash"]:
        return bad("evidence_hash")
    if not ev["events"] or len(ev["events"]) != len(at["proofs"]):
        return bad("events")
    tenant, stream_id = ev["tenant"], ev["audit_stream_id"]
    size, root = open_note(at["checkpoints"][tenant], vkey)[1:]
    events, last, ids = [], -1, set()
    for entry, proof in zip(ev["events"], at["proofs"], strict=True):
        if set(entry) != {"leaf_index", "event"}:
            return bad("entry fields")
        text, index = entry["event"], entry["leaf_index"]
        event = json.loads(text)
        if jcs(event) != text.encode() or event["seq"] != index or event["tenant"] != tenant:
            bad("entry bytes")
        leaf = hashlib.sha256(b"\x00" + text.encode()).digest()
        if not included(leaf, index, size, [bytes.fromhex(h) for h in proof], root):
            bad("inclusion")
        if index <= last or event["event_id"] in ids:
            bad("order")
        last = index
        ids.add(event["event_id"])
        events.append(event)
    stream = [e for e in events if e["correlation_id"] == stream_id]
    if not stream:
        return bad("no stream")
    others = [e for e in events if e["correlation_id"] != stream_id]
    wanted = joining(stream, events)
    if any(e["type"] not in JOINING or e["event_id"] not in wanted for e in others):
        bad("joined")
    if ev["chain"] != chain(events, stream_id):
        bad("chain")
    if {k: ev[k] for k in ("policy_hash", "policy_hashes", "config_hashes", "plan_hash")} != (
        hashes(stream)
    ):
        bad("summary hashes")
    # the rest is the bundle's: the stream's events with the context, as a bundle
    bundle = {
        # a pack's stream is checked with the story rules of bundle format v2
        "format": "exoarmur.evidence-bundle/v2",
        "tenant": tenant,
        "correlation_id": stream_id,
        "public_key": at["public_key"],
        "checkpoints": at["checkpoints"],
        "events": [
            {"log": tenant, **entry, "proof": proof}
            for entry, proof in zip(ev["events"], at["proofs"], strict=True)
            if json.loads(entry["event"])["correlation_id"] == stream_id
        ],
        "context": at["context"],
    }
    bundle["bundle_hash"] = chash(bundle)
    problems.extend(f"bundle: {p}" for p in check(bundle, vkey))


def _intents(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in stream if e["type"] == "intent.recorded"]


def joining(stream: list[dict[str, Any]], log: list[dict[str, Any]]) -> set[str]:
    """Event ids of ``log`` that join the stream, by the spec's list."""
    end = max(e["seq"] for e in stream)
    early = [
        e for e in log if e["seq"] < end and e["correlation_id"] != stream[0]["correlation_id"]
    ]
    obs_refs, belief_refs, scopes, intents = set(), set(), set(), set()
    for e in _intents(stream):
        intents.add(e["intent_id"])
        params = e["payload"]["intent"]["params"]
        refs = params.get("evidence_refs", {})
        obs_refs |= set(refs.get("observations", []))
        belief_refs |= set(refs.get("beliefs", []))
        if "containment" in params:
            scopes.add(json.dumps(params["containment"]["scope"], sort_keys=True))
        for step in params.get("plan", {}).get("steps", []):
            scopes.add(json.dumps(step["scope"], sort_keys=True))
    chosen: set[str] = set()
    subjects = set(scopes)
    for e in early:
        if e["type"] == "belief.formed" and e["payload"]["belief"]["belief_id"] in belief_refs:
            chosen.add(e["event_id"])
            obs_refs |= set(e["payload"]["belief"]["observation_ids"])
            subjects.add(json.dumps(e["payload"]["belief"]["subject"], sort_keys=True))
    for e in early:
        if e["type"] == "observation.recorded":
            observation = e["payload"]["observation"]
            if observation["observation_id"] in obs_refs:
                chosen.add(e["event_id"])
                subjects.add(json.dumps(observation["subject"], sort_keys=True))
        if e["type"] == "evidence.attested" and e["payload"]["intent_id"] in intents:
            chosen.add(e["event_id"])
    for e in early:
        if e["type"] in SHADOW:
            shadow = e["payload"]["shadow"]
            about = json.dumps(shadow["subject"], sort_keys=True) in subjects
            if about or belief_refs & set(shadow["belief_ids"]):
                chosen.add(e["event_id"])
    postures = [e for e in log if e["type"] in POSTURE]
    for decision in (e for e in stream if e["type"] == "decision.recorded"):
        before = [p for p in postures if p["seq"] < decision["seq"]]
        if before and before[-1]["correlation_id"] != stream[0]["correlation_id"]:
            chosen.add(before[-1]["event_id"])
    return chosen


def chain(events: list[dict[str, Any]], stream_id: str) -> dict[str, list[str]]:
    plans = {
        e["intent_id"]
        for e in events
        if e["type"] == "intent.recorded" and e["payload"]["intent"]["action"] == "containment.plan"
    }
    stages: dict[str, list[str]] = {name: [] for name in STAGE_NAMES}
    for e in events:
        kind = e["type"]
        if kind == "observation.recorded":
            stage = "observations"
        elif kind == "belief.formed":
            stage = "beliefs"
        elif kind in SHADOW:
            stage = "shadows"
        elif kind == "evidence.attested":
            stage = "attestations"
        elif kind in POSTURE:
            stage = "posture"
        elif e["correlation_id"] != stream_id:
            stage = "other"
        elif kind in APPROVALS:
            stage = "approvals"
        elif kind in ("plan.started", "plan.completed", "plan.compensated"):
            stage = "plan"
        elif kind in ("intent.recorded", "decision.recorded", "gate.blocked") and e.get(
            "intent_id"
        ):
            stage = "plan" if e["intent_id"] in plans else "actions"
        elif kind in (
            "execution.started",
            "execution.retry",
            "execution.blocked",
            "plan.step.started",
        ):
            stage = "actions"
        elif kind in OUTCOMES:
            stage = "outcomes"
        else:
            stage = "other"
        stages[stage].append(e["event_id"])
    return stages


def hashes(stream: list[dict[str, Any]]) -> dict[str, Any]:
    decisions = [e["payload"]["decision"] for e in stream if e["type"] == "decision.recorded"]
    plans = [
        e["payload"]["intent"]["params"]["plan_hash"]
        for e in _intents(stream)
        if e["payload"]["intent"]["action"] == "containment.plan"
    ]
    return {
        "policy_hash": decisions[-1]["policy_hash"] if decisions else None,
        "policy_hashes": sorted({d["policy_hash"] for d in decisions}),
        "config_hashes": sorted({d["config_hash"] for d in decisions if d.get("config_hash")}),
        "plan_hash": plans[-1] if plans else None,
    }
