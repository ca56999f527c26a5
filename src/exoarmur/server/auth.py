"""Authentication: ``Authorization: Bearer <api key>`` → the principal, or a recorded 401.

Identity comes from the key (checked by the governor: hashed, constant
time), never from a name in the request. A missing or bad key is answered
401 with ``WWW-Authenticate: Bearer`` and recorded as ``access.refused``
within the refusal budget (see ``audit``), counted beyond it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import AuthenticationError
from ..pipeline import Governor
from .access import Caller
from .audit import RefusalAudit, presented_key_id

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="exo_<key id>_<secret>",
    description="An API key printed once by `exoarmur principal add`.",
)


def governor_of(request: Request) -> Governor:
    governor: Governor = request.app.state.governor
    return governor


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Dependency: the authenticated caller (a plain function: it runs in the thread pool)."""
    governor = governor_of(request)
    attempt = f"{request.method} {request.url.path}"
    audit: RefusalAudit = request.app.state.refusals
    source = request.client.host if request.client else "unknown"
    if credentials is None:
        audit.refuse(source, None, attempt, "no credentials")
        raise AuthenticationError("no credentials: send Authorization: Bearer <api key>")
    try:
        principal = governor.authenticate(credentials.credentials)
    except AuthenticationError as exc:
        key_id = presented_key_id(credentials.credentials)
        detail = f"{exc} (key id {key_id})" if key_id else str(exc)
        audit.refuse(source, key_id, attempt, detail)
        raise
    return Caller(principal=principal, governor=governor, attempt=attempt)


CallerDep = Annotated[Caller, Depends(authenticated)]
