"""The identity shadow: a suspected subject followed under all its identifiers.

Pure. Identifiers (``kind:id``) that observations say name one subject are
correlated into one cluster; a belief about any of them opens a shadow on
the cluster, keyed by a hash of the cluster's sorted identifiers, so the
same subject seen under its correlated identifiers has one key in any home.
The shadow's state is the fold of its recorded lifecycle
(``shadow.created``, ``shadow.updated``, ``shadow.closed``) and nothing else.

A shadow is influence only: it can say which plan is ready for its subject
and let a caller raise a requirement. Nothing here approves, allows or
decides anything, and no decision path reads a shadow to loosen itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..encoding import content_hash, format_time
from ..model.event import Event
from .model import SHADOW_CLOSED, SHADOW_CREATED, SHADOW_UPDATED

#: the plan made ready for a shadowed identity (a ``plan submit --preset``)
DOOR_NET = "door-net"


def shadow_key(identifiers: Iterable[str]) -> str:
    """The key of a shadow over these identifiers: a hash of them, sorted and distinct."""
    return "shd-" + content_hash({"identifiers": sorted(set(identifiers))})[7:39]


def select_plan(identifiers: Iterable[str]) -> str | None:
    """Door Net when the shadow names an identity (it revokes and rate-limits identities)."""
    return DOOR_NET if any(i.startswith("identity:") for i in identifiers) else None


class Correlation:
    """Clusters of identifiers that observations said name one subject (union-find)."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _root(self, item: str) -> str:
        self._parent.setdefault(item, item)
        while self._parent[item] != item:
            self._parent[item] = self._parent[self._parent[item]]
            item = self._parent[item]
        return item

    def join(self, identifiers: Iterable[str]) -> None:
        roots = sorted({self._root(i) for i in identifiers})
        for other in roots[1:]:
            self._parent[other] = roots[0]

    def cluster(self, identifier: str) -> tuple[str, ...]:
        root = self._root(identifier)
        return tuple(sorted(i for i in self._parent if self._root(i) == root))


@dataclass(frozen=True)
class Shadow:
    shadow_key: str
    subject: dict[str, str]
    identifiers: tuple[str, ...]
    belief_ids: tuple[str, ...]
    plan: str | None
    open: bool
    #: recorded time of its last lifecycle event: the TTL runs from here
    changed_at: datetime

    def to_canonical(self) -> dict[str, Any]:
        return {
            "shadow_key": self.shadow_key,
            "subject": self.subject,
            "identifiers": list(self.identifiers),
            "belief_ids": list(self.belief_ids),
            "plan": self.plan,
        }

    def to_json(self) -> dict[str, Any]:
        return self.to_canonical() | {
            "open": self.open,
            "changed_at": format_time(self.changed_at),
        }


@dataclass(frozen=True)
class ShadowStatus:
    """For one subject: is it shadowed, under which key, and which plan is ready."""

    shadowed: bool
    shadow_key: str | None = None
    plan: str | None = None


class ShadowBook:
    """Shadows of one tenant's log, from their recorded lifecycle alone."""

    def __init__(self) -> None:
        self.shadows: dict[str, Shadow] = {}

    def apply(self, event: Event) -> None:
        if event.type not in (SHADOW_CREATED, SHADOW_UPDATED, SHADOW_CLOSED):
            return
        body = event.payload["shadow"]
        self.shadows[body["shadow_key"]] = Shadow(
            body["shadow_key"],
            dict(body["subject"]),
            tuple(body["identifiers"]),
            tuple(body["belief_ids"]),
            body["plan"],
            event.type != SHADOW_CLOSED,
            event.process_time,
        )

    def open_for(self, identifier: str) -> Shadow | None:
        """The open shadow that names ``identifier``, if any (the oldest key if several)."""
        found = [s for s in self.shadows.values() if s.open and identifier in s.identifiers]
        return min(found, key=lambda s: s.shadow_key) if found else None

    def status(self, identifier: str) -> ShadowStatus:
        shadow = self.open_for(identifier)
        if shadow is None:
            return ShadowStatus(False)
        return ShadowStatus(True, shadow.shadow_key, shadow.plan)

    def due(self, now: datetime, ttl_seconds: int) -> list[Shadow]:
        """Open shadows no belief has touched for ``ttl_seconds`` of recorded time."""
        limit = timedelta(seconds=ttl_seconds)
        found = [s for s in self.shadows.values() if s.open and s.changed_at + limit <= now]
        return sorted(found, key=lambda s: s.shadow_key)

    def listing(self) -> list[Shadow]:
        return sorted(self.shadows.values(), key=lambda s: (s.changed_at, s.shadow_key))


def shadow_status(events: Iterable[Event], identifier: str) -> ShadowStatus:
    """Whether ``identifier`` (``kind:id``) is shadowed after ``events``; which plan is ready."""
    book = ShadowBook()
    for event in events:
        book.apply(event)
    return book.status(identifier)


def change_for(
    book: ShadowBook, cluster: tuple[str, ...], belief: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """The lifecycle event a new belief calls for: created, updated, or none (already held)."""
    identifiers = set(cluster)
    shadow = next((s for i in sorted(identifiers) if (s := book.open_for(i)) is not None), None)
    if shadow is None:
        ids = tuple(sorted(identifiers))
        created = Shadow(
            shadow_key(ids),
            dict(belief["subject"]),
            ids,
            (belief["belief_id"],),
            select_plan(ids),
            True,
            datetime.min,
        )
        return SHADOW_CREATED, {"shadow": created.to_canonical()}
    grown = tuple(sorted(identifiers | set(shadow.identifiers)))
    beliefs = tuple(sorted({*shadow.belief_ids, belief["belief_id"]}))
    if grown == shadow.identifiers and beliefs == shadow.belief_ids:
        return None
    updated = replace(shadow, identifiers=grown, belief_ids=beliefs, plan=select_plan(grown))
    return SHADOW_UPDATED, {"shadow": updated.to_canonical()}
