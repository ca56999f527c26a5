"""The parent's side of the children: start one, answer it, SIGKILL it at a known point.

What every child prints is kept, stamped as the parent read it, for
``service.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import SystemClock
from ..encoding import format_time
from .scenario import EFFECTS_ENV

CHILD_TIMEOUT_SECONDS = 120.0


@dataclass
class ChildRun:
    index: int
    returncode: int | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    killed: bool = False
    finished: bool = False
    timed_out: bool = False


class ServiceLog:
    """What the children printed, each line stamped when the parent read it."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, source: str, stream: str, text: str) -> None:
        stamp = format_time(self.clock.now())
        with self._lock:
            self.lines.append(f"{stamp} {source} {stream} {text.rstrip()}")


def drive(
    index: int, spec: dict[str, Any], effects: Path, log: ServiceLog, kill_in: str | None
) -> ChildRun:
    """Run child ``index``, answering each line with ``go``.

    With ``kill_in``, SIGKILL the child when it says the first delivery of
    that step is recorded: durable, and never acknowledged.
    """
    run = ChildRun(index)
    source = f"child-{index}"
    spec = spec | {"process": source}
    command = [sys.executable, "-m", "exoarmur.reality", "--child", json.dumps(spec)]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, EFFECTS_ENV: str(effects)},
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stderr is not None
        log.add(source, "parent", f"started pid {child.pid}: {sys.executable} -m exoarmur.reality")
        errors = child.stderr

        def drain_errors() -> None:
            for line in errors:
                log.add(source, "stderr", line)

        drain = threading.Thread(target=drain_errors, daemon=True)
        drain.start()

        def overdue() -> None:
            run.timed_out = True
            child.terminate()

        watchdog = threading.Timer(CHILD_TIMEOUT_SECONDS, overdue)
        watchdog.start()
        try:
            for line in child.stdout:
                log.add(source, "stdout", line)
                kind, _, body = line.partition(" ")
                record = json.loads(body) if body.startswith("{") else {}
                if kind == "RECORDED" and (record["step"], record["delivery"]) == (kill_in, 1):
                    os.kill(child.pid, signal.SIGKILL)
                    run.killed = True
                    log.add(
                        source,
                        "parent",
                        f"SIGKILL sent to pid {child.pid} after {len(run.acks)} ACKs: "
                        f"{kill_in} delivery 1 recorded, not acknowledged",
                    )
                    break
                if kind == "ACK":
                    run.acks.append(record)
                elif kind == "DONE":
                    run.finished = True
                if kind in ("RECORDED", "ACK"):
                    with contextlib.suppress(OSError):
                        child.stdin.write("go\n")
                        child.stdin.flush()
            run.returncode = child.wait()
        finally:
            watchdog.cancel()
        drain.join()
        log.add(source, "parent", f"exited with return code {run.returncode}")
    return run
