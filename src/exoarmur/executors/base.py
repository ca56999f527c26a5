"""The executor protocol: the one shape every side effect takes.

An executor carries out an intent that has already been allowed, gated and,
where required, approved. It is reached only through the pipeline, which
records ``execution.started`` before calling it and the outcome after.

An executor must never decide anything (that is policy's and the gate's job)
and must never swallow a failure: a failed action raises, so that the ledger
records "failed" and not a success that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ..encoding import canonical_bytes
from ..errors import ConfigError, ExecutorError, InputError
from ..model.intent import ActionIntent


class ExecutionFailed(Exception):
    """The action itself failed (for example, the remote end answered HTTP 500).

    Raised by an executor; the pipeline records the outcome as "failed" with
    this message, so the message is one line and says what went wrong where.
    ``retryable`` says a new attempt may succeed (a timeout, a 503); the
    pipeline retries only when the binding allows it (``retries = N``), and
    records every failed attempt.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Executor(Protocol):
    """Carries out one allowed intent and returns what happened."""

    #: Executor type recorded in the ledger: "echo", "http", "python", ...
    kind: str

    def execute(self, intent: ActionIntent) -> Any:
        """Do the action; return a JSON value (the recorded result).

        Raises :class:`ExecutionFailed` when the action failed.
        """
        ...


#: What an ``exoarmur.executors`` entry point resolves to: it builds an
#: executor from its configuration table (without the ``type`` key) and
#: raises :class:`~exoarmur.errors.ConfigError` naming the field it rejects.
ExecutorFactory = Callable[[Mapping[str, Any]], Executor]


def recordable(kind: str, result: Any) -> Any:
    """``result`` unchanged if the ledger can record it, else :class:`ExecutorError`.

    Checked here rather than left to the pipeline's hashing, whose error would
    read as the caller's bad input although the action may well have happened.
    """
    try:
        canonical_bytes(result)
    except InputError as exc:
        raise ExecutorError(
            f"{kind} executor returned a result that cannot be recorded as JSON "
            f"({exc}); the action may have taken effect"
        ) from exc
    return result


def check_fields(
    config: Mapping[str, Any],
    *,
    allowed: Collection[str],
    required: Collection[str] = (),
) -> None:
    """Reject a configuration table with unknown or missing fields."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"must be a table of settings, not {type(config).__name__}")
    for key in config:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"unknown field {key!r} (allowed: {known})")
    for key in required:
        if key not in config:
            raise ConfigError(f"field {key!r} is required")
