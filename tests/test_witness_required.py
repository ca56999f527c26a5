"""``verify`` and ``prove`` with ``--witness-key``/``--witness-quorum``.

They rely on the latest stored checkpoint of the log; with witness keys
given, that checkpoint must carry the quorum of those witnesses'
cosignatures, and the failure names the witnesses whose cosignature is
missing. The witnesses are real ones over loopback HTTP, in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.home import Home
from exoarmur.ledger.keys import SigningKey
from exoarmur.model.event import EventDraft
from exoarmur.witness import Cosigner
from exoarmur.witness.publish import Requirement
from exoarmur.witness.service import Witness, WitnessServer
from exoarmur.witness.state import WitnessState

runner = CliRunner()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _cosigner(n: int) -> Cosigner:
    seed = hashlib.sha256(f"required {n}".encode()).digest()
    return Cosigner(SigningKey.from_seed(f"witness.test/w{n}", seed))


W1, W2, W9 = _cosigner(1), _cosigner(2), _cosigner(9)
K1, K2, K9 = (w.verifier().verifier_key() for w in (W1, W2, W9))


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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    Home(path).init()
    return path


@pytest.fixture
def witness_urls(tmp_path: Path, home: Path) -> Iterator[list[str]]:
    key = Home(home).signing_key()
    logs = {f"{key.name}/acme": [key.verifier()]}
    log = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the servers)
    states, servers, threads = [], [], []
    for n, cosigner in ((1, W1), (2, W2)):
        state = WitnessState(tmp_path / f"w{n}.db")
        server = WitnessServer(("127.0.0.1", 0), Witness(cosigner, logs, state, lambda: 77), log)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        states.append(state)
        servers.append(server)
        threads.append(thread)
    try:
        yield [server.url for server in servers]
    finally:
        for server, thread, state in zip(servers, threads, states, strict=True):
            server.shutdown()
            server.server_close()
            thread.join()
            state.close()
        log.close()


def cosign(home: Path, urls: list[str]) -> None:
    args = ["checkpoint", "--tenant", "acme"]
    for url, key in zip(urls, (K1, K2), strict=True):
        args += ["--witness", url, "--witness-key", key]
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output


BOTH = ("--witness-key", K1, "--witness-key", K2)


def test_verify_and_prove_pass_on_a_cosigned_checkpoint(
    home: Path, witness_urls: list[str]
) -> None:
    assert grow(home, 5) == 5
    cosign(home, witness_urls)
    base = ["--home", str(home)]
    verified = runner.invoke(app, [*base, "verify", "--tenant", "acme", *BOTH])
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED" in verified.output

    proved = runner.invoke(
        app, [*base, "prove", "inclusion", "--tenant", "acme", "--event-id", "ev-3", *BOTH]
    )
    assert proved.exit_code == 0, proved.output
    consistent = runner.invoke(
        app,
        [*base, "prove", "consistency", "--tenant", "acme", "--from", "2", "--to", "5", *BOTH],
    )
    assert consistent.exit_code == 0, consistent.output
    assert "verified: True" in consistent.output

    # One of the two suffices with a quorum of 1, even with a stranger's key named.
    one = ["--witness-key", K1, "--witness-key", K9, "--witness-quorum", "1"]
    assert runner.invoke(app, [*base, "verify", "--tenant", "acme", *one]).exit_code == 0


def test_a_missing_cosignature_fails_naming_the_witness(
    home: Path, witness_urls: list[str]
) -> None:
    grow(home, 5)
    cosign(home, witness_urls)
    base = ["--home", str(home)]
    three = [*BOTH, "--witness-key", K9]
    verified = runner.invoke(app, [*base, "verify", "--tenant", "acme", *three, "--json"])
    assert verified.exit_code == 1
    body = json.loads(verified.stdout)
    assert body["status"] == "FAILED"
    assert body["problems"] == [
        "witnesses: the latest stored checkpoint (size 5): 2 of the 3 witness cosignatures "
        "needed (valid: witness.test/w1, witness.test/w2; missing: witness.test/w9)"
    ]
    proved = runner.invoke(
        app, [*base, "prove", "inclusion", "--tenant", "acme", "--event-id", "ev-1", *three]
    )
    assert proved.exit_code == 1
    assert "missing: witness.test/w9" in proved.output
    consistent = runner.invoke(
        app, [*base, "prove", "consistency", "--tenant", "acme", "--from", "1", "--to", "5", *three]
    )
    assert consistent.exit_code == 1
    assert "missing: witness.test/w9" in consistent.output


def test_a_plain_checkpoint_after_the_cosigned_one_is_what_is_relied_on(
    home: Path, witness_urls: list[str]
) -> None:
    grow(home, 4)
    cosign(home, witness_urls)
    grow(home, 2)
    base = ["--home", str(home)]
    # An event after the cosigned checkpoint is not covered by it.
    late = runner.invoke(
        app, [*base, "prove", "inclusion", "--tenant", "acme", "--event-id", "ev-5", *BOTH]
    )
    assert late.exit_code == 1
    assert "after the latest cosigned checkpoint (size 4)" in late.output
    beyond = runner.invoke(
        app, [*base, "prove", "consistency", "--tenant", "acme", "--from", "1", "--to", "6", *BOTH]
    )
    assert beyond.exit_code == 1
    assert "not the size of the latest cosigned checkpoint (4)" in beyond.output

    # Signed by the log alone: the log's key holder could have signed anything.
    assert runner.invoke(app, [*base, "checkpoint", "--tenant", "acme"]).exit_code == 0
    verified = runner.invoke(app, [*base, "verify", "--tenant", "acme", *BOTH])
    assert verified.exit_code == 1
    assert "0 of the 2 witness cosignatures needed" in verified.output
    assert "missing: witness.test/w1, witness.test/w2" in verified.output
    proved = runner.invoke(
        app, [*base, "prove", "inclusion", "--tenant", "acme", "--event-id", "ev-1", *BOTH]
    )
    assert proved.exit_code == 1
    assert "run `exoarmur checkpoint --witness" in proved.output
    # Without witness keys nothing about witnesses is asked.
    assert runner.invoke(app, [*base, "verify", "--tenant", "acme"]).exit_code == 0


def test_a_log_never_checkpointed_has_nothing_to_rely_on(home: Path) -> None:
    grow(home, 2)
    result = runner.invoke(app, ["--home", str(home), "verify", "--tenant", "acme", *BOTH])
    assert result.exit_code == 1
    assert "no stored checkpoint to require witness cosignatures on" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness-quorum", "1"], "--witness-key: name the key"),
        (["--witness-key", "bad"], "--witness-key: malformed"),
        ([*BOTH, "--witness-quorum", "3"], "--witness-quorum: 3 is not from 1 to the 2"),
        ([*BOTH, "--witness-quorum", "0"], "--witness-quorum: 0 is not from 1 to the 2"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["verify", "--tenant", "acme"],
        ["prove", "inclusion", "--tenant", "acme", "--event-id", "ev-0"],
        ["prove", "consistency", "--tenant", "acme", "--from", "0", "--to", "1"],
    ],
)
def test_witness_options_are_checked_naming_the_option(
    home: Path, command: list[str], args: list[str], message: str
) -> None:
    grow(home, 1)
    result = runner.invoke(app, ["--home", str(home), *command, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_an_altered_cosignature_is_named_as_such(home: Path, witness_urls: list[str]) -> None:
    grow(home, 3)
    cosign(home, witness_urls)
    ledger = Home(home).ledger()
    try:
        stored = ledger.store.latest_checkpoint("acme")
    finally:
        ledger.store.close()
    assert stored is not None
    body, _, signatures = stored[1].partition("\n\n")
    altered = body.replace("\n3\n", "\n4\n", 1) + "\n\n" + signatures
    problem = Requirement.of([W1.verifier()], None).problem(altered)
    assert problem is not None
    assert "bad cosignature by witness witness.test/w1" in problem


def test_prove_consistency_ends_at_the_root_the_witnesses_saw(
    home: Path, witness_urls: list[str]
) -> None:
    grow(home, 4)
    cosign(home, witness_urls)
    # The store changed under the cosigned checkpoint: the right half of the tree of 4.
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute(
            "UPDATE nodes SET hash = ? WHERE tenant = 'acme' AND level = 1 AND idx = 1",
            (bytes(32),),
        )
    db.close()
    args = ["prove", "consistency", "--tenant", "acme", "--from", "2", "--to", "4"]
    result = runner.invoke(app, ["--home", str(home), *args, *BOTH])
    assert result.exit_code == 1, result.output
    assert "verified: False" in result.output
    # Without witnesses a proof that does not verify exits 1 too (it said False and exited 0).
    plain = runner.invoke(app, ["--home", str(home), *args])
    assert plain.exit_code == 1, plain.output
    assert "verified: False" in plain.output
