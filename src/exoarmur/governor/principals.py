"""Principals: who may act, folded from the system log.

A principal's secret is shown once and stored only as a hash; names are
never reused, so an old approval can never be read as a new principal's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from ..encoding import format_time
from ..errors import DuplicateIntent, InputError, NotFound
from ..model.event import (
    PRINCIPAL_ADDED,
    PRINCIPAL_KEY_ROTATED,
    PRINCIPAL_REVOKED,
    SYSTEM_LOG,
    Event,
    idempotency_key_of,
)
from ..principals import (
    PRINCIPAL_EVENTS,
    Principal,
    PrincipalBook,
    new_key,
    validate_principal,
)
from .drafts import Drafts, operator
from .state import ControlState

#: the longest a replaced key may keep working: long enough to roll a fleet, not forever
MAX_ROTATION_GRACE_SECONDS: Final = 30 * 24 * 3600


class Principals:
    """The principal book in force (cached until the system log grows); adding, revoking."""

    def __init__(
        self, state: ControlState, drafts: Drafts, randomness: Callable[[int], bytes]
    ) -> None:
        self.state = state
        self.drafts = drafts
        #: where API-key secrets come from: the OS, or a seed in deterministic runs
        self.randomness = randomness
        self._lock = threading.Lock()
        self._book: tuple[int, PrincipalBook] = (-1, PrincipalBook())

    def book(self) -> tuple[int, PrincipalBook]:
        """The book and the system log size it was folded at."""
        ledger = self.state.ledger
        with self._lock:
            size = ledger.size(SYSTEM_LOG)
            if self._book[0] != size:
                events = (
                    e
                    for e in ledger.store.events(SYSTEM_LOG, 0, size)
                    if e.type in PRINCIPAL_EVENTS
                )
                self._book = (size, PrincipalBook.from_events(events))
            return self._book

    def current(self) -> PrincipalBook:
        return self.book()[1]

    def authenticate(self, api_key: str) -> Principal:
        """The key's principal, judged at the injected clock's now (a replaced key may stop)."""
        return self.current().authenticate(api_key, self.drafts.now)

    def _record(self, event_type: str, payload: dict[str, Any], actor: str) -> Event:
        draft = self.drafts.for_log(
            SYSTEM_LOG,
            event_type,
            payload,
            operator(actor),
            idempotency_key=idempotency_key_of(event_type, payload),
        )
        return self.state.append_one(SYSTEM_LOG, draft)

    def add(self, name: str, role: str, tenants: list[str], actor: str) -> tuple[Principal, str]:
        """Create a principal; returns it and its API key (shown once, stored hashed)."""
        chosen = validate_principal(name, role, tenants)
        if self.current().known(name):
            raise InputError(
                f"name: a principal named {name!r} already exists (names are never reused)"
            )
        key = new_key(self.randomness)
        payload = {
            "name": name,
            "role": role,
            "tenants": list(chosen),
            "key_id": key.key_id,
            "key_hash": key.key_hash,
        }
        try:
            self._record(PRINCIPAL_ADDED, payload, actor)
        except DuplicateIntent:
            raise InputError(f"name: a principal named {name!r} already exists") from None
        principal = self.current().get(name)
        assert principal is not None
        return principal, key.api_key

    def revoke(self, name: str, actor: str) -> None:
        if self.current().get(name) is None:
            raise NotFound(f"no active principal named {name!r}")
        self._record(PRINCIPAL_REVOKED, {"name": name}, actor)

    def rotate(self, name: str, grace_seconds: int, actor: str) -> tuple[Event, str]:
        """Give ``name`` a new key; the current one stops ``grace_seconds`` from now.

        Returns the recorded event (new key id and hash, the old key's stopping
        time; never a secret) and the new API key, shown once.
        """
        if isinstance(grace_seconds, bool) or not 0 <= grace_seconds <= MAX_ROTATION_GRACE_SECONDS:
            raise InputError(
                f"grace: must be whole seconds from 0 to {MAX_ROTATION_GRACE_SECONDS}, "
                f"not {grace_seconds!r}"
            )
        principal = self.current().get(name)
        if principal is None:
            raise NotFound(f"no active principal named {name!r}")
        key = new_key(self.randomness)
        stops = self.drafts.now() + timedelta(seconds=grace_seconds)
        payload = {
            "name": name,
            "key_id": key.key_id,
            "key_hash": key.key_hash,
            "old_key_id": principal.key_id,
            "old_key_stops_at": format_time(stops),
        }
        return self._record(PRINCIPAL_KEY_ROTATED, payload, actor), key.api_key
