"""Why ExoArmur said no, in the few words an agent is shown."""

from __future__ import annotations

from ..model.decision import Outcome, OutcomeStatus


def refusal_reasons(outcome: Outcome) -> list[str]:
    """Determining policies, the gate's controls (a kill switch names its scope), errors."""
    reasons = [f"policy {r}" for r in outcome.decision.reasons]
    gate = outcome.decision.gate
    if gate is not None:
        controls = ", ".join(str(c) for c in gate.get("controls", ()))
        reason = str(gate.get("reason", "the safety gate"))
        reasons.append(f"{controls}: {reason}" if controls else reason)
    if outcome.status == OutcomeStatus.BLOCKED and outcome.error:
        reasons.append(outcome.error)
    if outcome.status == OutcomeStatus.REJECTED and outcome.error:
        reasons.append(f"rejected: {outcome.error}")
    reasons.extend(outcome.decision.errors)
    return reasons
