"""The PostgreSQL store: the ledger on a server that several ExoArmur processes share.

Same protocol, same semantics and same errors as :mod:`exoarmur.ledger.sqlite`;
this module must never weaken them for speed, and never acknowledge an append
before PostgreSQL has reported its COMMIT.

The serialisation point: one ``trees`` row per tenant, locked with
``SELECT … FOR UPDATE`` inside the append transaction. A tenant's row is
created (size 0, committed on its own) the first time a store writes to it,
before its first transaction. Every batch of appends, from any process, runs::

    BEGIN
      SELECT tenant, size FROM trees WHERE tenant = ANY($tenants)
        ORDER BY tenant FOR UPDATE                   -- waits for the holders, in byte order
      per tenant: SELECT the batch's idempotency keys already recorded;
                  SELECT the last event of every intent an append names in expect=
      (in Python: reload a Merkle frontier whose size is not the one we cached;
       check each append against what is recorded and what the batch staged;
       place the accepted ones)
      one statement: INSERT every event, completed node and idempotency row
        (unnest of one array per column), UPDATE trees SET size = … for each tenant
    COMMIT

The row lock is held until COMMIT, so appends to one tenant are totally
ordered across processes: the next holder's ``SELECT … FOR UPDATE`` returns the
size the previous holder committed (READ COMMITTED re-reads a row it waited
for), and every later statement of its transaction takes a new snapshot that
holds the previous holder's events, nodes and idempotency rows. The size is the
version row: a store keeps each tenant's size and frontier in memory and reloads
the frontier only when the locked size is not its own (another process
appended). No sequence number is skipped or used twice, and ``(tenant, seq)``
is the events' primary key as a backstop. Tenants are locked in one global
order (byte order), so two processes whose batches touch the same tenants
cannot deadlock. Appends to different tenants never wait for each other.

Group commit: as in SQLite, one writer thread per store takes every append
waiting in its queue (up to ``max_batch``) and commits them in one
transaction of the statements above, as many whatever the batch's size. A
refused append (duplicate key, ``expect=`` conflict, a bad draft) is refused
before anything of it is staged, so it leaves nothing to undo. When the
database itself refuses a row (a taken event id, a value it cannot store), the
transaction is rolled back and the batch runs again append by append, each in
its own SAVEPOINT, so that the refusal falls on its append alone. Each draft's
canonical bytes are made in the submitter's thread (``event_parts``).

Durability: ``synchronous_commit`` is never weaker than ``on`` on our sessions
(a server default of ``off`` is overridden), and an append returns only after
COMMIT returned. A lost connection fails the whole batch with
:class:`~exoarmur.errors.StoreUnavailable`: nothing is acknowledged. (If the
connection died while COMMIT was in flight the batch may still be durable; a
caller's retry with the same idempotency key then finds the first outcome.)
The next call reconnects; while the server stays away, attempts are spaced by
a bounded exponential backoff and calls in between fail at once. No call
waits in a retry loop. One exception, safe by construction: a connection that
died while idle (the server restarted between two calls) is replaced once
within the call, because nothing had been sent on it yet for that call.

Schema: versioned migrations in :data:`MIGRATIONS`, recorded in
``schema_migrations``, each applied once in its own transaction under an
advisory lock. Opening a store creates the schema when there is none; it
refuses an outdated schema (run ``exoarmur db upgrade``, i.e. :func:`upgrade`)
and a newer one (upgrade ExoArmur).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString, TypeVar

from ..errors import (
    ConfigError,
    Conflict,
    DuplicateIntent,
    LedgerCorrupt,
    StoreError,
    StoreUnavailable,
)
from ..model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    Event,
    EventDraft,
    event_parts,
)
from .batching import GroupCommit, PendingAppend, StagedRows, check_preconditions
from .merkle import Frontier, NodeKey
from .store import (
    EVENT_COLUMNS,
    NO_STOP,
    check_key_owner,
    derive_keys,
    event_from_row,
    key_problems,
    paged_events,
)

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable(
        "the PostgreSQL store needs psycopg: pip install 'exoarmur[postgres]'"
    ) from exc

__all__ = ["MIGRATIONS", "Migration", "PostgresStore", "RunLock", "upgrade"]

Row = tuple[Any, ...]
Connection = psycopg.Connection[Row]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: applied once, in one transaction, never edited after release."""

    version: int
    name: str
    statements: tuple[LiteralString, ...]


# Text keys use the "C" collation: byte order, as SQLite sorts, whatever the
# database's locale, so tenants() and every ORDER BY agree across backends.
_V1_LEDGER: Final[tuple[LiteralString, ...]] = (
    """CREATE TABLE trees (
        tenant text COLLATE "C" PRIMARY KEY,
        size   bigint NOT NULL CHECK (size >= 0)
    )""",
    """CREATE TABLE events (
        tenant         text COLLATE "C" NOT NULL,
        seq            bigint NOT NULL CHECK (seq >= 0),
        event_id       text COLLATE "C" NOT NULL,
        type           text COLLATE "C" NOT NULL,
        correlation_id text COLLATE "C" NOT NULL,
        intent_id      text COLLATE "C",
        canonical      bytea NOT NULL,
        leaf_hash      bytea NOT NULL,
        PRIMARY KEY (tenant, seq)
    )""",
    "CREATE UNIQUE INDEX events_by_id ON events (tenant, event_id)",
    """CREATE INDEX events_by_intent ON events (tenant, intent_id, type)
        WHERE intent_id IS NOT NULL""",
    "CREATE INDEX events_by_correlation ON events (tenant, correlation_id, seq)",
    "CREATE INDEX events_by_type ON events (tenant, type, seq)",
    """CREATE TABLE nodes (
        tenant text COLLATE "C" NOT NULL,
        level  smallint NOT NULL CHECK (level > 0),
        idx    bigint NOT NULL CHECK (idx >= 0),
        hash   bytea NOT NULL,
        PRIMARY KEY (tenant, level, idx)
    )""",
    """CREATE TABLE idempotency (
        tenant    text COLLATE "C" NOT NULL,
        key       text COLLATE "C" NOT NULL,
        intent_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant, key)
    )""",
    """CREATE TABLE checkpoints (
        tenant text COLLATE "C" NOT NULL,
        size   bigint NOT NULL,
        note   text NOT NULL,
        PRIMARY KEY (tenant, size)
    )""",
)

#: Every schema step this ExoArmur knows, oldest first. Append; never edit or reorder.
MIGRATIONS: tuple[Migration, ...] = (Migration(1, "0001_ledger", _V1_LEDGER),)

# The advisory lock key that serialises migrations: "ExoArmur" in ASCII.
_MIGRATION_LOCK: Final = 0x45786F41726D7572
# The advisory lock key of RunLock: "ExoRunLk" in ASCII.
_RUN_LOCK: Final = 0x45786F52756E4C6B

_SCHEMA_MIGRATIONS: Final = """CREATE TABLE schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

# libpq settings applied unless the DSN names them: a dead server or a cut
# network is noticed in seconds, not after the kernel's two-hour default.
_CONNECTION_DEFAULTS: Final[dict[str, str]] = {
    "application_name": "exoarmur",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
}
if psycopg.pq.version() >= 120000:  # pragma: no branch - older libpq lacks the option
    # unacknowledged writes give up after 30 s instead of retransmitting for ~15 minutes
    _CONNECTION_DEFAULTS["tcp_user_timeout"] = "30000"

# Every row of a batch (or of one append), written by one statement from one array per
# column, and the trees' new sizes in the same statement.
_WRITE_ROWS: Final = (
    "WITH new_events AS (INSERT INTO events (tenant, seq, event_id, type, correlation_id, "
    "intent_id, canonical, leaf_hash) SELECT * FROM unnest(%(event_tenant)s::text[], "
    "%(seq)s::bigint[], %(event_id)s::text[], %(type)s::text[], %(correlation_id)s::text[], "
    "%(intent_id)s::text[], %(canonical)s::bytea[], %(leaf)s::bytea[])), "
    "new_nodes AS (INSERT INTO nodes (tenant, level, idx, hash) SELECT * FROM "
    "unnest(%(node_tenant)s::text[], %(level)s::smallint[], %(idx)s::bigint[], "
    "%(hash)s::bytea[])), "
    "new_keys AS (INSERT INTO idempotency (tenant, key, intent_id) SELECT * FROM "
    "unnest(%(key_tenant)s::text[], %(key)s::text[], %(key_intent)s::text[])) "
    "UPDATE trees SET size = grown.size FROM unnest(%(tree_tenant)s::text[], "
    "%(tree_size)s::bigint[]) AS grown (tenant, size) WHERE trees.tenant = grown.tenant"
)
_EVENT_ARRAYS: Final = (
    "event_tenant",
    "seq",
    "event_id",
    "type",
    "correlation_id",
    "intent_id",
    "canonical",
    "leaf",
)
_NODE_ARRAYS: Final = ("node_tenant", "level", "idx", "hash")
_KEY_ARRAYS: Final = ("key_tenant", "key", "key_intent")
_TREE_ARRAYS: Final = ("tree_tenant", "tree_size")

# What a batch's preconditions need, per tenant: the idempotency keys it carries
# that are recorded already, and the last event of every intent an append names in
# ``expect=``. Plain index lookups: cheaper to plan than one statement for both.
_RECORDED_KEYS: Final = (
    "SELECT key, intent_id FROM idempotency WHERE tenant = %s AND key = ANY(%s::text[])"
)
_LAST_SEQS: Final = (
    "SELECT intent_id, max(seq) FROM events WHERE tenant = %s AND intent_id = ANY(%s::text[]) "
    "GROUP BY intent_id"
)


# -- connections -----------------------------------------------------------


def _parse_dsn(dsn: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            "store: not a PostgreSQL connection string "
            f"(expected postgresql://user:password@host:5432/database): {_first_line(exc)}"
        ) from None


def _where(params: Mapping[str, Any]) -> str:
    """Where the ledger lives, for messages: never the password."""
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    database = params.get("dbname") or params.get("user") or "default database"
    return f"PostgreSQL at {host}:{port}/{database}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_lost(conn: Connection) -> bool:
    # ``closed`` is also true of a connection the server or the network broke.
    return conn.closed


class _Link:
    """One connection, opened on demand and reopened after a loss with bounded backoff.

    The first attempt after a loss is immediate; each failed attempt doubles
    the pause before the next one (``backoff`` = first and largest pause, in
    seconds). A call that comes during a pause fails at once: the store never
    waits for the server inside one call, the caller decides when to retry.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        connect_timeout: float,
        backoff: tuple[float, float],
        setup: Callable[[Connection], None],
    ) -> None:
        merged = dict(params)
        for name, value in _CONNECTION_DEFAULTS.items():
            merged.setdefault(name, value)
        # libpq takes whole seconds (and treats 1 as 2); never round a limit down to none.
        merged.setdefault("connect_timeout", str(max(1, math.ceil(connect_timeout))))
        self._conninfo = make_conninfo("", **merged)
        self.where = _where(params)
        self._setup = setup
        self._initial, self._max = backoff
        self._delay = 0.0
        self._retry_at = 0.0
        self._last_error = ""
        self._conn: Connection | None = None
        self._closed = False

    def get(self) -> tuple[Connection, bool]:
        """The connection, and whether it was already open (it may have died while idle)."""
        if self._closed:
            raise StoreError("ledger store is closed")
        if self._conn is not None:
            return self._conn, True
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreUnavailable(
                f"{self.where} is unreachable ({self._last_error}); "
                f"next attempt in {self._retry_at - now:.1f}s"
            )
        conn: Connection | None = None
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            self._setup(conn)
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            self._failed(now, exc)
            raise StoreUnavailable(
                f"cannot connect to {self.where}: {self._last_error} "
                f"(next attempt in {self._delay:.1f}s)"
            ) from None
        self._delay = 0.0
        self._retry_at = 0.0
        self._conn = conn
        return conn, False

    def _failed(self, now: float, exc: BaseException) -> None:
        self._delay = min(self._max, self._delay * 2 if self._delay else self._initial)
        self._retry_at = now + self._delay
        self._last_error = _first_line(exc)

    def lost(self, exc: BaseException) -> None:
        """Forget a connection that failed; the next ``get`` reconnects."""
        self._last_error = _first_line(exc)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _durable_session(conn: Connection) -> None:
    """Never acknowledge on a session that may lose a commit: ``off`` becomes ``on``.

    Stronger settings an operator chose (``remote_apply`` for synchronous
    replicas) are kept.
    """
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is None or row[0] == "off":
        conn.execute("SET synchronous_commit = on")


def _writer_session(conn: Connection) -> None:
    _durable_session(conn)
    # A writer frozen mid-transaction (SIGSTOP, a debugger) holds its tenants'
    # locks; the server ends such a session so that other processes go on.
    conn.execute("SET idle_in_transaction_session_timeout = '60s'")


# -- schema ----------------------------------------------------------------


def _applied(conn: Connection) -> dict[int, str] | None:
    """Applied migrations by version; None when the database has no ExoArmur schema."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    return {
        int(version): str(name)
        for version, name in conn.execute("SELECT version, name FROM schema_migrations")
    }


def _refuse_newer(applied: Mapping[int, str], where: str) -> None:
    known = {m.version for m in MIGRATIONS}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise StoreUnavailable(
            f"{where} has ledger schema migration {unknown[-1]} ({applied[unknown[-1]]}), "
            f"newer than this ExoArmur knows (up to {max(known)}): upgrade ExoArmur"
        )


def _upgrade(conn: Connection, where: str) -> list[str]:
    # Two processes upgrading at once take turns; the second finds nothing to do.
    # The lock is the session's, taken before each transaction begins: a
    # transaction that waited for it inside would go on reading the catalog as
    # it was before the wait and miss the tables the other process created.
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        done: list[str] = []
        while True:
            with conn.transaction():
                applied = _applied(conn)
                if applied is None:
                    conn.execute(_SCHEMA_MIGRATIONS)
                    applied = {}
                _refuse_newer(applied, where)
                pending = [m for m in MIGRATIONS if m.version not in applied]
                if not pending:
                    return done
                migration = pending[0]
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            done.append(migration.name)
    finally:
        if not conn.closed:  # a lost session has released its locks already
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


def _schema_failure(where: str, exc: psycopg.Error) -> StoreUnavailable:
    if isinstance(exc, pg_errors.DuplicateTable | pg_errors.DuplicateObject):
        return StoreUnavailable(
            f"cannot create the ledger schema in {where}: {_first_line(exc)} "
            "(the database holds tables ExoArmur did not create: give it a database of its own)"
        )
    return StoreUnavailable(f"cannot set up the ledger schema in {where}: {_first_line(exc)}")


def upgrade(dsn: str, *, connect_timeout: float = 10.0) -> list[str]:
    """Apply every migration the database lacks; return their names (``exoarmur db upgrade``).

    Safe to run while stores are open and from several processes at once.
    Raises ``StoreUnavailable`` when the server cannot be reached or the
    schema is newer than this ExoArmur, ``ConfigError`` for a malformed DSN.
    """
    params = _parse_dsn(dsn)
    link = _Link(params, connect_timeout=connect_timeout, backoff=(0.0, 0.0), setup=_no_setup)
    try:
        conn, _ = link.get()
        try:
            return _upgrade(conn, link.where)
        except psycopg.Error as exc:
            raise _schema_failure(link.where, exc) from None
    finally:
        link.close()


def _no_setup(conn: Connection) -> None:
    """Migrations need no session settings."""


def _ensure_schema(conn: Connection, where: str) -> None:
    """Create the schema in an empty database; refuse one that is out of date either way."""
    try:
        applied = _applied(conn)
        if applied is None:
            _upgrade(conn, where)
            return
    except psycopg.Error as exc:
        raise _schema_failure(where, exc) from None
    _refuse_newer(applied, where)
    missing = [m.name for m in MIGRATIONS if m.version not in applied]
    if missing:
        raise StoreUnavailable(
            f"{where} has an outdated ledger schema (missing {', '.join(missing)}): "
            "run `exoarmur db upgrade` with the same --store, then start again"
        )


# -- the store -------------------------------------------------------------


class _Refused(StoreError):
    """One append of a batch is refused (bad draft, taken event id); the others go on."""


#: what refuses one append and leaves the rest of its batch alone
_REFUSALS: Final = (DuplicateIntent, Conflict, _Refused)


class _Redo(Exception):
    """The database refused a row of a batch written whole: run it again append by append."""


class _Rows(StagedRows):
    """The rows a batch (or one append) writes, one list per table, and what they settle.

    ``keys`` and ``last_seq`` start from what is recorded, read under the
    tenants' locks (:func:`_recorded`).
    """

    def check(self, request: PendingAppend) -> None:
        """Raise one of :data:`_REFUSALS` if ``request`` may not be written after what is staged."""
        tenant = request.tenant
        check_preconditions(
            request,
            last_seq=lambda intent_id: self.last_seq.get((tenant, intent_id), -1),
            recorded_key=lambda key: self.keys.get((tenant, key)),
            refused=_Refused,
        )


def _recorded(
    conn: Connection, batch: Sequence[PendingAppend]
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], int]]:
    """The batch's idempotency keys already recorded, and its expected intents' last seqs.

    Per tenant of the batch, one statement for its keys and one for its
    ``expect=`` intents (none when it has none): whatever the batch's size.
    """
    keys: dict[str, set[str]] = {}
    intents: dict[str, set[str]] = {}
    for request in batch:
        for draft in request.drafts:
            if draft.idempotency_key is not None:
                keys.setdefault(request.tenant, set()).add(draft.idempotency_key)
        if request.expect is not None:
            intents.setdefault(request.tenant, set()).add(request.expect[0])
    recorded: dict[tuple[str, str], str] = {}
    last_seq: dict[tuple[str, str], int] = {}
    for tenant, wanted in sorted(keys.items()):
        for key, owner in conn.execute(_RECORDED_KEYS, (tenant, sorted(wanted))):
            recorded[(tenant, str(key))] = str(owner)
    for tenant, wanted in sorted(intents.items()):
        for intent_id, seq in conn.execute(_LAST_SEQS, (tenant, sorted(wanted))):
            last_seq[(tenant, str(intent_id))] = int(seq)
    return recorded, last_seq


def _write_rows(
    conn: Connection, rows: _Rows, working: Mapping[str, Frontier], sizes: Mapping[str, int]
) -> None:
    """Write ``rows`` and move each tree in ``working`` that grew past ``sizes``: one statement."""
    grown = [(t, f.size) for t, f in working.items() if f.size != sizes[t]]
    if not rows.events and not grown:
        return
    conn.execute(
        _WRITE_ROWS,
        {
            **_columns(rows.events, _EVENT_ARRAYS),
            **_columns(rows.nodes, _NODE_ARRAYS),
            **_columns(rows.new_keys, _KEY_ARRAYS),
            **_columns(grown, _TREE_ARRAYS),
        },
    )


class PostgresStore:
    """A :class:`~exoarmur.ledger.store.LedgerStore` in a PostgreSQL database.

    ``dsn`` is a libpq connection string, usually a URL
    ``postgresql://user:password@host:5432/database``. ``connect_timeout``
    bounds one connection attempt; ``reconnect_backoff`` is the (first, largest)
    pause in seconds between attempts while the server is away.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 512,
        connect_timeout: float = 5.0,
        reconnect_backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        params = _parse_dsn(dsn)
        self._max_batch = max_batch

        def link(setup: Callable[[Connection], None]) -> _Link:
            return _Link(
                params, connect_timeout=connect_timeout, backoff=reconnect_backoff, setup=setup
            )

        self._write_link = link(_writer_session)
        self._read_link = link(_durable_session)
        #: where the ledger lives, without credentials (for messages and logs)
        self.where = self._write_link.where
        try:
            _ensure_schema(self._write_link.get()[0], self.where)
        except BaseException:
            self._write_link.close()
            raise
        self._read_lock = threading.Lock()
        self._frontiers: dict[str, Frontier] = {}
        #: tenants whose ``trees`` row is known to exist (rows are never deleted)
        self._trees: set[str] = set()

        self._closed = False
        #: transactions committed by this store: the group-commit ratio is appends / commits
        self.commits = 0
        self._writer = GroupCommit(
            self._commit_batch, max_batch=self._max_batch, name="exoarmur-pg-writer"
        )

    def observe_commits(self, observe: Callable[[int], None]) -> None:
        """Tell ``observe`` how many appends each group commit carried."""
        self._writer.observe = observe

    # -- writes -----------------------------------------------------------

    def append(
        self,
        tenant: str,
        drafts: Sequence[EventDraft],
        *,
        expect: tuple[str, int] | None = None,
    ) -> list[Event]:
        if not drafts:
            return []
        if self._closed:
            raise StoreError("ledger store is closed")
        if "\x00" in tenant:
            # Refused here: it would fail the lock of a whole batch, not just this append.
            raise StoreError(f"tenant {tenant!r} holds a NUL character, which PostgreSQL refuses")
        # The bytes around each seq are made here, in the submitter's thread: the
        # writer only joins them, so that it never serialises the submitters' work.
        parts = [event_parts(draft) for draft in drafts]
        return self._writer.submit(tenant, drafts, expect, parts)

    def _commit_batch(self, batch: list[PendingAppend]) -> None:
        try:
            working = self._commit_once(batch, retry=True)
        except BaseException as exc:
            # Nothing of this batch is durable: fail every request in it and
            # forget cached frontiers, which the next batch reloads.
            self._frontiers.clear()
            failure = (
                exc
                if isinstance(exc, StoreError)
                else StoreError(f"ledger append failed, nothing acknowledged: {exc}")
            )
            for request in batch:
                request.result = None
                request.error = failure
        else:
            if working is not None:
                self._frontiers.update(working)
                self.commits += 1
        finally:
            for request in batch:
                request.done.set()

    def _commit_once(
        self, batch: list[PendingAppend], *, retry: bool, one_by_one: bool = False
    ) -> dict[str, Frontier] | None:
        """One transaction for the whole batch: the frontiers it committed, None if rolled back.

        The batch is written by one statement; if the database refuses a row
        of it (a taken event id, a value it cannot store), the transaction is
        rolled back and the batch runs again ``one_by_one``, each append in a
        savepoint of its own, so that the refusal falls on its append alone.
        """
        conn, reused = self._write_link.get()
        working: dict[str, Frontier] = {}
        for request in batch:
            request.result = request.error = None
        # A lone append needs no savepoint: the transaction is its savepoint.
        alone = len(batch) == 1
        tenants = sorted({r.tenant for r in batch})
        committing = False
        try:
            self._create_trees(conn, tenants)
            if one_by_one:
                with conn.transaction():
                    sizes = self._locked(tenants, _lock_trees(conn, tenants))
                    for request in batch:
                        if alone:
                            request.result = self._apply(conn, working, sizes, request)
                        else:
                            self._apply_in_savepoint(conn, working, sizes, request)
                    _write_rows(conn, _Rows(), working, sizes)
                    committing = True  # leaving the block sends COMMIT
            else:
                try:
                    with conn.transaction():
                        sizes = self._locked(tenants, _lock_trees(conn, tenants))
                        self._write_batch(conn, working, sizes, batch)
                        committing = True  # leaving the block sends COMMIT
                except (pg_errors.UniqueViolation, psycopg.DataError):
                    # A value of some append the database refuses (a taken event id,
                    # a NUL in a key): rolled back, nothing durable; find whose.
                    raise _Redo from None
        except _Redo:
            return self._commit_once(batch, retry=retry, one_by_one=True)
        except _REFUSALS as exc:
            batch[0].error = exc
            return None
        except psycopg.Error as exc:
            failure = self._failure(self._write_link, conn, exc, "append")
            if retry and reused and not committing and isinstance(failure, StoreUnavailable):
                # The connection died while idle (the server restarted since our
                # last batch). COMMIT was never sent, so nothing is durable:
                # once more, on a new connection; a second loss is reported.
                return self._commit_once(batch, retry=False, one_by_one=one_by_one)
            raise failure from None
        return working

    def _create_trees(self, conn: Connection, tenants: Sequence[str]) -> None:
        """Give each tenant this store has not written before its ``trees`` row, committed.

        Outside the batch's transaction, so that the transaction only locks rows
        that exist, all in one statement and in one order: a row inserted inside
        it would be locked out of that order, and two writers could deadlock.
        A row of size 0 is an empty log (``tenants()`` lists only logs with events).
        """
        new = [tenant for tenant in tenants if tenant not in self._trees]
        if new:
            conn.execute(
                "INSERT INTO trees (tenant, size) SELECT unnest(%s::text[]), 0 "
                "ON CONFLICT (tenant) DO NOTHING",
                (new,),
            )

    def _locked(self, tenants: Sequence[str], rows: Sequence[Row]) -> dict[str, int]:
        """The sizes ``_lock_trees`` returned, every tenant's row there (else StoreError)."""
        sizes = {str(tenant): int(size) for tenant, size in rows}
        missing = [tenant for tenant in tenants if tenant not in sizes]
        if missing:
            # Deleted behind our back: created again by the next batch.
            self._trees.difference_update(missing)
            raise StoreError(f"the tree of tenant {missing[0]!r} has no row to lock")
        self._trees.update(tenants)
        return sizes

    def _write_batch(
        self,
        conn: Connection,
        working: dict[str, Frontier],
        sizes: Mapping[str, int],
        batch: list[PendingAppend],
    ) -> None:
        """Check every append of the batch, stage the accepted ones, write them in one statement.

        A refused append (``expect=`` conflict, a taken or repeated key, a bad
        draft) is refused before anything of it is staged, against what is
        recorded and what earlier appends of the batch staged, so it leaves
        nothing to undo. A row the database refuses raises its error here.
        """
        rows = _Rows(*_recorded(conn, batch))
        for request in batch:
            try:
                rows.check(request)
            except _REFUSALS as exc:
                request.error = exc
                continue
            tenant = request.tenant
            frontier = self._frontier_in_tx(conn, working, tenant, sizes[tenant])
            request.result = rows.stage(frontier, request)
        _write_rows(conn, rows, working, sizes)

    def _apply_in_savepoint(
        self,
        conn: Connection,
        working: dict[str, Frontier],
        sizes: Mapping[str, int],
        request: PendingAppend,
    ) -> None:
        """One append of a batch in its own savepoint: a refusal undoes it and nothing else."""
        tenant = request.tenant
        before = working[tenant].copy() if tenant in working else None
        try:
            with conn.transaction():
                request.result = self._apply(conn, working, sizes, request)
        except _REFUSALS as exc:
            if before is not None:
                working[tenant] = before
            else:
                working.pop(tenant, None)
            request.error = exc

    def _frontier_in_tx(
        self, conn: Connection, working: dict[str, Frontier], tenant: str, size: int
    ) -> Frontier:
        if tenant in working:
            return working[tenant]
        cached = self._frontiers.get(tenant)
        if cached is None or cached.size != size:
            # First touch, or another process appended since we last looked.
            cached = Frontier.load(size, lambda keys: _read_nodes(conn, tenant, keys))
        frontier = cached.copy()
        working[tenant] = frontier
        return frontier

    def _apply(
        self,
        conn: Connection,
        working: dict[str, Frontier],
        sizes: Mapping[str, int],
        request: PendingAppend,
    ) -> list[Event]:
        """Check and write one append; raise one of :data:`_REFUSALS` to refuse it alone."""
        try:
            return self._write(conn, working, sizes[request.tenant], request)
        except pg_errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name or ""
            if constraint == "events_by_id":
                raise _Refused(
                    f"an event id of this append is already recorded in tenant "
                    f"{request.tenant!r} (a deterministic run replayed into a ledger that "
                    "already holds its ids? use a fresh database)"
                ) from None
            raise _Refused(
                f"append to tenant {request.tenant!r} refused by constraint "
                f"{constraint or '?'}: {_first_line(exc)}"
            ) from None
        except psycopg.DataError as exc:
            raise _Refused(
                f"append to tenant {request.tenant!r} holds a value PostgreSQL cannot store: "
                f"{_first_line(exc)}"
            ) from None

    def _write(
        self, conn: Connection, working: dict[str, Frontier], size: int, request: PendingAppend
    ) -> list[Event]:
        """One append on its own: its checks read the database, its rows take one statement."""
        rows = _Rows(*_recorded(conn, [request]))
        rows.check(request)
        frontier = self._frontier_in_tx(conn, working, request.tenant, size)
        recorded = rows.stage(frontier, request)
        _write_rows(conn, rows, {}, {})
        return recorded

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        self._run(
            "INSERT INTO checkpoints (tenant, size, note) VALUES (%s, %s, %s) "
            "ON CONFLICT (tenant, size) DO NOTHING",
            (tenant, size, note),
            what="checkpoint save",
        )

    def replace_checkpoint(self, tenant: str, size: int, old_note: str, new_note: str) -> bool:
        rows = self._run(
            "UPDATE checkpoints SET note = %s WHERE tenant = %s AND size = %s AND note = %s "
            "RETURNING size",
            (new_note, tenant, size, old_note),
            what="checkpoint replace",
        )
        return bool(rows)

    # -- failures ---------------------------------------------------------

    @staticmethod
    def _failure(link: _Link, conn: Connection, exc: psycopg.Error, what: str) -> StoreError:
        """A lost connection is StoreUnavailable (and dropped); anything else StoreError."""
        if _is_lost(conn):
            link.lost(exc)
            advice = (
                "not acknowledged; if it was cut during COMMIT it may still be recorded, "
                "so resend it with the same idempotency key"
                if what == "append"
                else "retry when it is back"
            )
            return StoreUnavailable(
                f"lost the connection to {link.where} during a ledger {what} "
                f"({_first_line(exc)}): {advice}"
            )
        return StoreError(f"ledger {what} failed in {link.where}: {_first_line(exc)}")

    # -- reads ------------------------------------------------------------

    def _read(self, query: Callable[[Connection], _T], what: str = "read") -> _T:
        """Run ``query`` on the reader connection; once more if that connection had died idle.

        Every query run here is safe to repeat (reads, and inserts that ignore conflicts).
        """
        with self._read_lock:
            conn, reused = self._read_link.get()
            try:
                return query(conn)
            except psycopg.Error as exc:
                failure = self._failure(self._read_link, conn, exc, what)
                if not (reused and isinstance(failure, StoreUnavailable)):
                    raise failure from None
            conn, _ = self._read_link.get()
            try:
                return query(conn)
            except psycopg.Error as exc:
                raise self._failure(self._read_link, conn, exc, what) from None

    def _run(self, sql: LiteralString, params: Sequence[Any], *, what: str = "read") -> list[Row]:
        def query(conn: Connection) -> list[Row]:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

        return self._read(query, what)

    def read_nodes(self, tenant: str, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return self._read(lambda conn: _read_nodes(conn, tenant, keys))

    def size(self, tenant: str) -> int:
        rows = self._run("SELECT size FROM trees WHERE tenant = %s", (tenant,))
        return int(rows[0][0]) if rows else 0

    def sizes(self, tenants: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(tenants))
        rows = self._run("SELECT tenant, size FROM trees WHERE tenant = ANY(%s)", (wanted,))
        found = {str(row[0]): int(row[1]) for row in rows}
        return {tenant: found.get(tenant, 0) for tenant in wanted}

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        def fetch(cursor: int, limit: int) -> Sequence[Sequence[Any]]:
            return self._run(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND seq >= %s "
                "ORDER BY seq LIMIT %s",
                (tenant, cursor, limit),
            )

        return paged_events(tenant, fetch, start, stop)

    def event_by_id(self, tenant: str, event_id: str) -> Event | None:
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND event_id = %s",
            (tenant, event_id),
        )
        return event_from_row(tenant, rows[0]) if rows else None

    def events_for_intent(self, tenant: str, intent_id: str) -> list[Event]:
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND intent_id = %s ORDER BY seq",
            (tenant, intent_id),
        )
        return [event_from_row(tenant, row) for row in rows]

    def events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]:
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND correlation_id = %s "
            "ORDER BY seq",
            (tenant, correlation_id),
        )
        return [event_from_row(tenant, row) for row in rows]

    def intent_for_key(self, tenant: str, idempotency_key: str) -> str | None:
        rows = self._run(
            "SELECT intent_id FROM idempotency WHERE tenant = %s AND key = %s",
            (tenant, idempotency_key),
        )
        if not rows:
            return None
        owner = str(rows[0][0])
        story: list[Event | None] = [*self.events_for_intent(tenant, owner)]
        story = story or [self.event_by_id(tenant, owner)]
        return check_key_owner(tenant, idempotency_key, owner, story)

    def unfinished_executions(self, tenant: str) -> list[str]:
        return self.intents_with(
            tenant,
            EXECUTION_STARTED,
            (EXECUTION_FINISHED, EXECUTION_OUTCOME_UNKNOWN, EXECUTION_BLOCKED),
        )

    def intents_with(self, tenant: str, has: str, lacks: Sequence[str]) -> list[str]:
        if not lacks:
            raise ValueError("intents_with needs at least one type the intents lack")
        rows = self._run(
            "SELECT s.intent_id FROM events s WHERE s.tenant = %s AND s.type = %s "
            "AND s.intent_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM events f WHERE f.tenant = s.tenant "
            "AND f.intent_id = s.intent_id AND f.type = ANY(%s)) ORDER BY s.seq",
            (tenant, has, list(lacks)),
        )
        return [str(row[0]) for row in rows]

    def events_of_type(
        self, tenant: str, *event_types: str, stop: int | None = None
    ) -> list[Event]:
        if not event_types:
            return []
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND type = ANY(%s) "
            "AND seq < %s ORDER BY seq",
            (tenant, list(event_types), NO_STOP if stop is None else stop),
        )
        return [event_from_row(tenant, row) for row in rows]

    def latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND type = %s "
            "ORDER BY seq DESC LIMIT 1",
            (tenant, event_type),
        )
        return event_from_row(tenant, rows[0]) if rows else None

    def tenants(self) -> list[str]:
        # A tenant's row exists from its first locked append; it counts once it holds events.
        rows = self._run("SELECT tenant FROM trees WHERE size > 0 ORDER BY tenant", ())
        return [str(row[0]) for row in rows]

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        rows = self._run(
            "SELECT size, note FROM checkpoints WHERE tenant = %s ORDER BY size DESC LIMIT 1",
            (tenant,),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        rows = self._run(
            "SELECT note FROM checkpoints WHERE tenant = %s AND size = %s", (tenant, size)
        )
        return str(rows[0][0]) if rows else None

    def index_problems(self, tenant: str, size: int) -> list[str]:
        # Every row's columns are checked against its bytes as the walk reads it.
        try:
            owners = derive_keys(self.events(tenant, 0, size))
        except LedgerCorrupt as exc:
            return [str(exc)]
        problems = []
        rows = self._run("SELECT count(*), max(seq) FROM events WHERE tenant = %s", (tenant,))
        count, last = rows[0] if rows else (0, None)
        if count != size or (size and last != size - 1):
            problems.append(
                f"log {tenant!r}: {count} event rows up to seq {last}, its tree size is {size}"
            )
        stored = {
            str(key): str(owner)
            for key, owner in self._run(
                "SELECT key, intent_id FROM idempotency WHERE tenant = %s", (tenant,)
            )
        }
        return problems + key_problems(tenant, stored, owners)

    def integrity_check(self) -> str:
        """``"ok"``, or the tenants whose tree size disagrees with their stored events.

        The counterpart of SQLite's page check for ``exoarmur health``: a
        structural look (one pass over the events index), not a proof;
        ``Ledger.verify`` rehashes everything.
        """
        rows = self._run(
            "SELECT t.tenant, t.size, count(e.seq), coalesce(max(e.seq) + 1, 0) "
            "FROM trees t LEFT JOIN events e ON e.tenant = t.tenant "
            "GROUP BY t.tenant, t.size "
            "HAVING t.size <> count(e.seq) OR t.size <> coalesce(max(e.seq) + 1, 0) "
            "ORDER BY t.tenant",
            (),
        )
        if not rows:
            return "ok"
        return "; ".join(
            f"tenant {tenant!r}: tree size {size}, {count} events up to seq {end - 1}"
            for tenant, size, count, end in rows
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.stop()
        self._write_link.close()
        with self._read_lock:
            self._read_link.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _columns(rows: Sequence[Row], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as one array per column, for ``unnest``: the rows of an append in one statement."""
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


class RunLock:
    """Who may recover, across machines: ``home.RunLock``'s contract on an advisory lock.

    A file lock in the data directory only sees the processes of one machine;
    governors sharing a PostgreSQL ledger from several machines must agree in
    the database. Every governor holds the lock shared while it lives; at
    start it first tries it exclusive: success means no other governor is
    running anywhere, so unfinished executions really are abandoned. The lock
    belongs to a session of its own and ends with it (process exit, lost
    connection).
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0) -> None:
        self._link = _Link(
            _parse_dsn(dsn), connect_timeout=connect_timeout, backoff=(0.0, 0.0), setup=_no_setup
        )

    def acquire(self) -> bool:
        """Hold the lock shared; return True if we were alone (may recover)."""
        conn, _ = self._link.get()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_RUN_LOCK,)).fetchone()
            alone = bool(row and row[0])
            if not alone:
                # Waits while a starting governor recovers, as LOCK_SH waits for LOCK_EX.
                conn.execute("SELECT pg_advisory_lock_shared(%s)", (_RUN_LOCK,))
        except psycopg.Error as exc:
            self._link.close()
            raise StoreUnavailable(
                f"cannot take the run lock in {self._link.where}: {_first_line(exc)}"
            ) from None
        return alone

    def share(self) -> None:
        """After recovery: keep the lock shared only, so that other governors may start."""
        conn, _ = self._link.get()
        try:
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (_RUN_LOCK,))
            conn.execute("SELECT pg_advisory_unlock(%s)", (_RUN_LOCK,))
        except psycopg.Error as exc:
            self._link.close()
            raise StoreUnavailable(
                f"cannot share the run lock in {self._link.where}: {_first_line(exc)}"
            ) from None

    def release(self) -> None:
        self._link.close()


def _lock_trees(conn: Connection, tenants: Sequence[str]) -> list[Row]:
    """Take the append locks of ``tenants`` (sorted, their rows created); their (tenant, size).

    One statement: FOR UPDATE locks the rows in the order ORDER BY returns them
    (the "C" collation: byte order, as Python sorts), which is the one global
    order every writer locks in, so two writers never wait for each other in a cycle.
    """
    if len(tenants) == 1:  # the usual batch: the plainest statement plans fastest
        return conn.execute(
            "SELECT tenant, size FROM trees WHERE tenant = %s FOR UPDATE", (tenants[0],)
        ).fetchall()
    return conn.execute(
        "SELECT tenant, size FROM trees WHERE tenant = ANY(%s) ORDER BY tenant FOR UPDATE",
        (list(tenants),),
    ).fetchall()


def _read_nodes(conn: Connection, tenant: str, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
    """Stored hashes in two queries: leaves live in ``events``, inner nodes in ``nodes``."""
    found: dict[NodeKey, bytes] = {}
    leaves = sorted({index for level, index in keys if level == 0})
    inner = sorted({(level, index) for level, index in keys if level > 0})
    if leaves:
        for seq, digest in conn.execute(
            "SELECT seq, leaf_hash FROM events WHERE tenant = %s AND seq = ANY(%s::bigint[])",
            (tenant, leaves),
        ):
            found[(0, int(seq))] = bytes(digest)
    if inner:
        for level, index, digest in conn.execute(
            "SELECT n.level, n.idx, n.hash FROM nodes n "
            "JOIN unnest(%s::smallint[], %s::bigint[]) AS k (level, idx) "
            "ON n.level = k.level AND n.idx = k.idx WHERE n.tenant = %s",
            ([level for level, _ in inner], [index for _, index in inner], tenant),
        ):
            found[(int(level), int(index))] = bytes(digest)
    return found
