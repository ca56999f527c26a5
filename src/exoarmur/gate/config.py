"""The gate's configuration: rate limits, posture rules, protected things.

Read from ``[gate]`` in ``config.toml``; every field has a safe default.
Its canonical form is part of the configuration snapshot whose hash every
decision names, so replay knows exactly which limits were in force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..model.intent import SafetyClass

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s\s*$")
RATE_KEYS = ("tenant", "actor", "action", "approvals_per_operator")
#: approvals each class needs whatever policy says, unless configured otherwise
DEFAULT_CLASS_FLOOR: dict[SafetyClass, int] = {SafetyClass.A2: 1, SafetyClass.A3: 2}
_RETENTION_SLACK = 64
_LOCKDOWN_ADDS = "lockdown_adds_heightened"
_EVIDENCE = "evidence"
_POLICY_SEES = "policy_sees_tightening"
#: rules a snapshot records as true; one recorded before a rule existed reads it as False
_LATER_RULES = (_LOCKDOWN_ADDS, _POLICY_SEES)
#: the class no class is above: "approval above A3" asks nothing
_TOP_CLASS = list(SafetyClass)[-1]


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` events per ``seconds``, counted on recorded times."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, where: str, text: object) -> RateLimit:
        match = _RATE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(f'{where}: {text!r} is not a rate like "100/60s"')
        count, seconds = int(match.group(1)), int(match.group(2))
        if count < 1 or seconds < 1:
            raise ConfigError(f"{where}: count and seconds must be at least 1")
        return cls(count, seconds)

    @property
    def text(self) -> str:
        return f"{self.count}/{self.seconds}s"


#: postures that may tighten the gate further, each including the ones before it
TIGHTENING_POSTURES = ("heightened", "lockdown")


@dataclass(frozen=True)
class Tightening:
    """What one posture adds to the gate: only ever stricter, never looser.

    Its rate limits are checked besides the base ones; its TTL bound is taken
    with policy's ``@ttl_max`` (the smaller wins); its protected principals
    join the base ones. Lockdown applies heightened's tightening too.
    """

    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    ttl_max_seconds: int | None = None
    protected_principals: tuple[str, ...] = ()

    def to_canonical(self) -> dict[str, Any]:
        return {
            "rate_limits": {k: v.text for k, v in sorted(self.rate_limits.items())},
            "ttl_max_seconds": self.ttl_max_seconds,
            "protected_principals": sorted(self.protected_principals),
        }

    @classmethod
    def from_table(cls, table: object, where: str) -> Tightening:
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        unknown = set(table) - {"rate_limits", "ttl_max_seconds", "protected_principals"}
        if unknown:
            raise ConfigError(f"[{where}]: unknown key {sorted(unknown)[0]!r}")
        rates = table.get("rate_limits", {})
        if not isinstance(rates, dict):
            raise ConfigError(f"[{where}.rate_limits] must be a table")
        limits = {}
        for key, value in rates.items():
            if key not in RATE_KEYS[:3]:
                raise ConfigError(f"[{where}.rate_limits]: unknown limit {key!r}")
            limits[key] = RateLimit.parse(f"{where}.rate_limits.{key}", value)
        ttl = table.get("ttl_max_seconds")
        return cls(
            limits,
            None if ttl is None else _positive(ttl, f"{where}.ttl_max_seconds"),
            _strings(table.get("protected_principals", []), f"{where}.protected_principals"),
        )


@dataclass(frozen=True)
class GateConfig:
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    #: in lockdown, every class above this one needs approval
    lockdown_approval_above: SafetyClass = SafetyClass.A0
    #: in heightened posture, these classes need this many more approvals
    heightened_classes: tuple[SafetyClass, ...] = (SafetyClass.A2, SafetyClass.A3)
    heightened_extra_approvals: int = 1
    protected_targets: tuple[str, ...] = ()
    protected_principals: tuple[str, ...] = ()
    protected_quorum: int = 2
    #: approvals a class needs whatever policy says (policy and posture may raise it)
    class_floor: dict[SafetyClass, int] = field(default_factory=lambda: dict(DEFAULT_CLASS_FLOOR))
    #: posture name -> what it tightens (``[gate.posture.heightened]``, ``.lockdown``)
    tightened: dict[str, Tightening] = field(default_factory=dict)
    #: lockdown adds heightened's extra approvals too, so it never asks fewer than
    #: heightened; only snapshots recorded before that rule read False (replay must
    #: re-derive their decisions as made), and no configuration can turn it off
    lockdown_adds_heightened: bool = True
    #: ``@evidence`` and ``params.containment.evidence`` are enforced against the
    #: intent's referenced evidence (``[gate.evidence] enforced = true``). Recorded
    #: in the snapshot only when on, so configurations without it keep their hash
    #: and ledgers recorded before enforcement replay to the decisions they made.
    evidence_enforced: bool = False
    #: policy decides with the posture's tightening in ``context.tightened``; only
    #: snapshots recorded before policy could see it read False (an old policy that
    #: happened to name ``context.tightened`` must replay to the error it met then)
    policy_sees_tightening: bool = True

    def tightenings(self, posture: str) -> list[Tightening]:
        """What ``posture`` tightens: its own and every milder posture's (none when normal)."""
        if posture not in TIGHTENING_POSTURES:
            return []
        upto = TIGHTENING_POSTURES[: TIGHTENING_POSTURES.index(posture) + 1]
        return [self.tightened[p] for p in upto if p in self.tightened]

    def adds_heightened(self, posture: str) -> bool:
        """Whether ``posture`` adds heightened's extra approvals to its listed classes."""
        ladder = ("heightened", "lockdown") if self.lockdown_adds_heightened else ("heightened",)
        return posture in ladder

    def policy_context(self, posture: str) -> dict[str, Any] | None:
        """What ``posture`` tightens, as policy reads it in ``context.tightened``.

        None when the recorded configuration predates it (policy saw nothing
        then). The values are those in force under the posture: its TTL bound
        (absent when it sets none: Cedar has no null), the approvals it adds
        and to which classes, the class above which lockdown asks approval
        (``A3``, above which there is nothing, when it asks none), the
        principals it protects and its rate limits (a stricter posture's
        limit for a key shows over a milder one's; the gate checks both).
        """
        if not self.policy_sees_tightening:
            return None
        tightenings = self.tightenings(posture)
        ttl = [t.ttl_max_seconds for t in tightenings if t.ttl_max_seconds is not None]
        limits: dict[str, RateLimit] = {}
        for tightening in tightenings:
            limits.update(tightening.rate_limits)
        adds = self.adds_heightened(posture)
        found: dict[str, Any] = {
            "extra_approvals": self.heightened_extra_approvals if adds else 0,
            "extra_approval_classes": [c.value for c in self.heightened_classes] if adds else [],
            "approval_above": (
                self.lockdown_approval_above.value if posture == "lockdown" else _TOP_CLASS.value
            ),
            "protected_principals": sorted(
                {name for t in tightenings for name in t.protected_principals}
            ),
            "rate_limits": {
                key: {"count": limit.count, "seconds": limit.seconds}
                for key, limit in sorted(limits.items())
            },
        }
        if ttl:
            found["ttl_max_seconds"] = min(ttl)
        return found

    def lowered_floor(self) -> list[str]:
        """The classes whose configured floor is below the default, as operators read them."""
        return [
            f"{klass.value} needs {self.class_floor.get(klass, 0)} approval(s), default {floor}"
            for klass, floor in DEFAULT_CLASS_FLOOR.items()
            if self.class_floor.get(klass, 0) < floor
        ]

    @classmethod
    def from_recorded(cls, table: object) -> GateConfig:
        """The gate a recorded configuration snapshot describes.

        Snapshots recorded before the class floor existed have no
        ``class_floor`` table: those decisions were made with no floor, and
        replay must re-derive them as they were made. Likewise snapshots
        recorded before lockdown added heightened's extra approvals, and
        before policy saw the posture's tightening (each a rule recorded as
        true, which no configuration can turn off).
        """
        if isinstance(table, dict) and "class_floor" not in table:
            table = table | {"class_floor": {c.value: 0 for c in SafetyClass}}
        posture = table.get("posture") if isinstance(table, dict) else None
        if not isinstance(table, dict) or not isinstance(posture, dict):
            return replace(
                cls.from_table(table), lockdown_adds_heightened=False, policy_sees_tightening=False
            )
        for key in _LATER_RULES:
            if key in posture and posture[key] is not True:
                raise ConfigError(f"[gate.posture]: {key} must be true")
        rest = {k: v for k, v in posture.items() if k not in _LATER_RULES}
        return replace(
            cls.from_table(table | {"posture": rest}),
            lockdown_adds_heightened=_LOCKDOWN_ADDS in posture,
            policy_sees_tightening=_POLICY_SEES in posture,
        )

    @classmethod
    def _evidence(cls, table: dict[str, Any]) -> bool:
        value = table.get(_EVIDENCE, {})
        if not isinstance(value, dict):
            raise ConfigError("[gate.evidence] must be a table")
        unknown = set(value) - {"enforced"}
        if unknown:
            raise ConfigError(f"[gate.evidence]: unknown key {sorted(unknown)[0]!r}")
        enforced = value.get("enforced", False)
        if not isinstance(enforced, bool):
            raise ConfigError(f"gate.evidence.enforced: must be true or false, not {enforced!r}")
        return enforced

    @classmethod
    def from_table(cls, table: object) -> GateConfig:
        if table is None:
            return cls()
        if not isinstance(table, dict):
            raise ConfigError("[gate] must be a table")
        unknown = set(table) - {"rate_limits", "posture", "protected", "class_floor", _EVIDENCE}
        if unknown:
            raise ConfigError(f"[gate]: unknown key {sorted(unknown)[0]!r}")
        rates_table = table.get("rate_limits", {})
        if not isinstance(rates_table, dict):
            raise ConfigError("[gate.rate_limits] must be a table")
        rates = {}
        for key, value in rates_table.items():
            if key not in RATE_KEYS:
                raise ConfigError(f"[gate.rate_limits]: unknown limit {key!r} (one of {RATE_KEYS})")
            rates[key] = RateLimit.parse(f"gate.rate_limits.{key}", value)
        posture = _table(table, "posture")
        protected = _table(table, "protected")
        floor = _class_floor(table.get("class_floor", None))
        try:
            return cls(
                rate_limits=rates,
                lockdown_approval_above=SafetyClass(
                    posture.get("lockdown_approval_above", SafetyClass.A0.value)
                ),
                heightened_classes=tuple(
                    SafetyClass(c) for c in posture.get("heightened_classes", ["A2", "A3"])
                ),
                heightened_extra_approvals=_positive(
                    posture.get("heightened_extra_approvals", 1),
                    "gate.posture.heightened_extra_approvals",
                ),
                protected_targets=_strings(protected.get("targets", []), "gate.protected.targets"),
                protected_principals=_strings(
                    protected.get("principals", []), "gate.protected.principals"
                ),
                protected_quorum=_positive(protected.get("quorum", 2), "gate.protected.quorum"),
                class_floor=floor,
                tightened={
                    name: Tightening.from_table(posture[name], f"gate.posture.{name}")
                    for name in TIGHTENING_POSTURES
                    if name in posture
                },
                evidence_enforced=cls._evidence(table),
            )
        except ValueError as exc:
            raise ConfigError(f"[gate.posture]: {exc}") from None

    def retention(self) -> dict[str, int]:
        """How many recorded times a fold keeps per key kind: what a count can need.

        A count stops once it exceeds its limit, so ``limit + 1`` recent times
        suffice; the slack absorbs concurrent submitters whose clock readings
        land out of order. Kinds no limit counts keep nothing.
        """
        kinds = {"tenant": "tenant", "actor": "actor", "action": "action"}
        kinds["approvals_per_operator"] = "approver"
        kept: dict[str, int] = {}
        for name, limit in self._all_limits():
            kept[kinds[name]] = max(kept.get(kinds[name], 0), limit.count + _RETENTION_SLACK)
        return kept

    def _all_limits(self) -> list[tuple[str, RateLimit]]:
        found = list(self.rate_limits.items())
        for tightening in self.tightened.values():
            found.extend(tightening.rate_limits.items())
        return found

    @property
    def horizon_seconds(self) -> int:
        """The longest window any rate limit counts over (0 when there are none)."""
        return max((limit.seconds for _, limit in self._all_limits()), default=0)

    def to_canonical(self) -> dict[str, Any]:
        posture: dict[str, Any] = {
            "lockdown_approval_above": self.lockdown_approval_above.value,
            "heightened_classes": [c.value for c in self.heightened_classes],
            "heightened_extra_approvals": self.heightened_extra_approvals,
        }
        if self.lockdown_adds_heightened:
            posture[_LOCKDOWN_ADDS] = True
        if self.policy_sees_tightening:
            posture[_POLICY_SEES] = True
        # only when configured, so that configurations without it keep their hash
        posture.update({k: v.to_canonical() for k, v in sorted(self.tightened.items())})
        canonical: dict[str, Any] = {
            "rate_limits": {k: v.text for k, v in sorted(self.rate_limits.items())},
            "posture": posture,
            "protected": {
                "targets": sorted(self.protected_targets),
                "principals": sorted(self.protected_principals),
                "quorum": self.protected_quorum,
            },
            "class_floor": {c.value: self.class_floor.get(c, 0) for c in SafetyClass},
        }
        if self.evidence_enforced:
            canonical[_EVIDENCE] = {"enforced": True}
        return canonical


def _class_floor(value: object) -> dict[SafetyClass, int]:
    # A class the table leaves out keeps its default: naming A3 alone never drops A2's floor.
    floor = dict(DEFAULT_CLASS_FLOOR)
    if value is None:
        return floor
    if not isinstance(value, dict):
        raise ConfigError("[gate.class_floor] must be a table")
    for name, count in value.items():
        where = f"gate.class_floor.{name}"
        if name not in [c.value for c in SafetyClass]:
            raise ConfigError(f"{where}: not a safety class (A0, A1, A2 or A3)")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 100:
            raise ConfigError(f"{where}: must be an integer from 0 to 100, not {count!r}")
        floor[SafetyClass(name)] = count
    return {klass: count for klass, count in floor.items() if count}


def _table(table: dict[str, Any], name: str) -> dict[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[gate.{name}] must be a table")
    return value


def _positive(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: must be a positive integer, not {value!r}")
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a list of non-empty strings")
    return tuple(value)
