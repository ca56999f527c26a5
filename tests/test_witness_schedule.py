"""``exoarmur serve`` has every log cosigned on the ``[witness]`` schedule of ``config.toml``.

The end-to-end test runs two real ``exoarmur witness serve`` processes and a
real ``exoarmur serve`` on loopback and waits (bounded) until ``exoarmur
verify --witness-key …`` accepts the log; the cosignatures are checked again
with ``c2sp_reference``, which shares no code with ours. The loop itself is
also driven tick by tick in this process, against in-process witnesses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from typer.testing import CliRunner

from c2sp_reference import cosignature_time, log_signed_body
from exoarmur.cli import app
from exoarmur.errors import CheckpointError, ConfigError
from exoarmur.home import Home
from exoarmur.ledger.checkpoint import Checkpoint, sign_checkpoint, sign_note
from exoarmur.ledger.keys import SigningKey, write_signing_key
from exoarmur.model.event import EventDraft
from exoarmur.server.settings import ServiceSettings
from exoarmur.server.witnessing import WitnessLoop, WitnessSchedule
from exoarmur.witness import Cosigner
from exoarmur.witness.publish import cosign_and_store, sign_head
from exoarmur.witness.service import Witness, WitnessServer
from exoarmur.witness.state import WitnessState

runner = CliRunner()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: a bound on waiting for the service, not a claim about its speed
PATIENCE_SECONDS = 120


def _cosigner(n: int) -> Cosigner:
    seed = hashlib.sha256(f"schedule {n}".encode()).digest()
    return Cosigner(SigningKey.from_seed(f"witness.test/s{n}", seed))


C1, C2 = _cosigner(1), _cosigner(2)
K1, K2 = (c.verifier().verifier_key() for c in (C1, C2))


def grow(home: Path, count: int) -> int:
    ledger = Home(home).ledger()
    try:
        start = ledger.size("acme")
        drafts = [
            EventDraft(
                event_id=f"ev-{start + i}",
                tenant="acme",
                type="test.event",
                correlation_id="corr",
                event_time=T0,
                process_time=T0,
                actor={"id": "tester", "kind": "system"},
                payload={"n": start + i},
            )
            for i in range(count)
        ]
        ledger.append("acme", drafts)
        return ledger.size("acme")
    finally:
        ledger.store.close()


def logs_of(home: Path) -> list[str]:
    """``--log ORIGIN=VERIFIER_KEY`` for the home's tenant log and its system log."""
    key = Home(home).signing_key()
    return [f"{key.name}/{log}={key.verifier_key()}" for log in ("acme", "_system")]


def configure(home: Path, urls: list[str], keys: list[str], quorum: int, every: float) -> None:
    with open(Home(home).config_path, "a", encoding="utf-8") as config:
        config.write(
            f"\n[witness]\nurls = {json.dumps(urls)}\nkeys = {json.dumps(keys)}\n"
            f"quorum = {quorum}\ninterval_seconds = {every}\n"
        )


def start_witness(tmp: Path, number: int, logs: list[str]) -> tuple[subprocess.Popen[str], str]:
    key = tmp / f"s{number}.key"
    write_signing_key(key, SigningKey.from_seed(f"witness.test/s{number}", _seed(number)))
    args = [a for log in logs for a in ("--log", log)]
    args += ["--key", str(key), "--listen", "127.0.0.1:0", "--state", str(tmp / f"s{number}.db")]
    process = subprocess.Popen(
        [sys.executable, "-c", "from exoarmur.cli import main; main()", "witness", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # written once the socket listens
    assert " listening on " in line, line
    return process, line.split()[-1]


def _seed(n: int) -> bytes:
    return hashlib.sha256(f"schedule {n}".encode()).digest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_serve(home: Path, stderr: IO[str]) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    exoarmur = Path(sys.executable).parent / "exoarmur"
    process = subprocess.Popen(
        [str(exoarmur), "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        env=os.environ | {"PYTHONWARNINGS": "error"},
    )
    url = f"http://127.0.0.1:{port}"
    until(lambda: process.poll() is not None or _ready(url))
    assert process.poll() is None, "exoarmur serve did not start"
    return process, url


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/ready", timeout=1).is_success
    except httpx.TransportError:
        return False


def until(condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    if process.stdout is not None:
        process.stdout.close()
    return code


def latest_note(home: Path, tenant: str) -> str:
    with sqlite3.connect(f"file:{home / 'ledger.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT note FROM checkpoints WHERE tenant = ? ORDER BY size DESC LIMIT 1", (tenant,)
        ).fetchone()
    return str(row[0]) if row else ""


@pytest.mark.slow
def test_serve_stores_a_cosigned_checkpoint_on_its_schedule(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Home(home).init()
    assert grow(home, 6) == 6
    witnesses = [start_witness(tmp_path, n, logs_of(home)) for n in (1, 2)]
    serve_log = tmp_path / "serve.log"
    try:
        configure(home, [url for _, url in witnesses], [K1, K2], 2, 0.5)
        with open(serve_log, "w", encoding="utf-8") as stderr:
            serve, _url = start_serve(home, stderr)
            try:
                required = ["--witness-key", K1, "--witness-key", K2, "--witness-quorum", "2"]

                def verified() -> bool:
                    result = runner.invoke(
                        app, ["--home", str(home), "verify", "--tenant", "acme", *required]
                    )
                    return result.exit_code == 0

                until(verified)
                note = latest_note(home, "acme")
                for key in (K1, K2):
                    assert cosignature_time(note, key) > 0
                assert (
                    log_signed_body(note, Home(home).signing_key().verifier_key()).split("\n")[1]
                    == "6"
                )
                until(lambda: cosignature_time(latest_note(home, "_system"), K1) > 0)
                assert serve.poll() is None
            finally:
                assert stop(serve) == 0
        # The settings it ran with are in the system log, the witnesses among them.
        shown = runner.invoke(app, ["--home", str(home), "log", "--tenant", "_system", "--json"])
        assert K1 in shown.stdout
    finally:
        for process, _ in witnesses:
            stop(process)


@pytest.mark.slow
def test_serve_outlives_witnesses_that_are_down_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Home(home).init()
    grow(home, 2)
    nobody = f"http://127.0.0.1:{_free_port()}"
    configure(home, [nobody], [K1], 1, 0.2)
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "w", encoding="utf-8") as stderr:
        serve, url = start_serve(home, stderr)
        try:
            until(lambda: "(3 failure(s) so far)" in serve_log.read_text())
            assert _ready(url)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            failed = next(
                line
                for line in metrics.splitlines()
                if line.startswith('exoarmur_witness_cosignings_total{result="failed"}')
            )
            assert float(failed.split()[-1]) >= 3
            assert serve.poll() is None
        finally:
            assert stop(serve) == 0
    assert "witness cosigning FAILED" in serve_log.read_text()


# -- the loop tick by tick, in this process -----------------------------------------


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    home = tmp_path / "home"
    Home(home).init()
    key = Home(home).signing_key()
    logs = {f"{key.name}/{log}": [key.verifier()] for log in ("acme", "_system")}
    log = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the servers)
    states, servers, threads = [], [], []
    for number, cosigner in ((1, C1), (2, C2)):
        state = WitnessState(tmp_path / f"w{number}.db")
        witness = Witness(cosigner, logs, state, lambda: 99)
        server = WitnessServer(("127.0.0.1", 0), witness, log)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        states.append(state)
        servers.append(server)
        threads.append(thread)
    try:
        yield home, [server.url for server in servers]
    finally:
        for server, thread, state in zip(servers, threads, states, strict=True):
            server.shutdown()
            server.server_close()
            thread.join()
            state.close()
        log.close()


def test_a_tick_cosigns_each_log_once_until_it_grows(
    in_process: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    home, urls = in_process
    grow(home, 3)
    schedule = WitnessSchedule(tuple(urls), (C1.verifier(), C2.verifier()), 2)
    ledger = Home(home).ledger()
    try:
        loop = WitnessLoop(ledger, schedule)
        loop.tick()
        assert (loop.cosigned, loop.failed) == (2, 0)  # acme and the system log
        note = ledger.store.latest_checkpoint("acme")
        assert note is not None
        assert note[0] == 3
        assert cosignature_time(note[1], K2) == 99
        loop.tick()
        assert (loop.cosigned, loop.failed) == (2, 0)  # nothing new to cosign
        ledger.append("acme", [_draft(3)])
        plain = ledger.checkpoint("acme")  # signed by the log alone: the cosigned one replaces it
        loop.tick()
        assert (loop.cosigned, loop.failed) == (3, 0)
        stored = ledger.store.latest_checkpoint("acme")
        assert stored is not None
        assert stored[0] == 4
        assert stored[1].startswith(plain.note)
        assert cosignature_time(stored[1], K1) == 99
        ledger.append("acme", [_draft(4)])
        # Stored with a signature by a key nobody here knows: replacing it would lose that one.
        stranger = SigningKey.from_seed("stranger.example", hashlib.sha256(b"stranger").digest())
        plain = ledger.checkpoint("acme")
        foreign = sign_note(plain.checkpoint.body(), [ledger.key, stranger])
        assert ledger.store.replace_checkpoint("acme", 5, plain.note, foreign)
        with caplog.at_level(logging.WARNING, "exoarmur.server"):
            loop.tick()
        assert "lacks signatures the stored one carries" in caplog.text
        assert (loop.cosigned, loop.failed) == (3, 0)
        assert ledger.store.checkpoint_at("acme", 5) == foreign
        ledger.append("acme", [_draft(5)])
        loop.tick()
        assert loop.cosigned == 4
    finally:
        ledger.store.close()


class _LosesTheRace:
    """A store where another cosigner stores more signatures just before each swap."""

    def __init__(self, store: Any, rival: SigningKey) -> None:
        self._store, self._rival = store, rival

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def replace_checkpoint(self, tenant: str, size: int, old: str, new: str) -> bool:
        text = new[: new.index("\n\n") + 1]
        more = new + sign_note(text, [self._rival]).rsplit("\n\n", 1)[1]
        assert self._store.replace_checkpoint(tenant, size, old, more)
        return bool(self._store.replace_checkpoint(tenant, size, old, new))


def test_cosigning_never_stores_over_a_fork_nor_over_a_rival_with_more(
    in_process: tuple[Path, list[str]],
) -> None:
    home, urls = in_process
    grow(home, 3)
    ledger = Home(home).ledger()
    keys = (C1.verifier(), C2.verifier())
    try:
        with httpx.Client(timeout=PATIENCE_SECONDS) as client:
            head, note = sign_head(ledger, "acme")
            fork = sign_checkpoint(Checkpoint(head.origin, head.size, bytes(32)), ledger.key)
            ledger.store.save_checkpoint("acme", head.size, fork)
            with pytest.raises(CheckpointError, match=r"fork: .* at size 3 has root 0000"):
                cosign_and_store(
                    ledger, "acme", head, note, witnesses=urls, keys=keys, quorum=2, client=client
                )
            assert ledger.store.checkpoint_at("acme", 3) == fork
            ledger.append("acme", [_draft(3)])
            ledger.checkpoint("acme")
            rival = SigningKey.from_seed("rival.example", hashlib.sha256(b"rival").digest())
            ledger.store = _LosesTheRace(ledger.store, rival)
            head, note = sign_head(ledger, "acme")
            published = cosign_and_store(
                ledger, "acme", head, note, witnesses=urls, keys=keys, quorum=2, client=client
            )
        assert published.kept_other is not None
        assert "a signature by a key not given" in published.kept_other
        stored = ledger.store.checkpoint_at("acme", 4)
        assert stored == published.note + stored.rsplit("\n", 2)[1] + "\n"
    finally:
        ledger.store.close()


def test_a_tick_that_fails_is_counted_and_logged_never_raised(
    in_process: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    home, urls = in_process
    grow(home, 2)
    nobody = f"http://127.0.0.1:{_free_port()}"
    # Two witnesses asked, one down, quorum 1: cosigned, the refusal said.
    schedule = WitnessSchedule((urls[0], nobody), (C1.verifier(), C2.verifier()), 1)
    ledger = Home(home).ledger()
    with caplog.at_level(logging.INFO, "exoarmur.server"):
        loop = WitnessLoop(ledger, schedule)
        loop.tick()
        assert (loop.cosigned, loop.failed) == (2, 0)
        assert nobody in caplog.text
        # Quorum 2 with one down: a failure, counted, logged as an error.
        ledger.append("acme", [_draft(2)])
        strict = WitnessLoop(ledger, WitnessSchedule((urls[0], nobody), schedule.keys, 2))
        strict.tick()
        # both logs: what the lenient loop stored carries one cosignature, not two
        assert (strict.cosigned, strict.failed) == (0, 2)
        assert "witness cosigning FAILED for log 'acme' (2 failure(s) so far)" in caplog.text
        ledger.store.close()
        strict.tick()  # a closed store: counted too
        assert strict.failed == 3
        assert "cannot list the logs" in caplog.text


def test_the_loop_thread_ticks_and_stops(in_process: tuple[Path, list[str]]) -> None:
    home, urls = in_process
    grow(home, 1)
    ledger = Home(home).ledger()
    try:
        loop = WitnessLoop(ledger, WitnessSchedule(tuple(urls), (C1.verifier(),), 1, 3600))
        loop.start()
        until(lambda: loop.cosigned == 2)
        loop.stop()
        loop.stop()  # twice is fine
    finally:
        ledger.store.close()


def _draft(n: int) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{n}",
        tenant="acme",
        type="test.event",
        correlation_id="corr",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
    )


# -- the [witness] table ------------------------------------------------------------


def test_the_witness_table_is_read_and_recorded_only_when_present() -> None:
    assert WitnessSchedule.from_config({}) is None
    assert "witness" not in ServiceSettings.from_config({}).to_canonical()
    settings = ServiceSettings.from_config(
        {"witness": {"urls": ["http://w1.test/"], "keys": [K1, K2], "interval_seconds": 2.5}}
    )
    assert settings.witness is not None
    assert settings.witness.quorum == 2  # all keys unless said
    assert settings.to_canonical()["witness"] == {
        "urls": ["http://w1.test/"],
        "keys": [K1, K2],
        "quorum": 2,
        "interval_seconds": "2.5",
    }
    whole = WitnessSchedule.from_config({"witness": {"urls": ["https://w"], "keys": [K1]}})
    assert whole is not None
    assert whole.to_canonical()["interval_seconds"] == 300


GOOD = {"urls": ["http://w1.test/"], "keys": [K1]}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("yes", "witness: must be a table"),
        (GOOD | {"every": 1}, "witness.every: unknown setting"),
        ({"keys": [K1]}, "witness.urls: must be a non-empty list of strings"),
        (GOOD | {"urls": []}, "witness.urls: must be a non-empty list of strings"),
        (GOOD | {"urls": ["ftp://w"]}, "witness.urls: 'ftp://w' is not an http:// or https://"),
        (GOOD | {"keys": [""]}, "witness.keys: must be a non-empty list of strings"),
        (GOOD | {"keys": ["nope"]}, "witness.keys: "),
        (GOOD | {"quorum": 2}, "witness.quorum: must be a whole number from 1 to the 1 key(s)"),
        (GOOD | {"quorum": True}, "witness.quorum: must be a whole number"),
        (GOOD | {"interval_seconds": 0}, "witness.interval_seconds: must be a number of seconds"),
        (GOOD | {"interval_seconds": "5"}, "witness.interval_seconds: must be a number"),
        (GOOD | {"interval_seconds": float("inf")}, "witness.interval_seconds: must be"),
    ],
)
def test_a_bad_witness_table_is_refused_naming_the_setting(table: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        WitnessSchedule.from_config({"witness": table})
    assert message in str(raised.value)


def test_serve_refuses_to_start_with_a_bad_witness_table(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Home(home).init()
    configure(home, ["http://w1.test/"], [K1], 2, 1)
    result = runner.invoke(app, ["--home", str(home), "serve", "--port", str(_free_port())])
    assert result.exit_code == 2
    assert "witness.quorum" in result.output
