"""An evidence-bundle checker written from docs/evidence-bundle.md alone.

It imports nothing from ``exoarmur``: JCS from ``rfc8785``, Ed25519 from
``cryptography``, Cedar from ``cedarpy``, the rest as the spec words it. The
tests hold it to the same verdict as ``verify-bundle`` on every forgery: if
the spec left something out, this checker would disagree. Returns the list
of problems found (empty: PASS). Structure and story only where the spec
says so; it does not re-check what the gate's controls outside the bundle
(kill switches, rate limits) denied beyond their shape.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import cedarpy
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TOP = {
    "format",
    "tenant",
    "correlation_id",
    "public_key",
    "checkpoints",
    "events",
    "context",
    "bundle_hash",
}
OPTIONAL_TOP = {"governance_artifacts"}
ARTIFACT_ENTRY = {"artifact_type", "schema_version", "canonical_hash", "required_for_verdict"}
ARTIFACT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CONTENT_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
CLASSES = ["A0", "A1", "A2", "A3"]
LEVELS = ["none", "observed", "corroborated", "attested"]
LEGACY = {"low": "observed", "standard": "corroborated", "high": "attested"}
FORMATS = ["exoarmur.evidence-bundle/v1", "exoarmur.evidence-bundle/v2"]
#: what format v2 adds to a story
V2 = {"evidence.attested", "evidence.satisfied", "approval.escalated"}


def level(name: str) -> int:
    return LEVELS.index(LEGACY.get(name, name))


def held(
    policy: dict[str, Any], expect: dict[str, Any], intent: dict[str, Any], d: dict[str, Any]
) -> dict[str, Any] | None:
    """Format v2: the evidence hold, from the recorded level met and influences (None: bad)."""
    if expect["verdict"] == "deny":
        return expect
    own = "none"
    if intent["action"].startswith("containment.") and isinstance(
        intent["params"].get("containment"), dict
    ):
        named = intent["params"]["containment"].get("evidence")
        own = named if isinstance(named, str) else "none"
    minimum = LEVELS[max(level(policy["obligations"].get("evidence", "none")), level(own))]
    gate = d.get("gate") or {}
    if d["verdict"] == "pending_evidence":
        ev = gate["evidence"]
        if set(ev) != {"required", "met", "influences"} or any(
            set(i) != {"origin", "level", "reason"} or i["level"] not in LEVELS
            for i in ev["influences"]
        ):
            return None
        required, met = ev["required"], ev["met"]
        raised = [level(i["level"]) for i in ev["influences"]]
    else:
        control = [c for c in gate.get("controls") or [] if c.startswith("evidence:")]
        if not control:
            return expect  # met as recorded: the tenant log shows it
        required = control[0].removeprefix("evidence:")
        met = gate.get("reason", "").split(f"evidence: {required} required, ")[-1][: -len(" met")]
        raised = [level(required)] if required in LEVELS else []
    if required not in LEVELS or met not in LEVELS:
        return None
    if LEVELS[max([level(minimum), *raised])] != required or level(met) >= level(required):
        return None
    base = expect.get("gate") or {"policy_verdict": expect["verdict"], "controls": []}
    text = f"evidence: {required} required, {met} met"
    if expect["obligations"].get("evidence_unmet") == "deny":
        return {
            "verdict": "deny",
            "obligations": {},
            "gate": {"policy_verdict": expect["verdict"], "controls": [f"evidence:{required}"]},
        }
    if not gate.get("reason", "").endswith(text):
        return None
    return expect | {
        "verdict": "pending_evidence",
        "gate": base
        | {
            "controls": [*base["controls"], f"evidence:{required}"],
            "held": expect["verdict"],
            "evidence": {"required": required, "met": met, "influences": ev_list(d)},
        },
    }


def ev_list(d: dict[str, Any]) -> list[Any]:
    return list(((d.get("gate") or {}).get("evidence") or {}).get("influences", []))


STORY = {
    "intent.recorded",
    "decision.recorded",
    "gate.blocked",
    "approval.requested",
    "approval.granted",
    "approval.rejected",
    "approval.refused",
    "intent.approved",
    "intent.rejected",
    "intent.expired",
    "execution.started",
    "execution.retry",
    "execution.finished",
    "execution.blocked",
    "execution.outcome_unknown",
}
KINDS = {"agent": "Agent", "service": "Service", "operator": "Operator", "system": "System"}
BOUND = {
    "decision.recorded",
    "gate.blocked",
    "approval.requested",
    "approval.granted",
    "approval.rejected",
    "execution.started",
    "execution.blocked",
    "execution.retry",
    "execution.finished",
    "evidence.attested",
    "evidence.satisfied",
}


def jcs(value: Any) -> bytes:
    return bytes(rfc8785.dumps(value))


def chash(value: Any) -> str:
    return "sha256:" + hashlib.sha256(jcs(value)).hexdigest()


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def open_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    name, key_id, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    text, _, signatures = note.partition("\n\n")
    body = text + "\n"
    for line in signatures.splitlines():
        _, signer, sig = line.split(" ")
        decoded = base64.b64decode(sig)
        if signer == name and decoded[:4] == bytes.fromhex(key_id):
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(decoded[4:], body.encode())
            origin, size, root = body.splitlines()[:3]
            return origin, int(size), base64.b64decode(root)
    raise ValueError("no signature by the key")


def included(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def cedar_value(v: Any) -> Any:
    if isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else str(v)
    if isinstance(v, float):
        return jcs(v).decode()
    if isinstance(v, list):
        return [cedar_value(x) for x in v if x is not None]
    return {k: cedar_value(x) for k, x in v.items() if x is not None}


def tightened(gate: dict[str, Any], posture: str) -> dict[str, Any]:
    """``context.tightened``, field by field as docs/policy.md's table words it."""
    rules = gate.get("posture", {})
    ladder = {"heightened": ["heightened"], "lockdown": ["heightened", "lockdown"]}
    applying = [rules[p] for p in ladder.get(posture, []) if p in rules]
    adds = posture in ("heightened", "lockdown")
    limits: dict[str, Any] = {}
    for table in applying:  # lockdown's limit for a key shows over heightened's
        for key, text in table.get("rate_limits", {}).items():
            count, seconds = text.removesuffix("s").split("/")
            limits[key] = {"count": int(count), "seconds": int(seconds)}
    found: dict[str, Any] = {
        "extra_approvals": rules.get("heightened_extra_approvals", 1) if adds else 0,
        "extra_approval_classes": rules.get("heightened_classes", ["A2", "A3"]) if adds else [],
        "approval_above": (
            rules.get("lockdown_approval_above", "A0") if posture == "lockdown" else "A3"
        ),
        "protected_principals": sorted(
            {p for table in applying for p in table.get("protected_principals", [])}
        ),
        "rate_limits": limits,
    }
    bounds = [t["ttl_max_seconds"] for t in applying if t.get("ttl_max_seconds") is not None]
    if bounds:
        found["ttl_max_seconds"] = min(bounds)
    return found


def decide(
    bundle: dict[str, Any], intent: dict[str, Any], posture: str, gate: dict[str, Any]
) -> dict[str, Any]:
    """The policy's decision, as docs/policy.md words the request and the verdict."""
    files = sorted(bundle["files"].items())
    names: list[tuple[str, str, dict[str, str]]] = []  # (id, effect, annotations)
    for name, text in files:
        parsed = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        for n, policy in enumerate(parsed.values()):
            notes = {k: str(v) for k, v in (policy.get("annotations") or {}).items()}
            names.append((notes.get("id", f"{name}#{n}"), policy["effect"], notes))
    quote = lambda s: json.dumps(s)  # noqa: E731 - Cedar string literals are JSON strings here
    kind = KINDS[intent["actor"]["kind"]]
    at = when(intent["event_time"])
    request = {
        "principal": f"{kind}::{quote(intent['actor']['id'])}",
        "action": f"Action::{quote(intent['action'])}",
        "resource": f"Target::{quote(intent['target'])}",
        "context": {
            "action": intent["action"],
            "target": intent["target"],
            "params": cedar_value(intent["params"]),
            "safety_class": intent["safety_class"],
            "tenant": intent["tenant"],
            "posture": posture,
            "event_time": intent["event_time"],
            "event_epoch": int(at.timestamp()),
        },
    }
    if gate.get("posture", {}).get("policy_sees_tightening") is True:
        request["context"]["tightened"] = tightened(gate, posture)
    entities = [
        {
            "uid": {"type": kind, "id": intent["actor"]["id"]},
            "attrs": {"kind": intent["actor"]["kind"]},
            "parents": [],
        },
        {"uid": {"type": "Target", "id": intent["target"]}, "attrs": {}, "parents": []},
    ]
    result = cedarpy.is_authorized(request, "\n".join(t for _, t in files), entities)
    reasons = sorted(names[int(r.removeprefix("policy"))][0] for r in result.diagnostics.reasons)
    errors = [str(e) for e in result.diagnostics.errors]
    obligations: dict[str, str] = {}
    if errors or result.decision != cedarpy.Decision.Allow:
        return {"verdict": "deny", "reasons": reasons, "obligations": {}, "errors": errors}
    for pid, _, notes in names:
        if pid not in reasons:
            continue
        for key, pick in (
            ("approval", max),
            ("approval_window", min),
            ("ttl_max", min),
            ("escalate_after", min),
            ("escalate_quorum", max),
        ):
            if key in notes:
                now = int(notes[key])
                obligations[key] = str(pick(now, int(obligations.get(key, now))))
        if "evidence" in notes:
            best = max(notes["evidence"], obligations.get("evidence", "none"), key=level)
            obligations["evidence"] = best
        if "evidence_unmet" in notes:
            unmet = ["wait", "deny"]
            worst = max(notes["evidence_unmet"], obligations.get("evidence_unmet", "wait"))
            obligations["evidence_unmet"] = max(worst, notes["evidence_unmet"], key=unmet.index)
    verdict = "require_approval" if "approval" in obligations else "allow"
    return {
        "verdict": verdict,
        "reasons": reasons,
        "obligations": dict(sorted(obligations.items())),
        "errors": [],
    }


def gated(
    policy: dict[str, Any],
    intent: dict[str, Any],
    posture: str,
    gate: dict[str, Any],
    recorded: dict[str, Any],
) -> dict[str, Any]:
    """The gate's tightening, as the spec's gate table words it."""
    outside = (recorded.get("gate") or {}).get("controls") or []
    if len(outside) == 1 and outside[0].startswith(
        ("killswitch:", "rate_limit:", "controls:unreadable")
    ):
        kind, _, rest = outside[0].partition(":")
        covered = kind != "killswitch" or covers(rest, intent)
        key, _, under = rest.partition(":")
        ladder = {"heightened": ["heightened"], "lockdown": ["heightened", "lockdown"]}
        tables = (
            [gate.get("posture", {}).get(p, {}) for p in ladder.get(under, [])] if under else [gate]
        )
        limited = kind != "rate_limit" or any(key in t.get("rate_limits", {}) for t in tables)
        return {
            "verdict": "deny" if covered and limited else "not shown",
            "obligations": {},
            "gate": {"policy_verdict": policy["verdict"], "controls": outside},
        }
    if policy["verdict"] == "deny":
        return {"verdict": "deny", "obligations": policy["obligations"], "gate": None}
    quorum, controls = int(policy["obligations"].get("approval", "0")), []
    # the class floor: defaults for the classes a table leaves out; no table, no floor
    floors = {"A2": 1, "A3": 2} | gate["class_floor"] if "class_floor" in gate else {}
    if quorum < floors.get(intent["safety_class"], 0):
        controls.append(f"class_floor:{intent['safety_class']}")
        quorum = floors[intent["safety_class"]]
    protected = gate.get("protected", {})
    if intent["target"] in protected.get("targets", []) or intent["actor"]["id"] in protected.get(
        "principals", []
    ):
        which = "target" if intent["target"] in protected.get("targets", []) else "principal"
        controls.append(f"protected:{which}")
        quorum = max(quorum, protected.get("quorum", 2))
    rules = gate.get("posture", {})
    klass = CLASSES.index(intent["safety_class"])
    if posture == "lockdown" and klass > CLASSES.index(rules.get("lockdown_approval_above", "A0")):
        controls.append("posture:lockdown")
        quorum = max(quorum, 1)
    # lockdown includes heightened, except in snapshots recorded before that rule
    ladder = ["heightened"] + (["lockdown"] if rules.get("lockdown_adds_heightened") else [])
    if posture in ladder and intent["safety_class"] in rules.get(
        "heightened_classes", ["A2", "A3"]
    ):
        controls.append("posture:heightened")
        quorum += rules.get("heightened_extra_approvals", 1)
    if not controls:
        return {"verdict": policy["verdict"], "obligations": policy["obligations"], "gate": None}
    obligations = dict(sorted((policy["obligations"] | {"approval": str(quorum)}).items()))
    return {
        "verdict": "require_approval",
        "obligations": obligations,
        "gate": {"policy_verdict": policy["verdict"], "controls": controls},
    }


def covers(scope: str, intent: dict[str, Any]) -> bool:
    """Scope grammar: global | tenant:T | action:P | tenant:T/action:P (P: fnmatch, * only)."""
    if scope == "global":
        return True
    parts = dict(part.partition(":")[::2] for part in scope.split("/"))
    if "tenant" in parts and parts["tenant"] != intent["tenant"]:
        return False
    return "action" not in parts or fnmatchcase(intent["action"], parts["action"])


def artifacts_well_formed(block: Any) -> bool:
    """The governance artifacts block's shape (its artifacts never change this verdict)."""
    if not isinstance(block, dict) or set(block) != {"manifest", "artifacts"}:
        return False
    manifest, artifacts = block["manifest"], block["artifacts"]
    if not isinstance(manifest, list) or not manifest or not isinstance(artifacts, dict):
        return False
    types = []
    for entry in manifest:
        if not isinstance(entry, dict) or set(entry) != ARTIFACT_ENTRY:
            return False
        kind, version = entry["artifact_type"], entry["schema_version"]
        if not isinstance(kind, str) or not ARTIFACT_TYPE.match(kind):
            return False
        if not isinstance(version, str) or not version:
            return False
        if not isinstance(entry["canonical_hash"], str):
            return False
        if not CONTENT_HASH.match(entry["canonical_hash"]):
            return False
        if type(entry["required_for_verdict"]) is not bool:
            return False
        types.append(kind)
    return len(set(types)) == len(types) and set(artifacts) <= set(types)


def check(bundle: Any, vkey: str) -> list[str]:
    problems: list[str] = []
    try:
        _check(bundle, vkey, problems)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problems.append(f"malformed: {exc!r}")
    return problems


def _check(bundle: Any, vkey: str, problems: list[str]) -> None:
    bad = problems.append
    if not isinstance(bundle, dict) or not TOP <= set(bundle) <= TOP | OPTIONAL_TOP:
        return bad("fields")
    if "governance_artifacts" in bundle and not artifacts_well_formed(
        bundle["governance_artifacts"]
    ):
        bad("governance_artifacts")
    version = FORMATS.index(bundle["format"]) + 1 if bundle["format"] in FORMATS else 0
    if not version or bundle["public_key"] != vkey:
        return bad("format or key")
    if chash({k: v for k, v in bundle.items() if k != "bundle_hash"}) != bundle["bundle_hash"]:
        return bad("bundle_hash")
    roots = {}
    for log, note in bundle["checkpoints"].items():
        origin, size, root = open_note(note, vkey)
        if not origin.endswith("/" + log):
            bad("origin")
        roots[log] = (size, root)
    tenant = bundle["tenant"]
    lists: dict[str, list[dict[str, Any]]] = {"events": [], "context": []}
    seen_ids: set[str] = set()
    for name in ("events", "context"):
        last: tuple[str, int] | None = None
        for entry in bundle[name]:
            if set(entry) != {"log", "leaf_index", "event", "proof"}:
                bad("entry fields")
            raw, log, index = entry["event"], entry["log"], entry["leaf_index"]
            event = json.loads(raw)
            if jcs(event) != raw.encode() or event["seq"] != index or event["tenant"] != log:
                bad("entry bytes")
            if any(len(h) != 64 or h != h.lower() for h in entry["proof"]):
                bad("proof hex")
            size, root = roots[log]
            leaf = hashlib.sha256(b"\x00" + raw.encode()).digest()
            if not included(leaf, index, size, [bytes.fromhex(h) for h in entry["proof"]], root):
                bad("inclusion")
            if last is not None and (log, index) <= last:
                bad("order")
            last = (log, index)
            if event["event_id"] in seen_ids:
                bad("twice")
            seen_ids.add(event["event_id"])
            if name == "events" and (
                log != tenant or event["correlation_id"] != bundle["correlation_id"]
            ):
                bad("events scope")
            if name == "context" and (
                log not in (tenant, "_system")
                or event["type"] not in ("policy.activated", "config.snapshot")
            ):
                bad("context scope")
            lists[name].append(event)
    if not lists["events"]:
        return bad("empty")
    if problems:
        return None
    policies, configs = {}, {}
    for event in lists["context"]:
        p = event["payload"]
        if event["type"] == "policy.activated":
            if chash(p["bundle"]) != p["policy_hash"] or p["policy_hash"] in policies:
                bad("policy hash")
            policies[p["policy_hash"]] = p["bundle"]
        else:
            if chash(p["config"]) != p["config_hash"] or p["config_hash"] in configs:
                bad("config hash")
            configs[p["config_hash"]] = p["config"]
    named: set[str] = set()
    stories: dict[str, dict[str, Any]] = {}
    for event in lists["events"]:
        kind, p, iid = event["type"], event["payload"], event.get("intent_id")
        if kind == "intent.recorded":
            intent = p["intent"]
            if (
                iid in stories
                or chash(intent) != p["intent_hash"]
                or intent["intent_id"] != iid
                or intent["tenant"] != tenant
                or event["actor"] != intent["actor"]
                or intent["correlation_id"] != event["correlation_id"]
            ):
                bad("intent")
            stories[iid] = {
                "intent": intent,
                "hash": p["intent_hash"],
                "state": "recorded",
                "next": [],
                "votes": [],
                "at": event["process_time"],
                "attempt": 0,
            }
            continue
        if iid is None and kind not in STORY:
            continue  # no intent, no story (a control event sharing the correlation)
        s = stories.get(iid)
        if s is None:
            bad("no intent")
            continue
        if kind in BOUND and p["intent_hash"] != s["hash"]:
            bad("binding")
        if s["next"]:
            if s["next"].pop(0) != kind:
                bad("sequence")
                continue
        elif kind in ("gate.blocked", "approval.requested", "intent.approved", "intent.rejected"):
            bad("sequence")
            continue
        if kind == "decision.recorded":
            d = p["decision"]
            named.update({d["policy_hash"], d.get("config_hash") or "none"})
            if (
                s["state"] != "recorded"
                or d["policy_hash"] not in policies
                or d.get("config_hash") not in configs
                or p["posture"] not in ("normal", "heightened", "lockdown")
            ):
                bad("decision inputs")
                continue
            config = configs[d["config_hash"]]
            policy = decide(
                policies[d["policy_hash"]], s["intent"], p["posture"], config.get("gate", {})
            )
            expect = policy | gated(policy, s["intent"], p["posture"], config.get("gate", {}), d)
            if d["verdict"] == "pending_evidence" and version < 2:
                bad("type")
                continue
            if config.get("gate", {}).get("evidence", {}).get("enforced"):
                found = held(policy, expect, s["intent"], d)
                if found is None:
                    bad("evidence")
                    continue
                expect = found
            got = {k: d.get(k) for k in expect}
            if expect.get("gate") is not None and d.get("gate"):
                got["gate"] = {k: d["gate"].get(k) for k in expect["gate"]}
            if got != expect:
                bad("decision")
            s["decision"], s["decided_at"], s["config"] = expect, event["process_time"], config
            s["recorded_gate"] = d.get("gate")
            s["state"] = {
                "allow": "allowed",
                "deny": "denied",
                "pending_evidence": "waiting",
            }.get(expect["verdict"], "pending")
            if d.get("gate") is not None:
                s["next"].append("gate.blocked")
            if expect["verdict"] == "require_approval":
                s["next"].append("approval.requested")
                s["quorum"] = int(expect["obligations"]["approval"])
        elif kind == "gate.blocked":
            if p != s["recorded_gate"] | {
                "verdict": s["decision"]["verdict"],
                "intent_hash": s["hash"],
            }:
                bad("gate.blocked")
        elif kind == "approval.requested":
            window = int(
                s["decision"]["obligations"].get(
                    "approval_window", s["config"].get("approvals", {}).get("window_seconds", 3600)
                )
            )
            deadline = when(s["decided_at"]) + timedelta(seconds=window)
            s["deadline"] = deadline
            wanted = {
                "quorum": s["quorum"],
                "window_seconds": window,
                "intent_hash": s["hash"],
                "deadline": deadline.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            rung = s["decision"]["obligations"].get("escalate_after")
            if rung is not None:
                at = when(s["decided_at"]) + timedelta(seconds=int(rung))
                s["ladder"] = (int(s["decision"]["obligations"]["escalate_quorum"]), at)
                wanted["escalate"] = {
                    "after_seconds": int(rung),
                    "quorum": s["ladder"][0],
                    "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
            if p != wanted:
                bad("request")
        elif kind in ("approval.granted", "approval.rejected"):
            who = p["approver"]
            if (
                s["state"] != "pending"
                or when(event["process_time"]) > s["deadline"]
                or who == s["intent"]["actor"]["id"]
                or who in s["votes"]
            ):
                bad("vote")
                continue
            if kind == "approval.rejected":
                s["rejecter"] = who
                s["next"].append("intent.rejected")
                continue
            s["votes"].append(who)
            if (
                type(p["quorum"]) is not int
                or p["quorum"] != s["quorum"]
                or type(p["count"]) is not int
                or p["count"] != len(s["votes"])
            ):
                bad("vote numbers")
            if len(s["votes"]) >= s["quorum"]:
                s["next"].append("intent.approved")
        elif kind == "intent.approved":
            if (
                p.get("quorum") != s["quorum"]
                or type(p.get("quorum")) is not int
                or p.get("approvers") != s["votes"]
            ):
                bad("approved")
            s["state"] = "approved"
        elif kind == "intent.rejected":
            if p.get("rejected_by") != s.get("rejecter"):
                bad("rejected")
            s["state"] = "rejected"
        elif kind == "intent.expired":
            if (
                s["state"] != "pending"
                or when(event["process_time"]) <= s["deadline"]
                or p
                != {
                    "deadline": s["deadline"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "approvals": s["votes"],
                    "quorum": s["quorum"],
                }
            ):
                bad("expired")
            s["state"] = "expired"
        elif kind == "execution.started":
            if s["state"] not in ("allowed", "approved") or "started" in s:
                bad("start")
            s["state"], s["started"] = "started", event["event_id"]
        elif kind == "execution.retry":
            s["attempt"] += 1
            if s["state"] != "started" or p["attempt"] != s["attempt"]:
                bad("retry")
        elif kind == "execution.finished":
            if (
                s["state"] != "started"
                or p["attempt"] != s["attempt"] + 1
                or p["status"] not in ("succeeded", "failed")
                or (p["status"] == "succeeded" and chash(p["result"]) != p["result_hash"])
            ):
                bad("finished")
            s["state"] = "finished"
        elif kind == "execution.blocked":
            if s["state"] not in ("started", "allowed", "approved"):
                bad("blocked")
            s["state"] = "blocked"
        elif kind == "execution.outcome_unknown":
            if s["state"] != "started" or p["started_event_id"] != s.get("started"):
                bad("unknown")
            s["state"] = "unknown"
        elif kind in V2 and version < 2:
            bad("type")
        elif kind == "evidence.attested":
            if p["intent_id"] != iid or p["principal"] == s["intent"]["actor"]["id"]:
                bad("attested")
            s["attested"] = True
        elif kind == "evidence.satisfied":
            if s["state"] != "waiting":
                bad("satisfied")
                continue
            ev = s["decision"]["gate"]["evidence"]
            then = s["decision"]["gate"]["held"]
            if (
                set(p) != {"intent_hash", "required", "met", "controls", "verdict"}
                or p["required"] != ev["required"]
                or p["met"] not in LEVELS
                or level(p["met"]) < level(ev["required"])
                or (p["met"] == "attested" and not s.get("attested"))
                or p["verdict"] != then
            ):
                bad("satisfied")
                continue
            s["decision"] = s["decision"] | {"verdict": then}
            if then == "require_approval":
                s["state"], s["decided_at"] = "pending", event["process_time"]
                s["quorum"] = int(s["decision"]["obligations"]["approval"])
                s["next"].append("approval.requested")
            else:
                s["state"] = "allowed"
        elif kind == "approval.escalated":
            ladder = s.get("ladder")
            if (
                s["state"] != "pending"
                or ladder is None
                or s.get("escalated")
                or when(event["process_time"]) < ladder[1]
                or p
                != {
                    "quorum": ladder[0],
                    "from": s["quorum"],
                    "at": ladder[1].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
            ):
                bad("escalated")
                continue
            s["quorum"], s["escalated"] = max(s["quorum"], ladder[0]), True
        elif kind != "approval.refused":
            bad("type")
    if any(s["next"] for s in stories.values()):
        bad("cut off")
    for event in lists["context"]:
        p = event["payload"]
        if p.get("policy_hash", p.get("config_hash")) not in named:
            bad("unreferenced context")
    return None
