"""W3C Trace Context: the trace id an incoming ``traceparent`` names, checked.

An intent's ``intent.recorded`` event carries the caller's trace id (when one
came in) beside the intent, not inside it: the intent's hash, its approvals
and its idempotency do not depend on which trace delivered it. The payload is
covered by the leaf hash, so ``verify`` checks the trace id like every byte.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import IntentError

#: version-trace_id-parent_id-flags (https://www.w3.org/TR/trace-context/#traceparent-header)
_TRACEPARENT: Final = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}"
    r"(?P<rest>-.*)?"
)
TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_ZERO_TRACE: Final = "0" * 32
_ZERO_PARENT: Final = "0" * 16


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent``; None when absent or malformed.

    Malformed is ignored, as Trace Context asks of a receiver: version ``ff``,
    an all-zero trace or parent id, upper-case hex, or version ``00`` with
    anything after the flags. A later version may append fields.
    """
    if traceparent is None:
        return None
    found = _TRACEPARENT.fullmatch(traceparent.strip(" \t"))
    if found is None:
        return None
    version, rest = found["version"], found["rest"]
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if found["trace"] == _ZERO_TRACE or found["parent"] == _ZERO_PARENT:
        return None
    return found["trace"]


def checked_trace_id(trace_id: str | None) -> str | None:
    """``trace_id`` when it is one (32 lower-case hex digits, not all zero); else IntentError."""
    if trace_id is None:
        return None
    if not isinstance(trace_id, str) or not TRACE_ID.fullmatch(trace_id) or trace_id == _ZERO_TRACE:
        raise IntentError(
            [("trace_id", "must be 32 lower-case hex digits, not all zero (W3C Trace Context)")]
        )
    return trace_id
