"""What a reality run found: one verdict per gate, and the run's result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

GATES = (
    "durable_persistence",
    "restart_survival",
    "replay_equivalence",
    "deployment",
    "time_truth",
    "idempotency",
    "config_truth",
    "human_action_truth",
)


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    evidence: str

    def line(self) -> str:
        evidence = " ".join(self.evidence.split())
        return f"{self.name}={'PASS' if self.passed else 'FAIL'} {evidence}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence}


@dataclass(frozen=True)
class RealityReport:
    """What one reality run found; ``passed`` only when every gate passed."""

    run_id: str
    out: Path
    gates: tuple[Gate, ...]
    seconds: float
    artifacts: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return len(self.gates) == len(GATES) and all(gate.passed for gate in self.gates)

    @property
    def result(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def gate(self, name: str) -> Gate:
        return next(gate for gate in self.gates if gate.name == name)

    def lines(self) -> list[str]:
        return [gate.line() for gate in self.gates] + [f"REALITY_RESULT={self.result}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "out": str(self.out),
            "result": self.result,
            "seconds": round(self.seconds, 3),
            "gates": [gate.to_json() for gate in self.gates],
            "artifacts": list(self.artifacts),
        }
