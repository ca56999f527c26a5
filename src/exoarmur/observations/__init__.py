"""Observations, beliefs and the identity shadow: evidence and influence, never permission.

Telemetry observations are recorded in the tenant's log; deterministic
detectors turn them into beliefs; a belief about a subject opens a shadow
that follows it under its correlated identifiers. None of it approves,
allows or lowers anything: a shadow can only say which plan is ready and
let the evidence requirement rise.

The package itself exports only the pure pieces (replay imports them);
``observations.intake`` is the writer, reached by the faces.
"""

from .model import Observation, parse_batch, parse_observation
from .shadow import ShadowStatus, shadow_key, shadow_status

__all__ = [
    "Observation",
    "ShadowStatus",
    "parse_batch",
    "parse_observation",
    "shadow_key",
    "shadow_status",
]
