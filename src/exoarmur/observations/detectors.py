"""Detectors: deterministic functions from recorded observations to beliefs.

A detector sees one subject's observations in the order they were recorded,
the newest last, each with its *recorded* time (never the wall clock), and
says what it now believes. The same history gives the same beliefs, which
is what lets replay re-derive every recorded belief.

Configured rules are data (recorded in ``detectors.configured``, so replay
rebuilds them from the ledger alone); their version is a hash of their
settings, so a changed threshold is a new version. Two ship:
``failed_logins`` (N ``login.failed`` within a window) and ``new_location``
(a ``login.succeeded`` from a location the subject was never seen at).
Plugins register a factory in the ``exoarmur.detectors`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any, Final, Protocol

from ..encoding import content_hash
from ..errors import ConfigError
from .model import Observation, Subject

ENTRY_POINT_GROUP: Final = "exoarmur.detectors"
DEFAULT_SHADOW_TTL: Final = 86_400
SHIPPED: Final = (
    {
        "name": "failed_logins",
        "type": "threshold",
        "match": "login.failed",
        "threshold": 5,
        "window_seconds": 600,
        "belief": "repeated_failed_logins",
    },
    {
        "name": "new_location",
        "type": "new_location",
        "match": "login.succeeded",
        "attribute": "location",
        "belief": "access_from_new_location",
    },
)


@dataclass(frozen=True)
class Seen:
    """An observation as recorded: with its recorded time and position."""

    observation: Observation
    recorded_at: datetime
    seq: int


@dataclass(frozen=True)
class Finding:
    """What a detector believes, and the recorded observations it rests on."""

    kind: str
    subject: Subject
    observations: tuple[Seen, ...]


class Detector(Protocol):
    name: str
    version: str

    def detect(self, history: Sequence[Seen]) -> list[Finding]:
        """Findings given one subject's recorded observations, the newest last."""
        ...


def belief_of(detector: Detector, finding: Finding) -> dict[str, Any]:
    """The canonical belief; its id is a hash of everything else in it."""
    content = {
        "detector": detector.name,
        "detector_version": detector.version,
        "kind": finding.kind,
        "subject": finding.subject.to_canonical(),
        "observation_ids": sorted({s.observation.observation_id for s in finding.observations}),
        "sources": sorted({s.observation.source for s in finding.observations}),
    }
    return {"belief_id": "bel-" + content_hash(content)[7:39], **content}


def _version(spec: Mapping[str, Any]) -> str:
    return "1+" + content_hash(dict(spec))[7:19]


class Threshold:
    """``threshold`` observations of one kind for one subject within a recorded-time window.

    Forms a belief when the newest observation is the one that reaches the
    threshold, so a burst forms one belief, not one per further failure.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        self.version = _version(spec)
        self.match = str(spec["match"])
        self.threshold = int(spec["threshold"])
        self.window = timedelta(seconds=int(spec["window_seconds"]))
        self.belief = str(spec["belief"])

    def detect(self, history: Sequence[Seen]) -> list[Finding]:
        newest = history[-1]
        if newest.observation.kind != self.match:
            return []
        since = newest.recorded_at - self.window
        inside: list[Seen] = []
        # recorded order is time order: walk back only as far as the window reaches
        for seen in reversed(history):
            if seen.recorded_at <= since or len(inside) > self.threshold:
                break
            if seen.observation.kind == self.match:
                inside.append(seen)
        if len(inside) != self.threshold:
            return []
        return [Finding(self.belief, newest.observation.subject, tuple(reversed(inside)))]


class NewLocation:
    """An access from a location the subject has not been recorded at before."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        self.version = _version(spec)
        self.match = str(spec["match"])
        self.attribute = str(spec["attribute"])
        self.belief = str(spec["belief"])

    def _where(self, seen: Seen) -> str | None:
        value = seen.observation.attributes.get(self.attribute)
        return value if seen.observation.kind == self.match and isinstance(value, str) else None

    def detect(self, history: Sequence[Seen]) -> list[Finding]:
        newest = history[-1]
        here = self._where(newest)
        before = [s for s in history[:-1] if self._where(s) is not None]
        if here is None or not before or here in {self._where(s) for s in before}:
            return []
        return [Finding(self.belief, newest.observation.subject, (before[-1], newest))]


_RULE_FIELDS: Final[
    Mapping[str, tuple[frozenset[str], Callable[[Mapping[str, Any]], Detector]]]
] = {
    "threshold": (
        frozenset({"name", "type", "match", "threshold", "window_seconds", "belief"}),
        Threshold,
    ),
    "new_location": (frozenset({"name", "type", "match", "attribute", "belief"}), NewLocation),
}


def _plugin(spec: Mapping[str, Any], where: str) -> Detector:
    extra = sorted(set(spec) - {"name", "type", "plugin", "config"})
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown field of a plugin detector")
    wanted = spec.get("plugin")
    found = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == wanted]
    if not found:
        raise ConfigError(
            f"{where}.plugin: no detector {wanted!r} is installed in the {ENTRY_POINT_GROUP} group"
        )
    detector: Detector = found[0].load()(dict(spec.get("config", {})))
    if detector.name != spec.get("name"):
        raise ConfigError(f"{where}.name: the plugin calls itself {detector.name!r}")
    return detector


def build(spec: Mapping[str, Any], where: str) -> Detector:
    """One detector from its recorded settings; ConfigError naming the field otherwise."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be an object")
    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise ConfigError(f"{where}.name: must be a string of 1-64 characters")
    kind = spec.get("type")
    if kind == "plugin":
        return _plugin(spec, where)
    if kind not in _RULE_FIELDS:
        raise ConfigError(f"{where}.type: must be one of threshold, new_location, plugin")
    fields, make = _RULE_FIELDS[str(kind)]
    extra = sorted(set(spec) - fields)
    missing = sorted(fields - set(spec))
    if extra or missing:
        rule = "unknown field" if extra else "is required"
        raise ConfigError(f"{where}.{(extra or missing)[0]}: {rule}")
    for number in ("threshold", "window_seconds"):
        value = spec.get(number, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**7:
            raise ConfigError(f"{where}.{number}: must be an integer from 1 to 10000000")
    for text in fields - {"threshold", "window_seconds"}:
        if not isinstance(spec[text], str) or not spec[text]:
            raise ConfigError(f"{where}.{text}: must be a non-empty string")
    return make(spec)


def detectors_config(raw: object = None) -> dict[str, Any]:
    """The canonical detector settings: shipped rules, overridden or extended by ``raw``.

    ``raw`` is ``{"rules": [...], "shadow_ttl_seconds": N}`` (both optional);
    a rule named like a shipped one replaces it.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("detectors: must be an object with rules and shadow_ttl_seconds")
    extra = sorted(set(raw) - {"rules", "shadow_ttl_seconds"})
    if extra:
        raise ConfigError(f"detectors.{extra[0]}: unknown field")
    rules = {str(r["name"]): dict(r) for r in SHIPPED}
    given = raw.get("rules", [])
    if not isinstance(given, list):
        raise ConfigError("detectors.rules: must be a list of rules")
    for number, rule in enumerate(given):
        build(rule, f"detectors.rules.{number}")
        rules[str(rule["name"])] = dict(rule)
    ttl = raw.get("shadow_ttl_seconds", DEFAULT_SHADOW_TTL)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= 90 * 86_400:
        raise ConfigError("detectors.shadow_ttl_seconds: must be an integer from 60 to 7776000")
    return {"rules": [rules[n] for n in sorted(rules)], "shadow_ttl_seconds": ttl}


def load(config: Mapping[str, Any]) -> list[Detector]:
    return [build(r, f"detectors.rules.{n}") for n, r in enumerate(config["rules"])]


def derive(history: Sequence[Seen], detectors: Sequence[Detector]) -> list[dict[str, Any]]:
    """Every belief the detectors form on the newest observation of ``history``."""
    found = {}
    for detector in detectors:
        for finding in detector.detect(history):
            belief = belief_of(detector, finding)
            found[belief["belief_id"]] = belief
    return [found[k] for k in sorted(found)]
