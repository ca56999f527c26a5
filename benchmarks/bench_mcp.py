"""What the MCP proxy adds to a tool call: the same calls, bare and through ``exoarmur mcp proxy``.

A real ``mcp`` client session calls ``read_note`` (allowed by a policy on A0)
of the tests' MCP server (``tests/mcp_upstream.py``, over stdio) N times
directly, then N times through the proxy over a fresh data directory
(durable SQLite ledger: each proxied call records intent, decision, start and
finish, the start durable before the upstream call). Every answer is checked.
Arguments differ per call, so each proxied call is a new intent. A third row
times ``Governor.submit`` of the same intents in-process, to show which part
of the overhead is the governor's own (durable appends) and which the hop.

    python benchmarks/bench_mcp.py                  # N=500
    python benchmarks/bench_mcp.py --calls 5 --json  # a smoke run (what the test uses)
    python benchmarks/bench_mcp.py --write-readme   # the table into benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from exoarmur.executors.builtin import CallableExecutor
from exoarmur.home import Home, open_governor
from exoarmur.policy import PolicyBundle

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT / "tests" / "mcp_upstream.py"
README = Path(__file__).with_name("README.md")
POLICY = '@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };'
CONFIG = '[mcp]\nserver = "notes"\nupstream_env = { UPSTREAM_LOG = "BENCH_UPSTREAM_LOG" }\n'


def prepare(home: Path) -> Path:
    """A data directory with the policy, an agent and the proxy's configuration."""
    Home(home).init()
    with open_governor(home) as governor:
        governor.activate_policy(PolicyBundle.from_text(POLICY))
        _, api_key = governor.add_principal("bench-agent", "agent", ["bench"])
    key_file = home.parent / "agent.key"
    key_file.write_text(api_key)
    key_file.chmod(0o600)
    config = home / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    return key_file


async def timed_calls(parameters: StdioServerParameters, calls: int) -> list[float]:
    """Seconds per call, after one untimed warm-up call."""
    durations = []
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        await client.list_tools()
        for number in range(calls + 1):
            started = time.perf_counter()
            result = await client.call_tool("read_note", {"name": f"n{number}"})
            elapsed = time.perf_counter() - started
            if result.is_error:
                raise SystemExit(f"call {number} failed: {result.content}")
            if number:
                durations.append(elapsed)
    return durations


def governed_alone(home: Path, key_file: Path, calls: int) -> list[float]:
    """Seconds per ``Governor.submit`` of the same intents with an in-process executor."""
    durations = []
    with open_governor(home) as governor:
        agent = governor.authenticate(key_file.read_text())
        governor.executors.bind("mcp.alone.*", CallableExecutor(lambda intent: {"ok": True}))
        for number in range(calls):
            started = time.perf_counter()
            outcome = governor.submit(
                {
                    "tenant": "bench",
                    "actor": {"id": agent.name, "kind": "agent"},
                    "action": "mcp.alone.read_note",
                    "target": "mcp:alone/read_note",
                    "params": {"name": f"n{number}"},
                    "safety_class": "A0",
                    "idempotency_key": f"alone-{number}",
                }
            )
            durations.append(time.perf_counter() - started)
            if outcome.status != "executed":
                raise SystemExit(f"intent {number}: {outcome.status}")
    return durations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="exoarmur-bench-mcp-") as scratch:
        home = Path(scratch) / "home"
        key_file = prepare(home)
        log = str(Path(scratch) / "upstream.log")
        env = {"PATH": os.environ.get("PATH", ""), "UPSTREAM_LOG": log, "BENCH_UPSTREAM_LOG": log}
        bare = StdioServerParameters(command=sys.executable, args=[str(UPSTREAM)], env=env)
        proxied = StdioServerParameters(
            command=str(Path(sys.executable).with_name("exoarmur")),
            args=[
                *("--home", str(home), "mcp", "proxy", "--tenant", "bench"),
                *("--key-file", str(key_file), "--", sys.executable, str(UPSTREAM)),
            ],
            env=env,
        )
        runs = {
            "bare": lambda: anyio.run(timed_calls, bare, calls),
            "proxied": lambda: anyio.run(timed_calls, proxied, calls),
            "governor alone": lambda: governed_alone(home, key_file, calls),
        }
        rows = {}
        for name, timed in runs.items():
            durations = timed()
            rows[name] = {
                "calls": len(durations),
                "p50_ms": round(percentile(durations, 0.50) * 1000, 2),
                "p99_ms": round(percentile(durations, 0.99) * 1000, 2),
            }
    return {
        "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "mcp": version("mcp"),
        "rows": rows,
        "overhead_p50_ms": round(rows["proxied"]["p50_ms"] - rows["bare"]["p50_ms"], 2),
        "overhead_p99_ms": round(rows["proxied"]["p99_ms"] - rows["bare"]["p99_ms"], 2),
    }


def table(result: dict[str, Any], command: str) -> str:
    lines = [
        f"Measured {result['measured']} with `{command}` (Python {result['python']}, "
        f"mcp {result['mcp']}, {platform.platform()}).",
        "",
        "| path | calls | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['calls']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    lines += [
        "",
        f"The proxy adds {result['overhead_p50_ms']:.2f} ms at p50 and "
        f"{result['overhead_p99_ms']:.2f} ms at p99 to a call; "
        "`governor alone` is the part of it that is the governor's own work "
        "(two durable appends and the decision), with no MCP hop.",
    ]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    block = f"<!-- mcp:start -->\n{text}\n<!-- mcp:end -->"
    pattern = re.compile(r"<!-- mcp:start -->.*?<!-- mcp:end -->", re.S)
    if pattern.search(readme) is None:
        raise SystemExit(
            "benchmarks/README.md has no <!-- mcp:start --> … <!-- mcp:end --> markers"
        )
    README.write_text(pattern.sub(lambda _: block, readme), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--write-readme", action="store_true")
    options = parser.parse_args(argv)
    result = measure(options.calls)
    if options.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    calls = f" --calls {options.calls}" if options.calls != 500 else ""
    text = table(result, f"python benchmarks/bench_mcp.py{calls} --write-readme")
    sys.stdout.write(text + "\n")
    if options.write_readme:
        write_readme(text)


if __name__ == "__main__":
    main()
