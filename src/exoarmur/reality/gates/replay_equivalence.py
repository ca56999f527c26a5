"""replay_equivalence: the tenant replays from the ledger alone; its evidence verifies offline."""

from __future__ import annotations

import json

from ...errors import InputError
from ...evidence import export_bundle, verify_bundle_text
from ...ledger.transfer import dump_jsonl
from ...model.event import SYSTEM_LOG, intent_key
from ...replay import replay
from ..report import Gate
from ..scenario import AGENT, STEP_BY_NAME, TENANT
from ..state import Run, why, write_json


def replay_and_bundle(run: Run) -> None:
    ledger = run.home.ledger()
    try:
        store = ledger.store
        run.replay = replay(store, TENANT, verifier=ledger.verifier)
        run.logs = {log: list(store.events(log)) for log in (SYSTEM_LOG, TENANT)}
        intent_id = store.intent_for_key(TENANT, intent_key(AGENT, STEP_BY_NAME["prod-delete"].key))
        if intent_id is None:
            raise InputError("the approved intent (prod-delete) is not in the ledger")
        correlation = store.events_for_intent(TENANT, intent_id)[0].correlation_id
        bundle = export_bundle(ledger, TENANT, correlation)
        text = json.dumps(bundle, indent=2, sort_keys=True) + "\n"
        (run.out / "bundle.json").write_text(text, encoding="utf-8")
        public_key = ledger.key.verifier_key()
        (run.out / "public_key.txt").write_text(public_key + "\n", encoding="utf-8")
        (run.out / "audit_export.jsonl").write_text(
            "".join(line + "\n" for log in (SYSTEM_LOG, TENANT) for line in dump_jsonl(store, log)),
            encoding="utf-8",
        )
    finally:
        ledger.store.close()
    verdict = verify_bundle_text((run.out / "bundle.json").read_text(encoding="utf-8"), public_key)
    write_json(run.out / "bundle_verdict.json", verdict.to_json())
    run.bundle_passed = verdict.passed
    run.bundle_failures = verdict.failures


def judge_replay(run: Run) -> Gate:
    report = run.replay
    if report is None:
        return Gate("replay_equivalence", False, why(run, "replay"))
    ok = (
        report.verified
        and not report.divergences
        and report.checkpoint_verified is True
        and run.bundle_passed
    )
    first = report.first
    where = (
        f"; first divergence: seq {first.seq} {first.event_type} "
        f"field {first.field} ({first.reason})"
        if first
        else ""
    )
    bundle = "PASS" if run.bundle_passed else f"FAIL ({'; '.join(run.bundle_failures[:2])})"
    return Gate(
        "replay_equivalence",
        ok,
        f"replay of {TENANT}: verified={str(report.verified).lower()}, "
        f"{len(report.divergences)} divergences, {report.events} events, "
        f"{report.decisions} decisions, {report.votes} votes, "
        f"{report.executions} executions re-derived; "
        f"checkpoint_verified={str(report.checkpoint_verified).lower()} at size "
        f"{report.checkpoint_size}, root {report.root_hash[:16]}…; "
        f"evidence bundle verified offline with the public key: {bundle}{where}",
    )
