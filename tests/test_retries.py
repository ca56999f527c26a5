"""Executor retries: bounded, only for retryable failures, every attempt recorded."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exoarmur.clock import StepClock
from exoarmur.errors import ConfigError
from exoarmur.executors import ExecutionFailed, ExecutorRegistry, HttpExecutor
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

ALLOW_ALL = '@id("all") permit (principal, action, resource);'


class Flaky:
    kind = "flaky"

    def __init__(self, failures: int, retryable: bool = True) -> None:
        self.failures = failures
        self.retryable = retryable
        self.calls = 0

    def execute(self, intent: ActionIntent) -> dict[str, int]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ExecutionFailed(f"attempt {self.calls} failed", retryable=self.retryable)
        return {"calls": self.calls}


def governor_with(tmp_path: Path, executor: object, retries: int) -> Governor:
    registry = ExecutorRegistry()
    registry.bind("*", executor, retries=retries)  # type: ignore[arg-type]
    return Governor(
        ledger=Ledger(SqliteStore(tmp_path / "l.db"), SigningKey.generate("t/r")),
        policy=PolicyEngine(PolicyBundle.from_text(ALLOW_ALL)),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(1),
    )


INTENT = {
    "tenant": "acme",
    "actor": {"id": "a"},
    "action": "x.y",
    "target": "t",
    "safety_class": "A1",
}


@pytest.mark.parametrize(
    ("failures", "retryable", "retries", "status", "calls", "retry_events"),
    [
        (2, True, 2, OutcomeStatus.EXECUTED, 3, 2),
        (3, True, 2, OutcomeStatus.FAILED, 3, 2),
        (1, False, 5, OutcomeStatus.FAILED, 1, 0),
        (1, True, 0, OutcomeStatus.FAILED, 1, 0),
    ],
)
def test_retries_are_bounded_and_recorded(
    tmp_path: Path,
    failures: int,
    retryable: bool,
    retries: int,
    status: OutcomeStatus,
    calls: int,
    retry_events: int,
) -> None:
    flaky = Flaky(failures, retryable)
    with governor_with(tmp_path, flaky, retries) as governor:
        outcome = governor.submit(INTENT)
        assert outcome.status == status
        assert flaky.calls == calls
        story = governor.story("acme", outcome.intent_id)
        retried = [e for e in story if e.type == "execution.retry"]
        assert [e.payload["attempt"] for e in retried] == list(range(1, retry_events + 1))
        assert [e.type for e in story].count("execution.finished") == 1
        assert governor.effective_config()["executors"]["*"].get("retries", 0) == retries


@pytest.mark.parametrize("retries", [-1, 6, True, "2"])
def test_retry_bounds_are_checked(retries: object) -> None:
    with pytest.raises(ConfigError, match="retries"):
        ExecutorRegistry.from_config({"x.*": {"type": "echo", "retries": retries}})


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[int]]]:
    hits: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(1)
            code = 503 if len(hits) <= 2 else 200
            body = json.dumps({"hit": len(hits)}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", hits
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_real_http_executor_retries_a_503(
    tmp_path: Path, flaky_server: tuple[str, list[int]]
) -> None:
    url, hits = flaky_server
    registry = ExecutorRegistry.from_config({"x.*": {"type": "http", "url": url, "retries": 3}})
    assert isinstance(registry.executor_for("x.y")[1], HttpExecutor)  # type: ignore[index]
    governor = Governor(
        ledger=Ledger(SqliteStore(tmp_path / "l.db"), SigningKey.generate("t/h")),
        policy=PolicyEngine(PolicyBundle.from_text(ALLOW_ALL)),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(2),
    )
    with governor:
        outcome = governor.submit(INTENT)
        assert outcome.status == OutcomeStatus.EXECUTED
        assert outcome.result == {"status_code": 200, "body": {"hit": 3}}
        assert len(hits) == 3
        errors = [
            e.payload["error"]
            for e in governor.story("acme", outcome.intent_id)
            if e.type == "execution.retry"
        ]
        assert len(errors) == 2
        assert all("HTTP 503" in e for e in errors)
