"""config_truth: the configuration in force hashes to itself, a fresh governor derives
the same hash from ``config.toml``, and every decision and vote names it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ...encoding import content_hash
from ...home import open_governor
from ...model.event import CONFIG_SNAPSHOT, DECISION_RECORDED, SYSTEM_LOG
from ..report import Gate
from ..scenario import TENANT
from ..state import Run, why


def config_in_force(run: Run) -> dict[str, Any]:
    """The config hash a fresh governor derives from config.toml, and what opening it wrote.

    The same governor signs a checkpoint of both logs: the replay and the
    evidence bundle are checked against them.
    """
    ledger = run.home.ledger()
    before = {log: ledger.size(log) for log in (SYSTEM_LOG, TENANT)}
    ledger.store.close()
    with open_governor(run.home.path) as governor:
        recomputed = governor.config_hash
        config = governor.config
        for log in (SYSTEM_LOG, TENANT):
            governor.ledger.checkpoint(log)
        after = {log: governor.ledger.size(log) for log in (SYSTEM_LOG, TENANT)}
    return {
        "recomputed_hash": recomputed,
        "recomputed": config,
        "reopen_wrote": {log: after[log] - before[log] for log in before},
        "config_toml_sha256": hashlib.sha256(run.home.config_path.read_bytes()).hexdigest(),
    }


def judge_config(run: Run) -> tuple[dict[str, Any], Gate]:
    snapshots = [e for e in run.logs.get(SYSTEM_LOG, []) if e.type == CONFIG_SNAPSHOT]
    if not snapshots or not run.config:
        return {}, Gate("config_truth", False, why(run, "config", "replay"))
    in_force = snapshots[-1]
    payload = in_force.payload
    hashed = content_hash(payload["config"]) == payload["config_hash"]
    recomputed = run.config["recomputed_hash"] == payload["config_hash"]
    wrote = sum(run.config["reopen_wrote"].values())
    named = [
        e.payload["decision"].get("config_hash")
        for e in run.logs.get(TENANT, [])
        if e.type == DECISION_RECORDED
    ]
    votes = [
        e.payload["cast"].get("config_hash")
        for e in run.logs.get(TENANT, [])
        if isinstance(e.payload.get("cast"), dict)
    ]
    agree = sum(1 for h in named if h == payload["config_hash"])
    votes_agree = sum(1 for h in votes if h == payload["config_hash"])
    ok = (
        hashed
        and recomputed
        and wrote == 0
        and bool(named)
        and agree == len(named)
        and votes_agree == len(votes)
    )
    gate = Gate(
        "config_truth",
        ok,
        f"config {payload['config_hash']} in force (config.snapshot seq {in_force.seq} of "
        f"{len(snapshots)}), hashes to itself={str(hashed).lower()}; a fresh governor derives "
        f"the same hash from config.toml={str(recomputed).lower()} and wrote {wrote} events; "
        f"{agree}/{len(named)} decisions and {votes_agree}/{len(votes)} votes name it",
    )
    return payload, gate
