"""Every error the client raises, in one tree; API problems mapped by status.

    ClientError                   (an ExoArmurError)
    ├── ServiceUnreachable        no answer from the service (after the retries)
    ├── WaitTimedOut              ``wait`` gave up; the intent still waits (``last`` says where)
    ├── ProtocolViolation         the service answered something this client cannot read
    └── APIError                  the service answered with a problem (``status``, ``code``,
        │                         ``message``, ``detail`` as in every ErrorBody)
        ├── InvalidRequest        400, 413, 415, 422: fix the request; nothing was written
        ├── Unauthenticated       401: no, a bad or a revoked API key
        ├── Forbidden             403: authenticated, not allowed (recorded)
        ├── NotFoundError         404: not in a tenant you act for
        ├── ConflictError         409: the intent's state refuses it (the message says why)
        ├── TooBusy               429: retried; still busy (``retry_after``)
        ├── Unavailable           503: retried; the store or policy is unavailable
        └── ServerError           500, and any other status

Bad requests and a failed environment are apart, as in :mod:`exoarmur.errors`:
``InvalidRequest`` is yours to fix, ``ServiceUnreachable``/``Unavailable`` to retry later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ExoArmurError

if TYPE_CHECKING:
    from ..model.decision import Outcome


class ClientError(ExoArmurError):
    """Base of every error the client raises."""


class ServiceUnreachable(ClientError):
    """The service could not be reached, or did not answer, after the bounded retries."""


class ProtocolViolation(ClientError):
    """The service answered something that is not what its API documents."""


class WaitTimedOut(ClientError):
    """``wait`` reached its timeout while the intent still waited (pending or running)."""

    def __init__(self, message: str, last: Outcome | None) -> None:
        self.last = last
        super().__init__(message)


class APIError(ClientError):
    """The service answered with a problem: ``{"error", "message", "detail"}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or []
        self.retry_after = retry_after
        super().__init__(f"{status} {code}: {message}")


class InvalidRequest(APIError):
    """400, 413, 415 or 422: the request is wrong; ``detail`` names each field and rule."""


class Unauthenticated(APIError):
    """401: no API key, or a malformed, unknown or revoked one."""


class Forbidden(APIError):
    """403: the key's principal may not do this (the service recorded the refusal)."""


class NotFoundError(APIError):
    """404: nothing by that name in a tenant you act for."""


class ConflictError(APIError):
    """409: refused by the intent's state (already voted, started, reported, denied…)."""


class TooBusy(APIError):
    """429: too many requests in flight, still after the retries."""


class Unavailable(APIError):
    """503: the store or the policy is unavailable, still after the retries."""


class ServerError(APIError):
    """500 or an undocumented status: the service failed; its log has the details."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: TooBusy,
    503: Unavailable,
}


def problem(status: int, body: object, retry_after: float | None) -> APIError:
    """The error for a problem answer (its body as parsed JSON, or None when it was not JSON)."""
    kind = _BY_STATUS.get(status, ServerError)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        detail = body.get("detail")
        return kind(
            status,
            str(body.get("error", "unknown")),
            body["message"],
            [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else None,
            retry_after,
        )
    return kind(status, "unknown", f"HTTP {status} with no problem body", None, retry_after)
