"""What each integration adds to one tool call: p50 and p99, beside the same call bare.

On a benchmark home (durable SQLite ledger, production clock and ids, a
policy that allows A0 reads), N times each, after a warm-up:

- ``@governed`` over a plain function, with the governor in this process;
- LangChain: ``govern_tools`` around a ``@tool``, invoked with ``.invoke``;
- OpenAI Agents SDK: ``govern_function_tool`` around a ``function_tool``,
  invoked as the Runner invokes it (``on_invoke_tool``);
- ``@governed`` through ``exoarmur.client.Client`` to a real ``exoarmur serve``
  on loopback (``--no-http`` skips it).

Each governed call is three durable appends (intent and decision, then
``execution.started``, then ``execution.finished``); the bare column is the
framework's own call with nothing in front of it. Every answer is checked; a
wrong one aborts the run. Nothing is decided from a time.

    python benchmarks/bench_integrations.py [--n 200] [--no-http] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exoarmur.home import Home, open_governor
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle

POLICY = '@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };'
TENANT = "bench"
WARMUP = 5
EXPECTED = {"tickets": 3}


def lookup(query: str) -> dict[str, int]:
    """Look tickets up (the tool every integration wraps)."""
    return EXPECTED


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def timed(n: int, call: Callable[[], Any], check: Callable[[Any], bool]) -> list[float]:
    samples = []
    for i in range(-WARMUP, n):
        t0 = time.perf_counter()
        answer = call()
        elapsed = time.perf_counter() - t0
        if not check(answer):
            raise SystemExit(f"bench_integrations: a wrong answer: {answer!r}")
        if i >= 0:
            samples.append(elapsed)
    return sorted(samples)


def _same(answer: Any) -> bool:
    return answer == EXPECTED or answer == json.dumps(EXPECTED) or answer == str(EXPECTED)


def _home(path: Path) -> Path:
    Home(path).init()
    with open_governor(path) as governor:
        governor.activate_policy(PolicyBundle.from_text(POLICY))
    return path


def plain(n: int, governor: Governor) -> tuple[list[float], list[float]]:
    from exoarmur.integrations.governed import governed

    wrapped = governed(
        action="tickets.lookup",
        safety_class="A0",
        target="tickets",
        via=governor,
        tenant=TENANT,
        actor="bench-agent",
    )(lookup)
    return timed(n, lambda: lookup("printer"), _same), timed(n, lambda: wrapped("printer"), _same)


def langchain(n: int, governor: Governor) -> tuple[list[float], list[float]]:
    from langchain_core.tools import tool

    from exoarmur.integrations.langchain import govern_tools

    bare = tool(lookup)
    (wrapped,) = govern_tools(
        [bare], governor, tenant=TENANT, actor="bench-agent", safety_class="A0"
    )
    args = {"query": "printer"}
    return timed(n, lambda: bare.invoke(args), _same), timed(n, lambda: wrapped.invoke(args), _same)


def openai_agents(n: int, governor: Governor) -> tuple[list[float], list[float]]:
    from agents import function_tool
    from agents.tool_context import ToolContext

    from exoarmur.integrations.openai_agents import govern_function_tool

    bare = function_tool(lookup)
    wrapped = govern_function_tool(
        bare, governor, tenant=TENANT, actor="bench-agent", safety_class="A0"
    )
    raw = '{"query": "printer"}'
    context = ToolContext(context=None, tool_name=bare.name, tool_call_id="c", tool_arguments=raw)
    loop = asyncio.new_event_loop()
    try:
        return (
            timed(n, lambda: loop.run_until_complete(bare.on_invoke_tool(context, raw)), _same),
            timed(n, lambda: loop.run_until_complete(wrapped.on_invoke_tool(context, raw)), _same),
        )
    finally:
        loop.close()


@contextmanager
def serving(home: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exoarmur = Path(sys.executable).parent / "exoarmur"
    process = subprocess.Popen(
        [str(exoarmur), "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench_integrations: exoarmur serve did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(60)


def http(n: int, home: Path) -> tuple[list[float], list[float]]:
    from exoarmur.client import Client
    from exoarmur.integrations.governed import governed

    with open_governor(home) as governor:
        _, key = governor.add_principal("bench-http", "agent", [TENANT])
    with serving(home) as url, Client(url, key, tenant=TENANT) as client:
        wrapped = governed(
            action="tickets.lookup", safety_class="A0", target="tickets", via=client, tenant=TENANT
        )(lookup)
        return timed(n, lambda: lookup("printer"), _same), timed(
            n, lambda: wrapped("printer"), _same
        )


def run(n: int, with_http: bool) -> dict[str, Any]:
    rows: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        home = _home(Path(scratch) / "home")
        with open_governor(home) as governor:
            rows["@governed (in process)"] = plain(n, governor)
            rows["LangChain govern_tools"] = langchain(n, governor)
            rows["OpenAI Agents govern_function_tool"] = openai_agents(n, governor)
        if with_http:
            rows["@governed via Client (HTTP)"] = http(n, home)
    return {
        "n": n,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": {
            name: {
                "bare_p50_ms": percentile(bare, 0.5) * 1000,
                "bare_p99_ms": percentile(bare, 0.99) * 1000,
                "governed_p50_ms": percentile(governed, 0.5) * 1000,
                "governed_p99_ms": percentile(governed, 0.99) * 1000,
            }
            for name, (bare, governed) in rows.items()
        },
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"| integration (n={report['n']}) | bare p50 | bare p99 | governed p50 | governed p99 "
        "| added p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in report["rows"].items():
        added = row["governed_p50_ms"] - row["bare_p50_ms"]
        lines.append(
            f"| {name} | {row['bare_p50_ms']:.3f} ms | {row['bare_p99_ms']:.3f} ms "
            f"| {row['governed_p50_ms']:.2f} ms | {row['governed_p99_ms']:.2f} ms "
            f"| {added:.2f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="calls per measurement")
    parser.add_argument("--no-http", action="store_true", help="skip the client over HTTP")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    options = parser.parse_args(argv)
    if options.n < 1:
        parser.error("--n must be at least 1")
    report = run(options.n, not options.no_http)
    print(json.dumps(report, indent=2) if options.json else table(report))


if __name__ == "__main__":
    main()
