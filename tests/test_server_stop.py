"""Stopping never closes the ledger under a running execution.

A real ``exoarmur serve`` with a slow executor (it runs until the test
releases it) is sent SIGTERM mid-action: it stops listening, waits, records
the outcome and exits 0; with a grace shorter than the action it says so on
stderr and exits 6, and the next start records the cut execution as
outcome_unknown. Waits are bounded polls for conditions, never timings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from exoarmur.errors import StoreUnavailable
from exoarmur.home import Home, open_governor
from exoarmur.model import ActionIntent
from exoarmur.model.event import SERVICE_CONFIGURED, SYSTEM_LOG
from exoarmur.pipeline import Governor
from exoarmur.server import create_app
from exoarmur.server.run import GraceExpired, Service
from samples import intent
from test_server_support import TestClient

TESTS = Path(__file__).parent
SLOW_BINDING = '"slow.*" = { type = "python", callable = "executor_targets:wait_for_release" }'


def _wait_until(probe: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a condition")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """An ``exoarmur serve`` process over a home with a slow executor, and one slow intent."""

    home: Path
    process: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    started: Path
    release: Path
    key: str
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def listening(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/v1/health", timeout=2).is_success
        except httpx.TransportError:
            return False

    def submit_slow(self) -> threading.Thread:
        body = {
            "tenant": "acme",
            "action": "slow.wait",
            "target": "jobs/nightly",
            "safety_class": "A0",
            "params": {"started": str(self.started), "release": str(self.release)},
        }

        def post() -> None:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{self.port}/v1/intents",
                    json=body,
                    headers={"Authorization": f"Bearer {self.key}"},
                    timeout=180,
                )
                self.answer.update(status=response.status_code, body=response.text)
            except httpx.TransportError as exc:
                self.answer.update(status=None, body=repr(exc))

        thread = threading.Thread(target=post)
        thread.start()
        return thread


def _serve(tmp_path: Path, *serve_args: str, server_table: str = "") -> Running:
    home = tmp_path / "home"
    Home(home).init()
    config = home / "config.toml"
    text = config.read_text().replace("[executors]", f"[executors]\n{SLOW_BINDING}")
    config.write_text(text + server_table)
    with open_governor(home) as governor:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
    port = _free_port()
    stderr_path = tmp_path / "serve.stderr"
    python_path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    env = os.environ | {"PYTHONWARNINGS": "error", "PYTHONPATH": python_path}
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from exoarmur.cli import main; main()",
                "--home",
                str(home),
                "serve",
                "--port",
                str(port),
                *serve_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    running = Running(
        home, process, port, stderr_path, tmp_path / "started", tmp_path / "release", key
    )
    _wait_until(lambda: running.listening() or process.poll() is not None)
    assert process.poll() is None, running.stderr
    return running


def _stop(running: Running) -> None:
    running.release.touch()
    if running.process.poll() is None:
        running.process.kill()
    running.process.wait(60)


def _story_types(home: Path) -> list[str]:
    with open_governor(home) as governor:  # a new start: recovery runs first
        return [event.type for event in governor.ledger.store.events("acme")]  # one intent


#: longer than uvicorn's own drain used to be (10 s), after which the ledger was closed
HELD_PAST_THE_OLD_DRAIN = 15


@pytest.mark.slow
def test_sigterm_mid_action_waits_for_the_outcome_and_exits_0(tmp_path: Path) -> None:
    running = _serve(tmp_path, server_table="\n[server]\ngrace_seconds = 300\n")
    try:
        client = running.submit_slow()
        _wait_until(running.started.exists)
        running.process.send_signal(signal.SIGTERM)
        _wait_until(lambda: not running.listening())  # stopping: no new connection is taken
        # Hold the action past the old drain: the ledger must stay open under it.
        with pytest.raises(AssertionError, match="timed out"):
            _wait_until(
                lambda: "governor closed" in running.stderr or running.process.poll() is not None,
                seconds=HELD_PAST_THE_OLD_DRAIN,
            )
        running.release.touch()
        client.join(180)
        assert running.answer["status"] == 200, running.answer
        assert '"status":"executed"' in running.answer["body"]
        assert running.process.wait(120) == 0, running.stderr
    finally:
        _stop(running)
    assert "governor closed" in running.stderr
    assert "Traceback" not in running.stderr
    types = _story_types(running.home)
    assert types[-2:] == ["execution.started", "execution.finished"]


@pytest.mark.slow
def test_a_grace_shorter_than_the_action_is_said_loudly_and_exits_6(tmp_path: Path) -> None:
    running = _serve(tmp_path, "--grace", "0.5")
    try:
        client = running.submit_slow()
        _wait_until(running.started.exists)
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(120) == 6, running.stderr
        client.join(180)
    finally:
        _stop(running)
    stderr = running.stderr
    assert "EXOARMUR STOPPED WITH EXECUTIONS RUNNING" in stderr
    assert "1 governed call(s) still running after the 0.5 s grace" in stderr
    assert "governor closed" not in stderr  # the ledger was never closed under it
    # The next start says what is known: started, outcome unknown; never run again.
    assert _story_types(running.home)[-2:] == ["execution.started", "execution.outcome_unknown"]


def test_the_service_settings_are_recorded_once_per_distinct_settings(tmp_path: Path) -> None:
    running = _serve(tmp_path, "--grace", "7")
    try:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(120) == 0, running.stderr
    finally:
        _stop(running)
    with open_governor(running.home) as governor:
        recorded = list(governor.ledger.store.events(SYSTEM_LOG))
    (configured,) = [e for e in recorded if e.type == SERVICE_CONFIGURED]
    assert configured.payload["grace_seconds"] == 7
    assert configured.payload["refusals"] == {
        "window_seconds": 300,
        "per_source": 10,
        "max_bytes_per_hour": 65536,
    }


# -- in process: the governor's drain, and 503 for new work ---------------------------------


class Held:
    """An executor function that runs until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, intent: ActionIntent) -> dict[str, bool]:
        self.started.set()
        assert self.release.wait(120)
        return {"done": True}


def test_drain_waits_for_running_calls_and_refuses_new_ones(governor: Governor) -> None:
    held = Held()
    outcome: list[Any] = []
    runner = threading.Thread(
        target=lambda: outcome.append(governor.run(intent(action="fs.stat"), held))
    )
    runner.start()
    assert held.started.wait(60)
    assert governor.in_flight == 1
    assert governor.drain(0) is False  # still running: the ledger must stay open
    with pytest.raises(StoreUnavailable, match="the governor is stopping"):
        governor.submit(intent(target="reports/q4.txt"))
    held.release.set()
    assert governor.drain(120) is True
    runner.join(60)
    assert outcome[0].status.value == "executed"
    assert governor.in_flight == 0


def test_a_stopping_service_answers_503_to_new_submissions_and_writes_nothing(
    tmp_path: Path,
) -> None:
    Home(tmp_path).init()
    with open_governor(tmp_path) as governor:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
        app = create_app(governor)
        client = TestClient(app, raise_server_exceptions=False)
        app.state.stopping = True
        before = governor.ledger.size("acme")
        answer = client.post(
            "/v1/intents",
            json={"tenant": "acme", "action": "demo.read", "target": "x", "safety_class": "A0"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["error"] == "unavailable"
        assert "stopping" in answer.json()["message"]
        assert governor.ledger.size("acme") == before


def test_a_service_that_cannot_drain_leaves_the_governor_open(tmp_path: Path) -> None:
    Home(tmp_path).init()
    governor = open_governor(tmp_path)
    held = Held()
    service = Service(governor, port=0, log_config=None, grace_seconds=0)
    runner = threading.Thread(target=lambda: governor.run(intent(), held))
    runner.start()
    try:
        assert held.started.wait(60)
        with pytest.raises(GraceExpired, match="1 governed call"):
            service._close()
        assert governor.ledger.size("acme") > 0  # still open: the execution records its end
    finally:
        held.release.set()
        runner.join(60)
        governor.close()
    assert _story_types(tmp_path)[-1] == "execution.finished"
