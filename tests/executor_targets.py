"""Functions that tests name in ``PythonExecutor`` configuration (``executor_targets:...``)."""

from __future__ import annotations

from typing import Any

from exoarmur.executors import ExecutionFailed
from exoarmur.model import ActionIntent

NOT_CALLABLE = 42


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
