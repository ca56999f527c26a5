"""What a policy decision costs: PolicyEngine latency on a 100-policy bundle.

The bundle is generated from a seed: permits and forbids whose scopes name
actions and targets and whose conditions test params, the safety class and
the environment, some carrying obligations (approval quorum, windows,
evidence), the way an operator's bundle grows. The intents are generated from
the same seed so that every verdict (allow, deny, require_approval) occurs.

Two ways of deciding are timed on the same intents:

- ``decide``: one Cedar call per intent, each call timed;
- ``decide_batch``: one Cedar call per batch, the batch timed and divided by
  its size (the per-intent cost when the pipeline group-commits).

Before timing, every batched decision is compared with the one-by-one
decision: the two must agree. This script never decides anything from a time
(no thresholds, no pass/fail on speed).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rich.console import Console
from rich.table import Table

from exoarmur.model.intent import ActionIntent
from exoarmur.policy import PolicyBundle, PolicyEngine

POLICIES = 100
DEFAULT_N = 5000
QUICK_N = 200
DEFAULT_BATCH = 50
QUICK_BATCH = 20
WARMUP = 50

SERVICES = [f"svc{i:02d}" for i in range(20)]
VERBS = ["read", "list", "scale", "restart", "deploy", "delete", "rotate"]
ENVS = ["dev", "test", "staging", "prod"]
CLASSES = ["A0", "A1", "A2", "A3"]
EVIDENCE = ["low", "standard", "high"]


def _action(service: str, verb: str) -> str:
    return f'Action::"{service}.{verb}"'


def _target(service: str, k: int) -> str:
    return f'Target::"{service}/res-{k}"'


def generate_bundle(rng: random.Random, count: int = POLICIES) -> str:
    """``count`` policies: about two thirds permits, one third forbids."""
    policies = []
    for number in range(count):
        service = rng.choice(SERVICES)
        verbs = rng.sample(VERBS, rng.randint(1, 3))
        actions = ", ".join(_action(service, v) for v in verbs)
        conditions = []
        if rng.random() < 0.7:
            allowed = sorted(rng.sample(CLASSES, rng.randint(1, 3)))
            conditions.append(f"{json.dumps(allowed)}.contains(context.safety_class)")
        if rng.random() < 0.6:
            env = rng.choice(ENVS)
            conditions.append(f'context.params has env && context.params.env == "{env}"')
        if rng.random() < 0.4:
            conditions.append(
                f"context.params has size && context.params.size < {rng.randint(10, 1000)}"
            )
        forbid = number % 3 == 2
        if forbid:
            targets = ", ".join(_target(service, k) for k in rng.sample(range(10), 3))
            conditions.append(f"resource in [{targets}]")
            head = f'@id("forbid-{number:03d}")\nforbid'
        else:
            annotations = [f'@id("permit-{number:03d}")']
            if rng.random() < 0.3:
                annotations.append(f'@approval("{rng.randint(1, 3)}")')
                annotations.append(f'@approval_window("{rng.choice([300, 900, 3600])}")')
                annotations.append(f'@evidence("{rng.choice(EVIDENCE)}")')
            if rng.random() < 0.2:
                annotations.append(f'@ttl_max("{rng.choice([600, 3600, 86400])}")')
            head = "\n".join(annotations) + "\npermit"
        when = " &&\n  ".join(conditions) or "true"
        policies.append(f"{head} (\n  principal,\n  action in [{actions}],\n  resource\n)\n")
        policies[-1] += f"when {{\n  {when}\n}};\n"
    return "\n".join(policies)


def generate_intents(rng: random.Random, n: int) -> list[ActionIntent]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    intents = []
    for i in range(n):
        service = rng.choice(SERVICES)
        params: dict[str, Any] = {"env": rng.choice(ENVS)}
        if rng.random() < 0.7:
            params["size"] = rng.randint(0, 1200)
        intents.append(
            ActionIntent(
                intent_id=f"{i:026d}",
                tenant="acme",
                actor={"id": f"agent-{rng.randint(1, 8)}", "kind": "agent"},
                action=f"{service}.{rng.choice(VERBS)}",
                target=f"{service}/res-{rng.randint(0, 9)}",
                params=params,
                safety_class=rng.choice(CLASSES),
                idempotency_key=f"bench-policy-{i}",
                correlation_id=f"bench-policy-{i}",
                event_time=start + timedelta(seconds=i),
            )
        )
    return intents


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def measure(n: int, batch: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    text = generate_bundle(rng)
    t0 = time.perf_counter()
    engine = PolicyEngine(PolicyBundle.from_text(text, "bench.cedar"))
    load_ms = (time.perf_counter() - t0) * 1e3
    intents = generate_intents(rng, n)

    expected = [engine.decide(intent) for intent in intents]
    batched = [
        d for lo in range(0, n, batch) for d in engine.decide_batch(intents[lo : lo + batch])
    ]
    if batched != expected:
        raise SystemExit("decide_batch disagrees with decide; not timing a wrong answer")
    if any(d.errors for d in expected):
        raise SystemExit("the generated bundle raised evaluation errors; fix the generator")
    verdicts = Counter(d.verdict.value for d in expected)

    for intent in intents[:WARMUP]:
        engine.decide(intent)
    single = []
    for intent in intents:
        t = time.perf_counter()
        engine.decide(intent)
        single.append(time.perf_counter() - t)
    per_batch = []
    per_intent = []
    for lo in range(0, n, batch):
        chunk = intents[lo : lo + batch]
        t = time.perf_counter()
        engine.decide_batch(chunk)
        elapsed = time.perf_counter() - t
        per_batch.append(elapsed)
        per_intent.append(elapsed / len(chunk))
    single.sort()
    per_batch.sort()
    per_intent.sort()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "policies": len(engine.policies),
        "n": n,
        "batch": batch,
        "load_ms": load_ms,
        "verdicts": {v: verdicts.get(v, 0) for v in ("allow", "deny", "require_approval")},
        "decide": {
            "p50_us": percentile(single, 0.50) * 1e6,
            "p99_us": percentile(single, 0.99) * 1e6,
            "ops": n / sum(single),
        },
        "decide_batch": {
            "p50_us": percentile(per_intent, 0.50) * 1e6,
            "p99_us": percentile(per_intent, 0.99) * 1e6,
            "batch_p50_us": percentile(per_batch, 0.50) * 1e6,
            "batch_p99_us": percentile(per_batch, 0.99) * 1e6,
            "ops": n / sum(per_batch),
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cedarpy": _package("cedarpy"),
            "exoarmur": _package("exoarmur"),
        },
    }


def key_values(report: dict[str, Any]) -> list[str]:
    single, batched = report["decide"], report["decide_batch"]
    verdicts = ",".join(f"{k}:{v}" for k, v in report["verdicts"].items())
    return [
        f"POLICY_COUNT={report['policies']}",
        f"POLICY_N={report['n']}",
        f"POLICY_LOAD_MS={report['load_ms']:.2f}",
        f"POLICY_P50_US={single['p50_us']:.1f}",
        f"POLICY_P99_US={single['p99_us']:.1f}",
        f"POLICY_OPS={single['ops']:.0f}",
        f"POLICY_BATCH={report['batch']}",
        f"POLICY_BATCH_P50_US={batched['p50_us']:.1f}",
        f"POLICY_BATCH_P99_US={batched['p99_us']:.1f}",
        f"POLICY_BATCH_OPS={batched['ops']:.0f}",
        f"POLICY_VERDICTS={verdicts}",
    ]


def render(console: Console, report: dict[str, Any]) -> None:
    m = report["machine"]
    console.print(
        f"[bold]ExoArmur policy decisions[/] — {report['date']}: {report['policies']} policies, "
        f"{report['n']:,} intents; Python {m['python']}, cedarpy {m['cedarpy']}"
    )
    table = Table(title="Decision latency (per intent)")
    for name in ("mode", "p50 µs", "p99 µs", "decisions/s"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    single, batched = report["decide"], report["decide_batch"]
    table.add_row(
        "decide", f"{single['p50_us']:.1f}", f"{single['p99_us']:.1f}", f"{single['ops']:,.0f}"
    )
    table.add_row(
        f"decide_batch ({report['batch']})",
        f"{batched['p50_us']:.1f}",
        f"{batched['p99_us']:.1f}",
        f"{batched['ops']:,.0f}",
    )
    console.print(table)
    mix = ", ".join(f"{k} {v}" for k, v in report["verdicts"].items())
    console.print(f"bundle parsed in {report['load_ms']:.1f} ms; verdicts: {mix}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help=f"intents (default {DEFAULT_N})")
    parser.add_argument(
        "--batch", type=int, default=None, help=f"decide_batch size (default {DEFAULT_BATCH})"
    )
    parser.add_argument("--seed", type=int, default=0, help="bundle and intent seed")
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes (N={QUICK_N}) for tests")
    parser.add_argument("--json", action="store_true", help="print one JSON document, nothing else")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.batch is None:
        args.batch = QUICK_BATCH if args.quick else DEFAULT_BATCH
    if args.n < 1 or args.batch < 1:
        parser.error("--n and --batch must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args.n, args.batch, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    render(out, report)
    for line in key_values(report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
