"""One reality run, phase by phase: prepare, child 1 and its kill, child 2, replay, evidence."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..clock import SystemClock
from ..encoding import format_time
from ..errors import InputError
from ..home import Home
from .artifacts import write_evidence, write_manifest
from .gates.config_truth import config_in_force
from .gates.deployment import observe_deployment
from .gates.durable_persistence import observe_durability, storage_state
from .gates.replay_equivalence import replay_and_bundle
from .gates.restart_survival import observe_after
from .parent import ServiceLog, drive
from .report import RealityReport
from .scenario import KILL_STEP, TENANT, prepare
from .state import Run


def new_run_id(now: datetime | None = None) -> str:
    """A UTC timestamp and a short random suffix: the one use of the clock that names a run."""
    moment = now or SystemClock().now()
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def run_reality(
    out: Path,
    *,
    progress: Callable[[str], None] | None = None,
    run_id: str | None = None,
    before_replay: Callable[[Path], None] | None = None,
) -> RealityReport:
    """Run the reality check into ``out`` (empty or absent) and write the evidence there.

    ``before_replay`` is called with the ledger file's path after the
    children are done and the checkpoints signed, before the replay: a test
    uses it to corrupt one byte and see the replay catch it.
    """
    started = time.monotonic()
    say = progress or (lambda _: None)
    run_id = run_id or new_run_id()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"out: {out} exists and is not an empty directory")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    source_time = SystemClock().now()
    run = Run(out, run_id, Home(out / "home"), out / "keys", out / "side_effects.log", source_time)
    log = ServiceLog()

    say(f"initialising an empty home in {run.home.path}")
    with run.phase("setup"):
        run.principals = prepare(out, run_id)
    if "setup" not in run.problems:
        spec = {
            "home": str(run.home.path),
            "keys": str(run.keys),
            "source_time": format_time(source_time),
            "run_id": run_id,
        }
        say(f"child 1: running the scenario, SIGKILL once {KILL_STEP} is recorded")
        with run.phase("child-1"):
            run.children.append(drive(1, spec, run.effects, log, KILL_STEP))
        say("checking every acknowledged outcome after the kill")
        with run.phase("durability"):
            run.durable = observe_durability(run)
        say("child 2: resuming the scenario from the start")
        with run.phase("child-2"):
            run.children.append(drive(2, spec, run.effects, log, None))
        say("verifying the ledger and signing checkpoints")
        with run.phase("after"):
            run.after = observe_after(run)
        with run.phase("config"):
            run.config = config_in_force(run)
    if before_replay is not None:
        before_replay(run.home.ledger_path)
    say(f"replaying tenant {TENANT} from the ledger alone; exporting the evidence bundle")
    with run.phase("replay"):
        replay_and_bundle(run)
    if run.home.ledger_path.exists():  # opening a store on a missing file would create one
        with run.phase("storage"):
            run.storage = storage_state(run.home.ledger_path)
    say("checking the deployment")
    with run.phase("deployment"):
        run.deployment = observe_deployment()
    say(f"writing the evidence to {out}")
    gates, artifacts = write_evidence(run, log)
    report = RealityReport(
        run_id=run_id,
        out=out,
        gates=gates,
        seconds=time.monotonic() - started,
        artifacts=artifacts,
    )
    write_manifest(run, report, source_time)
    return report
