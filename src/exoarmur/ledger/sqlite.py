"""The embedded store: one SQLite file, WAL, ``synchronous=FULL``, group commit.

Durability: an ``append`` returns only after its transaction committed with
``synchronous=FULL`` in WAL mode, i.e. after the WAL was fsynced. A kill -9
at any point loses only appends that had not returned.

Group commit: appends are handed to one writer thread. It takes every append
waiting in its queue (up to ``max_batch``) and commits them in one
transaction, so N concurrent submitters pay one fsync, not N. Each append in
a batch runs in its own SAVEPOINT, so one append refused (a duplicate
idempotency key) does not sink the others.

Several processes may open the same file: the writer takes SQLite's write
lock (``BEGIN IMMEDIATE``) and asks ``PRAGMA data_version`` whether any other
connection committed since its last batch; only then does it re-read the
tree sizes and reload its in-memory Merkle frontiers. Otherwise the sizes and
frontiers it keeps are exact, and an append reads nothing back.

Per batch the writer runs: BEGIN, the data version, one read of the
batch's idempotency keys per tenant (and an intent's last event for an
append that names one), one ``executemany`` each for events, nodes, keys
and tree sizes, COMMIT: about eight statements whatever the batch's size,
each of which hands the GIL to the submitters and back. An append's
preconditions are checked before it is staged (against what is recorded and
what earlier appends of the batch staged), so a refused append leaves
nothing to roll back and needs no savepoint. Each draft's canonical bytes
are made in the submitter's thread (``event_parts``); the writer only joins
them around the seq and hashes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import Conflict, DuplicateIntent, LedgerCorrupt, StoreError, StoreUnavailable
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

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trees (
    tenant TEXT PRIMARY KEY,
    size   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    tenant         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    intent_id      TEXT,
    canonical      BLOB    NOT NULL,
    leaf_hash      BLOB    NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (tenant, event_id);
CREATE INDEX IF NOT EXISTS events_by_intent ON events (tenant, intent_id, type)
    WHERE intent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_correlation ON events (tenant, correlation_id);
CREATE INDEX IF NOT EXISTS events_by_type ON events (tenant, type);
CREATE INDEX IF NOT EXISTS events_by_intent_seq ON events (tenant, intent_id, seq);
CREATE INDEX IF NOT EXISTS events_by_correlation_seq ON events (tenant, correlation_id, seq);
CREATE TABLE IF NOT EXISTS nodes (
    tenant TEXT    NOT NULL,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    tenant    TEXT NOT NULL,
    key       TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT    NOT NULL,
    size   INTEGER NOT NULL,
    note   TEXT    NOT NULL,
    PRIMARY KEY (tenant, size)
) WITHOUT ROWID;
"""


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
    # exactly one transaction.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _Staged(StagedRows):
    """The rows one batch writes, gathered so that each table takes one ``executemany``.

    ``last_seq`` holds only what this batch staged: recorded seqs are read
    in the transaction when an append expects one (``_check``).
    """

    def write(self, conn: sqlite3.Connection, working: Mapping[str, Frontier]) -> None:
        try:
            conn.executemany(
                "INSERT INTO events (tenant, seq, event_id, type, correlation_id, intent_id, "
                "canonical, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self.events,
            )
        except sqlite3.IntegrityError:
            tenants = ", ".join(repr(t) for t in sorted({str(row[0]) for row in self.events}))
            raise StoreError(
                f"an event id of this append is already recorded in tenant {tenants} "
                "(a deterministic run replayed into a home that already holds its ids? "
                "use a fresh --home)"
            ) from None
        if self.nodes:
            conn.executemany(
                "INSERT INTO nodes (tenant, level, idx, hash) VALUES (?, ?, ?, ?)", self.nodes
            )
        if self.new_keys:
            conn.executemany(
                "INSERT INTO idempotency (tenant, key, intent_id) VALUES (?, ?, ?)", self.new_keys
            )
        if working:
            conn.executemany(
                "INSERT INTO trees (tenant, size) VALUES (?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET size = excluded.size",
                [(tenant, frontier.size) for tenant, frontier in working.items()],
            )


class SqliteStore:
    """A :class:`~exoarmur.ledger.store.LedgerStore` in one SQLite file."""

    def __init__(self, path: Path | str, *, max_batch: int = 512) -> None:
        self.path = Path(path)
        self._max_batch = max_batch
        try:
            self._writer_conn = _connect(self.path)
            self._readers: list[sqlite3.Connection] = [_connect(self.path)]
            self._ensure_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(
                f"cannot open ledger database {self.path}: {exc} (is it a corrupt or foreign file?)"
            ) from None
        # One reader connection per thread: WAL readers never block each other
        # or the writer, and no lock serialises the submitters' reads.
        self._local = threading.local()
        self._local.conn = self._readers[0]
        self._readers_lock = threading.Lock()
        self._frontiers: dict[str, Frontier] = {}
        #: the writer connection's PRAGMA data_version when it last committed
        self._data_version: int | None = None

        self._closed = False
        #: transactions committed by this store: the group-commit ratio is appends / commits
        self.commits = 0
        self._writer = GroupCommit(
            self._commit_batch, max_batch=self._max_batch, name="exoarmur-ledger-writer"
        )

    def observe_commits(self, observe: Callable[[int], None]) -> None:
        """Tell ``observe`` how many appends each group commit carried."""
        self._writer.observe = observe

    # -- schema -----------------------------------------------------------

    def _ensure_schema(self) -> None:
        conn = self._writer_conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )
            elif row[0] != SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"ledger database {self.path} has schema version {row[0]}, "
                    f"this ExoArmur reads version {SCHEMA_VERSION}"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
        parts = [event_parts(draft) for draft in drafts]
        return self._writer.submit(tenant, drafts, expect, parts)

    def _commit_batch(self, batch: list[PendingAppend]) -> None:
        conn = self._writer_conn
        working: dict[str, Frontier] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._catch_up(conn)
            staged = _Staged(self._recorded_keys(conn, batch))
            for request in batch:
                try:
                    self._check(conn, request, staged)
                except (DuplicateIntent, Conflict) as exc:
                    request.error = exc  # checked before anything was staged
                    continue
                request.result = self._stage(conn, working, request, staged)
            staged.write(conn, working)
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            # Nothing of this batch is durable: fail every request in it and
            # forget cached frontiers, which the next batch reloads.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._frontiers.clear()
            self._data_version = None
            failure = (
                exc
                if isinstance(exc, StoreError)
                else StoreError(f"ledger append failed, nothing acknowledged: {exc}")
            )
            for request in batch:
                request.result = None
                request.error = failure
        else:
            self._frontiers.update(working)
        finally:
            for request in batch:
                request.done.set()

    @staticmethod
    def _recorded_keys(
        conn: sqlite3.Connection, batch: list[PendingAppend]
    ) -> dict[tuple[str, str], str]:
        """The batch's idempotency keys already recorded: one read per tenant (and 500 keys)."""
        wanted: dict[str, set[str]] = {}
        for request in batch:
            for draft in request.drafts:
                if draft.idempotency_key is not None:
                    wanted.setdefault(request.tenant, set()).add(draft.idempotency_key)
        found: dict[tuple[str, str], str] = {}
        for tenant, keys in wanted.items():
            ordered = sorted(keys)
            for lo in range(0, len(ordered), 500):
                chunk = ordered[lo : lo + 500]
                marks = ",".join("?" * len(chunk))
                for key, intent_id in conn.execute(
                    f"SELECT key, intent_id FROM idempotency WHERE tenant = ? AND key IN ({marks})",
                    (tenant, *chunk),
                ):
                    found[(tenant, str(key))] = str(intent_id)
        return found

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        """Forget the kept sizes and frontiers when another connection committed.

        ``data_version`` changes only for other connections' commits (another
        process, or a checkpoint saved through a reader), never this writer's.
        """
        row = conn.execute("PRAGMA data_version").fetchone()
        version = int(row[0])
        if version != self._data_version:
            self._frontiers.clear()
            self._data_version = version

    def _frontier_in_tx(
        self, conn: sqlite3.Connection, working: dict[str, Frontier], tenant: str
    ) -> Frontier:
        if tenant in working:
            return working[tenant]
        cached = self._frontiers.get(tenant)
        if cached is None:
            # First touch, or another connection committed since we last looked.
            row = conn.execute("SELECT size FROM trees WHERE tenant = ?", (tenant,)).fetchone()
            size = row[0] if row else 0
            cached = Frontier.load(size, lambda keys: self._read_nodes(conn, tenant, keys))
        frontier = cached.copy()
        working[tenant] = frontier
        return frontier

    @staticmethod
    def _check(conn: sqlite3.Connection, request: PendingAppend, staged: _Staged) -> None:
        """Everything that may refuse an append, before it is staged.

        Reads what this transaction holds: the keys and intents' last events
        recorded before, and those staged by earlier appends of the batch.
        """
        tenant = request.tenant

        def last_seq(intent_id: str) -> int:
            staged_seq = staged.last_seq.get((tenant, intent_id))
            if staged_seq is not None:
                return staged_seq
            row = conn.execute(
                "SELECT max(seq) FROM events INDEXED BY events_by_intent_seq "
                "WHERE tenant = ? AND intent_id = ?",
                (tenant, intent_id),
            ).fetchone()
            return -1 if row is None or row[0] is None else int(row[0])

        def recorded_key(key: str) -> str | None:
            return staged.keys.get((tenant, key))

        check_preconditions(request, last_seq=last_seq, recorded_key=recorded_key)

    def _stage(
        self,
        conn: sqlite3.Connection,
        working: dict[str, Frontier],
        request: PendingAppend,
        staged: _Staged,
    ) -> list[Event]:
        return staged.stage(self._frontier_in_tx(conn, working, request.tenant), request)

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        try:
            self._reader().execute(
                "INSERT OR IGNORE INTO checkpoints (tenant, size, note) VALUES (?, ?, ?)",
                (tenant, size, note),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save checkpoint: {exc}") from None

    def replace_checkpoint(self, tenant: str, size: int, old_note: str, new_note: str) -> bool:
        try:
            cursor = self._reader().execute(
                "UPDATE checkpoints SET note = ? WHERE tenant = ? AND size = ? AND note = ?",
                (new_note, tenant, size, old_note),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot replace checkpoint: {exc}") from None
        return cursor.rowcount == 1

    # -- reads ------------------------------------------------------------

    @staticmethod
    def _read_nodes(
        conn: sqlite3.Connection, tenant: str, keys: Sequence[NodeKey]
    ) -> dict[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        leaves = sorted({index for level, index in keys if level == 0})
        inner = sorted({(level, index) for level, index in keys if level > 0})
        # Bounded IN-lists: a proof needs O(log n) keys, far below SQLite's limits.
        if leaves:
            marks = ",".join("?" * len(leaves))
            for seq, digest in conn.execute(
                f"SELECT seq, leaf_hash FROM events WHERE tenant = ? AND seq IN ({marks})",
                (tenant, *leaves),
            ):
                found[(0, seq)] = digest
        for level, index in inner:
            row = conn.execute(
                "SELECT hash FROM nodes WHERE tenant = ? AND level = ? AND idx = ?",
                (tenant, level, index),
            ).fetchone()
            if row is not None:
                found[(level, index)] = row[0]
        return found

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("ledger store is closed")
            conn = _connect(self.path)
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def read_nodes(self, tenant: str, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return self._read_nodes(self._reader(), tenant, keys)

    def size(self, tenant: str) -> int:
        row = self._fetchone("SELECT size FROM trees WHERE tenant = ?", (tenant,))
        return int(str(row[0])) if row else 0

    def _fetchone(self, sql: str, params: tuple[object, ...]) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = self._reader().execute(sql, params).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"ledger read failed: {exc}") from None
        return row

    def _fetchall(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            rows: list[tuple[object, ...]] = self._reader().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"ledger read failed: {exc}") from None
        return rows

    def sizes(self, tenants: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(tenants))
        marks = ",".join("?" * len(wanted))
        rows = self._fetchall(
            f"SELECT tenant, size FROM trees WHERE tenant IN ({marks})", (*wanted,)
        )
        found = {str(tenant): int(str(size)) for tenant, size in rows}
        return {tenant: found.get(tenant, 0) for tenant in wanted}

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        def fetch(cursor: int, limit: int) -> Sequence[Sequence[Any]]:
            return self._fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ? AND seq >= ? "
                "ORDER BY seq LIMIT ?",
                (tenant, cursor, limit),
            )

        return paged_events(tenant, fetch, start, stop)

    def event_by_id(self, tenant: str, event_id: str) -> Event | None:
        row = self._fetchone(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ? AND event_id = ?",
            (tenant, event_id),
        )
        return event_from_row(tenant, row) if row else None

    def events_for_intent(self, tenant: str, intent_id: str) -> list[Event]:
        rows = self._fetchall(
            # INDEXED BY: without statistics SQLite prefers walking the tenant's
            # primary key (every event) to get seq order; the index has it already.
            f"SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_by_intent_seq "
            "WHERE tenant = ? AND intent_id = ? ORDER BY seq",
            (tenant, intent_id),
        )
        return [event_from_row(tenant, row) for row in rows]

    def events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]:
        rows = self._fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_by_correlation_seq "
            "WHERE tenant = ? AND correlation_id = ? ORDER BY seq",
            (tenant, correlation_id),
        )
        return [event_from_row(tenant, row) for row in rows]

    def intent_for_key(self, tenant: str, idempotency_key: str) -> str | None:
        row = self._fetchone(
            "SELECT intent_id FROM idempotency WHERE tenant = ? AND key = ?",
            (tenant, idempotency_key),
        )
        if row is None:
            return None
        owner = str(row[0])
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
        marks = ",".join("?" * len(lacks))
        rows = self._fetchall(
            "SELECT s.intent_id FROM events s INDEXED BY events_by_type "
            "WHERE s.tenant = ? AND s.type = ? "
            "AND s.intent_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM events f WHERE f.tenant = s.tenant "
            f"AND f.intent_id = s.intent_id AND f.type IN ({marks})) ORDER BY s.seq",
            (tenant, has, *lacks),
        )
        return [str(row[0]) for row in rows]

    def events_of_type(
        self, tenant: str, *event_types: str, stop: int | None = None
    ) -> list[Event]:
        if not event_types:
            return []
        marks = ",".join("?" * len(event_types))
        rows = self._fetchall(
            # the (tenant, type) index carries seq (the primary key): only these rows are read
            f"SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_by_type "
            f"WHERE tenant = ? AND type IN ({marks}) AND seq < ? ORDER BY seq",
            (tenant, *event_types, NO_STOP if stop is None else stop),
        )
        return [event_from_row(tenant, row) for row in rows]

    def latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        row = self._fetchone(
            # max(seq) through the (tenant, type) index, which carries seq: O(log n).
            # ORDER BY seq DESC LIMIT 1 would walk the primary key backwards instead.
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ? AND seq = "
            "(SELECT max(seq) FROM events WHERE tenant = ? AND type = ?)",
            (tenant, tenant, event_type),
        )
        return event_from_row(tenant, row) if row else None

    def tenants(self) -> list[str]:
        return [str(row[0]) for row in self._fetchall("SELECT tenant FROM trees ORDER BY 1", ())]

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        row = self._fetchone(
            "SELECT size, note FROM checkpoints WHERE tenant = ? ORDER BY size DESC LIMIT 1",
            (tenant,),
        )
        return (int(str(row[0])), str(row[1])) if row else None

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        row = self._fetchone(
            "SELECT note FROM checkpoints WHERE tenant = ? AND size = ?", (tenant, size)
        )
        return str(row[0]) if row else None

    def settings(self) -> dict[str, str]:
        """The durability settings as SQLite reports them on this store's own connections."""
        out = {}
        for pragma in ("journal_mode", "synchronous", "page_size", "page_count"):
            row = self._fetchone(f"PRAGMA {pragma}", ())
            out[pragma] = str(row[0]) if row else "unknown"
        return out

    def table_counts(self) -> dict[str, int]:
        """Rows per table, for storage reports."""
        names = [
            str(row[0])
            for row in self._fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", ()
            )
        ]
        counts = {}
        for name in names:
            row = self._fetchone(f'SELECT count(*) FROM "{name}"', ())
            counts[name] = int(str(row[0])) if row else 0
        return counts

    def index_problems(self, tenant: str, size: int) -> list[str]:
        # Every row's columns are checked against its bytes as the walk reads it.
        try:
            owners = derive_keys(self.events(tenant, 0, size))
        except LedgerCorrupt as exc:
            return [str(exc)]
        problems = []
        row = self._fetchone("SELECT count(*), max(seq) FROM events WHERE tenant = ?", (tenant,))
        if row is not None and (row[0] != size or (size and row[1] != size - 1)):
            problems.append(
                f"log {tenant!r}: {row[0]} event rows up to seq {row[1]}, its tree size is {size}"
            )
        stored = {
            str(key): str(owner)
            for key, owner in self._fetchall(
                "SELECT key, intent_id FROM idempotency WHERE tenant = ?", (tenant,)
            )
        }
        return problems + key_problems(tenant, stored, owners)

    def integrity_check(self) -> str:
        """SQLite's own page-level check: ``"ok"`` or what it found."""
        row = self._fetchone("PRAGMA quick_check", ())
        return str(row[0]) if row else "no answer"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.stop()
        self._writer_conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
