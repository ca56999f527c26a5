"""exoarmur-core 2.1.0 (the original ExoArmur Core): ProxyPipeline allow and deny paths.

Runs in its own virtual environment (its import name, ``exoarmur``, is ours
too) and prints one JSON document. The pipeline is built from the
components the package ships: ``SimplePolicyDecisionPoint`` with one
``PolicyRule`` (GET on the reports host allowed; nothing else matches, so
everything else is denied), the default ``SafetyGate``, the in-memory
``V2AuditEmitter``, and an echo executor (the package bundles none that runs
an ActionIntent; its own SDK defines a mock inline the same way). Each timed
operation builds the ``ActionIntent`` (pydantic, as ours validates the
intent dict) and calls ``ProxyPipeline.execute_with_trace``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _timing import timed
from exoarmur.execution_boundary_v2.interfaces.executor_plugin import ExecutorResult
from exoarmur.execution_boundary_v2.models.action_intent import ActionIntent
from exoarmur.execution_boundary_v2.pipeline.proxy_pipeline import (
    ProxyPipeline,
    V2AuditEmitter,
)
from exoarmur.execution_boundary_v2.policy.policy_models import PolicyRule
from exoarmur.execution_boundary_v2.policy.simple_pdp import SimplePolicyDecisionPoint
from exoarmur.safety.safety_gate import SafetyGate


class EchoExecutor:
    """Returns what it was asked to do, like ExoArmur's echo executor; no I/O."""

    def capabilities(self) -> dict[str, Any]:
        return {"executor_name": "echo", "version": "1.0.0", "capabilities": ["bench.read"]}

    def execute(self, intent: ActionIntent, decision: Any = None, context: Any = None) -> Any:
        output = {
            "action": intent.action_type,
            "target": intent.target,
            "params": intent.parameters,
        }
        return ExecutorResult(success=True, output=output)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    rules = [
        PolicyRule(
            rule_id="allow-read-only",
            description="reads of the reports host",
            allowed_domains=["reports.example"],
            allowed_methods=["GET"],
        )
    ]
    emitter = V2AuditEmitter(tenant_id="acme", cell_id="cell-1")
    pipeline = ProxyPipeline(
        SimplePolicyDecisionPoint(rules), SafetyGate(), EchoExecutor(), emitter
    )

    def governed(host: str):
        def one(i: int) -> Any:
            intent = ActionIntent(
                intent_id=f"{i + 10_000_000:026d}",
                actor_id="agent-1",
                actor_type="agent",
                action_type="bench.read",
                target=f"https://{host}/q3.txt",
                parameters={"method": "GET", "bytes": 4096, "attempt": i},
                timestamp=datetime.now(UTC),
                tenant_id="acme",
                cell_id="cell-1",
            )
            result, _trace = pipeline.execute_with_trace(intent)
            return result

        return one

    report = {
        "peer": "exoarmur-core",
        "version": version("exoarmur-core"),
        "python": sys.version.split()[0],
        "rows": {
            "allow": timed("allow", args.n, governed("reports.example"), lambda r: r.success),
            "deny": timed(
                "deny", args.n, governed("db.prod"), lambda r: not r.success and r.error == "DENIED"
            ),
        },
        "audit_events": len(emitter.audit_events),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
