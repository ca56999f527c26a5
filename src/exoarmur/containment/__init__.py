"""Containment: reversible, TTL-bound controls inside the domain, and plans of them.

A containment action is an intent (``containment.<effector>``) whose params
carry a ``containment`` object (scope, TTL, evidence level); since params
are part of the intent's canonical form, the intent hash, approvals, replay
and evidence bundles cover it. Controls in force are a fold over the ledger
(:mod:`.fold`); plans are ordered lists of such actions with a content hash
(:mod:`.plans`). The pure modules here never read a clock or a store: the
live room (:mod:`.room`) and the effectors (:mod:`.effectors`) do.
"""

from .model import (
    EFFECTORS,
    PLAN_ACTION,
    ContainmentSpec,
    Scope,
    containment_spec,
)

__all__ = ["EFFECTORS", "PLAN_ACTION", "ContainmentSpec", "Scope", "containment_spec"]
