"""Witnesses (c2sp.org/tlog-witness, tlog-cosignature): cosign what extends, refuse the rest.

The pure parts are tables and properties; the durable parts run as real
``exoarmur witness serve`` processes on loopback, killed with SIGKILL; every
cosignature is checked again by ``c2sp_reference``, which shares no code
with ours.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from c2sp_reference import cosignature_time, log_signed_body
from exoarmur.cli import app
from exoarmur.errors import (
    CheckpointError,
    CheckpointRefused,
    InputError,
    QuorumNotReached,
    StoreError,
)
from exoarmur.home import Home
from exoarmur.ledger.checkpoint import Checkpoint, sign_checkpoint, sign_note
from exoarmur.ledger.keys import SigningKey, Verifier, write_signing_key
from exoarmur.ledger.merkle import EMPTY_ROOT, Frontier, consistency_proof
from exoarmur.model.event import EventDraft
from exoarmur.witness import (
    CosignatureVerifier,
    Cosigner,
    Refusal,
    collect_cosignatures,
    verify_cosignatures,
)
from exoarmur.witness.cosignature import cosigned_upgrade
from exoarmur.witness.protocol import AddCheckpoint, parse_add_checkpoint, parse_size_body
from exoarmur.witness.service import Witness, WitnessServer
from exoarmur.witness.state import Cosigned, WitnessState

runner = CliRunner()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORIGIN = "example.test/log"

# -- cosignature/v1 -------------------------------------------------------------


def _seed(n: int) -> bytes:
    return hashlib.sha256(f"seed {n}".encode()).digest()


LOG_KEY = SigningKey.from_seed("example.test/log", _seed(1))
WITNESS_KEY = SigningKey.from_seed("witness.test/w1", _seed(2))


def test_the_witness_key_id_uses_the_cosignature_type_not_the_log_type() -> None:
    cosigner = Cosigner(WITNESS_KEY)
    vkey = cosigner.verifier().verifier_key()
    raw = base64.b64decode(vkey.split("+", 2)[2])
    assert raw[0] == 0x04
    assert cosigner.verifier().key_id != WITNESS_KEY.key_id()
    assert CosignatureVerifier.from_string(vkey) == cosigner.verifier()
    assert "Cosigner(name='witness.test/w1'" in repr(cosigner)


@settings(deadline=None, max_examples=25)
@given(
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    timestamp=st.integers(1, 2**63 - 1),
    extension=st.lists(st.text("abc xyz/0-9", min_size=1, max_size=12), max_size=2),
)
def test_a_cosignature_verifies_with_the_reference_verifier(
    size: int, root: bytes, timestamp: int, extension: list[str]
) -> None:
    checkpoint = Checkpoint(ORIGIN, size, root, tuple(extension))
    note = sign_checkpoint(checkpoint, LOG_KEY)
    cosigner = Cosigner(WITNESS_KEY)
    cosigned = note + cosigner.cosign(checkpoint.body(), timestamp)
    vkey = cosigner.verifier().verifier_key()
    assert cosignature_time(cosigned, vkey) == timestamp
    assert log_signed_body(cosigned, LOG_KEY.verifier_key()) == checkpoint.body()
    (found,) = verify_cosignatures(cosigned, [cosigner.verifier()])
    assert (found.witness, found.timestamp) == ("witness.test/w1", timestamp)


def test_an_altered_cosigned_checkpoint_is_rejected_and_unknown_cosigners_ignored() -> None:
    checkpoint = Checkpoint(ORIGIN, 5, bytes(32))
    cosigner = Cosigner(WITNESS_KEY)
    other = Cosigner(SigningKey.from_seed("witness.test/w2", _seed(3)))
    note = sign_checkpoint(checkpoint, LOG_KEY) + cosigner.cosign(checkpoint.body(), 7)
    note += other.cosign(checkpoint.body(), 8) + cosigner.cosign(checkpoint.body(), 9)
    # Only trusted keys count, and one witness counts once however many lines it has.
    assert [c.timestamp for c in verify_cosignatures(note, [cosigner.verifier()])] == [7]
    assert verify_cosignatures(note, []) == []
    forged = note.replace("\n5\n", "\n6\n", 1)
    with pytest.raises(CheckpointError, match=r"bad cosignature by witness witness\.test/w1"):
        verify_cosignatures(forged, [cosigner.verifier()])
    # The log's own signature line is no cosignature, even under the same name.
    same_name = CosignatureVerifier(LOG_KEY.name, LOG_KEY.public_bytes())
    assert verify_cosignatures(sign_checkpoint(checkpoint, LOG_KEY), [same_name]) == []


def test_a_cosigned_checkpoint_replaces_a_stored_one_only_by_adding_signatures() -> None:
    checkpoint = Checkpoint(ORIGIN, 5, bytes(32))
    body = checkpoint.body()
    w1, w2 = Cosigner(WITNESS_KEY), Cosigner(SigningKey.from_seed("witness.test/w2", _seed(3)))
    keys = [w1.verifier(), w2.verifier()]
    log = [LOG_KEY.verifier()]
    plain = sign_checkpoint(checkpoint, LOG_KEY)
    one = plain + w1.cosign(body, 7)
    both = one + w2.cosign(body, 8)
    assert cosigned_upgrade(plain, one, log, keys) is None
    assert cosigned_upgrade(one, both, log, keys) is None
    # A witness that cosigned again later still counts as the same signer.
    assert cosigned_upgrade(one, plain + w1.cosign(body, 9) + w2.cosign(body, 9), log, keys) is None
    # Fewer, other or the same signatures: the stored one is kept.
    assert "lacks signatures the stored one carries (witness.test/w1+" in str(
        cosigned_upgrade(one, plain, log, keys)
    )
    assert "lacks signatures" in str(cosigned_upgrade(one, plain + w2.cosign(body, 8), log, keys))
    assert "no signature the stored one lacks" in str(cosigned_upgrade(both, both, log, keys))
    # A signature this check cannot verify is neither dropped nor added.
    stranger = SigningKey.from_seed("stranger.test/k", _seed(4))
    foreign = sign_note(body, [LOG_KEY, stranger])
    assert "a signature by a key not given" in str(
        cosigned_upgrade(foreign, plain + w1.cosign(body, 7), log, keys)
    )
    assert cosigned_upgrade(foreign, foreign + w1.cosign(body, 7), log, keys) is None
    assert "by keys not given" in str(cosigned_upgrade(plain, foreign, log, keys))
    # Another size is another checkpoint, not this one's.
    later = sign_checkpoint(Checkpoint(ORIGIN, 6, bytes(32)), LOG_KEY)
    assert "not of example.test/log at size 6" in str(cosigned_upgrade(plain, later, log, keys))
    # Another root at the same size is a fork: refused loudly, whichever way round.
    fork = Checkpoint(ORIGIN, 5, bytes(31) + b"\x01")
    forked = sign_checkpoint(fork, LOG_KEY) + w1.cosign(fork.body(), 7)
    for stored, cosigned in ((plain, forked), (forked, plain + w1.cosign(body, 7))):
        with pytest.raises(
            CheckpointError, match=r"fork: the stored checkpoint .* size 5 has root"
        ):
            cosigned_upgrade(stored, cosigned, log, keys)
    extended = Checkpoint(ORIGIN, 5, bytes(32), ("note",))
    with pytest.raises(CheckpointError, match="other extension lines"):
        cosigned_upgrade(plain, sign_checkpoint(extended, LOG_KEY), log, keys)
    # Neither note may carry a bad signature, nor lack the log's.
    with pytest.raises(CheckpointError, match="bad cosignature"):
        cosigned_upgrade(plain, plain + w1.cosign(fork.body(), 7), log, keys)
    with pytest.raises(CheckpointError, match="no signature by"):
        cosigned_upgrade(sign_note(body, [stranger]), one, log, keys)


@pytest.mark.parametrize(
    ("vkey", "rule"),
    [
        ("nonsense", "expected <name>"),
        ("bad name+00000000+AA==", "invalid key name"),
        ("w+0000000+AA==", "8 lowercase hex"),
        ("w+00000000+AA==", "33 bytes"),
        (LOG_KEY.verifier_key(), "is not an Ed25519 cosignature"),
        (
            "other.name+" + Cosigner(WITNESS_KEY).verifier().verifier_key().split("+", 1)[1],
            "does not match",
        ),
    ],
)
def test_a_malformed_witness_key_is_refused_naming_the_rule(vkey: str, rule: str) -> None:
    with pytest.raises(Exception, match=rule):
        CosignatureVerifier.from_string(vkey)


def test_cosignature_timestamps_and_keys_are_bounded() -> None:
    with pytest.raises(InputError, match="2\\*\\*63-1"):
        Cosigner(WITNESS_KEY).cosign("a\n", 2**63)
    with pytest.raises(InputError, match="32 bytes"):
        CosignatureVerifier("w", b"short")
    with pytest.raises(InputError, match="invalid witness name"):
        CosignatureVerifier("", bytes(32))
    verifier = Cosigner(WITNESS_KEY).verifier()
    assert verifier.timestamp_of("a\n", b"short") is None
    assert verifier.timestamp_of("a\n", b"\xff" * 72) is None


# -- the add-checkpoint judgement, as a scenario table ---------------------------


class Tree:
    """A log's tree in memory, with its signed checkpoints."""

    def __init__(self, leaves: list[bytes], key: SigningKey = LOG_KEY) -> None:
        self.key = key
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = Frontier()
        self.roots = [EMPTY_ROOT]
        for leaf in leaves:
            self.add(leaf)

    def add(self, leaf: bytes) -> None:
        for node_key, digest in self.frontier.append(hashlib.sha256(leaf).digest()):
            self.nodes[node_key] = digest
        self.roots.append(self.frontier.root())

    def read(self, keys: Any) -> dict[tuple[int, int], bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def note(self, size: int, root: bytes | None = None) -> str:
        checkpoint = Checkpoint(ORIGIN, size, self.roots[size] if root is None else root)
        return sign_checkpoint(checkpoint, self.key)

    def request(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = consistency_proof(old, size, self.read) if old else []
        return AddCheckpoint(old, tuple(proof), self.note(size)).encode()


def leaves(tag: str, n: int) -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Witness]:
    state = WitnessState(tmp_path / "witness.db")
    yield Witness(Cosigner(WITNESS_KEY), {ORIGIN: [LOG_KEY.verifier()]}, state, lambda: 1000)
    state.close()


GOOD = Tree(leaves("a", 12))
FORK = Tree(leaves("a", 5) + leaves("b", 7))
STRANGER = Tree(leaves("a", 12), SigningKey.from_seed("example.test/log", _seed(9)))

#: (name, sizes cosigned first from GOOD, request, expected status or 200)
SCENARIOS: list[tuple[str, list[int], bytes, int]] = [
    ("first checkpoint", [], GOOD.request(0, 8), 200),
    ("empty tree first", [], GOOD.request(0, 0), 200),
    ("extends with a proof", [5], GOOD.request(5, 12), 200),
    ("same checkpoint again", [8], GOOD.request(8, 8), 200),
    ("old size not the one cosigned", [8], GOOD.request(0, 12), 409),
    ("old size ahead of the witness", [5], GOOD.request(8, 12), 409),
    ("old size above the new size", [5], GOOD.request(12, 5, []), 400),
    ("rolled back: smaller than cosigned", [8], GOOD.request(8, 5, []), 400),
    ("forked at the same size", [12], FORK.request(12, 12, []), 422),
    ("a fork that shares the cosigned prefix extends it", [5], FORK.request(5, 12), 200),
    ("forked past the cosigned size", [8], FORK.request(8, 12), 422),
    (
        "fork sent with the honest tree's proof",
        [8],
        AddCheckpoint(8, tuple(consistency_proof(8, 12, GOOD.read)), FORK.note(12)).encode(),
        422,
    ),
    ("wrong proof", [5], GOOD.request(5, 12, [bytes(32)] * 3), 422),
    ("proof from the empty tree", [], GOOD.request(0, 12, [bytes(32)]), 422),
    (
        "size 0 with a non-empty root",
        [],
        AddCheckpoint(0, (), GOOD.note(0, bytes(32))).encode(),
        422,
    ),
    ("another key under the log's name", [], STRANGER.request(0, 12), 403),
    (
        "unknown origin",
        [],
        AddCheckpoint(
            0, (), sign_checkpoint(Checkpoint("other/log", 1, bytes(32)), LOG_KEY)
        ).encode(),
        404,
    ),
]


@pytest.mark.parametrize(
    ("cosigned", "request_body", "status"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_add_checkpoint_scenarios(
    witness: Witness, cosigned: list[int], request_body: bytes, status: int
) -> None:
    previous = 0
    for size in cosigned:
        witness.add_checkpoint(GOOD.request(previous, size))
        previous = size
    before = witness.state.latest(ORIGIN)
    if status == 200:
        line = witness.add_checkpoint(request_body)
        request = parse_add_checkpoint(request_body)
        cosigned_note = request.note + line
        assert (
            cosignature_time(cosigned_note, Cosigner(WITNESS_KEY).verifier().verifier_key()) == 1000
        )
        latest = witness.state.latest(ORIGIN)
        assert latest is not None
        assert latest.note == cosigned_note
        return
    with pytest.raises(CheckpointRefused) as refused:
        witness.add_checkpoint(request_body)
    assert refused.value.status == status, str(refused.value)
    if status == 409:
        assert refused.value.known_size == previous
    assert witness.state.latest(ORIGIN) == before  # a refusal records nothing


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"\xff\n\n", "not UTF-8"),
        (b"old 1\n", "no empty line"),
        (b"new 1\n\nx", "'old <size>'"),
        (b"old 01\n\nx", "leading zeros"),
        (b"old 18446744073709551616\n\nx", "leading zeros"),
        (b"old 1\nnot base64\n\nx", "32-byte hash"),
        (b"old 1\n" + b"AAAA\n" + b"\nx", "32-byte hash"),
        (b"old 1\n" + b"A" * 43 + b"=\n" * 64 + b"\nx", "more than 63"),
        (b"old 0\n\nnot a note", "malformed add-checkpoint request"),
        ("old 0\n\na\nb\n\n\u2014 k AAAA\n".encode(), "malformed add-checkpoint request"),
        (b"x" * (2 << 20), "larger than"),
    ],
)
def test_a_malformed_request_is_a_400(witness: Witness, body: bytes, rule: str) -> None:
    with pytest.raises(CheckpointRefused, match=rule) as refused:
        witness.add_checkpoint(body)
    assert refused.value.status == 400


def test_the_409_body_parser_takes_only_a_decimal_and_a_newline() -> None:
    assert parse_size_body("12\n") == 12
    assert parse_size_body("12") is None
    assert parse_size_body("012\n") is None


def test_a_witness_with_a_broken_clock_cosigns_nothing(tmp_path: Path) -> None:
    state = WitnessState(tmp_path / "w.db")
    witness = Witness(Cosigner(WITNESS_KEY), {ORIGIN: [LOG_KEY.verifier()]}, state, lambda: 0)
    with pytest.raises(CheckpointRefused, match="no time"):
        witness.add_checkpoint(GOOD.request(0, 3))
    assert state.latest(ORIGIN) is None
    state.close()


# -- the witness's record ------------------------------------------------------------


def test_the_record_survives_a_reopen_and_a_failed_step_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    state = WitnessState(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    big = Checkpoint(ORIGIN, 2**64 - 1, bytes(32))
    state.advance(ORIGIN, lambda latest: Cosigned(big, "note\n"))

    def refuse(latest: Cosigned | None) -> Cosigned:
        raise CheckpointRefused(422, "no")

    with pytest.raises(CheckpointRefused):
        state.advance(ORIGIN, refuse)
    state.close()
    again = WitnessState(path)
    assert again.latest(ORIGIN) == Cosigned(big, "note\n")
    assert again.latest("other") is None
    again.close()
    with pytest.raises(StoreError, match="witness state"):
        again.advance(ORIGIN, refuse)


def test_an_unusable_record_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "w.db").write_text("not a database" * 100)
    with pytest.raises(StoreError, match="cannot open witness state"):
        WitnessState(tmp_path / "w.db").latest(ORIGIN)


def test_racing_requests_for_one_log_cannot_both_pass_the_size_check(witness: Witness) -> None:
    witness.add_checkpoint(GOOD.request(0, 5))
    bodies = [GOOD.request(5, 8), GOOD.request(5, 12)]
    outcomes: list[int] = []

    def send(body: bytes) -> None:
        try:
            witness.add_checkpoint(body)
            outcomes.append(200)
        except CheckpointRefused as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [200, 409]


# -- over HTTP, in this process ----------------------------------------------------


@pytest.fixture
def served(witness: Witness) -> Iterator[str]:
    log = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the server)
    server = WitnessServer(("127.0.0.1", 0), witness, log)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        log.close()


def test_the_http_witness_answers_with_the_protocols_codes(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        ok = client.post("/add-checkpoint", content=GOOD.request(0, 8))
        assert ok.status_code == 200
        assert ok.text.startswith("\u2014 witness.test/w1 ")
        assert ok.text.endswith("\n")
        conflict = client.post("/add-checkpoint", content=GOOD.request(0, 12))
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "text/x.tlog.size"
        assert conflict.text == "8\n"
        fork = client.post("/add-checkpoint", content=FORK.request(8, 12))
        assert fork.status_code == 422
        held = client.get(f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
        assert held.status_code == 200
        assert held.text == GOOD.note(8) + ok.text
        assert client.get(f"/{'0' * 64}/checkpoint").status_code == 404
        assert client.get("/checkpoint").status_code == 404
        assert client.post("/other", content=b"x").status_code == 404
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        # Announced too large: refused before a byte of the body is read.
        raw.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 3145728\r\n\r\n")
        assert raw.makefile("rb").read().startswith(b"HTTP/1.1 413 ")


def test_a_request_without_a_length_is_refused(served: str) -> None:
    def body() -> Iterator[bytes]:
        yield GOOD.request(0, 5)

    with httpx.Client(base_url=served, timeout=10) as client:
        assert client.post("/add-checkpoint", content=body()).status_code == 411


def test_a_witness_whose_record_fails_answers_500(witness: Witness, served: str) -> None:
    witness.state.close()
    with httpx.Client(base_url=served, timeout=10) as client:
        answer = client.post("/add-checkpoint", content=GOOD.request(0, 5))
    assert answer.status_code == 500


# -- the client: collect K of N, keep the refusals --------------------------------------


def _collect(tree: Tree, size: int, urls: list[str], quorum: int, **kw: Any) -> Any:
    with httpx.Client(timeout=10) as client:
        return collect_cosignatures(
            tree.note(size),
            LOG_KEY.verifier(),
            consistency=lambda old, new: consistency_proof(old, new, tree.read),
            root_at=lambda n: tree.roots[n],
            witnesses=urls,
            keys=kw.get("keys", [Cosigner(WITNESS_KEY).verifier()]),
            quorum=quorum,
            client=client,
        )


def test_the_client_follows_a_409_with_a_proof_and_reports_a_fork(served: str) -> None:
    first = _collect(GOOD, 5, [served], 1)
    assert [c.witness for c in first.cosignatures] == ["witness.test/w1"]
    second = _collect(GOOD, 12, [served + "/"], 1)  # 409 (old 0, witness has 5), then a proof
    assert cosignature_time(second.note, Cosigner(WITNESS_KEY).verifier().verifier_key()) == 1000
    with pytest.raises(QuorumNotReached, match="0 of the 1") as failed:
        _collect(FORK, 12, [served], 1)
    (refusal,) = failed.value.refusals
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.witness_size, refusal.witness_root) == (422, 12, GOOD.roots[12])
    assert refusal.log_root == FORK.roots[12] != refusal.witness_root
    assert refusal.log_root_at_witness_size == FORK.roots[12]
    assert "forked" in refusal.reason
    assert refusal.to_json()["witness_root"] == GOOD.roots[12].hex()
    assert "it cosigned size 12" in refusal.describe()


def test_the_client_reports_a_rolled_back_log_and_an_unreachable_witness(served: str) -> None:
    _collect(GOOD, 12, [served], 1)
    with pytest.raises(QuorumNotReached) as failed:
        _collect(GOOD, 8, [served, "http://127.0.0.1:9"], 1)
    rollback, unreachable = failed.value.refusals
    assert rollback.status == 409
    assert "rolled back" in rollback.reason
    assert (rollback.log_size, rollback.witness_size) == (8, 12)
    assert rollback.log_root_at_witness_size is None
    assert rollback.witness_note.startswith(GOOD.note(12))
    assert unreachable.status is None
    assert "unreachable" in unreachable.reason


def test_the_client_refuses_a_quorum_it_could_never_meet() -> None:
    with pytest.raises(InputError, match="at least 1"):
        _collect(GOOD, 5, ["http://127.0.0.1:9"], 0)
    with pytest.raises(InputError, match="more than the 1 witness key"):
        _collect(GOOD, 5, ["http://127.0.0.1:9"], 2)
    with pytest.raises(InputError, match="name at least one witness"):
        _collect(GOOD, 5, [], 1)


def test_an_answer_not_by_a_trusted_key_does_not_count(served: str) -> None:
    stranger = Cosigner(SigningKey.from_seed("witness.test/w9", _seed(8))).verifier()
    with pytest.raises(QuorumNotReached) as failed:
        _collect(GOOD, 5, [served], 1, keys=[stranger])
    assert "no cosignature by a trusted witness key" in failed.value.refusals[0].reason
    impostor = CosignatureVerifier("witness.test/w1", Cosigner(WITNESS_KEY).verifier().public_key)
    assert impostor == Cosigner(WITNESS_KEY).verifier()


# -- real processes: two witnesses on loopback, a rollback, a fork, a SIGKILL ------------


def draft(tenant: str, tag: str, n: int) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{tag}-{n}",
        tenant=tenant,
        type="test.event",
        correlation_id=f"corr-{tag}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n, "tag": tag},
    )


def grow(home: Path, tag: str, count: int) -> int:
    ledger = Home(home).ledger()
    try:
        start = ledger.size("acme")
        ledger.append("acme", [draft("acme", tag, start + i) for i in range(count)])
        return ledger.size("acme")
    finally:
        ledger.store.close()


@dataclass
class WitnessProcess:
    process: subprocess.Popen[str]
    url: str
    vkey: str
    log: IO[str]

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(how)
        code = self.process.wait(30)
        self.log.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def start_witness(tmp: Path, name: str, log_origin: str, log_vkey: str) -> WitnessProcess:
    key = tmp / f"{name}.key"
    if not key.exists():
        write_signing_key(key, SigningKey.generate(f"witness.test/{name}"))
    log = open(tmp / f"{name}.log", "a")  # noqa: SIM115 (closed by stop)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from exoarmur.cli import main; main()",
            "witness",
            "serve",
            "--key",
            str(key),
            "--log",
            f"{log_origin}={log_vkey}",
            "--listen",
            "127.0.0.1:0",
            "--state",
            str(tmp / f"{name}.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # written once the socket listens
    assert " listening on " in line, (tmp / f"{name}.log").read_text()
    _, vkey, _, _, url = line.split()
    return WitnessProcess(process, url, vkey, log)


@pytest.fixture
def log_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    Home(home).init()
    return home


def checkpoint(home: Path, witnesses: list[WitnessProcess], *extra: str) -> Any:
    args = ["--home", str(home), "checkpoint", "--tenant", "acme"]
    for w in witnesses:
        args += ["--witness", w.url, "--witness-key", w.vkey]
    return runner.invoke(app, [*args, *extra])


def origin_and_vkey(home: Path) -> tuple[str, str]:
    key = Home(home).signing_key()
    return f"{key.name}/acme", key.verifier_key()


@pytest.mark.slow
def test_two_witnesses_cosign_and_refuse_a_rollback_and_a_fork(
    tmp_path: Path, log_home: Path
) -> None:
    origin, vkey = origin_and_vkey(log_home)
    witnesses = [start_witness(tmp_path, n, origin, vkey) for n in ("w1", "w2")]
    try:
        grow(log_home, "a", 5)
        first = checkpoint(log_home, witnesses)
        assert first.exit_code == 0, first.output
        for w in witnesses:
            assert cosignature_time(first.stdout, w.vkey) > 0
        log_signed_body(first.stdout, vkey)

        backup = tmp_path / "backup.db"
        shutil.copy(log_home / "ledger.db", backup)
        assert grow(log_home, "a", 4) == 9
        second = checkpoint(log_home, witnesses, "--quorum", "2")
        assert second.exit_code == 0, second.output
        cosigned_nine = second.stdout

        # Rolled back: the database restored from the backup, its WAL deleted.
        for suffix in ("", "-wal", "-shm"):
            (log_home / f"ledger.db{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, log_home / "ledger.db")
        # The home's own anchor would refuse it first (test_ledger_trust); here it went
        # back too, as with a whole home restored: only the witnesses remember.
        (log_home / "anchors.json").unlink()
        evidence = tmp_path / "rollback.json"
        rolled = checkpoint(log_home, witnesses, "--evidence", str(evidence))
        assert rolled.exit_code == 1
        assert "rolled back" in rolled.output
        refusals = json.loads(evidence.read_text())["refusals"]
        assert [r["witness"] for r in refusals] == [w.url for w in witnesses]
        for refusal in refusals:
            assert (refusal["status"], refusal["log_size"], refusal["witness_size"]) == (409, 5, 9)
            # The witness holds the log's own signed checkpoint of 9: the log cannot deny it.
            held = refusal["witness_note"]
            assert held.split("\n\n")[0] == cosigned_nine.split("\n\n")[0]
            by = next(w for w in witnesses if w.url == refusal["witness"])
            assert cosignature_time(held, by.vkey) > 0  # and the witness's own word on it
            assert log_signed_body(refusal["witness_note"], vkey).split("\n")[1] == "9"

        # Forked: same origin, same size 9, another root, signed by the real key.
        assert grow(log_home, "b", 4) == 9
        evidence = tmp_path / "fork.json"
        forked = checkpoint(log_home, witnesses, "--evidence", str(evidence))
        assert forked.exit_code == 1
        body = json.loads(evidence.read_text())
        assert len(body["refusals"]) == 2
        for refusal in body["refusals"]:
            assert refusal["status"] == 422
            assert refusal["log_size"] == refusal["witness_size"] == 9
            assert refusal["log_root"] != refusal["witness_root"]
            assert refusal["log_root_at_witness_size"] == refusal["log_root"]

        # And growing the fork past 9 does not launder it: the proof from 9 fails.
        assert grow(log_home, "b", 3) == 12
        evidence = tmp_path / "fork-grown.json"
        grown = checkpoint(log_home, witnesses, "--quorum", "1", "--evidence", str(evidence))
        assert grown.exit_code == 1
        for refusal in json.loads(evidence.read_text())["refusals"]:
            assert refusal["status"] == 422
            assert refusal["witness_size"] == 9
            assert refusal["log_root_at_witness_size"] != refusal["witness_root"]
    finally:
        for w in witnesses:
            w.stop()


@pytest.mark.slow
def test_a_witness_killed_with_sigkill_still_refuses_a_rollback(
    tmp_path: Path, log_home: Path
) -> None:
    origin, vkey = origin_and_vkey(log_home)
    witness = start_witness(tmp_path, "w1", origin, vkey)
    backup = tmp_path / "backup.db"
    try:
        grow(log_home, "a", 3)
        shutil.copy(log_home / "ledger.db", backup)
        grow(log_home, "a", 3)
        assert checkpoint(log_home, [witness]).exit_code == 0
        assert witness.stop(signal.SIGKILL) == -signal.SIGKILL
        witness = start_witness(tmp_path, "w1", origin, vkey)
        for suffix in ("", "-wal", "-shm"):
            (log_home / f"ledger.db{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, log_home / "ledger.db")
        # The home's own anchor would refuse it first (test_ledger_trust); here it went
        # back too, as with a whole home restored: only the witnesses remember.
        (log_home / "anchors.json").unlink()
        evidence = tmp_path / "evidence.json"
        refused = checkpoint(log_home, [witness], "--evidence", str(evidence))
        assert refused.exit_code == 1
        (refusal,) = json.loads(evidence.read_text())["refusals"]
        assert (refusal["log_size"], refusal["witness_size"]) == (3, 6)
    finally:
        assert witness.stop() == 0


def test_checkpoint_with_a_quorum_met_warns_about_the_refusing_witness(
    tmp_path: Path, log_home: Path
) -> None:
    origin, _vkey = origin_and_vkey(log_home)
    key = Home(log_home).signing_key()
    state = WitnessState(tmp_path / "w.db")
    good = Witness(Cosigner(WITNESS_KEY), {origin: [key.verifier()]}, state, lambda: 42)
    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    server = WitnessServer(("127.0.0.1", 0), good, devnull)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        grow(log_home, "a", 2)
        wkey = Cosigner(WITNESS_KEY).verifier().verifier_key()
        evidence = tmp_path / "e.json"
        result = runner.invoke(
            app,
            [
                "--home",
                str(log_home),
                "checkpoint",
                "--tenant",
                "acme",
                "--witness",
                server.url,
                "--witness",
                "http://127.0.0.1:9",
                "--witness-key",
                wkey,
                "--quorum",
                "1",
                "--evidence",
                str(evidence),
            ],
        )
        assert result.exit_code == 0, result.output
        assert cosignature_time(result.stdout, wkey) == 42
        assert "warning: witness http://127.0.0.1:9 refused" in result.stderr
        assert json.loads(evidence.read_text())["refusals"][0]["status"] is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        devnull.close()
        state.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["checkpoint", "--tenant", "acme", "--witness", "http://x"], "--witness-key"),
        (["checkpoint", "--tenant", "acme", "--quorum", "1"], "--witness: name at least one"),
        (
            [
                "checkpoint",
                "--tenant",
                "acme",
                "--witness",
                "ftp://x",
                "--witness-key",
                Cosigner(WITNESS_KEY).verifier().verifier_key(),
            ],
            "not an http",
        ),
        (
            [
                "checkpoint",
                "--tenant",
                "acme",
                "--witness",
                "http://x",
                "--witness-key",
                Cosigner(WITNESS_KEY).verifier().verifier_key(),
                "--quorum",
                "2",
            ],
            "--quorum: 2 is not from 1 to the 1",
        ),
        (
            ["checkpoint", "--tenant", "acme", "--witness", "http://x", "--witness-key", "bad"],
            "--witness-key: malformed",
        ),
        (["witness", "serve", "--key", "k", "--log", "nonsense"], "--log"),
        (["witness", "serve", "--key", "k", "--log", "o=bad"], "--log: malformed"),
        (
            [
                "witness",
                "serve",
                "--key",
                "k",
                "--log",
                f"o={LOG_KEY.verifier_key()}",
                "--listen",
                "nohost",
            ],
            "--listen",
        ),
    ],
)
def test_witness_options_are_checked_before_anything_runs(
    log_home: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["--home", str(log_home), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    ledger = Home(log_home).ledger()
    try:
        assert ledger.latest_checkpoint("acme") is None  # refused before signing anything
    finally:
        ledger.store.close()


def test_witness_keygen_and_public_print_the_cosigner_key(tmp_path: Path) -> None:
    made = runner.invoke(app, ["witness", "keygen", "--name", "w.example/1", str(tmp_path / "k")])
    assert made.exit_code == 0, made.output
    vkey = made.stdout.strip()
    assert CosignatureVerifier.from_string(vkey).name == "w.example/1"
    assert os.stat(tmp_path / "k").st_mode & 0o777 == 0o600
    shown = runner.invoke(app, ["witness", "public", str(tmp_path / "k")])
    assert shown.stdout.strip() == vkey
    again = runner.invoke(app, ["witness", "keygen", "--name", "w", str(tmp_path / "k")])
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_witness_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    write_signing_key(tmp_path / "k", WITNESS_KEY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app,
            [
                "witness",
                "serve",
                "--key",
                str(tmp_path / "k"),
                "--log",
                f"{ORIGIN}={LOG_KEY.verifier_key()}",
                "--listen",
                f"127.0.0.1:{port}",
                "--state",
                str(tmp_path / "w.db"),
            ],
        )
    assert result.exit_code == 2
    assert "cannot listen" in result.stderr
    assert Verifier.from_string(LOG_KEY.verifier_key()) == LOG_KEY.verifier()


# -- a misbehaving witness: the client keeps its footing ------------------------------------


def _answering(handler: Any) -> Any:
    """Collect from one witness whose every answer ``handler(request)`` makes up."""
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        try:
            collect_cosignatures(
                GOOD.note(5),
                LOG_KEY.verifier(),
                consistency=lambda old, new: consistency_proof(old, new, GOOD.read),
                root_at=lambda n: GOOD.roots[n],
                witnesses=["http://w.test"],
                keys=[Cosigner(WITNESS_KEY).verifier()],
                quorum=1,
                client=client,
            )
        except QuorumNotReached as exc:
            return exc.refusals[0]
    raise AssertionError("the witness was trusted")


MISBEHAVIOUR: list[tuple[str, Any, str]] = [
    ("malformed 409", lambda r: httpx.Response(409, text="five"), "malformed 409 body"),
    ("409 forever", lambda r: httpx.Response(409, text="3\n"), "kept changing"),
    ("garbage cosignature", lambda r: httpx.Response(200, text="not a line\n"), "does not verify"),
    (
        "a held checkpoint not signed by the log",
        lambda r: (
            httpx.Response(422, text="no")
            if r.method == "POST"
            else httpx.Response(
                200, text=sign_checkpoint(Checkpoint(ORIGIN, 9, bytes(32)), WITNESS_KEY)
            )
        ),
        "its checkpoint: no signature",
    ),
    (
        "the held checkpoint cannot be fetched",
        lambda r: httpx.Response(422, text="") if r.method == "POST" else httpx.Response(500),
        "Unprocessable",
    ),
]


@pytest.mark.parametrize(
    ("handler", "reason"), [m[1:] for m in MISBEHAVIOUR], ids=[m[0] for m in MISBEHAVIOUR]
)
def test_a_misbehaving_witness_is_a_refusal_not_a_crash(handler: Any, reason: str) -> None:
    refusal = _answering(handler)
    assert reason in refusal.reason
    assert refusal.witness == "http://w.test"


def test_witness_verify_checks_a_cosigned_checkpoint_offline(tmp_path: Path) -> None:
    w1, w2 = Cosigner(WITNESS_KEY), Cosigner(SigningKey.from_seed("witness.test/w2", _seed(3)))
    body = GOOD.note(5).split("\n\n")[0] + "\n"
    note = tmp_path / "cosigned.note"
    note.write_text(GOOD.note(5) + w1.cosign(body, 10) + w2.cosign(body, 11))
    keys = [w1.verifier().verifier_key(), w2.verifier().verifier_key()]
    base = ["witness", "verify", str(note), "--log-key", LOG_KEY.verifier_key()]
    both = runner.invoke(app, [*base, "--witness-key", keys[0], "--witness-key", keys[1]])
    assert both.exit_code == 0, both.output
    assert "cosigned by witness.test/w2 at 11" in both.stdout
    assert "2 of 2 cosignatures needed" in both.stdout

    stranger = Cosigner(SigningKey.from_seed("witness.test/w3", _seed(4))).verifier()
    three = [*keys, stranger.verifier_key()]
    short = runner.invoke(app, [*base, *(a for k in three for a in ("--witness-key", k))])
    assert short.exit_code == 1
    assert "2 of the 3 witness cosignatures needed" in short.stderr
    two_of_three = [*base, *(a for k in three for a in ("--witness-key", k)), "--quorum", "2"]
    assert runner.invoke(app, two_of_three).exit_code == 0

    note.write_text(note.read_text().replace("\n5\n", "\n6\n"))
    forged = runner.invoke(app, [*base, "--witness-key", keys[0]])
    assert forged.exit_code == 1
    assert "bad signature" in forged.stderr
    for args, message in (
        (["--witness-key", keys[0], "--quorum", "0"], "quorum of 0"),
        (["--witness-key", "bad"], "--witness-key"),
    ):
        refused = runner.invoke(app, [*base, *args])
        assert refused.exit_code == 2
        assert message in refused.stderr
    wrong_log = ["witness", "verify", str(note), "--log-key", "x", "--witness-key", keys[0]]
    assert "--log-key" in runner.invoke(app, wrong_log).stderr
    missing = ["witness", "verify", "nope", "--log-key", "x", "--witness-key", keys[0]]
    assert runner.invoke(app, missing).exit_code == 2


def test_a_client_hanging_up_mid_answer_is_one_log_line(witness: Witness) -> None:
    log = io.StringIO()
    server = WitnessServer(("127.0.0.1", 0), witness, log)
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    assert log.getvalue() == (
        "('127.0.0.1', 1): connection ended: "
        "ConnectionResetError(104, 'Connection reset by peer')\n"
    )


# -- evidence bundles: a quorum of cosignatures, verified offline ------------------------------


@contextmanager
def serving(witness: Witness) -> Iterator[str]:
    log = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the server)
    server = WitnessServer(("127.0.0.1", 0), witness, log)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        log.close()


READ_INTENT = (
    '{"tenant":"acme","actor":{"id":"agent-1","kind":"agent"},'
    '"action":"fs.read","target":"reports/q3.txt","safety_class":"A0"}'
)


def test_a_bundle_with_a_quorum_of_cosignatures_verifies_offline(
    tmp_path: Path, log_home: Path
) -> None:
    key = Home(log_home).signing_key()
    logs = {f"{key.name}/acme": [key.verifier()], f"{key.name}/_system": [key.verifier()]}
    cosigners = [
        Cosigner(SigningKey.from_seed(f"witness.test/w{n}", _seed(20 + n))) for n in (1, 2)
    ]
    states = [WitnessState(tmp_path / f"w{n}.db") for n in (1, 2)]
    witnesses = [Witness(c, logs, s, lambda: 77) for c, s in zip(cosigners, states, strict=True)]
    wkeys = [c.verifier().verifier_key() for c in cosigners]
    home = ["--home", str(log_home)]
    with serving(witnesses[0]) as url1, serving(witnesses[1]) as url2:
        asking = ["--witness", url1, "--witness", url2]
        asking += [a for k in wkeys for a in ("--witness-key", k)]
        submitted = runner.invoke(app, [*home, "submit", "-", "--json"], input=READ_INTENT)
        correlation = json.loads(submitted.stdout)["correlation_id"]
        for log in ("acme", "_system"):
            cosigned = runner.invoke(app, [*home, "checkpoint", "--tenant", log, *asking])
            assert cosigned.exit_code == 0, cosigned.output
        bundle = tmp_path / "bundle.json"
        exported = runner.invoke(
            app, [*home, "evidence", "export", "-t", "acme", "-c", correlation, "-o", str(bundle)]
        )
        assert exported.exit_code == 0, exported.output
        tiles = tmp_path / "tiles"
        runner.invoke(app, [*home, "tiles", "export", "--tenant", "acme", str(tiles)])
        published = (tiles / "checkpoint").read_text()  # the stored, cosigned note
        assert [cosignature_time(published, k) for k in wkeys] == [77, 77]

        # A plain checkpoint stored at a size goes into bundles until a cosigned one
        # of that same checkpoint replaces it; a plain one signed after that does not.
        runner.invoke(app, [*home, "submit", "-"], input=READ_INTENT)
        runner.invoke(app, [*home, "checkpoint", "--tenant", "acme"])
        stale = tmp_path / "stale.json"
        export = [*home, "evidence", "export", "-t", "acme", "-c", correlation, "-o"]
        runner.invoke(app, [*export, str(stale)])
        late = runner.invoke(app, [*home, "checkpoint", "--tenant", "acme", *asking])
        assert late.exit_code == 0, late.output
        assert "warning" not in late.stderr
        runner.invoke(app, [*home, "checkpoint", "--tenant", "acme"])
        upgraded = tmp_path / "upgraded.json"
        runner.invoke(app, [*export, str(upgraded)])
        note = json.loads(upgraded.read_text())["checkpoints"]["acme"]
        assert note == late.stdout
        assert [cosignature_time(note, k) for k in wkeys] == [77, 77]
    for state in states:
        state.close()

    # Offline from here: the witnesses are gone.
    trusted = ["--public-key", key.verifier_key()]
    quorum = [*trusted, *(a for k in wkeys for a in ("--witness-key", k)), "--witness-quorum", "2"]
    passed = runner.invoke(app, ["verify-bundle", str(bundle), *quorum])
    assert passed.exit_code == 0, passed.output
    assert "VERIFY_VERDICT=PASS" in passed.stdout
    for note in json.loads(bundle.read_text())["checkpoints"].values():
        assert [cosignature_time(note, k) for k in wkeys] == [77, 77]

    stranger = Cosigner(SigningKey.from_seed("witness.test/w9", _seed(29))).verifier()
    three = [*quorum[:-1], "3", "--witness-key", stranger.verifier_key()]
    short = runner.invoke(app, ["verify-bundle", str(bundle), *three, "--json"])
    assert short.exit_code == 1
    failures = json.loads(short.stdout)["failures"]
    assert failures == [
        f"checkpoints.{log}: 2 of the 3 witness cosignatures needed "
        "(valid: witness.test/w1, witness.test/w2; missing: witness.test/w9)"
        for log in ("_system", "acme")
    ]
    uncosigned = runner.invoke(app, ["verify-bundle", str(stale), *quorum])
    assert uncosigned.exit_code == 1
    assert "checkpoints.acme: 0 of the 2 witness cosignatures needed" in uncosigned.stdout
    plain = runner.invoke(app, ["verify-bundle", str(stale), *trusted])
    assert plain.exit_code == 0  # without --witness-key nothing about witnesses is asked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness-quorum", "1"], "--witness-key: name the key"),
        (["--witness-key", "bad"], "--witness-key: malformed"),
        (
            [
                "--witness-key",
                Cosigner(WITNESS_KEY).verifier().verifier_key(),
                "--witness-quorum",
                "2",
            ],
            "--witness-quorum: 2 is not from 1",
        ),
    ],
)
def test_verify_bundle_witness_options_are_checked(
    tmp_path: Path, args: list[str], message: str
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text("{}")
    result = runner.invoke(app, ["verify-bundle", str(bundle), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_witness_requirements_on_a_broken_bundle_add_their_own_failure(tmp_path: Path) -> None:
    from exoarmur.cli._cosigning import require_witnesses
    from exoarmur.evidence.verify import BundleVerdict

    wkey = Cosigner(WITNESS_KEY).verifier().verifier_key()
    checkpoint = Checkpoint(ORIGIN, 1, bytes(32))
    forged = sign_checkpoint(checkpoint, LOG_KEY) + Cosigner(WITNESS_KEY).cosign("x\n", 1)
    cases = {
        b"not json": [],
        b"[]": ["checkpoints: no checkpoint to require witness cosignatures on"],
        json.dumps({"checkpoints": {"acme": forged}}).encode(): [
            "checkpoints.acme: bad cosignature by witness witness.test/w1+"
        ],
    }
    for text, expected in cases.items():
        verdict = BundleVerdict()
        require_witnesses(verdict, text, [wkey], None)
        assert len(verdict.failures) == len(expected)
        for failure, start in zip(verdict.failures, expected, strict=True):
            assert failure.startswith(start)


def test_the_witness_log_shows_a_strangers_request_line_literally(witness: Witness) -> None:
    log = io.StringIO()
    server = WitnessServer(("127.0.0.1", 0), witness, log)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((str(host), int(port)), timeout=10) as raw:
            raw.sendall(
                b"GET /\x1b[2J\x1b[31mowned HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n"
            )
            assert raw.makefile("rb").read().startswith(b"HTTP/1.1 404 ")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "\x1b" not in log.getvalue()
    assert "GET /\\x1b[2J\\x1b[31mowned" in log.getvalue()
