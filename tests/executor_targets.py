"""Functions that tests name in ``PythonExecutor`` configuration (``executor_targets:...``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from exoarmur.executors import ExecutionFailed
from exoarmur.model import ActionIntent

NOT_CALLABLE = 42


#: how long ``wait_for_release`` waits at most: far beyond any test, short of a hung CI job
RELEASE_BOUND_SECONDS = 120


def wait_for_release(intent: ActionIntent) -> dict[str, Any]:
    """A slow action: says it started (a file), runs until released (another file)."""
    Path(intent.params["started"]).touch()
    release = Path(intent.params["release"])
    deadline = time.monotonic() + RELEASE_BOUND_SECONDS
    while not release.exists():
        if time.monotonic() > deadline:
            raise ExecutionFailed("never released")
        time.sleep(0.02)
    return {"released": True}


def restart(intent: ActionIntent) -> dict[str, Any]:
    return {"restarted": intent.target, "params": dict(intent.params)}


def refuse(intent: ActionIntent) -> None:
    raise ExecutionFailed(f"{intent.target} refused to restart")


def opaque(intent: ActionIntent) -> object:
    return object()


class Service:
    @staticmethod
    def stop(intent: ActionIntent) -> str:
        return f"stopped {intent.target}"
