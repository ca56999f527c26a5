"""Secrets in executor settings reach no recorded byte: snapshots, failure messages."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from exoarmur.clock import StepClock
from exoarmur.errors import ConfigError
from exoarmur.executors import ExecutorRegistry, HttpExecutor
from exoarmur.home import Home, open_governor
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import CONFIG_SNAPSHOT, SYSTEM_LOG
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY, intent

PATH_SECRET = "abcd1234EFGH5678ijkl9012"
QUERY_SECRET = "q-s3cret-value"
HEADER_SECRET = "Bearer hdr-s3cret"
WEBHOOK = f"https://hooks.example.com/services/T0/B0/{PATH_SECRET}?token={QUERY_SECRET}&v=2"
SECRETS = (PATH_SECRET, QUERY_SECRET, HEADER_SECRET)


def _ledger_bytes(path: Path) -> bytes:
    return b"".join(
        path.read_bytes() for path in path.parent.glob(path.name + "*") if path.is_file()
    )


def _governor(tmp_path: Path, registry: ExecutorRegistry) -> Governor:
    return Governor(
        ledger=Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("test/secrets")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(3),
    )


def test_a_webhook_url_is_recorded_with_its_secrets_redacted(tmp_path: Path) -> None:
    registry = ExecutorRegistry.from_config(
        {"hook.*": {"type": "http", "url": WEBHOOK, "headers": {"Authorization": HEADER_SECRET}}}
    )
    with _governor(tmp_path, registry) as governor:
        snapshot = governor.ledger.store.latest_of_type(SYSTEM_LOG, CONFIG_SNAPSHOT)
        assert snapshot is not None
        settings = snapshot.payload["config"]["executors"]["hook.*"]["settings"]
    assert settings["url"] == (
        "https://hooks.example.com/services/T0/B0/(redacted)?token=(redacted)&v=(redacted)"
    )
    database = _ledger_bytes(tmp_path / "ledger.db")
    for secret in SECRETS:
        assert secret.encode() not in database


def test_a_failed_execution_records_no_secret_even_when_the_endpoint_echoes_it(
    tmp_path: Path,
) -> None:
    def echo_back(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500, text=f"no route for {request.url} ({request.headers['authorization']})"
        )

    with httpx.Client(transport=httpx.MockTransport(echo_back)) as client:
        registry = ExecutorRegistry()
        registry.bind(
            "fs.*", HttpExecutor(WEBHOOK, headers={"Authorization": HEADER_SECRET}, client=client)
        )
        with _governor(tmp_path, registry) as governor:
            outcome = governor.submit(intent())
    assert outcome.error is not None
    assert outcome.error.startswith(
        "HTTP 500 from https://hooks.example.com/services/T0/B0/(redacted)?token=(redacted)"
    )
    database = _ledger_bytes(tmp_path / "ledger.db")
    for secret in SECRETS:
        assert secret not in outcome.error
        assert secret.encode() not in database


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/services/{PATH_SECRET}?token={QUERY_SECRET}"


def test_url_and_headers_from_the_environment_are_recorded_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _refused_url()
    monkeypatch.setenv("EXO_TEST_HOOK_URL", url)
    monkeypatch.setenv("EXO_TEST_HOOK_AUTH", HEADER_SECRET)
    table = {
        "type": "http",
        "url_env": "EXO_TEST_HOOK_URL",
        "headers_env": {"Authorization": "EXO_TEST_HOOK_AUTH"},
        "timeout": 5,
    }
    registry = ExecutorRegistry.from_config({"fs.*": table})
    assert registry.describe()["fs.*"]["settings"] == {
        "url_env": "EXO_TEST_HOOK_URL",
        "headers_env": {"Authorization": "EXO_TEST_HOOK_AUTH"},
        "timeout": 5,
    }
    binding = registry.executor_for("fs.read")
    assert binding is not None
    executor = binding[1]
    assert isinstance(executor, HttpExecutor)
    assert (executor.url, executor.headers) == (url, {"Authorization": HEADER_SECRET})
    with _governor(tmp_path, registry) as governor:
        outcome = governor.submit(intent())
    assert outcome.error is not None
    assert outcome.error.startswith("POST $EXO_TEST_HOOK_URL failed: ConnectError")
    database = _ledger_bytes(tmp_path / "ledger.db")
    for secret in (*SECRETS, url):
        assert secret.encode() not in database
    assert b"EXO_TEST_HOOK_URL" in database


def test_a_missing_environment_variable_is_a_config_error_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Home(tmp_path).init()
    config = tmp_path / "config.toml"
    binding = '"hook.*" = { type = "http", url_env = "EXO_TEST_UNSET_HOOK_URL" }'
    config.write_text(config.read_text().replace("[executors]", f"[executors]\n{binding}"))
    monkeypatch.delenv("EXO_TEST_UNSET_HOOK_URL", raising=False)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "executor binding 'hook.*': field 'url_env': environment variable "
            "EXO_TEST_UNSET_HOOK_URL is not set"
        ),
    ):
        open_governor(tmp_path)


def test_an_invalid_url_from_the_environment_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXO_TEST_HOOK_URL", f"ftp://files.example/{PATH_SECRET}")
    with pytest.raises(ConfigError, match=r"field 'url_env': must be an http") as refused:
        HttpExecutor.from_config({"url_env": "EXO_TEST_HOOK_URL"})
    assert PATH_SECRET not in str(refused.value)
    assert "$EXO_TEST_HOOK_URL" in str(refused.value)


def test_a_header_cannot_come_from_both_the_table_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXO_TEST_HOOK_AUTH", "x")
    with pytest.raises(ConfigError, match=r"field 'headers_env\.authorization': header is also"):
        HttpExecutor.from_config(
            {
                "url": "http://h/",
                "headers": {"Authorization": "y"},
                "headers_env": {"authorization": "EXO_TEST_HOOK_AUTH"},
            }
        )


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        ("http://h/plain/path", "http://h/plain/path"),
        ("http://h:8080/a?x=1&y=", "http://h:8080/a?x=(redacted)&y=(redacted)"),
        ("http://u:p@h/a#frag", "http://(redacted)@h/a"),
        ("http://[::1]:9/a", "http://[::1]:9/a"),
        (
            "https://h/api/webhooks/123/tok3nTOKENtokenTOKEN",
            "https://h/api/webhooks/123/(redacted)",
        ),
    ],
)
def test_redacted_urls_keep_where_they_point(url: str, recorded: str) -> None:
    from exoarmur.executors.redaction import redact_url

    assert redact_url(url) == recorded


def test_plugin_settings_are_redacted_by_name_and_by_url() -> None:
    from exoarmur.executors.redaction import redact_settings, scrub

    settings = {
        "endpoint": f"https://x.example/hook?key={QUERY_SECRET}",
        "api_key": "zzz",
        "nested": {"password": "p", "region": "eu"},
        "targets": ["https://y.example/ok"],
        "region_env": "REGION",
        "retries_budget": 3,
    }
    assert redact_settings(settings) == {
        "endpoint": "https://x.example/hook?key=(redacted)",
        "api_key": "(redacted)",
        "nested": {"password": "(redacted)", "region": "eu"},
        "targets": ["https://y.example/ok"],
        "region_env": "REGION",
        "retries_budget": 3,
    }
    assert scrub("a s3 b s3cret", ["s3", "s3cret", ""]) == "a (redacted) b (redacted)"
