"""Verifying an evidence bundle with nothing but the file (and, ideally, a trusted key).

Checks, each failure reported with where it is:

1. the bundle is well-formed and its ``bundle_hash`` matches its content;
2. every checkpoint is a signed note that verifies with the key (the one
   the reviewer trusts, if given; else the bundle's own, which is flagged);
3. every event's bytes are canonical, hash to a leaf whose inclusion proof
   reaches its log's signed root at its stated position, and belong to the
   bundle's tenant and correlation (context events: policy activations and
   configuration snapshots of the tenant's log or the system log);
4. every recorded intent hashes to its recorded hash and is decided again
   from the bundle's own policy text, under the posture it records: the
   policy's verdict, reasons and obligations must match, and where the safety
   gate tightened the verdict, it may only have tightened it;
5. votes bind to the intent's hash, a quorum of distinct approvers precedes
   an approval, and nothing started without an allow or an approval.

Pure: no store, no clock, no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import jsontext
from ..containment.audit import ContainmentAudit
from ..encoding import canonical_bytes, content_hash
from ..errors import ExoArmurError, JSONTextError
from ..ledger.checkpoint import Checkpoint, open_checkpoint
from ..ledger.keys import Verifier
from ..ledger.merkle import leaf_hash, verify_inclusion
from ..model.decision import Decision, Verdict
from ..model.event import (
    APPROVAL_GRANTED,
    CONFIG_SNAPSHOT,
    DECISION_RECORDED,
    EXECUTION_STARTED,
    INTENT_APPROVED,
    INTENT_RECORDED,
    POLICY_ACTIVATED,
    SYSTEM_LOG,
    Event,
)
from ..model.intent import ActionIntent
from ..policy import PolicyBundle, PolicyEngine
from .bundle import BUNDLE_FORMAT

_STRICTNESS = {Verdict.ALLOW: 0, Verdict.REQUIRE_APPROVAL: 1, Verdict.DENY: 2}
_TOP_LEVEL = {
    "format",
    "tenant",
    "correlation_id",
    "public_key",
    "checkpoints",
    "events",
    "context",
    "bundle_hash",
}


@dataclass
class BundleVerdict:
    """What verifying a bundle found. ``passed`` only when nothing failed."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    decisions: int = 0
    key_trusted: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "PASS" if self.passed else "FAIL",
            "events": self.events,
            "decisions": self.decisions,
            "key_trusted": self.key_trusted,
            "failures": self.failures,
            "notes": self.notes,
        }


def verify_bundle_text(text: str | bytes, trusted_key: str | None = None) -> BundleVerdict:
    """Verify a bundle as read from its file."""
    verdict = BundleVerdict()
    try:
        bundle = jsontext.loads(text)
    except JSONTextError as exc:
        verdict.fail("bundle", f"not JSON ExoArmur accepts: {exc}")
        return verdict
    return verify_bundle(bundle, trusted_key, verdict)


def verify_bundle(
    bundle: Any, trusted_key: str | None = None, verdict: BundleVerdict | None = None
) -> BundleVerdict:
    verdict = verdict or BundleVerdict()
    if not isinstance(bundle, dict) or set(bundle) != _TOP_LEVEL:
        verdict.fail("bundle", f"must be an object with exactly the fields {sorted(_TOP_LEVEL)}")
        return verdict
    if bundle["format"] != BUNDLE_FORMAT:
        verdict.fail("format", f"expected {BUNDLE_FORMAT!r}, found {bundle['format']!r}")
        return verdict
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    try:
        if content_hash(body) != bundle["bundle_hash"]:
            verdict.fail("bundle_hash", "does not match the bundle's content")
    except ExoArmurError as exc:
        verdict.fail("bundle", str(exc))
        return verdict
    verifier = _verifier(bundle, trusted_key, verdict)
    if verifier is None:
        return verdict
    roots = _checkpoints(bundle, verifier, verdict)
    tenant, correlation = bundle["tenant"], bundle["correlation_id"]
    events = _entries(bundle, "events", roots, verdict, {tenant})
    context = _entries(bundle, "context", roots, verdict, {tenant, SYSTEM_LOG})
    for where, event in events:
        if event.get("tenant") != tenant:
            verdict.fail(where, f"belongs to tenant {event.get('tenant')!r}, not {tenant!r}")
        if event.get("correlation_id") != correlation:
            verdict.fail(where, f"belongs to correlation {event.get('correlation_id')!r}")
    for where, event in context:
        if event.get("type") not in (POLICY_ACTIVATED, CONFIG_SNAPSHOT):
            verdict.fail(
                where, f"context may hold policy and config events, not {event.get('type')!r}"
            )
    verdict.events = len(events) + len(context)
    if not verdict.failures:
        _redecide(events, context, verdict)
    return verdict


def _verifier(
    bundle: dict[str, Any], trusted_key: str | None, verdict: BundleVerdict
) -> Verifier | None:
    try:
        if trusted_key is not None:
            trusted = Verifier.from_string(trusted_key.strip())
            verdict.key_trusted = True
            if bundle["public_key"] != trusted.verifier_key():
                verdict.fail("public_key", "the bundle names another key than the one you trust")
            return trusted
        verdict.notes.append(
            "no trusted key given: verified with the bundle's own key, which proves integrity, "
            "not origin (pass --public-key with the key you trust)"
        )
        return Verifier.from_string(str(bundle["public_key"]))
    except ExoArmurError as exc:
        verdict.fail("public_key", str(exc))
        return None


def _checkpoints(
    bundle: dict[str, Any], verifier: Verifier, verdict: BundleVerdict
) -> dict[str, Checkpoint]:
    roots: dict[str, Checkpoint] = {}
    notes = bundle["checkpoints"]
    if not isinstance(notes, dict):
        verdict.fail("checkpoints", "must be an object of log -> signed note")
        return roots
    for log, note in notes.items():
        try:
            checkpoint = open_checkpoint(str(note), verifier)
        except ExoArmurError as exc:
            verdict.fail(f"checkpoints.{log}", str(exc))
            continue
        if not checkpoint.origin.endswith(f"/{log}"):
            verdict.fail(f"checkpoints.{log}", f"origin {checkpoint.origin!r} is not log {log!r}")
            continue
        roots[log] = checkpoint
    return roots


def _entries(
    bundle: dict[str, Any],
    name: str,
    roots: dict[str, Checkpoint],
    verdict: BundleVerdict,
    logs: set[str],
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    entries = bundle[name]
    if not isinstance(entries, list):
        verdict.fail(name, "must be a list")
        return out
    for index, entry in enumerate(entries):
        where = f"{name}[{index}]"
        try:
            log, position = entry["log"], entry["leaf_index"]
            raw: str = entry["event"]
            proof = [_digest(h) for h in entry["proof"]]
            if set(entry) != {"log", "leaf_index", "event", "proof"}:
                raise ValueError("unexpected fields")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            verdict.fail(where, f"malformed entry: {exc}")
            continue
        if log not in logs:
            verdict.fail(where, f"log {log!r} does not belong in {name}")
            continue
        checkpoint = roots.get(log)
        if checkpoint is None:
            verdict.fail(where, f"no verified checkpoint for log {log!r}")
            continue
        try:
            event = jsontext.loads(raw)
            canonical = canonical_bytes(event)
        except (json.JSONDecodeError, ExoArmurError, TypeError) as exc:
            verdict.fail(where, f"event is not JSON: {exc}")
            continue
        if canonical != raw.encode():
            verdict.fail(where, "event bytes are not in canonical form (RFC 8785)")
            continue
        if not isinstance(position, int) or event.get("seq") != position:
            verdict.fail(
                where, f"event seq {event.get('seq')!r} is not its leaf index {position!r}"
            )
            continue
        if event.get("tenant") != log:
            verdict.fail(where, f"event of {event.get('tenant')!r} filed under log {log!r}")
            continue
        if not verify_inclusion(
            leaf_hash(canonical), position, checkpoint.size, proof, checkpoint.root_hash
        ):
            verdict.fail(
                where,
                f"inclusion proof does not reach the signed root of {log} "
                f"at size {checkpoint.size}",
            )
            continue
        out.append((where, event))
    return out


_HEX = frozenset("0123456789abcdef")


def _digest(text: object) -> bytes:
    """A proof hash: exactly 64 lowercase hex digits (one spelling per hash)."""
    if not isinstance(text, str) or len(text) != 64 or not set(text) <= _HEX:
        raise ValueError(f"proof hash {text!r} is not 64 lowercase hex digits")
    return bytes.fromhex(text)


def _redecide(
    events: list[tuple[str, dict[str, Any]]],
    context: list[tuple[str, dict[str, Any]]],
    verdict: BundleVerdict,
) -> None:
    engines: dict[str, PolicyEngine] = {}
    configs: set[str] = set()
    for where, event in context:
        payload = event["payload"]
        if event["type"] == POLICY_ACTIVATED:
            try:
                engine = PolicyEngine(PolicyBundle.from_canonical(payload["bundle"]))
            except ExoArmurError as exc:
                verdict.fail(where, f"policy bundle does not load: {exc}")
                continue
            if engine.policy_hash != payload["policy_hash"]:
                verdict.fail(where, "policy text does not hash to the policy hash it claims")
                continue
            engines[engine.policy_hash] = engine
        elif content_hash(payload["config"]) != payload["config_hash"]:
            verdict.fail(where, "configuration does not hash to the config hash it claims")
        else:
            configs.add(payload["config_hash"])
    _recheck_containment(events, verdict)
    intents: dict[str, ActionIntent] = {}
    hashes: dict[str, str] = {}
    approvers: dict[str, set[str]] = {}
    decisions: dict[str, Decision] = {}
    for where, event in events:
        kind, payload, intent_id = event["type"], event["payload"], event.get("intent_id")
        try:
            if kind == INTENT_RECORDED:
                intent = ActionIntent.from_canonical(payload["intent"])
                if content_hash(payload["intent"]) != payload["intent_hash"]:
                    verdict.fail(where, "the intent does not hash to its recorded hash")
                intents[intent.intent_id] = intent
                hashes[intent.intent_id] = payload["intent_hash"]
            elif kind == DECISION_RECORDED:
                verdict.decisions += 1
                recorded = Decision.from_canonical(payload["decision"])
                decisions[str(intent_id)] = recorded
                _check_decision(
                    where, intents.get(str(intent_id)), recorded, payload, engines, configs, verdict
                )
            elif kind == APPROVAL_GRANTED:
                if payload["intent_hash"] != hashes.get(str(intent_id)):
                    verdict.fail(where, "the approval is bound to another intent hash")
                approvers.setdefault(str(intent_id), set()).add(payload["approver"])
            elif kind == INTENT_APPROVED:
                quorum = int(payload["quorum"])
                if len(approvers.get(str(intent_id), set())) < quorum:
                    verdict.fail(
                        where, f"approved with fewer than {quorum} distinct approvals before it"
                    )
            elif kind == EXECUTION_STARTED:
                decision = decisions.get(str(intent_id))
                approved = any(
                    e["type"] == INTENT_APPROVED and e.get("intent_id") == intent_id
                    for _, e in events
                )
                if decision is None or (decision.verdict != Verdict.ALLOW and not approved):
                    verdict.fail(where, "execution started without an allow or an approval")
        except (KeyError, TypeError, ValueError, ExoArmurError) as exc:
            verdict.fail(where, f"cannot be checked: {exc}")


def _recheck_containment(events: list[tuple[str, dict[str, Any]]], verdict: BundleVerdict) -> None:
    """Plans in the slice: hash, step order, compensation in reverse; expiries not early."""
    audit = ContainmentAudit("bundle", whole_log=False)
    for where, event in events:
        try:
            record = Event.from_canonical(canonical_bytes(event), b"")
        except (KeyError, TypeError, ValueError, ExoArmurError) as exc:
            verdict.fail(where, f"cannot be checked: {exc}")
            continue
        for where_in, _, _, reason in audit.check(record):
            verdict.fail(where, f"{where_in}: {reason}")


def _check_decision(
    where: str,
    intent: ActionIntent | None,
    recorded: Decision,
    payload: dict[str, Any],
    engines: dict[str, PolicyEngine],
    configs: set[str],
    verdict: BundleVerdict,
) -> None:
    if intent is None:
        verdict.fail(where, "a decision with no recorded intent before it")
        return
    engine = engines.get(recorded.policy_hash)
    if engine is None:
        verdict.fail(
            where, f"the bundle lacks the policy {recorded.policy_hash} this decision names"
        )
        return
    if recorded.config_hash is not None and recorded.config_hash not in configs:
        verdict.fail(where, f"the bundle lacks the configuration {recorded.config_hash}")
    policy = engine.decide(intent, str(payload.get("posture", "normal")))
    gate = recorded.gate
    expected_verdict = Verdict(gate["policy_verdict"]) if gate else recorded.verdict
    if policy.verdict != expected_verdict:
        verdict.fail(
            where,
            f"decision.verdict: the policy decides {policy.verdict.value}, "
            f"the record says {expected_verdict.value}",
        )
        return
    if policy.reasons != recorded.reasons:
        verdict.fail(
            where,
            f"decision.reasons: policy gives {list(policy.reasons)}, "
            f"record {list(recorded.reasons)}",
        )
    if gate is None:
        if policy.obligations != recorded.obligations:
            verdict.fail(where, "decision.obligations differ from the policy's")
        return
    if _STRICTNESS[recorded.verdict] < _STRICTNESS[policy.verdict]:
        verdict.fail(where, "the gate loosened the policy's verdict (it may only tighten)")
    if not gate.get("controls"):
        verdict.fail(where, "the gate changed the verdict without naming a control")
