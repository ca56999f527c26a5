"""A process that runs a containment scenario and SIGKILLs itself at one boundary.

Usage: python containment_child.py DIR SCENARIO EVENT_TYPE NTH
It kills itself right after the NTH event of EVENT_TYPE is durable (0: never).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from containment_kit import action, governor
from exoarmur.approvals.book import Vote
from exoarmur.containment.plans import door_net
from exoarmur.containment.room import plan_intent
from exoarmur.ledger.keys import load_signing_key
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore

TARGETS = ["identity:alice", "endpoint:laptop-7", "workload:api"]


def main(home: Path, scenario: str, kill_type: str, nth: int) -> None:
    ledger = Ledger(SqliteStore(home / "l.db"), load_signing_key(home / "key"))
    seen = {"n": 0}
    append = ledger.append

    def append_then_maybe_die(log: str, drafts: Any, **kwargs: Any) -> Any:
        events = append(log, drafts, **kwargs)
        for event in events:
            if event.type == kill_type:
                seen["n"] += 1
                if seen["n"] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
        return events

    ledger.append = append_then_maybe_die  # type: ignore[method-assign]
    fail = {"disable_workload": ["workload:api"]} if scenario == "plan_fail" else None
    g = governor(ledger, fail)
    if scenario == "expiry":
        g.submit(action("revoke_sessions", "identity:alice", ttl=60))
        g.submit(action("rate_limit", "identity:alice", ttl=60, idempotency_key="r"))
        g.containment.tick(g.clock.now() + timedelta(seconds=61))
    else:
        outcome = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
        principal, _ = g.add_principal("op-1", "operator", ["acme"])
        g.vote("acme", outcome.intent_id, principal, Vote.APPROVE, "contain")
    g.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
