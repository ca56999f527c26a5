"""What operators watch: /metrics, request ids and logs, TLS, and a taken port said plainly."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import ipaddress
import json
import logging
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exoarmur.clock import StepClock
from exoarmur.errors import StoreError
from exoarmur.home import Home, open_governor
from exoarmur.server import create_app
from exoarmur.server.metrics import Metrics
from exoarmur.server.requestlog import JsonFormatter, RequestIdFilter, request_id
from exoarmur.server.run import EXIT_ADDRESS_IN_USE, AddressInUse, Service, bind, service_logging
from test_server_support import DELETE, READ, Deployment, TestClient, deploy, submit


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found is not None, f"no {name}{labels} in:\n{text}"
    return float(found.group(1))


# -- /metrics -------------------------------------------------------------------------


def test_metrics_need_a_scraper_role_unless_asked_from_loopback(dep: Deployment) -> None:
    assert dep.client.get("/metrics").status_code == 401  # the test client is not loopback
    refused = dep.client.get("/metrics", headers=dep.auth("alice"))
    assert refused.status_code == 403
    assert any("metrics" in e.payload.get("attempted", "") for e in dep.refusals())
    for who in ("audrey", "root"):
        answer = dep.client.get("/metrics", headers=dep.auth(who))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    app = dep.client.app
    with TestClient(app, client=("127.0.0.1", 40000)) as local:  # type: ignore[arg-type]
        assert local.get("/metrics").status_code == 200


def test_metrics_count_decisions_latency_answers_and_what_waits(dep: Deployment) -> None:
    submit(dep, "agent-7", READ, 200)
    pending = submit(dep, "agent-7", DELETE, 202)
    vote = {"reason": "ok", "intent_hash": pending["intent_hash"]}
    path = f"/v1/tenants/acme/intents/{pending['intent_id']}/approve"
    assert dep.client.post(path, json=vote, headers=dep.auth("alice")).status_code == 200
    dep.client.post(
        "/v1/killswitches",
        json={"action": "engage", "scope": "tenant:acme/action:demo.wipe", "reason": "x"},
        headers=dep.auth("alice"),
    )
    text = dep.client.get("/metrics", headers=dep.auth("audrey")).text
    labels = {"tenant": "acme", "verdict": "allow", "status": "executed"}
    assert _sample(text, "exoarmur_decisions_total", **labels) == 1
    waiting = {"tenant": "acme", "verdict": "require_approval", "status": "pending_approval"}
    assert _sample(text, "exoarmur_decisions_total", **waiting) == 1
    assert _sample(text, "exoarmur_stage_seconds_count", stage="submit") == 2
    assert _sample(text, "exoarmur_stage_seconds_count", stage="vote") == 1
    # Inside the governor, told by its observer hook: one decision each, alone in its batch.
    assert _sample(text, "exoarmur_stage_seconds_count", stage="decide") == 2
    assert _sample(text, "exoarmur_stage_seconds_count", stage="gate") == 2
    assert _sample(text, "exoarmur_stage_seconds_count", stage="execute") == 1  # the read only
    appends = _sample(text, "exoarmur_stage_seconds_count", stage="append")
    assert appends >= 5  # two submissions, the outcome of the read, a vote, the switch
    # Sequential requests: every group commit carried one append (there may be more commits:
    # the service records its own settings).
    assert _sample(text, "exoarmur_commit_appends_bucket", le="1.0") >= appends
    assert _sample(text, "exoarmur_commit_appends_count") == _sample(
        text, "exoarmur_commit_appends_bucket", le="1.0"
    )
    assert _sample(text, "exoarmur_pending_approvals", tenant="acme") == 1
    assert _sample(text, "exoarmur_killswitches_engaged") == 1
    assert _sample(text, "exoarmur_http_responses_total", status="202") == 1
    assert _sample(text, "exoarmur_in_flight", kind="read") == 0  # scrapes are not bounded reads
    assert _sample(text, "exoarmur_in_flight_bound", kind="write") == 256


def test_metrics_count_429s_and_expiries(dep: Deployment) -> None:
    slots = dep.client.app.state.read_slots  # type: ignore[attr-defined]
    for _ in range(slots.bound):
        slots.enter()
    try:
        busy = dep.client.get("/v1/whoami", headers=dep.auth("alice"))
        assert busy.status_code == 429
    finally:
        for _ in range(slots.bound):
            slots.leave()
    submit(dep, "agent-7", DELETE, 202)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # past the one-hour window
    dep.governor.clock = StepClock(later)
    listed = dep.client.get("/v1/tenants/acme/approvals", headers=dep.auth("alice"))
    assert listed.json()["pending"] == []
    text = dep.client.get("/metrics", headers=dep.auth("audrey")).text
    assert _sample(text, "exoarmur_http_responses_total", status="429") == 1
    assert _sample(text, "exoarmur_expiries_total", tenant="acme") == 1
    assert _sample(text, "exoarmur_pending_approvals", tenant="acme") == 0


def test_a_scrape_of_a_failed_store_still_answers_and_counts_the_failure(tmp_path: Path) -> None:
    Home(tmp_path).init()
    governor = open_governor(tmp_path)
    app = create_app(governor)
    governor.close()  # every store read now fails
    with TestClient(app, client=("127.0.0.1", 40000)) as local:  # type: ignore[arg-type]
        answer = local.get("/metrics")
    assert answer.status_code == 200
    assert _sample(answer.text, "exoarmur_store_errors_total") == 1
    assert "exoarmur_pending_approvals" not in answer.text
    metrics: Metrics = app.state.metrics
    metrics.store_failed(ValueError("not the store"))  # only store failures count
    metrics.store_failed(StoreError("gone"))
    # 1 scrape + 1 counted by hand + this render, itself a scrape of the closed store
    assert _sample(metrics.render().decode(), "exoarmur_store_errors_total") == 3


# -- request ids and logs -------------------------------------------------------------


def test_every_answer_carries_a_request_id_and_a_plain_one_is_kept(dep: Deployment) -> None:
    kept = dep.client.get("/v1/health", headers={"X-Request-ID": "trace-42.a_b"})
    assert kept.headers["x-request-id"] == "trace-42.a_b"
    for hostile in ("two words", "x" * 129, "semi;colon", "<b>", ""):
        answer = dep.client.get("/v1/health", headers={"X-Request-ID": hostile})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]), hostile
    refused = dep.client.get("/v1/whoami")  # errors too
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])


def test_log_lines_name_their_request_in_text_and_json(dep: Deployment) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("exoarmur.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        dep.client.get("/v1/health", headers={"X-Request-ID": "req-1"})
    finally:
        access.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == "req-1"
    assert entry["http"]["status"] == 200
    assert entry["http"]["path"] == "/v1/health"
    assert entry["time"].endswith("+00:00")

    token = request_id.set("req-2")
    try:
        record = logging.LogRecord("exoarmur", logging.ERROR, __file__, 1, "boom", None, None)
        try:
            raise RuntimeError("inside")
        except RuntimeError:
            record.exc_info = sys.exc_info()
        assert RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["request_id"] == "req-2"
    assert "RuntimeError: inside" in line["exception"]


def test_the_log_configuration_takes_a_format_and_a_level() -> None:
    text = service_logging("warning", "text")
    assert "%(request_id)s" in text["formatters"]["default"]["fmt"]
    assert text["loggers"]["exoarmur"]["level"] == "WARNING"
    as_json = service_logging("debug", "json")
    assert as_json["formatters"]["default"]["()"].endswith("JsonFormatter")
    with pytest.raises(ValueError, match="--log-format"):
        service_logging("info", "xml")
    with pytest.raises(ValueError, match="--log-level"):
        service_logging("loud", "text")


# -- the listening address --------------------------------------------------------------


def test_a_taken_port_is_said_before_anything_is_served(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AddressInUse, match=f"127.0.0.1:{port} is already in use"):
            bind("127.0.0.1", port)
        Home(tmp_path).init()
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "exoarmur"),
                "--home",
                str(tmp_path),
                "serve",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == EXIT_ADDRESS_IN_USE == 8
    assert "already in use" in done.stderr
    assert "serving" not in done.stderr + done.stdout
    with pytest.raises(AddressInUse, match="cannot listen"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never this machine's address


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.mark.slow
def test_tls_serves_https_and_the_console_cookie_is_secure(tmp_path: Path) -> None:
    Home(tmp_path / "home").init()
    cert, key = _self_signed(tmp_path)
    governor = open_governor(tmp_path / "home")
    _, api_key = governor.add_principal("alice", "operator", ["acme"])
    service = Service(governor, port=0, log_config=None, tls_cert=cert, tls_key=key)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not service.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"https://127.0.0.1:{service.port}", verify=trust) as client:
            assert client.get("/v1/health").status_code == 200
            form = client.get("/console/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            signed_in = client.post(
                "/console/signin",
                data={"csrf": csrf.group(1), "api_key": api_key},
                follow_redirects=False,
            )
            cookie = signed_in.headers["set-cookie"]
            assert cookie.startswith("__Host-exoarmur_console=")
            assert "Secure" in cookie
            assert "HttpOnly" in cookie
    finally:
        service.stop()
        runner.join(60)
    again = open_governor(tmp_path / "home")
    try:
        with pytest.raises(ValueError, match="go together"):
            Service(again, tls_cert=cert, log_config=None)
    finally:
        again.close()


# -- traces ---------------------------------------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_submit_and_vote_are_spans_in_the_callers_trace(dep: Deployment) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    dep.client.app.state.tracer_provider = provider  # type: ignore[attr-defined]
    traceparent = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    answer = dep.client.post("/v1/intents", json=DELETE, headers=dep.auth("agent-7") | traceparent)
    pending = answer.json()
    vote = {"reason": "ok", "intent_hash": pending["intent_hash"]}
    dep.client.post(
        f"/v1/tenants/acme/intents/{pending['intent_id']}/approve",
        json=vote,
        headers=dep.auth("alice"),  # no traceparent: a trace of its own
    )
    spans = exported.get_finished_spans()
    submitted, voted = (s for s in spans if s.name in ("exoarmur.submit", "exoarmur.vote"))
    # The governor's stages are children of the call they ran in.
    within = {
        outer.name: [
            s.name for s in spans if s.parent and s.parent.span_id == outer.context.span_id
        ]
        for outer in (submitted, voted)
    }
    assert within == {
        "exoarmur.submit": ["exoarmur.decide", "exoarmur.gate", "exoarmur.append"],
        "exoarmur.vote": ["exoarmur.append"],
    }
    assert submitted.name == "exoarmur.submit"
    assert format(submitted.context.trace_id, "032x") == TRACE_ID
    assert submitted.parent is not None
    assert format(submitted.parent.span_id, "016x") == PARENT_ID
    assert submitted.attributes == {
        "exoarmur.tenant": "acme",
        "exoarmur.action": "demo.delete",
        "exoarmur.intent_id": pending["intent_id"],
        "exoarmur.verdict": "require_approval",
        "exoarmur.status": "pending_approval",
    }
    assert voted.name == "exoarmur.vote"
    assert format(voted.context.trace_id, "032x") != TRACE_ID
    assert voted.parent is None
    assert voted.attributes is not None
    assert voted.attributes["exoarmur.vote"] == "approve"
    assert voted.attributes["exoarmur.approval"] == "pending"
    provider.shutdown()


def test_trace_export_is_chosen_by_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace

    from exoarmur.server import tracing

    installed: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert tracing.configure_from_environment() is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_from_environment() is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-over-carrier-pigeon")
    with pytest.raises(ValueError, match="must be console, otlp or none"):
        tracing.configure_from_environment()
    try:
        otlp_missing = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None
    except ModuleNotFoundError:
        otlp_missing = True
    if otlp_missing:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        with pytest.raises(ValueError, match="opentelemetry-exporter-otlp-proto-http"):
            tracing.configure_from_environment()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.configure_from_environment() is True
    (provider,) = installed
    provider.shutdown()  # type: ignore[attr-defined]
