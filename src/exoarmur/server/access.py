"""Who may do what over HTTP: roles × rights × tenants, as a pure table.

The rule every endpoint follows: authenticate, then check the caller's right
to the tenant it names, and only then look anything up. So another tenant's
intent and a missing one cannot be told apart (403 for a tenant you do not
act for, 404 inside your own), and every refusal is recorded (see ``audit``).

The approval book still rules on every vote (separation of duties, quorum,
binding); these rights only decide who reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NoReturn

from ..errors import NotFound, PermissionDenied
from ..pipeline import Governor
from ..principals import ALL_TENANTS, Principal
from .audit import record_refusal


class Right(StrEnum):
    SUBMIT = "submit intents"
    READ_INTENTS = "read intents"
    READ_APPROVALS = "list pending approvals"
    VOTE = "approve or reject intents"
    #: ruled on by the governor itself (it records its refusals); listed for the table
    CONTROL = "switch kill switches and set posture"
    READ_CONTROLS = "read kill switches and posture"
    READ_LEDGER = "read and export the ledger"
    #: for a tenant: operators and admins; for every tenant without its own: admins
    ACTIVATE_POLICY = "activate a policy bundle"
    EXPLAIN_POLICY = "explain and test policy"
    MANAGE_PRINCIPALS = "add, revoke and rotate principals"


RIGHTS: Final[Mapping[str, frozenset[Right]]] = {
    "agent": frozenset({Right.SUBMIT, Right.READ_INTENTS}),
    "operator": frozenset(
        {
            Right.READ_INTENTS,
            Right.READ_APPROVALS,
            Right.VOTE,
            Right.CONTROL,
            Right.READ_CONTROLS,
            Right.READ_LEDGER,
            Right.ACTIVATE_POLICY,
            Right.EXPLAIN_POLICY,
        }
    ),
    "auditor": frozenset(
        {
            Right.READ_INTENTS,
            Right.READ_APPROVALS,
            Right.READ_CONTROLS,
            Right.READ_LEDGER,
            Right.EXPLAIN_POLICY,
        }
    ),
    "admin": frozenset(Right),
}

#: the actor kinds a role may submit as (``system`` is ExoArmur itself, never a caller)
SUBMIT_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "agent": frozenset({"agent", "service"}),
    "admin": frozenset({"agent", "service", "operator"}),
}


def permits(principal: Principal, right: Right, tenant: str | None) -> bool:
    """Whether ``principal`` has ``right`` in ``tenant`` (None: across every tenant)."""
    if right not in RIGHTS.get(principal.role, frozenset()):
        return False
    if tenant is None:
        return ALL_TENANTS in principal.tenants
    return principal.acts_for(tenant)


def sees_intent(principal: Principal, actor_id: str) -> bool:
    """An agent sees only the intents it proposed; other roles see their tenants' intents."""
    return principal.role != "agent" or actor_id == principal.name


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, through which governor, attempting what."""

    principal: Principal
    governor: Governor
    #: the request line, as recorded when something is refused
    attempt: str

    def has_role_for(self, right: Right) -> None:
        """Refuse now (before reading the body) a role that never has ``right``."""
        if right not in RIGHTS.get(self.principal.role, frozenset()):
            self.refuse(None, f"role {self.principal.role} may not {right}")

    def require(self, right: Right, tenant: str | None) -> None:
        """Refuse unless the principal has ``right`` in ``tenant`` (None: every tenant)."""
        if not permits(self.principal, right, tenant):
            where = f"tenant {tenant}" if tenant is not None else "every tenant"
            self.refuse(tenant, f"{self.principal.role} may not {right} in {where}")

    def refuse(self, tenant: str | None, why: str) -> NoReturn:
        record_refusal(self.governor, self.principal, tenant, self.attempt, why)
        raise PermissionDenied(f"principal {self.principal.name}: {why}")

    def hide(self, tenant: str, intent_id: str) -> NoReturn:
        """Answer exactly as for a missing intent, and record that it was not."""
        why = "an agent may read only its own intents (answered as not found)"
        record_refusal(self.governor, self.principal, tenant, self.attempt, why)
        raise NotFound(f"no intent {intent_id!r} in tenant {tenant!r}")
