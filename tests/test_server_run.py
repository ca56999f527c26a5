"""uvicorn for real: the service on a loopback port, stopped in a thread and by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from exoarmur.errors import StoreError
from exoarmur.home import Home, open_governor
from exoarmur.server import run
from exoarmur.server.run import Service, service_logging
from test_server_support import READ


def _wait_until(probe: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(probe) and probe():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_the_service_answers_on_loopback_and_closes_its_governor(tmp_path: Path) -> None:
    Home(tmp_path).init()
    governor = open_governor(tmp_path)
    _, key = governor.add_principal("agent-7", "agent", ["acme"])
    service = Service(governor, port=0, log_level="warning", log_config=None)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        _wait_until(lambda: service.started)
        base = f"http://127.0.0.1:{service.port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            health = client.get("/v1/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            submitted = client.post(
                "/v1/intents", json=READ, headers={"Authorization": f"Bearer {key}"}
            )
            assert submitted.status_code == 200, submitted.text
            assert submitted.json()["status"] == "executed"
            assert "server" not in submitted.headers
    finally:
        service.stop()
        runner.join(60)
    assert not runner.is_alive()
    with pytest.raises(StoreError):  # the service closed the governor it was given
        governor.ledger.size("acme")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_gracefully_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    Home(tmp_path).init()
    port = _free_port()
    program = textwrap.dedent(
        f"""
        from pathlib import Path
        from exoarmur.server import serve
        serve(Path({str(tmp_path)!r}), port={port}, log_level="info")
        """
    )
    env = os.environ | {"PYTHONWARNINGS": "error"}
    process = subprocess.Popen(
        [sys.executable, "-c", program], stderr=subprocess.PIPE, text=True, env=env
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).is_success
            except httpx.TransportError:
                return False

        _wait_until(up)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "governor closed" in stderr
    assert "Traceback" not in stderr


def test_the_service_log_configuration_names_exoarmur() -> None:
    config = service_logging("debug")
    assert config["loggers"]["exoarmur"]["level"] == "DEBUG"
    assert "uvicorn" in config["loggers"]


@pytest.mark.slow
def test_serve_in_this_process_stops_on_sigint_and_restores_the_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Home(tmp_path).init()
    # Keep this process's logging as it is (serve configures it for a real service process).
    monkeypatch.setattr(run, "service_logging", lambda level, log_format: None)
    port = _free_port()
    finished = threading.Event()
    before = signal.getsignal(signal.SIGINT)

    def interrupt_when_up() -> None:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).is_success
            except httpx.TransportError:
                return finished.is_set()

        _wait_until(up)
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_up)
    interrupter.start()
    try:
        run.serve(tmp_path, port=port, log_level="warning")  # returns on SIGINT
    finally:
        finished.set()
        interrupter.join(20)
    assert signal.getsignal(signal.SIGINT) is before
    with open_governor(tmp_path) as governor:  # the data directory is free and intact
        assert governor.ledger.size("_system") > 0


def test_a_service_that_is_not_listening_has_no_port(tmp_path: Path) -> None:
    Home(tmp_path).init()
    governor = open_governor(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="not listening"):
            _ = Service(governor, port=0, log_config=None).port
    finally:
        governor.close()


def test_serve_closes_the_governor_when_the_service_cannot_be_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[bool] = []

    class FakeGovernor:
        def close(self) -> None:
            closed.append(True)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no such interface")

    monkeypatch.setattr(run, "open_governor", lambda home: FakeGovernor())
    monkeypatch.setattr(run, "Service", broken)
    with pytest.raises(OSError, match="no such interface"):
        run.serve(None, port=0)  # any free port: the failure comes after binding
    assert closed == [True]
