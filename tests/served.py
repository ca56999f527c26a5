"""A real ``exoarmur serve`` in a subprocess on a free loopback port, with its people's keys.

Not a test module: the client and integration tests share it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from exoarmur.home import Home, open_governor
from exoarmur.policy import PolicyBundle
from test_server_support import PEOPLE, POLICY

#: the tests' policy, plus: closing a ticket needs one approval (no executor: the caller acts)
SERVED_POLICY = (
    POLICY
    + """
@id("ticket-close") @approval("1")
permit (principal is Agent, action == Action::"ticket.close", resource);
"""
)


@dataclass(frozen=True)
class Served:
    url: str
    home: Path
    keys: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare(home: Path, policy: str = SERVED_POLICY) -> dict[str, str]:
    """Initialise ``home`` with ``policy`` and the tests' people; their API keys."""
    Home(home).init()
    with open_governor(home) as governor:
        governor.activate_policy(PolicyBundle.from_text(policy))
        return {
            name: governor.add_principal(name, role, tenants)[1]
            for name, (role, tenants) in PEOPLE.items()
        }


@contextmanager
def serving(home: Path, keys: dict[str, str]) -> Iterator[Served]:
    """``exoarmur --home HOME serve`` until the block ends (then SIGTERM, and it must stop)."""
    port = _free_port()
    exoarmur = Path(sys.executable).parent / "exoarmur"
    process = subprocess.Popen(
        [str(exoarmur), "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONWARNINGS": "error"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"exoarmur serve did not start: {process.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield Served(url, home, keys)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
