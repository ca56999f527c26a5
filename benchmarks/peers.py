"""Peers: other governance layers, each in a virtual environment of its own, same run.

A peer is installed from the package registry into its own virtual
environment (created with this interpreter's ``venv`` the first time, then
reused: ``--peers-dir``), because its import names may be ours
(exoarmur-core installs a package called ``exoarmur``). Its driver script in
``peer_drivers/`` runs there with a clean environment and prints one JSON
document; nothing of ExoArmur is importable in that process.

A peer that cannot be installed or run is reported as unavailable, with the
reason, and the suite goes on without it.

This module never decides anything from a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRIVERS = Path(__file__).with_name("peer_drivers")
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 900
_MARKER = ".exoarmur-bench-installed"


@dataclass(frozen=True)
class Peer:
    key: str
    title: str
    requirement: str
    driver: str
    #: rows the driver reports, and which of ours each is compared with
    rows: tuple[tuple[str, str], ...]
    #: what the peer does not do that ExoArmur's measured path does
    does_less: tuple[str, ...]
    #: what one timed call of the peer does, shown beside its rows
    per_call: str = ""
    #: it keeps a durable record: its driver is given ``--dir``, where ours are written
    durable: bool = False
    #: the suite's size that says how many calls a row makes
    size: str = "peer_n"


PEERS = (
    Peer(
        key="exoarmur-core",
        title="exoarmur-core 2.1.0 ProxyPipeline",
        requirement="exoarmur-core==2.1.0",
        driver="exoarmur_core.py",
        rows=(("allow", "allow"), ("deny", "deny")),
        does_less=(
            "audit events kept in a Python list: no durable write, no fsync",
            "no signature, no Merkle tree, no canonical bytes or hash of any record",
            "no idempotency check, no policy language (a Python allow-list of domains/methods)",
        ),
        per_call=(
            "builds a pydantic ActionIntent; ProxyPipeline.execute_with_trace: policy rule,"
            " safety gate, verdict, target check, echo executor, an audit event and a trace"
            " appended to Python lists"
        ),
    ),
    Peer(
        key="agent-governance-toolkit",
        title="Agent Governance Toolkit 4.1.0",
        requirement="agent-governance-toolkit[core]==4.1.0",
        driver="agent_governance_toolkit.py",
        rows=(
            ("allow", "allow"),
            ("deny", "deny"),
            ("kernel_allow", "allow"),
            ("kernel_deny", "deny"),
        ),
        does_less=(
            "policy + audit: the audit record is an object appended to a Python list;"
            " no durable write, no hash, no signature, no Merkle tree",
            "no executor and no idempotency check; rules are field comparisons in Python",
            "kernel: StatelessKernel.execute writes no audit record at all",
        ),
        per_call=(
            "allow/deny: PolicyEvaluator.evaluate on a three-rule PolicyDocument, then one"
            " AuditEntry appended to a Python list; kernel: StatelessKernel.execute under its"
            " read_only policy"
        ),
    ),
    Peer(
        key="tracekit-ai",
        title="tracekit-ai 1.4.2 signer",
        requirement="tracekit-ai==1.4.2",
        driver="tracekit_ai.py",
        rows=tuple(
            (f"{mode}_allow_c{c}", f"allow C={c}")
            for mode in ("fsync", "write")
            for c in (1, 8, 32)
        ),
        does_less=(
            "no durable idempotency key: retries are answered from request ids kept in memory",
            "no executor: the agent runs the tool and reports its result",
            "rules are regular expressions over the call's fields, not a policy language"
            " with principals, entities and typed context",
        ),
        per_call=(
            "over a Unix socket to its signer process: decide (policy v2 match, one Ed25519-signed,"
            " hash-chained policy.decision record), the echo tool, complete (one signed tool.result"
            " record); each record a leaf of an RFC 6962 tree, appended to a JSONL file by one"
            " batching writer; fsync: fdatasync before the reply, write (its default): synced"
            " within 5 ms after"
        ),
        durable=True,
        size="pipeline_n",
    ),
)


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put our packages on the peer's path."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def ensure_env(peer: Peer, peers_dir: Path) -> tuple[Path | None, str]:
    """The peer's virtual environment, created and installed if needed; or None and why."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    env_dir = peers_dir / f"{peer.key}-{tag}"
    marker = env_dir / _MARKER
    if marker.exists() and marker.read_text(encoding="utf-8") == peer.requirement:
        return env_dir, "reused"
    try:
        venv.EnvBuilder(clear=True, with_pip=True).create(env_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"cannot create a virtual environment in {env_dir}: {exc}"
    try:
        done = subprocess.run(
            [
                str(_python(env_dir)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                peer.requirement,
            ],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            env=_clean_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"pip install {peer.requirement} did not finish in {INSTALL_TIMEOUT_S} s"
    if done.returncode != 0:
        return None, f"pip install {peer.requirement} failed: {_tail(done.stderr or done.stdout)}"
    marker.write_text(peer.requirement, encoding="utf-8")
    return env_dir, "installed"


def describe(peer: Peer) -> dict[str, Any]:
    """What the report says of a peer whether or not it ran."""
    return {
        "title": peer.title,
        "requirement": peer.requirement,
        "does_less": list(peer.does_less),
        "per_call": peer.per_call,
        "compared_with": dict(peer.rows),
    }


def driver_argv(peer: Peer, n: int, data_dir: Path | None, extra: Sequence[str] = ()) -> list[str]:
    """The driver's arguments: a durable peer writes where our durable ledgers are written."""
    argv = ["--n", str(n)]
    if peer.durable and data_dir is not None:
        argv += ["--dir", str(data_dir)]
    return argv + list(extra)


def run_peer(
    peer: Peer,
    peers_dir: Path,
    n: int,
    drivers: Path = DRIVERS,
    data_dir: Path | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Install (if needed) and run one peer; a dict with ``status`` ok or unavailable."""
    base = describe(peer)
    env_dir, how = ensure_env(peer, peers_dir)
    if env_dir is None:
        return base | {"status": "unavailable", "reason": how}
    try:
        done = subprocess.run(
            [
                str(_python(env_dir)),
                "-I",
                str(drivers / peer.driver),
                *driver_argv(peer, n, data_dir, extra),
            ],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env=_clean_env(),
            cwd=env_dir,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return base | {"status": "unavailable", "reason": f"did not finish in {RUN_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return base | {
            "status": "unavailable",
            "reason": f"driver failed (exit {done.returncode}): {_tail(done.stderr)}",
        }
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return base | {"status": "unavailable", "reason": f"driver printed {lines[-1][:200]!r}"}
    return base | result | {"status": "ok", "environment": how, "env_dir": str(env_dir)}
