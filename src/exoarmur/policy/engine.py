"""Deciding an intent with Cedar: a pure function of the intent and the bundle.

The policy set is parsed once per bundle and reused. The intent maps to a
Cedar request (documented in the README):

- principal: ``<Kind>::"<actor id>"`` where Kind is Agent, Service, Operator
  or System, with attribute ``kind``;
- action: ``Action::"<action>"`` (the dotted name as is);
- resource: ``Target::"<target>"``;
- context: ``action`` and ``target`` as strings (so rules can use
  ``like "fs.*"``), ``params`` (floats and out-of-range integers become their JSON
  text, nulls are dropped: Cedar has neither), ``safety_class``, ``tenant``,
  ``posture``, what the posture tightens (``tightened``, given by the gate's
  recorded configuration; absent for decisions recorded before policy saw
  it) and the recorded time (``event_time`` as text, ``event_epoch`` as
  whole seconds).

The verdict: a determining ``forbid`` denies; determining permits of which
any carries ``@approval`` require approval by the largest quorum among them;
other determining permits allow; nothing determining denies (default deny).
Any evaluation error denies (fail closed: Cedar would skip an erroring
forbid) and is recorded. Nothing here reads a clock, a file or the
environment: the recorded time comes in the intent, the posture and its
tightening as arguments.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy
import orjson

from ..encoding import canonical_bytes, format_time, sha256_hex
from ..errors import LedgerCorrupt, PolicyError
from ..model.decision import Decision, Verdict
from ..model.event import Event
from ..model.intent import ActionIntent
from .bundle import PolicyBundle
from .lexer import complexity_problem
from .obligations import combine, obligations_of

_PRINCIPAL_TYPES = {
    "agent": "Agent",
    "service": "Service",
    "operator": "Operator",
    "system": "System",
}
_CEDAR_LONG = 2**63


def _cedar_value(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_CEDAR_LONG <= value < _CEDAR_LONG else str(value)
    if isinstance(value, float):
        return canonical_bytes(value).decode()
    if isinstance(value, list):
        return [_cedar_value(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: _cedar_value(v) for k, v in value.items() if v is not None}
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class PolicyInfo:
    """One policy of a bundle, as explain and the decision rule need it."""

    policy_id: str
    file: str
    effect: str
    annotations: dict[str, str]
    obligations: dict[str, str]


@contextlib.contextmanager
def _deep_json() -> Iterator[None]:
    """Let ``json`` read a policy's tree as deep as the complexity limits allow.

    A chain of 2000 ``&&`` (the most ``complexity_problem`` lets through)
    nests the JSON about 4000 levels deep; the default limit stops at 1000.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _parse_file(name: str, text: str) -> dict[str, Any]:
    # Cedar's parser can overflow the stack (and take the process down) on
    # absurdly deep or long policies: refuse them before it sees them.
    problem = complexity_problem(text)
    if problem is not None:
        raise PolicyError(f"{name}: {problem}")
    try:
        with _deep_json():
            parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except (ValueError, RecursionError) as exc:
        raise PolicyError(f"{name}: {exc}") from None
    if parsed.get("templates"):
        raise PolicyError(f"{name}: policy templates are not supported in a bundle")
    return parsed


class PolicyEngine:
    """Decides intents under one parsed policy bundle."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
        self.policy_hash = bundle.hash
        #: Cedar's own ids ("policy0", ...) in the order of the combined text -> ours
        self._cedar_ids: dict[str, str] = {}
        self.policies: dict[str, PolicyInfo] = {}
        for name, text in bundle.files:
            for number, (_, policy) in enumerate(_parse_file(name, text)["staticPolicies"].items()):
                raw_annotations = policy.get("annotations") or {}
                missing = sorted(k for k, v in raw_annotations.items() if v is None)
                if missing:
                    raise PolicyError(f"{name}: annotation @{missing[0]} needs a value")
                annotations = {str(k): str(v) for k, v in raw_annotations.items()}
                policy_id = annotations.get("id") or f"{name}#{number}"
                if policy_id in self.policies:
                    other = self.policies[policy_id].file
                    raise PolicyError(
                        f"{name}: policy id {policy_id!r} is used twice (also in {other})"
                    )
                if policy["effect"] == "forbid" and obligations_of(policy_id, annotations):
                    raise PolicyError(
                        f"{name}: policy {policy_id} is a forbid; obligations only apply to permits"
                    )
                self.policies[policy_id] = PolicyInfo(
                    policy_id=policy_id,
                    file=name,
                    effect=str(policy["effect"]),
                    annotations=annotations,
                    obligations=obligations_of(policy_id, annotations),
                )
                self._cedar_ids[f"policy{len(self._cedar_ids)}"] = policy_id
        if bundle.schema is not None:
            try:
                validation = cedarpy.validate_policies(
                    "\n".join(t for _, t in bundle.files), bundle.schema
                )
            except ValueError as exc:
                raise PolicyError(f"schema: {exc}") from None
            if not validation.validation_passed:
                first = validation.errors[0]
                raise PolicyError(f"policy does not validate against the schema: {first}")
        # From text, not from JSON: Cedar's JSON reader caps expression depth
        # (about 60 chained &&), its text parser does not.
        combined = "\n".join(text for _, text in bundle.files)
        try:
            self._policies = cedarpy.PolicySet.from_str(combined)
        except ValueError as exc:
            raise PolicyError(f"policy bundle does not parse as one set: {exc}") from None
        if len(self._policies) != len(self._cedar_ids):
            raise PolicyError("policy bundle: files do not combine into the same policies")

    @staticmethod
    def request(
        intent: ActionIntent,
        posture: str = "normal",
        tightened: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Cedar request and entities for ``intent``."""
        principal_type = _PRINCIPAL_TYPES[intent.actor.kind]
        request: dict[str, Any] = {
            "principal": f"{principal_type}::{_quote(intent.actor.id)}",
            "action": f"Action::{_quote(intent.action)}",
            "resource": f"Target::{_quote(intent.target)}",
            "context": {
                "action": intent.action,
                "target": intent.target,
                "params": _cedar_value(intent.params),
                "safety_class": intent.safety_class.value,
                "tenant": intent.tenant,
                "posture": posture,
                "event_time": format_time(intent.event_time),
                "event_epoch": int(intent.event_time.timestamp()),
            },
        }
        if tightened is not None:
            request["context"]["tightened"] = _cedar_value(dict(tightened))
        entities: list[dict[str, Any]] = [
            {
                "uid": {"type": principal_type, "id": intent.actor.id},
                "attrs": {"kind": intent.actor.kind},
                "parents": [],
            },
            {"uid": {"type": "Target", "id": intent.target}, "attrs": {}, "parents": []},
        ]
        return request, entities

    def _decision(self, result: Any) -> Decision:
        diagnostics = result.diagnostics
        reasons = tuple(sorted(self._cedar_ids.get(r, r) for r in diagnostics.reasons))
        errors = tuple(str(e) for e in diagnostics.errors)
        determining = [self.policies[r] for r in reasons if r in self.policies]
        obligations: dict[str, str] = {}
        if errors or result.decision != cedarpy.Decision.Allow:
            verdict = Verdict.DENY
        else:
            obligations = combine(p.obligations for p in determining)
            verdict = Verdict.REQUIRE_APPROVAL if "approval" in obligations else Verdict.ALLOW
        # Built of values made right here, of the declared types: nothing to validate.
        return Decision.model_construct(
            verdict=verdict,
            reasons=reasons,
            obligations=obligations,
            policy_hash=self.policy_hash,
            errors=errors,
            config_hash=None,
            gate=None,
        )

    def decide(
        self,
        intent: ActionIntent,
        posture: str = "normal",
        tightened: Mapping[str, Any] | None = None,
    ) -> Decision:
        request, entities = self.request(intent, posture, tightened)
        result = cedarpy.is_authorized(_as_text(request), self._policies, _json_text(entities))
        return self._decision(result)

    def decide_batch(
        self,
        intents: Sequence[ActionIntent],
        posture: str = "normal",
        tightened: Mapping[str, Any] | None = None,
    ) -> list[Decision]:
        """Decide many intents in one Cedar call (same results as one by one)."""
        if not intents:
            return []
        requests = []
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        for intent in intents:
            request, ents = self.request(intent, posture, tightened)
            requests.append(request)
            for entity in ents:
                entities[(entity["uid"]["type"], entity["uid"]["id"])] = entity
        results = cedarpy.is_authorized_batch(
            [_as_text(request) for request in requests],
            self._policies,
            _json_text(list(entities.values())),
        )
        return [self._decision(result) for result in results]


def _json_text(value: Any) -> Any:
    """``value`` as the JSON text cedarpy would make of it, written in C; as it is if orjson
    cannot (cedarpy then writes it itself). Cedar reads the same JSON either way."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return value


def _as_text(request: dict[str, Any]) -> dict[str, Any]:
    """A Cedar request whose context is JSON text: cedarpy passes it on unparsed."""
    return request | {"context": _json_text(request["context"])}


#: parsed engines shared by every governor and replay of this process, newest last
_ACTIVATED: OrderedDict[tuple[str, str], PolicyEngine] = OrderedDict()
_ACTIVATED_LOCK = threading.Lock()
#: bundles kept parsed at once: a process holds a handful (one per tenant policy at most)
ACTIVATED_CACHE_SIZE = 64


def engine_from_activation(event: Event) -> PolicyEngine:
    """The policy engine a ``policy.activated`` event holds, checked against its hash.

    Here, next to the engine, so that replay can rebuild it without importing
    the pipeline (which imports the executors). Engines are immutable, so one
    parse serves every governor of the process: many governors over one
    ledger (a server's workers, the determinism load) would otherwise each
    lex the same bundle. The cache is keyed by the hash of the bundle's own
    canonical bytes as well as the hash the event names, so a forged
    activation naming a known hash over other text still misses the cache
    and is refused below.
    """
    bundle = event.payload["bundle"]
    key = (str(event.payload["policy_hash"]), sha256_hex(canonical_bytes(bundle)))
    with _ACTIVATED_LOCK:
        engine = _ACTIVATED.get(key)
        if engine is not None:
            _ACTIVATED.move_to_end(key)
            return engine
    engine = PolicyEngine(PolicyBundle.from_canonical(bundle))
    if engine.policy_hash != event.payload["policy_hash"]:
        raise LedgerCorrupt(f"activation {event.event_id} names a bundle it does not hold")
    with _ACTIVATED_LOCK:
        _ACTIVATED[key] = engine
        while len(_ACTIVATED) > ACTIVATED_CACHE_SIZE:
            _ACTIVATED.popitem(last=False)
    return engine
