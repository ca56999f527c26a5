"""Refused access, recorded: every 403, and strangers' 401s within a budget.

A refusal of an authenticated principal (403) is recorded whole, every time,
as ``access.refused`` in the system log (principal, tenant, attempted,
detail), by the governor's ``record_access_refused``: the principal is known
and its key can be revoked.

A request with no or a bad API key (401) comes from anyone, so recording
each would make the ledger a free disk for strangers. :class:`RefusalAudit`
records the first ``per_source`` of them per (source address, presented key
id) and window, as ``access.refused`` with ``source``, while they add at most
``max_bytes_per_hour`` per clock hour; the rest are counted, and one
``access.refused.counted`` event per window says how many (and from where,
naming the busiest sources). Windows come from the governor's injected clock.
The secret of a presented key is never recorded, only its public key id.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from ..encoding import format_time
from ..pipeline import Governor
from ..principals import Principal
from .settings import RefusalBudget

#: what a refusal records of the request line, at most (the path is the caller's text)
MAX_ATTEMPT_CHARS = 300
#: sources named in a window's count (the rest are only counted)
NAMED_SOURCES = 10
#: (source, key id) pairs tracked per window; beyond, refusals are counted, not recorded
MAX_TRACKED_SOURCES = 10_000
_KEY_ID = re.compile(r"^exo_([0-9a-f]{16})_")


def presented_key_id(api_key: str) -> str | None:
    """The public key id of a presented key, if it has one (never the secret)."""
    match = _KEY_ID.match(api_key.strip())
    return match.group(1) if match else None


class RefusalAudit:
    """Records strangers' refusals within a :class:`RefusalBudget`; thread-safe, bounded memory."""

    def __init__(self, governor: Governor, budget: RefusalBudget | None = None) -> None:
        self.governor = governor
        self.budget = budget or RefusalBudget()
        self._lock = threading.Lock()
        self._window: int | None = None
        self._hour: int | None = None
        self._hour_bytes = 0
        self._recorded: Counter[tuple[str, str | None]] = Counter()
        self._counted: Counter[tuple[str, str | None]] = Counter()
        self._counted_untracked = 0

    def refuse(self, source: str, key_id: str | None, attempted: str, detail: str) -> bool:
        """Record (durable on return) or count one refusal; True if recorded one by one."""
        with self._lock:
            seconds = int(self.governor.clock.now().timestamp())
            window, hour = seconds // self.budget.window_seconds, seconds // 3600
            if window != self._window:
                self._write_count()
                self._window = window
            if hour != self._hour:
                self._hour, self._hour_bytes = hour, 0
            pair = (source, key_id)
            tracked = pair in self._recorded or pair in self._counted
            if not tracked and len(self._recorded) + len(self._counted) >= MAX_TRACKED_SOURCES:
                self._counted_untracked += 1
                return False
            if (
                self._recorded[pair] >= self.budget.per_source
                or self._hour_bytes >= self.budget.max_bytes_per_hour
            ):
                self._counted[pair] += 1
                return False
            event = self.governor.record_unauthenticated(
                attempted[:MAX_ATTEMPT_CHARS], detail, source=source
            )
            self._recorded[pair] += 1
            self._hour_bytes += len(event.canonical)
            return True

    def flush(self) -> None:
        """Write the current window's count now (a service does on stop)."""
        with self._lock:
            self._write_count()

    def _write_count(self) -> None:
        counted = sum(self._counted.values()) + self._counted_untracked
        if self._window is not None and counted:
            self.governor.record_refusals_counted(self._summary(self._window, counted))
        self._recorded.clear()
        self._counted.clear()
        self._counted_untracked = 0

    def _summary(self, window: int, counted: int) -> dict[str, Any]:
        busiest = sorted(self._counted.items(), key=lambda item: (-item[1], str(item[0])))
        start = datetime.fromtimestamp(window * self.budget.window_seconds, UTC)
        return {
            "window_start": format_time(start),
            "window_seconds": self.budget.window_seconds,
            "recorded": sum(self._recorded.values()),
            "counted": counted,
            "sources": [
                {"source": source, "key_id": key_id, "count": count}
                for (source, key_id), count in busiest[:NAMED_SOURCES]
            ],
            "sources_not_named": max(len(busiest) - NAMED_SOURCES, 0),
            # refusals from sources past the tracking bound: counted, no source kept
            "untracked": self._counted_untracked,
            "budget": self.budget.to_canonical(),
        }


def record_refusal(
    governor: Governor, principal: Principal, tenant: str | None, attempted: str, detail: str
) -> None:
    """Append one ``access.refused`` event to the system log (durable on return).

    ``tenant`` is a validated path parameter (or None): never raw request text.
    """
    governor.record_access_refused(principal, tenant, attempted[:MAX_ATTEMPT_CHARS], detail)
