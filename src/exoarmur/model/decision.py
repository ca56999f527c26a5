"""Decisions and execution outcomes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    #: its referenced evidence is below the level required: it waits for evidence
    #: (``gate.held`` says what it becomes once the evidence is there)
    PENDING_EVIDENCE = "pending_evidence"


class Decision(BaseModel):
    """The policy verdict on one intent, with what it was decided under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Verdict
    #: ids (``@id`` annotations) of the policies that determined the verdict
    reasons: tuple[str, ...] = ()
    #: obligations from policy annotations (quorum, TTL bound, evidence level)
    obligations: dict[str, str] = Field(default_factory=dict)
    #: ``sha256:…`` of the policy bundle in force
    policy_hash: str
    #: evaluation errors; any error makes the verdict deny (fail closed)
    errors: tuple[str, ...] = ()
    #: ``sha256:…`` of the configuration snapshot in force
    config_hash: str | None = None
    #: how the safety gate tightened the policy verdict, if it did:
    #: {"policy_verdict", "controls": [...], "reason"}
    gate: dict[str, Any] | None = None

    @classmethod
    def from_canonical(cls, raw: dict[str, Any]) -> Decision:
        return cls(
            verdict=Verdict(raw["verdict"]),
            reasons=tuple(raw["reasons"]),
            obligations=raw["obligations"],
            policy_hash=raw["policy_hash"],
            errors=tuple(raw["errors"]),
            config_hash=raw.get("config_hash"),
            gate=raw.get("gate"),
        )

    def to_canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "obligations": dict(self.obligations),
            "policy_hash": self.policy_hash,
            "errors": list(self.errors),
        }
        if self.config_hash is not None:
            canonical["config_hash"] = self.config_hash
        if self.gate is not None:
            canonical["gate"] = self.gate
        return canonical


class OutcomeStatus(StrEnum):
    EXECUTED = "executed"  #: the executor ran and succeeded
    FAILED = "failed"  #: the executor ran and failed
    BLOCKED = "blocked"  #: allowed, then stopped by the gate right before the side effect
    DENIED = "denied"  #: policy (or the gate) said no; nothing ran
    DECIDED = "decided"  #: allowed, no executor bound: the caller carries it out
    PENDING_APPROVAL = "pending_approval"  #: waits for a quorum of people
    OUTCOME_UNKNOWN = "outcome_unknown"  #: started, never finished (crash); never re-run
    APPROVED = "approved"  #: quorum reached, no executor bound: the caller carries it out
    REJECTED = "rejected"  #: an approver rejected it; it never runs
    EXPIRED = "expired"  #: the approval window closed before the quorum; it never runs
    PENDING_EVIDENCE = "pending_evidence"  #: waits for the evidence its requirement names


class Outcome(BaseModel):
    """What a submission returns; reconstructed from the ledger for duplicates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent_id: str
    tenant: str
    correlation_id: str
    status: OutcomeStatus
    decision: Decision
    executor: str | None = None
    result: Any = None
    result_hash: str | None = None
    error: str | None = None
    #: true when this submission was a duplicate and nothing new was written
    duplicate: bool = False
