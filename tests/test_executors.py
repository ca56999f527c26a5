"""Executors: the protocol's built-ins, the HTTP executor against a real
loopback server, entry-point discovery and the registry's binding rules."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import exoarmur.executors
from exoarmur.encoding import canonical_bytes
from exoarmur.errors import ConfigError, ExecutorError
from exoarmur.executors import (
    CallableExecutor,
    EchoExecutor,
    ExecutionFailed,
    Executor,
    ExecutorRegistry,
    HttpExecutor,
    PythonExecutor,
    discover,
)
from exoarmur.model import ActionIntent, Actor, SafetyClass

TESTS = Path(__file__).parent


@pytest.fixture
def intent() -> ActionIntent:
    return ActionIntent(
        intent_id="01J00000000000000000000000",
        tenant="acme",
        actor=Actor(id="agent-7", kind="agent"),
        action="svc.restart",
        target="web-1",
        params={"grace_seconds": 5, "reason": "deploy"},
        safety_class=SafetyClass.A1,
        idempotency_key="restart-web-1-0001",
        correlation_id="corr-42",
        event_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_public_api_is_pinned() -> None:
    assert set(exoarmur.executors.__all__) == {
        "ENTRY_POINT_GROUP",
        "CallableExecutor",
        "EchoExecutor",
        "ExecutionFailed",
        "Executor",
        "ExecutorFactory",
        "ExecutorRegistry",
        "HttpExecutor",
        "PythonExecutor",
        "discover",
    }
    assert exoarmur.executors.ENTRY_POINT_GROUP == "exoarmur.executors"


# --- built-ins -------------------------------------------------------------


def test_echo_returns_what_it_was_asked_and_is_recordable(intent: ActionIntent) -> None:
    executor: Executor = EchoExecutor.from_config({})
    result = executor.execute(intent)
    assert executor.kind == "echo"
    assert result == {
        "action": "svc.restart",
        "target": "web-1",
        "params": {"grace_seconds": 5, "reason": "deploy"},
    }
    canonical_bytes(result)


def test_echo_rejects_settings_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown field 'colour' \(allowed: none\)"):
        EchoExecutor.from_config({"colour": "blue"})
    with pytest.raises(ConfigError, match="must be a table of settings, not list"):
        EchoExecutor.from_config([])  # type: ignore[arg-type]


def test_callable_executor_returns_the_function_result(intent: ActionIntent) -> None:
    executor = CallableExecutor(lambda i: {"done": i.target})
    assert executor.kind == "python"
    assert executor.execute(intent) == {"done": "web-1"}
    assert CallableExecutor(lambda i: None, kind="ansible").kind == "ansible"


def test_callable_executor_lets_failures_through(intent: ActionIntent) -> None:
    def broken(_: ActionIntent) -> None:
        raise ExecutionFailed("disk full")

    with pytest.raises(ExecutionFailed, match="disk full"):
        CallableExecutor(broken).execute(intent)


def test_callable_executor_refuses_an_unrecordable_result(intent: ActionIntent) -> None:
    with pytest.raises(ExecutorError, match=r"cannot be recorded as JSON.*may have taken effect"):
        CallableExecutor(lambda i: {"n": float("nan")}).execute(intent)


def test_callable_executor_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="fn must be callable, not int"):
        CallableExecutor(42)  # type: ignore[arg-type]


@pytest.fixture
def targets_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Explicit, so the test does not depend on pytest's import mode.
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.mark.usefixtures("targets_importable")
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "executor_targets:restart",
            {"restarted": "web-1", "params": {"grace_seconds": 5, "reason": "deploy"}},
        ),
        ("executor_targets:Service.stop", "stopped web-1"),
    ],
)
def test_python_executor_imports_the_named_function(
    intent: ActionIntent, path: str, expected: Any
) -> None:
    executor = PythonExecutor.from_config({"callable": path})
    assert executor.kind == "python"
    assert executor.path == path
    assert executor.execute(intent) == expected


@pytest.mark.usefixtures("targets_importable")
def test_python_executor_failure_is_raised(intent: ActionIntent) -> None:
    executor = PythonExecutor.from_config({"callable": "executor_targets:refuse"})
    with pytest.raises(ExecutionFailed, match="web-1 refused to restart"):
        executor.execute(intent)
    opaque = PythonExecutor.from_config({"callable": "executor_targets:opaque"})
    with pytest.raises(ExecutorError, match="python executor returned a result"):
        opaque.execute(intent)


@pytest.mark.usefixtures("targets_importable")
@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({}, "field 'callable' is required", id="missing"),
        pytest.param({"callable": "x:y", "args": []}, "unknown field 'args'", id="extra-key"),
        pytest.param(
            {"callable": 7}, "must look like 'package.module:function', got 7", id="not-a-string"
        ),
        pytest.param({"callable": "executor_targets.restart"}, "must look like", id="no-colon"),
        pytest.param({"callable": "executor targets:restart"}, "must look like", id="space"),
        pytest.param(
            {"callable": "no_such_module_xyz:fn"},
            "cannot import module 'no_such_module_xyz' \\(ModuleNotFoundError",
            id="no-module",
        ),
        pytest.param(
            {"callable": "executor_targets:missing"},
            "'executor_targets' has no attribute 'missing'",
            id="no-attribute",
        ),
        pytest.param(
            {"callable": "executor_targets:NOT_CALLABLE"},
            "is a int, not a callable",
            id="not-callable",
        ),
    ],
)
def test_python_executor_rejects_bad_paths(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PythonExecutor.from_config(config)


def test_python_executor_reports_a_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exo_explodes_on_import.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "exo_explodes_on_import", raising=False)
    with pytest.raises(ConfigError, match=r"\(RuntimeError: no config\)"):
        PythonExecutor.from_config({"callable": "exo_explodes_on_import:fn"})


# --- HTTP, against a real server on loopback --------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    base: str
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/json": (200, "application/json; charset=utf-8", b'{"ok": true, "ticket": 17}'),
    "/problem": (201, "application/problem+json", b'{"title": "queued"}'),
    "/text": (200, "text/plain", b"restarted"),
    "/empty": (204, "", b""),
    "/nan": (200, "application/json", b'{"load": NaN}'),
    "/huge": (200, "application/json", b'{"n": 18446744073709551616}'),
    "/twice": (200, "application/json", b'{"ok": false, "ok": true}'),
    "/garbled": (200, "application/json", b"{not json"),
    "/fail": (500, "text/plain", b"boom:\n   database   unreachable"),
    "/long-fail": (503, "text/plain", b"x" * 1000),
    "/silent-fail": (502, "text/plain", b""),
    "/redirect": (302, "text/plain", b""),
}


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.received.append(
                Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            if self.path == "/slow":
                # Held until the fixture lets go; by then the client gave up.
                state.release.wait(timeout=10)
                return
            status, content_type, body = ROUTES[self.path]
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if status == 302:
                self.send_header("Location", "/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_http_sends_the_canonical_intent_with_its_keys(
    server: Server, intent: ActionIntent
) -> None:
    executor = HttpExecutor(f"{server.base}/json", headers={"Authorization": "Bearer t0k"})
    result = executor.execute(intent)

    assert result == {"status_code": 200, "body": {"ok": True, "ticket": 17}}
    canonical_bytes(result)
    (request,) = server.received
    assert request.method == "POST"
    assert request.path == "/json"
    assert request.body == canonical_bytes({"intent": intent.to_canonical()})
    assert json.loads(request.body) == {"intent": intent.to_canonical()}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "restart-web-1-0001"
    assert request.headers["x-exoarmur-intent-id"] == "01J00000000000000000000000"
    assert request.headers["authorization"] == "Bearer t0k"


@pytest.mark.parametrize(
    ("route", "status", "body"),
    [
        pytest.param("/problem", 201, {"title": "queued"}, id="json-suffix"),
        pytest.param("/text", 200, "restarted", id="text"),
        pytest.param("/empty", 204, "", id="no-content"),
        pytest.param("/nan", 200, '{"load": NaN}', id="nan-kept-as-text"),
        pytest.param("/huge", 200, '{"n": 18446744073709551616}', id="huge-int-kept-as-text"),
        pytest.param("/twice", 200, '{"ok": false, "ok": true}', id="key-twice-kept-as-text"),
        pytest.param("/garbled", 200, "{not json", id="bad-json-kept-as-text"),
    ],
)
def test_http_result_is_json_when_recordable_else_text(
    server: Server, intent: ActionIntent, route: str, status: int, body: Any
) -> None:
    result = HttpExecutor.from_config({"url": server.base + route}).execute(intent)
    assert result == {"status_code": status, "body": body}
    canonical_bytes(result)


def test_http_method_from_config(server: Server, intent: ActionIntent) -> None:
    executor = HttpExecutor.from_config(
        {"url": f"{server.base}/text", "method": "put", "timeout": 5, "headers": {"X-Team": "ops"}}
    )
    assert (executor.method, executor.timeout) == ("PUT", 5.0)
    executor.execute(intent)
    (request,) = server.received
    assert request.method == "PUT"
    assert request.headers["x-team"] == "ops"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        pytest.param("/fail", r"^HTTP 500 from {url}: boom: database unreachable$", id="500"),
        pytest.param("/long-fail", r"^HTTP 503 from {url}: x{{199}}…$", id="long-body-cut"),
        pytest.param("/silent-fail", r"^HTTP 502 from {url}: \(empty body\)$", id="empty-body"),
        pytest.param("/redirect", r"^HTTP 302 from {url}: ", id="redirect-not-followed"),
    ],
)
def test_http_non_2xx_fails_the_action(
    server: Server, intent: ActionIntent, route: str, message: str
) -> None:
    url = server.base + route
    with pytest.raises(ExecutionFailed, match=message.format(url=url)):
        HttpExecutor(url).execute(intent)
    assert [r.path for r in server.received] == [route]  # sent once: no retries, no redirect


def test_http_timeout_fails_the_action(server: Server, intent: ActionIntent) -> None:
    url = f"{server.base}/slow"
    with pytest.raises(
        ExecutionFailed,
        match=rf"^POST {url} timed out after 0.2 s \(ReadTimeout\); the action may or may not",
    ):
        HttpExecutor(url, timeout=0.2).execute(intent)


def test_http_connection_refused_fails_the_action(intent: ActionIntent) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gone"
    with pytest.raises(ExecutionFailed, match=rf"^POST {url} failed: ConnectError: "):
        HttpExecutor(url).execute(intent)


def test_http_uses_an_injected_client(intent: ActionIntent) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"accepted": True})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        executor = HttpExecutor("https://hooks.example/act", timeout=3, client=client)
        assert executor.execute(intent) == {"status_code": 202, "body": {"accepted": True}}
        assert executor.execute(intent)["status_code"] == 202
    assert len(seen) == 2
    assert seen[0].extensions["timeout"] == httpx.Timeout(3.0).as_dict()
    assert seen[0].headers["idempotency-key"] == intent.idempotency_key


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({}, "exactly one of field 'url' and field 'url_env' is required", id="no-url"),
        pytest.param(
            {"url": "http://h/", "url_env": "HOOK"}, "exactly one of field 'url'", id="both-urls"
        ),
        pytest.param(
            {"url_env": "EXOARMUR_TEST_UNSET_HOOK"},
            "field 'url_env': environment variable EXOARMUR_TEST_UNSET_HOOK is not set",
            id="url-env-unset",
        ),
        pytest.param(
            {"url_env": "NOT A NAME"}, "field 'url_env': must name an environment", id="env-name"
        ),
        pytest.param(
            {"url": "http://h/", "headers_env": "X"},
            "field 'headers_env': must be a table",
            id="headers-env-type",
        ),
        pytest.param(
            {"url": "http://h/", "headers_env": {"Authorization": "EXOARMUR_TEST_UNSET_TOKEN"}},
            "field 'headers_env.Authorization': environment variable EXOARMUR_TEST_UNSET_TOKEN",
            id="header-env-unset",
        ),
        pytest.param(
            {"url": "http://h/", "retries": 3},
            r"unknown field 'retries' \(allowed: headers, headers_env, method, timeout, url, "
            r"url_env\)",
            id="extra-key",
        ),
        pytest.param({"url": 5}, "field 'url': must be a string, not int", id="url-type"),
        pytest.param(
            {"url": "ftp://h/x"}, "field 'url': must be an http:// or https:// URL", id="ftp"
        ),
        pytest.param({"url": "file:///etc/passwd"}, "field 'url': must be an http://", id="file"),
        pytest.param({"url": "h:8080/x"}, "field 'url': must be an http://", id="no-scheme"),
        pytest.param({"url": "http:///x"}, "field 'url': has no host", id="no-host"),
        pytest.param(
            {"url": "http://u:pw@h/"}, "field 'url': must not carry credentials", id="credentials"
        ),
        pytest.param({"url": "http://h:99999/"}, "field 'url': Port out of range", id="port"),
        pytest.param({"url": "http://h/a b"}, "field 'url': must not contain spaces", id="space"),
        pytest.param({"url": "http://h/\n"}, "field 'url': must not contain spaces", id="newline"),
        pytest.param(
            {"url": "http://h/", "method": "GET"},
            "field 'method': must be one of PATCH, POST, PUT, got 'GET'",
            id="get",
        ),
        pytest.param({"url": "http://h/", "method": 1}, "field 'method'", id="method-type"),
        pytest.param(
            {"url": "http://h/", "timeout": 0},
            "field 'timeout': must be a number of seconds > 0, got 0",
            id="zero",
        ),
        pytest.param({"url": "http://h/", "timeout": -1.5}, "field 'timeout'", id="negative"),
        pytest.param({"url": "http://h/", "timeout": "5"}, "field 'timeout'", id="string"),
        pytest.param({"url": "http://h/", "timeout": True}, "field 'timeout'", id="bool"),
        pytest.param({"url": "http://h/", "timeout": float("inf")}, "field 'timeout'", id="inf"),
        pytest.param(
            {"url": "http://h/", "headers": "X-A: 1"},
            "field 'headers': must be a table of strings, not str",
            id="headers-type",
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"Bad Name": "v"}},
            "field 'headers': 'Bad Name' is not a valid header name",
            id="header-name",
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"idempotency-key": "k"}},
            "field 'headers.idempotency-key': is set by the executor itself",
            id="reserved",
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"X-ExoArmur-Intent-Id": "k"}},
            "field 'headers.X-ExoArmur-Intent-Id'",
            id="reserved-intent-id",
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"X-A": 1}},
            "field 'headers.X-A': must be a string",
            id="header-value-type",
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"X-A": "a\r\nX-B: b"}},
            "field 'headers.X-A': must be a string without control",
            id="header-injection",
        ),
    ],
)
def test_http_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HttpExecutor.from_config(config)


# --- discovery ----------------------------------------------------------------


def test_discover_finds_the_builtins() -> None:
    factories = discover()
    assert {"echo", "http", "python"} <= set(factories)
    assert factories["echo"] == EchoExecutor.from_config
    assert factories["http"] == HttpExecutor.from_config
    assert factories["python"] == PythonExecutor.from_config
    assert factories["echo"]({}).kind == "echo"


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install a fake distribution (dist-info on sys.path) with the given entry points."""
    modules: list[str] = []

    def install(entry_points: str, **module_sources: str) -> None:
        dist = tmp_path / "exoarmur_test_plugin-0.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: exoarmur-test-plugin\nVersion: 0.0\n"
        )
        (dist / "entry_points.txt").write_text(f"[exoarmur.executors]\n{entry_points}\n")
        for name, source in module_sources.items():
            (tmp_path / f"{name}.py").write_text(source)
            modules.append(name)
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    for name in modules:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("entry_points", "modules", "message"),
    [
        pytest.param(
            "broken = exo_plugin_absent:factory",
            {},
            r"executor plugin 'broken' \(exo_plugin_absent:factory\) cannot be loaded: "
            "ModuleNotFoundError",
            id="missing-module",
        ),
        pytest.param(
            "broken = exo_plugin_raises:factory",
            {"exo_plugin_raises": "raise ImportError('needs libfoo')\n"},
            "executor plugin 'broken' .* cannot be loaded: ImportError: needs libfoo",
            id="import-fails",
        ),
        pytest.param(
            "broken = exo_plugin_noattr:factory",
            {"exo_plugin_noattr": "other = 1\n"},
            "executor plugin 'broken' .* cannot be loaded: AttributeError",
            id="missing-attribute",
        ),
        pytest.param(
            "broken = exo_plugin_constant:factory",
            {"exo_plugin_constant": "factory = 42\n"},
            r"executor plugin 'broken' \(exo_plugin_constant:factory\) is a int, "
            "not an executor factory",
            id="not-callable",
        ),
        pytest.param(
            "echo = exo_plugin_echo:factory",
            {"exo_plugin_echo": "def factory(config): ...\n"},
            "executor plugin 'echo' is registered twice: .* uninstall one of them",
            id="name-clash",
        ),
    ],
)
def test_discover_names_a_broken_plugin(
    install_plugin: Any, entry_points: str, modules: dict[str, str], message: str
) -> None:
    install_plugin(entry_points, **modules)
    with pytest.raises(ExecutorError, match=message):
        discover()


def test_discover_finds_a_third_party_plugin_and_tolerates_a_duplicate_listing(
    install_plugin: Any,
) -> None:
    install_plugin(
        "echo = exoarmur.executors.builtin:EchoExecutor.from_config\n"
        "ticket = exo_plugin_ticket:factory",
        exo_plugin_ticket=(
            "from exoarmur.executors import CallableExecutor\n"
            "def factory(config):\n"
            "    queue = config['queue']\n"
            "    return CallableExecutor(lambda intent: {'ticket': queue}, kind='ticket')\n"
        ),
    )
    factories = discover()
    assert factories["echo"] == EchoExecutor.from_config
    registry = ExecutorRegistry.from_config({"ops.*": {"type": "ticket", "queue": "OPS"}})
    assert registry.describe() == {"ops.*": {"type": "ticket", "settings": {"queue": "OPS"}}}


# --- registry -------------------------------------------------------------------


@dataclass
class Named:
    kind: str

    def execute(self, intent: ActionIntent) -> Any:
        return self.kind


PRECEDENCE_BINDINGS = ["*", "fs.*", "fs.read", "fs.re*", "*.delete", "a*.x", "*a.x"]


@pytest.mark.parametrize(
    ("action", "winner"),
    [
        pytest.param("fs.read", "fs.read", id="exact-beats-every-glob"),
        pytest.param("fs.rename", "fs.re*", id="longest-glob"),
        pytest.param("fs.write", "fs.*", id="namespace-glob"),
        pytest.param("fs.delete", "*.delete", id="longer-suffix-glob-beats-prefix"),
        pytest.param("fs.sub.op", "fs.*", id="star-crosses-dots"),
        pytest.param("net.block", "*", id="catch-all"),
        pytest.param("aa.x", "*a.x", id="equal-length-tie-broken-by-text"),
        pytest.param("ab.x", "a*.x", id="only-one-of-equal-length-matches"),
    ],
)
@pytest.mark.parametrize("order", ["as-listed", "reversed"])
def test_registry_precedence(action: str, winner: str, order: str) -> None:
    registry = ExecutorRegistry()
    patterns = PRECEDENCE_BINDINGS if order == "as-listed" else PRECEDENCE_BINDINGS[::-1]
    for pattern in patterns:
        registry.bind(pattern, Named(kind=f"k:{pattern}"))
    found = registry.executor_for(action)
    assert found is not None
    pattern, executor = found
    assert (pattern, executor.kind) == (winner, f"k:{winner}")


def test_registry_unbound_action_has_no_executor() -> None:
    registry = ExecutorRegistry()
    assert registry.executor_for("fs.read") is None
    registry.bind("fs.*", EchoExecutor())
    registry.bind("net.block", EchoExecutor())
    assert registry.executor_for("net.unblock") is None
    assert registry.executor_for("fsx.read") is None
    assert registry.executor_for("fs") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        pytest.param("", "not an action name or a glob", id="empty"),
        pytest.param("fs read", "not an action name or a glob", id="space"),
        pytest.param("fs.[ab]", "not an action name or a glob", id="bracket-glob"),
        pytest.param("fs.?", "not an action name or a glob", id="question-glob"),
        pytest.param("x" * 129, "not an action name or a glob", id="too-long"),
        pytest.param("fs..read", "not a valid action name", id="empty-segment"),
        pytest.param("1fs", "not a valid action name", id="leading-digit"),
        pytest.param("fs.read", "'fs.read': is already bound", id="duplicate-exact"),
        pytest.param("fs.*", r"'fs\.\*': is already bound", id="duplicate-glob"),
    ],
)
def test_registry_bind_rejects_bad_patterns(pattern: str, message: str) -> None:
    registry = ExecutorRegistry()
    registry.bind("fs.read", EchoExecutor())
    registry.bind("fs.*", EchoExecutor())
    with pytest.raises(ConfigError, match=message):
        registry.bind(pattern, EchoExecutor())


def test_registry_from_config_uses_installed_types(server: Server, intent: ActionIntent) -> None:
    registry = ExecutorRegistry.from_config(
        {
            "demo.*": {"type": "echo"},
            "svc.restart": {"type": "http", "url": f"{server.base}/json", "timeout": 2},
            "*": {"type": "python", "callable": "exoarmur.executors.builtin:EchoExecutor"},
        }
    )
    assert registry.describe() == {
        "*": {
            "type": "python",
            "settings": {"callable": "exoarmur.executors.builtin:EchoExecutor"},
        },
        "demo.*": {"type": "echo"},
        "svc.restart": {"type": "http", "settings": {"url": f"{server.base}/json", "timeout": 2}},
    }
    assert list(registry.describe()) == ["*", "demo.*", "svc.restart"]
    found = registry.executor_for(intent.action)
    assert found is not None
    pattern, executor = found
    assert pattern == "svc.restart"
    assert executor.execute(intent)["status_code"] == 200
    assert server.received[0].headers["idempotency-key"] == intent.idempotency_key


def test_registry_from_config_with_given_factories() -> None:
    registry = ExecutorRegistry.from_config(
        {"a.b": {"type": "named", "label": "x"}},
        factories={"named": lambda config: Named(kind=f"named-{config['label']}")},
    )
    assert registry.describe() == {"a.b": {"type": "named-x", "settings": {"label": "x"}}}
    assert ExecutorRegistry.from_config({}, factories={}).describe() == {}


@pytest.mark.parametrize(
    ("bindings", "message"),
    [
        pytest.param(
            ["demo.*"], "executor bindings: must be a table of patterns, not list", id="not-a-table"
        ),
        pytest.param(
            {"demo.*": "echo"},
            "executor binding 'demo.*': must be a table with a 'type' field, not str",
            id="binding-not-a-table",
        ),
        pytest.param(
            {"demo.*": {}},
            r"executor binding 'demo.\*': field 'type' is required \(one of: .*echo, .*http",
            id="no-type",
        ),
        pytest.param(
            {"demo.*": {"type": "ftp"}},
            r"executor binding 'demo.\*': field 'type': unknown executor type 'ftp' \(one of: ",
            id="unknown-type",
        ),
        pytest.param(
            {"demo.*": {"type": 3}}, "field 'type': unknown executor type 3", id="type-not-a-string"
        ),
        pytest.param(
            {"demo.*": {"type": "echo", "colour": 1}},
            r"executor binding 'demo.\*': unknown field 'colour'",
            id="echo-extra",
        ),
        pytest.param(
            {"hook": {"type": "http"}},
            "executor binding 'hook': exactly one of field 'url' and field 'url_env' is required",
            id="http-no-url",
        ),
        pytest.param(
            {"hook": {"type": "http", "url": "http://h/", "timeout": "soon"}},
            "executor binding 'hook': field 'timeout'",
            id="http-bad-timeout",
        ),
        pytest.param(
            {"run": {"type": "python", "callable": "nope"}},
            "executor binding 'run': field 'callable': must look like",
            id="python-bad-path",
        ),
        pytest.param(
            {"fs read": {"type": "echo"}},
            "executor binding 'fs read': not an action name",
            id="bad-pattern",
        ),
    ],
)
def test_registry_config_errors_name_binding_and_field(bindings: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExecutorRegistry.from_config(bindings)


def test_registry_reports_when_no_types_are_known() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown executor type 'echo' \(one of: none installed\)"
    ):
        ExecutorRegistry.from_config({"a": {"type": "echo"}}, factories={})


def _explodes(config: Any) -> Executor:
    raise RuntimeError("plugin bug")


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        pytest.param(
            _explodes,
            "executor binding 'a': the 'bad' executor could not be built: RuntimeError: plugin bug",
            id="raises",
        ),
        pytest.param(
            lambda config: object(),
            "the 'bad' plugin built a object, which lacks 'kind' or 'execute",
            id="not-an-executor",
        ),
        pytest.param(lambda config: Named(kind=None), "which lacks 'kind'", id="kind-not-a-string"),  # type: ignore[arg-type]
    ],
)
def test_registry_reports_a_misbehaving_plugin(factory: Any, message: str) -> None:
    with pytest.raises(ExecutorError, match=message):
        ExecutorRegistry.from_config({"a": {"type": "bad"}}, factories={"bad": factory})


def test_configuration_snapshots_record_where_a_binding_points_but_no_secret() -> None:
    registry = ExecutorRegistry.from_config(
        {
            "hook.*": {
                "type": "http",
                "url": "http://127.0.0.1:9/hook",
                "headers": {"Authorization": "Bearer s3cret"},
            }
        }
    )
    described = registry.describe()["hook.*"]
    assert described["settings"]["url"] == "http://127.0.0.1:9/hook"
    assert described["settings"]["headers"] == {"Authorization": "(redacted)"}
    assert "s3cret" not in str(described)
