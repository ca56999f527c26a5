"""The guard every bound executor runs inside.

A plugin writes only ``execute``; whatever it does wrong (raises anything, or
returns a value the ledger cannot record) comes out of the guard as one
:class:`ExecutionFailed`, with ``retryable`` set only when the plugin itself
said a new attempt may succeed. The governor's runner therefore never
inspects a foreign exception: it re-checks the gate, calls, and records.

The guard never decides and never retries; it only translates.
"""

from __future__ import annotations

from typing import Any

from ..encoding import canonical_bytes, sha256_hex
from ..errors import InputError
from ..model.intent import ActionIntent
from .base import ExecutionFailed, Executor


class Guarded:
    """An executor whose every failure is an :class:`ExecutionFailed`.

    A result it returns is known to have canonical bytes, so recording it
    cannot fail after the side effect happened.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.kind = inner.kind

    def execute(self, intent: ActionIntent) -> Any:
        return self.call(intent)[0]

    def call(self, intent: ActionIntent) -> tuple[Any, str]:
        """The result and its content hash, from the one canonical serialization it needs."""
        try:
            result = self.inner.execute(intent)
        except ExecutionFailed:
            raise
        except Exception as exc:  # any executor failure is recorded, never raised
            raise ExecutionFailed(f"{type(exc).__name__}: {exc}") from exc
        try:
            canonical = canonical_bytes(result)
        except InputError as exc:
            raise ExecutionFailed(f"executor returned a result that is not JSON: {exc}") from exc
        return result, "sha256:" + sha256_hex(canonical)


def guard(executor: Executor) -> Guarded:
    """``executor`` inside the guard (a guarded one is not wrapped twice)."""
    return executor if isinstance(executor, Guarded) else Guarded(executor)
