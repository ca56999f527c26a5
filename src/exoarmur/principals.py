"""Principals: who may do what, proven by an API key, recorded in the ledger.

A principal is a name, one role and the tenants it acts for. It is created
by a ``principal.added`` event in the system log, holding the key's id and
the SHA-256 of its 256-bit secret (never the secret); ``principal.key_rotated``
gives it a new key the same way and records when the previous one stops
(judged against the caller's clock when a key is presented); ``principal.revoked``
ends it. So who was allowed to approve, and when, is itself part of the
signed record, and the book of principals is a fold over those events.

Keys look like ``exo_<key id>_<secret>``; the secret is printed once. A
presented key is checked by its id and a constant-time comparison of hashes.
Identity comes from the key, never from a name the caller types.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .encoding import parse_time
from .errors import AuthenticationError, InputError
from .model.event import PRINCIPAL_ADDED, PRINCIPAL_KEY_ROTATED, PRINCIPAL_REVOKED, Event

ROLES: Final = ("agent", "operator", "auditor", "admin")
#: roles that may approve or reject intents (in their tenants)
APPROVER_ROLES: Final = ("operator", "admin")
ALL_TENANTS: Final = "*"
#: the event types the principal book folds
PRINCIPAL_EVENTS: Final = (PRINCIPAL_ADDED, PRINCIPAL_KEY_ROTATED, PRINCIPAL_REVOKED)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_KEY_PATTERN = re.compile(r"^exo_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    tenants: tuple[str, ...]
    key_id: str

    def acts_for(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def may_approve(self, tenant: str) -> bool:
        return self.role in APPROVER_ROLES and self.acts_for(tenant)


@dataclass(frozen=True)
class NewKey:
    key_id: str
    api_key: str
    key_hash: str


def new_key(randomness: Callable[[int], bytes] = os.urandom) -> NewKey:
    """A fresh key: 64-bit id, 256-bit secret, from ``randomness`` (the OS unless seeded)."""
    key_id = randomness(8).hex()
    secret = base64.urlsafe_b64encode(randomness(32)).rstrip(b"=").decode()
    return NewKey(key_id, f"exo_{key_id}_{secret}", _hash(secret))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_principal(name: str, role: str, tenants: Iterable[str]) -> tuple[str, ...]:
    """Check a new principal's fields; returns its tenants, sorted. InputError names the field."""
    if not NAME_PATTERN.match(name):
        raise InputError(f"name: {name!r} does not match {NAME_PATTERN.pattern}")
    if role not in ROLES:
        raise InputError(f"role: must be one of {', '.join(ROLES)}, not {role!r}")
    chosen = tuple(sorted(set(tenants)))
    if role == "admin":
        if chosen not in ((), (ALL_TENANTS,)):
            raise InputError("tenant: an admin acts for every tenant; give no --tenant")
        return (ALL_TENANTS,)
    if not chosen:
        raise InputError(f"tenant: a principal with role {role} needs at least one --tenant")
    from .model.intent import TENANT_PATTERN

    for tenant in chosen:
        if not re.match(TENANT_PATTERN, tenant):
            raise InputError(f"tenant: {tenant!r} does not match {TENANT_PATTERN}")
    return chosen


class PrincipalBook:
    """The principals in force, folded from the system log's principal events."""

    def __init__(self) -> None:
        self._by_name: dict[str, Principal] = {}
        self._hashes: dict[str, str] = {}
        self._key_names: dict[str, str] = {}
        self._revoked: set[str] = set()
        #: replaced keys and the moment each stops authenticating
        self._stops: dict[str, datetime] = {}

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> PrincipalBook:
        book = cls()
        for event in events:
            book.apply(event)
        return book

    def apply(self, event: Event) -> None:
        payload = event.payload
        if event.type == PRINCIPAL_ADDED:
            principal = Principal(
                name=payload["name"],
                role=payload["role"],
                tenants=tuple(payload["tenants"]),
                key_id=payload["key_id"],
            )
            self._by_name[principal.name] = principal
            self._hashes[principal.key_id] = payload["key_hash"]
            self._key_names[principal.key_id] = principal.name
        elif event.type == PRINCIPAL_KEY_ROTATED:
            old = self._by_name[payload["name"]]
            stops = parse_time(payload["old_key_stops_at"])
            # A key replaced twice keeps the earlier of its two stopping times.
            self._stops[old.key_id] = min(stops, self._stops.get(old.key_id, stops))
            self._by_name[old.name] = Principal(old.name, old.role, old.tenants, payload["key_id"])
            self._hashes[payload["key_id"]] = payload["key_hash"]
            self._key_names[payload["key_id"]] = old.name
        elif event.type == PRINCIPAL_REVOKED:
            self._revoked.add(payload["name"])

    def get(self, name: str) -> Principal | None:
        if name in self._revoked:
            return None
        return self._by_name.get(name)

    def latest(self, name: str) -> Principal | None:
        """The principal as last added, revoked or not (replay judges old votes)."""
        return self._by_name.get(name)

    def known(self, name: str) -> bool:
        """Ever added (revoked or not): names are never reused."""
        return name in self._by_name

    def all(self) -> list[tuple[Principal, bool]]:
        """Every principal ever added, with whether it is still active."""
        return [(p, p.name not in self._revoked) for p in self._by_name.values()]

    def key_stops_at(self, key_id: str) -> datetime | None:
        """When a replaced key stops authenticating (None: it is the current key)."""
        return self._stops.get(key_id)

    def authenticate(self, api_key: str, now: Callable[[], datetime]) -> Principal:
        """The principal a key belongs to at ``now()``; AuthenticationError otherwise.

        The same message for every failure, so a caller cannot probe which
        key ids exist. A replaced key works until the time recorded with its
        rotation, not at it. ``now`` is read only for a replaced key, so a
        stepping clock advances exactly as it did before rotations existed.
        """
        failure = AuthenticationError("invalid or revoked API key")
        match = _KEY_PATTERN.match(api_key.strip())
        if match is None:
            raise failure
        key_id, secret = match.groups()
        expected = self._hashes.get(key_id, "0" * 64)
        matches = hmac.compare_digest(_hash(secret), expected)
        name = self._key_names.get(key_id)
        if not matches or name is None or name in self._revoked:
            raise failure
        stops = self._stops.get(key_id)
        if stops is not None and now() >= stops:
            raise failure
        return self._by_name[name]
