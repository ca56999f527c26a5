"""Kill-switch scopes: what a switch covers, as text an operator types.

    global                       every action of every tenant
    tenant:<t>                   every action of one tenant
    action:<pattern>             matching actions of every tenant (e.g. action:fs.*)
    tenant:<t>/action:<pattern>  matching actions of one tenant

Patterns use ``*`` as the only wildcard (it crosses dots), like executor
bindings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..errors import InputError
from ..model.intent import TENANT_PATTERN

_PATTERN = re.compile(r"^[A-Za-z0-9_.*-]{1,128}$")
_TENANT = re.compile(TENANT_PATTERN)


@dataclass(frozen=True)
class Scope:
    tenant: str | None
    action: str | None

    @property
    def text(self) -> str:
        parts = []
        if self.tenant is not None:
            parts.append(f"tenant:{self.tenant}")
        if self.action is not None:
            parts.append(f"action:{self.action}")
        return "/".join(parts) or "global"

    @property
    def sort_key(self) -> tuple[str, bool, str]:
        """A total order over scopes (None never meets a str): tenant, then action."""
        return (self.tenant or "", self.action is not None, self.action or "")

    @property
    def all_tenants(self) -> bool:
        return self.tenant is None

    def covers(self, tenant: str, action: str) -> bool:
        if self.tenant is not None and self.tenant != tenant:
            return False
        return self.action is None or fnmatchcase(action, self.action)


def parse_scope(text: str) -> Scope:
    """Parse a scope string; InputError names the rule broken."""
    text = text.strip()
    if text == "global":
        return Scope(None, None)
    tenant: str | None = None
    action: str | None = None
    parts = text.split("/")
    if len(parts) > 2:
        raise InputError(f"scope: {text!r} has more than two parts")
    for part in parts:
        kind, _, value = part.partition(":")
        if kind == "tenant" and tenant is None and action is None:
            if not _TENANT.match(value):
                raise InputError(f"scope: tenant {value!r} does not match {TENANT_PATTERN}")
            tenant = value
        elif kind == "action" and action is None:
            if not _PATTERN.match(value):
                raise InputError(
                    f"scope: action pattern {value!r} may hold letters, digits, . _ - and *"
                )
            action = value
        else:
            raise InputError(
                f"scope: {text!r} is not global, tenant:T, action:PATTERN "
                "or tenant:T/action:PATTERN"
            )
    return Scope(tenant, action)
