"""Generate the golden histories: ledgers that must replay, and doctored ones that must not.

    python tests/golden/make_histories.py        # rewrites tests/golden/*.jsonl and manifest.json

``tests/test_replay.py`` regenerates them into a temporary directory and
fails if a single byte differs from the committed files, so a change to
what the pipeline records is always a deliberate, reviewed change.

Each history is canonical JSON Lines: one recorded event per line, the exact
bytes that are hashed, for the system log and the tenant's log. The doctored
ones are the good history with one edit, rewritten *consistently* (every
later position, leaf and Merkle node recomputed on load), as a careful
forger would: only re-deriving the decisions can catch them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from exoarmur.approvals import Vote
from exoarmur.clock import StepClock
from exoarmur.encoding import canonical_bytes, content_hash, format_time, parse_time
from exoarmur.executors import EchoExecutor, ExecutionFailed, ExecutorRegistry
from exoarmur.gate import GateConfig, RateLimit
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.ledger.transfer import dump_jsonl
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

HERE = Path(__file__).parent
TENANT = "acme"
SEED = 20261125

POLICY = """\
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };

@id("tickets") permit (principal, action == Action::"ticket.create", resource);

@id("prod-delete") @approval("2") @approval_window("600") @evidence("high")
permit (principal is Agent, action == Action::"db.delete", resource)
when { context.params.env == "prod" };

@id("protected") forbid (principal, action, resource == Target::"db/customers");
"""

SWAPPED_POLICY = POLICY.replace('@approval("2")', '@approval("1")')


class Flaky:
    """Fails once with a retryable error, then succeeds; fails for good on 'broken/' targets."""

    kind = "flaky"

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def execute(self, intent: ActionIntent) -> dict[str, str]:
        if intent.target.startswith("broken/"):
            raise ExecutionFailed(f"{intent.target} is broken")
        if intent.intent_id not in self.seen:
            self.seen.add(intent.intent_id)
            raise ExecutionFailed("HTTP 503 from ticketing", retryable=True)
        return {"ticket": intent.target}


def _intent(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "actor": {"id": "agent-7", "kind": "agent"},
        "action": "fs.read",
        "target": f"reports/{n}",
        "safety_class": "A0",
        "idempotency_key": f"call-{n}",
    } | fields


def run_scenario(directory: Path) -> Path:
    """The recorded history every golden starts from; returns the ledger file."""
    ids = SeededIds(SEED)
    clock = StepClock()
    registry = ExecutorRegistry()
    registry.bind("fs.*", EchoExecutor())
    registry.bind("db.*", EchoExecutor())
    registry.bind("ticket.*", Flaky(), retries=2)
    key = SigningKey.from_seed("golden.exoarmur/log", hashlib.sha256(b"golden").digest())
    governor = Governor(
        ledger=Ledger(SqliteStore(directory / "ledger.db"), key),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=registry,
        clock=clock,
        ids=ids,
        gate=GateConfig(rate_limits={"actor": RateLimit(10, 60)}),
        randomness=ids.random_bytes,
    )
    keys = {
        name: governor.add_principal(name, role, [TENANT])[1]
        for name, role in [("alice", "operator"), ("bob", "operator"), ("audrey", "auditor")]
    }

    def who(name: str) -> Any:
        return governor.authenticate(keys[name])

    prod_delete = {"action": "db.delete", "params": {"env": "prod"}, "safety_class": "A2"}
    with governor:
        governor.submit(_intent(1))  # allowed, executed
        governor.submit(_intent(1))  # a duplicate delivery: nothing new
        governor.submit(_intent(2, target="db/customers"))  # forbidden
        governor.submit(_intent(3, action="fs.write", safety_class="A1"))  # default deny
        approved = governor.submit(_intent(4, target="db/orders", **prod_delete)).intent_id
        governor.vote(TENANT, approved, who("alice"), Vote.APPROVE, "CHG-1")
        governor.vote(TENANT, approved, who("alice"), Vote.APPROVE, "again")  # refused
        governor.vote(TENANT, approved, who("audrey"), Vote.APPROVE, "me too")  # refused
        governor.vote(TENANT, approved, who("bob"), Vote.APPROVE, "CHG-1 reviewed")  # runs
        rejected = governor.submit(_intent(5, target="db/logs", **prod_delete)).intent_id
        governor.vote(TENANT, rejected, who("alice"), Vote.APPROVE, "ok")
        governor.vote(TENANT, rejected, who("bob"), Vote.REJECT, "not during the freeze")
        wrong = governor.submit(_intent(6, target="db/cache", **prod_delete)).intent_id
        governor.vote(TENANT, wrong, who("alice"), Vote.APPROVE, "x", "sha256:" + "0" * 64)
        governor.submit(_intent(7, action="ticket.create", safety_class="A1"))  # retried once
        governor.submit(_intent(8, action="ticket.create", target="broken/9", safety_class="A1"))
        governor.engage_killswitch("tenant:acme/action:fs.*", "incident 7", LOCAL_ADMIN)
        governor.submit(_intent(9))  # blocked by the switch
        governor.release_killswitch("tenant:acme/action:fs.*", "contained", LOCAL_ADMIN)
        governor.set_posture(TENANT, "lockdown", "drill", LOCAL_ADMIN, ttl_seconds=120)
        governor.submit(_intent(10, action="ticket.create", safety_class="A1"))  # needs approval
        clock.advance(timedelta(seconds=121))
        governor.submit(_intent(11, action="ticket.create", target="t/11", safety_class="A1"))
        for n in range(12, 24):  # the actor's rate limit (10/60s) runs out
            governor.submit(_intent(n))
        clock.advance(timedelta(seconds=601))
        governor.pending(TENANT)  # the remaining approvals expire, as recorded events
        governor.ledger.checkpoint(TENANT)
        governor.ledger.checkpoint("_system")
    return directory / "ledger.db"


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(canonical_bytes(e).decode() + "\n" for e in events))


# -- the doctoring: each returns (events, expected divergence) --------------------------


def _decision_edited(events: list[dict[str, Any]]) -> dict[str, Any]:
    target = next(
        e
        for e in events
        if e["type"] == "decision.recorded"
        and e["payload"]["decision"]["verdict"] == "deny"
        and e["payload"]["decision"]["reasons"] == ["protected"]
    )
    target["payload"]["decision"]["verdict"] = "allow"
    return {
        "event_id": target["event_id"],
        "field": "decision.verdict",
        "reason": "re-derived from the ledger differs",
    }


def _event_reordered(events: list[dict[str, Any]]) -> dict[str, Any]:
    first = next(
        i for i, e in enumerate(events) if e["type"] == "intent.recorded" and e["tenant"] == TENANT
    )
    events[first], events[first + 1] = events[first + 1], events[first]
    return {
        "event_id": events[first]["event_id"],
        "field": "type",
        "reason": "a decision with no intent before it",
    }


def _event_removed(events: list[dict[str, Any]]) -> dict[str, Any]:
    granted = next(i for i, e in enumerate(events) if e["type"] == "approval.granted")
    events.pop(granted)
    # The next record made after it still names the log as it was, one event longer.
    return {
        "event_id": events[granted]["event_id"],
        "field": "cast.controls.tenant",
        "reason": "an event before it was removed",
    }


def _policy_swapped(events: list[dict[str, Any]]) -> dict[str, Any]:
    activation = next(e for e in events if e["type"] == "policy.activated")
    bundle = activation["payload"]["bundle"]
    (name,) = bundle["files"]
    bundle["files"][name] = SWAPPED_POLICY
    activation["payload"]["policy_hash"] = content_hash(bundle)
    first = next(e for e in events if e["type"] == "decision.recorded")
    return {
        "event_id": first["event_id"],
        "field": "decision.policy_hash",
        "reason": "re-derived from the ledger differs",
    }


def _clock_skewed(events: list[dict[str, Any]]) -> dict[str, Any]:
    decision = next(
        e
        for e in events
        if e["type"] == "decision.recorded"
        and e["payload"]["decision"]["verdict"] == "require_approval"
    )
    skewed = parse_time(decision["process_time"]) + timedelta(hours=1)
    decision["process_time"] = format_time(skewed)
    requested = next(
        e
        for e in events
        if e["type"] == "approval.requested" and e["intent_id"] == decision["intent_id"]
    )
    return {
        "event_id": requested["event_id"],
        "field": "payload.deadline",
        "reason": "the approval request differs",
    }


DOCTORED: dict[str, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    "decision-edited": _decision_edited,
    "event-reordered": _event_reordered,
    "event-removed": _event_removed,
    "policy-swapped": _policy_swapped,
    "clock-skewed": _clock_skewed,
}


def generate(out: Path) -> list[Path]:
    """Write every golden history and the manifest into ``out``; return the files."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        ledger = run_scenario(Path(scratch))
        store = SqliteStore(ledger)
        lines = [*dump_jsonl(store, "_system"), *dump_jsonl(store, TENANT)]
        root = store.latest_checkpoint(TENANT)
        store.close()
    good = out / "good.jsonl"
    good.write_text("".join(line + "\n" for line in lines))
    written = [good]
    manifest: dict[str, Any] = {
        "tenant": TENANT,
        "good": "good.jsonl",
        "checkpoint": root[1] if root else None,
        "doctored": {},
    }
    for name, doctor in DOCTORED.items():
        events = _events(good)
        expected = doctor(events)
        path = out / f"{name}.jsonl"
        _write(path, events)
        manifest["doctored"][name] = {"file": path.name, "expect": expected}
        written.append(path)
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    written.append(manifest_path)
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
