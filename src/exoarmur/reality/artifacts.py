"""Writing the evidence directory: one file per gate's findings, ``PASS_FAIL.txt``, the manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..encoding import format_time
from .gates.config_truth import judge_config
from .gates.deployment import judge_deployment
from .gates.durable_persistence import judge_durable
from .gates.human_action_truth import judge_human, operator_actions
from .gates.idempotency import judge_idempotency
from .gates.replay_equivalence import judge_replay
from .gates.restart_survival import finals, judge_restart
from .gates.time_truth import judge_time
from .parent import ServiceLog
from .report import Gate, RealityReport
from .scenario import ACKS_BEFORE_KILL, KILL_STEP, STEPS, TENANT
from .state import FINDINGS, Run, write_json


def _judged(
    name: str, judge: Callable[[], tuple[dict[str, Any], Gate]]
) -> tuple[dict[str, Any], Gate]:
    """A gate that cannot even be judged (unreadable evidence) fails; it never crashes the run."""
    try:
        return judge()
    except FINDINGS as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}, Gate(
            name, False, f"could not be judged: {type(exc).__name__}: {exc}"
        )


def write_evidence(run: Run, log: ServiceLog) -> tuple[tuple[Gate, ...], tuple[str, ...]]:
    out = run.out
    time_model, time_gate = _judged("time_truth", lambda: judge_time(run))
    idempotency, idempotency_gate = _judged("idempotency", lambda: judge_idempotency(run))
    config, config_gate = _judged("config_truth", lambda: judge_config(run))
    gates = (
        _judged("durable_persistence", lambda: ({}, judge_durable(run)))[1],
        _judged("restart_survival", lambda: ({}, judge_restart(run, finals(run))))[1],
        _judged("replay_equivalence", lambda: ({}, judge_replay(run)))[1],
        _judged("deployment", lambda: ({}, judge_deployment(run)))[1],
        time_gate,
        idempotency_gate,
        config_gate,
        _judged("human_action_truth", lambda: ({}, judge_human(run)))[1],
    )
    actions: list[dict[str, Any]] = []
    with run.phase("operator_actions"):
        actions = operator_actions(run)
    (out / "service.log").write_text("".join(line + "\n" for line in log.lines), "utf-8")
    write_json(out / "storage_state.json", run.storage)
    write_json(out / "replay_report.json", run.replay.to_json() if run.replay else None)
    write_json(out / "config_snapshot.json", config)
    (out / "config_hash.txt").write_text(str(config.get("config_hash", "")) + "\n", "utf-8")
    write_json(out / "time_model.json", time_model)
    write_json(out / "idempotency_report.json", idempotency)
    (out / "operator_actions.jsonl").write_text(
        "".join(json.dumps(a, sort_keys=True) + "\n" for a in actions), "utf-8"
    )
    write_json(out / "deployment.json", run.deployment)
    lines = [gate.line() for gate in gates]
    passed = all(gate.passed for gate in gates)
    lines.append(f"REALITY_RESULT={'PASS' if passed else 'FAIL'}")
    (out / "PASS_FAIL.txt").write_text("\n".join(lines) + "\n", "utf-8")
    artifacts = (*sorted(p.name for p in out.iterdir() if p.is_file()), "manifest.json")
    return gates, artifacts


def write_manifest(run: Run, report: RealityReport, source_time: datetime) -> None:
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.out.iterdir())
        if p.is_file()
    }
    write_json(
        run.out / "manifest.json",
        {
            "run_id": run.run_id,
            "started_at": format_time(source_time),
            "seconds": round(report.seconds, 3),
            "result": report.result,
            "tenant": TENANT,
            "home": str(run.home.path),
            "principals": run.principals,
            "scenario": [step.name for step in STEPS],
            "kill_step": KILL_STEP,
            "acks_before_kill": ACKS_BEFORE_KILL,
            "children": [
                {
                    "process": f"child-{c.index}",
                    "returncode": c.returncode,
                    "acks": len(c.acks),
                    "killed": c.killed,
                    "finished": c.finished,
                    "timed_out": c.timed_out,
                }
                for c in run.children
            ],
            "problems": run.problems,
            "sha256": files,
        },
    )
