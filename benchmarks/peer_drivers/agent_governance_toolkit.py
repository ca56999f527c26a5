"""Microsoft's Agent Governance Toolkit: policy evaluation plus audit, and its kernel.

Runs in its own virtual environment and prints one JSON document. Two paths,
both as the toolkit's own benchmarks (``packages/agent-os/benchmarks``)
exercise them:

- ``allow`` / ``deny``: ``PolicyEvaluator.evaluate`` on a ``PolicyDocument``
  that forbids the ``db/prod`` target (priority 100), allows safety class A0
  (priority 10) and denies by default, then one ``AuditEntry`` appended to an
  in-memory audit log (``bench_policy.py`` + ``bench_audit.py``);
- ``kernel_allow`` / ``kernel_deny``: ``StatelessKernel.execute`` with the
  ``read_only`` policy, ``read_data`` allowed and ``file_write`` blocked
  (``bench_kernel.py``), driven by one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
warnings.simplefilter("ignore", DeprecationWarning)  # agent_os announces its rename on import

from _timing import timed  # noqa: E402
from agent_os.base_agent import AuditEntry  # noqa: E402
from agent_os.policies.evaluator import PolicyEvaluator  # noqa: E402
from agent_os.policies.schema import (  # noqa: E402
    PolicyAction,
    PolicyCondition,
    PolicyDefaults,
    PolicyDocument,
    PolicyOperator,
    PolicyRule,
)
from agent_os.stateless import ExecutionContext, MemoryBackend, StatelessKernel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    document = PolicyDocument(
        version="1.0",
        name="bench",
        rules=[
            PolicyRule(
                name="never-prod-db",
                condition=PolicyCondition(
                    field="target", operator=PolicyOperator.EQ, value="db/prod"
                ),
                action=PolicyAction.DENY,
                priority=100,
            ),
            PolicyRule(
                name="allow-read-only",
                condition=PolicyCondition(
                    field="safety_class", operator=PolicyOperator.EQ, value="A0"
                ),
                action=PolicyAction.ALLOW,
                priority=10,
            ),
        ],
        defaults=PolicyDefaults(action=PolicyAction.DENY),
    )
    evaluator = PolicyEvaluator(policies=[document])
    audit_log: list[AuditEntry] = []

    def governed(target: str):
        def one(i: int) -> Any:
            context = {
                "agent_id": "agent-1",
                "action": "bench.read",
                "target": target,
                "safety_class": "A0",
                "tenant": "acme",
                "params": {"path": target, "bytes": 4096, "attempt": i},
            }
            decision = evaluator.evaluate(context)
            audit_log.append(
                AuditEntry(
                    timestamp=datetime.now(UTC),
                    agent_id="agent-1",
                    request_id=f"bench-{i}",
                    action="bench.read",
                    params=context["params"],
                    decision=decision,
                    result_success=decision.allowed,
                )
            )
            return decision

        return one

    kernel = StatelessKernel(backend=MemoryBackend())
    loop = asyncio.new_event_loop()

    def kernel_call(action: str):
        def one(i: int) -> Any:
            context = ExecutionContext(agent_id="agent-1", policies=["read_only"])
            return loop.run_until_complete(kernel.execute(action, {"key": f"k{i}"}, context))

        return one

    rows = {
        "allow": timed("allow", args.n, governed("reports/q3.txt"), lambda d: d.allowed),
        "deny": timed("deny", args.n, governed("db/prod"), lambda d: not d.allowed),
        "kernel_allow": timed(
            "kernel_allow", args.n, kernel_call("read_data"), lambda r: r.success
        ),
        "kernel_deny": timed(
            "kernel_deny", args.n, kernel_call("file_write"), lambda r: not r.success
        ),
    }
    loop.close()
    report = {
        "peer": "agent-governance-toolkit",
        "version": version("agent-governance-toolkit"),
        "core_version": version("agent-governance-toolkit-core"),
        "python": sys.version.split()[0],
        "rows": rows,
        "audit_entries": len(audit_log),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
