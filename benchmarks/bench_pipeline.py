"""What governance costs: the Governor against the same work done by hand, in one run.

For each path (allow with an executor, allow with no executor bound, deny)
and each submitter concurrency, this script

1. runs a real :class:`~exoarmur.pipeline.Governor` over a real SQLite ledger
   (WAL, ``synchronous=FULL``, group commit) and times every ``submit``;
2. then, on the same machine a moment later, runs the *floor*: the same
   Cedar evaluations, the same canonical hashing and the same durable SQLite
   rows in the same number of transactions, written directly with
   ``cedarpy``, ``rfc8785``, ``hashlib`` and ``sqlite3`` and no ExoArmur code.

The ratio pipeline/floor is what this file is for: on a noisy machine the
absolute numbers move, the ratio much less, because both halves share the
noise. benchmarks/README.md says exactly what the floor does and does not
include; keep the two in step.

This script must never decide anything from a time (no thresholds, no
pass/fail on speed) and the floor must never call into ``exoarmur``: it
borrows only data from it (the shipped default policy text) and, after the
pipeline ran, the table definitions and one recorded event of each type
from the pipeline's own database file, so both write the same shapes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shlex
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cedarpy
import rfc8785
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from exoarmur.clock import SystemClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.home import DEFAULT_POLICY
from exoarmur.ids import RandomIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

README = Path(__file__).with_name("README.md")
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"

DEFAULT_N = 3000
QUICK_N = 48
WARMUP = 30

#: The policy ``exoarmur init`` ships (permit A0) plus one forbid the deny path hits.
POLICY = (
    DEFAULT_POLICY
    + """
@id("never-prod-db")
forbid (principal, action, resource == Target::"db/prod");
"""
)

TENANT = "acme"
ACTOR = {"id": "agent-1", "kind": "agent"}
SYSTEM_ACTOR = {"id": "exoarmur", "kind": "system"}
EXECUTED_ACTION = "bench.read"  # bound to the echo executor
DECIDED_ACTION = "bench.lookup"  # allowed, bound to nothing


@dataclass(frozen=True)
class GovernedPath:
    """One governed path: what is submitted and what must come back."""

    name: str
    action: str
    target: str
    status: str  #: the OutcomeStatus every submission must end in
    executes: bool  #: allowed with an executor bound: two appends per action
    events: int  #: ledger events per action


PATHS = {
    p.name: p
    for p in (
        GovernedPath("allow", EXECUTED_ACTION, "reports/q3.txt", "executed", True, 4),
        GovernedPath("decided", DECIDED_ACTION, "reports/q3.txt", "decided", False, 2),
        GovernedPath("deny", EXECUTED_ACTION, "db/prod", "denied", False, 2),
    )
}


def intent_doc(path: GovernedPath, i: int) -> dict[str, Any]:
    """The i-th intent of a run: A0, a distinct idempotency key."""
    return {
        "tenant": TENANT,
        "actor": dict(ACTOR),
        "action": path.action,
        "target": path.target,
        "safety_class": "A0",
        "params": {"path": path.target, "bytes": 4096, "attempt": i},
        "idempotency_key": f"bench-{path.name}-{i:08d}",
    }


# -- results ----------------------------------------------------------------


@dataclass
class Rows:
    events: int
    nodes: int
    idempotency: int
    event_bytes_mean: float

    def comparable(self, other: Rows) -> bool:
        """The same rows, and events of the same size within 2 %."""
        counts = (self.events, self.nodes, self.idempotency)
        if counts != (other.events, other.nodes, other.idempotency):
            return False
        return abs(self.event_bytes_mean - other.event_bytes_mean) <= 0.02 * other.event_bytes_mean


@dataclass
class PipelineResult:
    seconds: float
    ops: float
    commits: int
    appends: int
    rows: Rows
    #: seconds per submit, in completion order per thread; pooled across repeats
    latencies: list[float] = field(repr=False)


@dataclass
class FloorResult:
    seconds: float
    ops: float
    cedar_calls: int
    cedar_batch: int
    cedar_s: float
    hash_s: float
    sqlite_s: float
    transactions: int
    rows: Rows


@dataclass
class Scenario:
    """One (path, concurrency) row: ``repeat`` pipeline runs, each followed by its floor."""

    path: str
    concurrency: int
    n: int
    runs: list[tuple[PipelineResult, FloorResult]]

    @property
    def key(self) -> str:
        return f"{self.path.upper()}_C{self.concurrency}"

    @property
    def ops(self) -> float:
        return statistics.median(p.ops for p, _ in self.runs)

    @property
    def floor_ops(self) -> float:
        return statistics.median(f.ops for _, f in self.runs)

    @property
    def ratios(self) -> list[float]:
        """pipeline/floor of each run and the floor measured right after it."""
        return [p.ops / f.ops for p, f in self.runs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def latency_ms(self, q: float) -> float:
        pooled = sorted(x for p, _ in self.runs for x in p.latencies)
        return percentile(pooled, q) * 1e3

    @property
    def commits(self) -> int:
        return round(statistics.median(p.commits for p, _ in self.runs))

    def floor_median(self, attribute: str) -> float:
        return statistics.median(getattr(f, attribute) for _, f in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": self.path,
            "concurrency": self.concurrency,
            "n": self.n,
            "ops": self.ops,
            "p50_ms": self.latency_ms(0.50),
            "p99_ms": self.latency_ms(0.99),
            "p999_ms": self.latency_ms(0.999),
            "commits": self.commits,
            "floor_ops": self.floor_ops,
            "ratio": self.ratio,
            "ratio_min": min(self.ratios),
            "ratio_max": max(self.ratios),
            "runs": [
                {
                    "pipeline": {k: v for k, v in asdict(p).items() if k != "latencies"},
                    "floor": asdict(f),
                }
                for p, f in self.runs
            ],
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def count_rows(db: Path) -> Rows:
    """The benchmark tenant's rows (the pipeline also logs its policy activation elsewhere)."""
    conn = sqlite3.connect(db)
    try:
        events, mean = conn.execute(
            "SELECT count(*), avg(length(canonical)) FROM events WHERE tenant = ?", (TENANT,)
        ).fetchone()
        (nodes,) = conn.execute("SELECT count(*) FROM nodes WHERE tenant = ?", (TENANT,)).fetchone()
        (keys,) = conn.execute(
            "SELECT count(*) FROM idempotency WHERE tenant = ?", (TENANT,)
        ).fetchone()
    finally:
        conn.close()
    return Rows(events, nodes, keys, round(mean or 0.0, 1))


# -- the pipeline -----------------------------------------------------------


def build_governor(db: Path) -> tuple[Governor, SqliteStore]:
    store = SqliteStore(db)
    executors = ExecutorRegistry()
    executors.bind(EXECUTED_ACTION, EchoExecutor())
    governor = Governor(
        ledger=Ledger(store, SigningKey.generate("bench.exoarmur/log")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=SystemClock(),
        ids=RandomIds(),
    )
    return governor, store


def warm_up(workdir: Path) -> None:
    """Pay first-call costs (imports, pydantic and Cedar set-up) outside any timing."""
    governor, _ = build_governor(workdir / "warmup.db")
    with governor:
        for path in PATHS.values():
            for i in range(WARMUP):
                governor.submit(intent_doc(path, i))


def run_pipeline(
    db: Path, path: GovernedPath, n: int, concurrency: int, tick: Callable[[int], None]
) -> PipelineResult:
    docs = [intent_doc(path, i) for i in range(n)]
    governor, store = build_governor(db)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    finished = [0.0] * concurrency
    failures: list[str] = []
    done = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def submitter(slot: int) -> None:
        mine = latencies[slot]
        start.wait()
        try:
            for doc in docs[slot::concurrency]:
                t0 = time.perf_counter()
                outcome = governor.submit(doc)
                mine.append(time.perf_counter() - t0)
                if outcome.status.value != path.status:
                    failures.append(f"{doc['idempotency_key']}: {outcome.status.value}")
                done[slot] += 1
        except Exception as exc:  # reported below: a broken run must not print a rate
            failures.append(f"submitter {slot}: {type(exc).__name__}: {exc}")
        finished[slot] = time.perf_counter()

    threads = [
        threading.Thread(target=submitter, args=(slot,), name=f"bench-submitter-{slot}")
        for slot in range(concurrency)
    ]
    with governor:
        # Building a governor may itself commit (recording the policy in force).
        commits_before = store.commits
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.2)
            tick(sum(done))
        for thread in threads:
            thread.join()
        tick(sum(done))
        commits = store.commits - commits_before
    if failures:
        raise SystemExit(f"{path.name}: {len(failures)} intents ended wrongly, e.g. {failures[0]}")
    seconds = max(finished) - began
    return PipelineResult(
        seconds=seconds,
        ops=n / seconds,
        commits=commits,
        appends=n * (2 if path.executes else 1),
        rows=count_rows(db),
        latencies=[x for slot in latencies for x in slot],
    )


# -- the floor --------------------------------------------------------------
# Plain cedarpy, rfc8785, hashlib and sqlite3. Nothing below imports exoarmur.


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cedar_request(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "principal": f"Agent::{_quote(doc['actor']['id'])}",
        "action": f"Action::{_quote(doc['action'])}",
        "resource": f"Target::{_quote(doc['target'])}",
        "context": {
            "params": doc["params"],
            "safety_class": doc["safety_class"],
            "tenant": doc["tenant"],
            "posture": "normal",
            "event_time": doc["when"],
            "event_epoch": doc["epoch"],
        },
    }


def _cedar_entities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "uid": {"type": "Agent", "id": doc["actor"]["id"]},
            "attrs": {"kind": doc["actor"]["kind"]},
            "parents": [],
        },
        {"uid": {"type": "Target", "id": doc["target"]}, "attrs": {}, "parents": []},
    ]


def _content_hash(value: Any) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(value)).hexdigest()


class _Frontier:
    """RFC 9162 right edge: the node hashes an append completes, as the store keeps them."""

    def __init__(self) -> None:
        self.size = 0
        self._hashes: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        index, carry, level = self.size, leaf, 0
        completed = []
        while (index >> level) & 1:
            carry = hashlib.sha256(b"\x01" + self._hashes.pop() + carry).digest()
            level += 1
            completed.append((level, index >> level, carry))
        self._hashes.append(carry)
        self.size = index + 1
        return completed


@dataclass
class _Append:
    """One append of the pipeline: its event rows, tree node rows and idempotency rows."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    tree_size: int = 0


def _split(total: int, parts: int) -> list[int]:
    """Sizes of ``parts`` contiguous, near-equal chunks of ``total`` items."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _copy_schema(source: Path, conn: sqlite3.Connection) -> None:
    """The pipeline's own tables and indexes, read from its file: they cannot drift apart."""
    src = sqlite3.connect(source)
    try:
        statements = [
            sql
            for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type = 'index', rowid"
            )
        ]
    finally:
        src.close()
    for statement in statements:
        conn.execute(statement)


def _templates(source: Path) -> dict[str, dict[str, Any]]:
    """The first recorded event of each type, decoded: the shape the floor must match.

    The floor computes every value it has a source for (ids, times, hashes,
    the decision); what the pipeline records beyond that (say, the hash of
    its configuration) is copied from here, so the floor writes events of
    the same shape and size without knowing every field by name.
    """
    conn = sqlite3.connect(source)
    try:
        rows = conn.execute(
            "SELECT type, canonical FROM events WHERE tenant = ? ORDER BY seq", (TENANT,)
        ).fetchall()
    finally:
        conn.close()
    found: dict[str, dict[str, Any]] = {}
    for kind, canonical in rows:
        found.setdefault(kind, json.loads(canonical))
    return found


def run_floor(
    db: Path, schema_from: Path, path: GovernedPath, n: int, transactions: int
) -> FloorResult:
    docs = [intent_doc(path, i) for i in range(n)]
    policies = cedarpy.PolicySet.from_str(POLICY)
    templates = _templates(schema_from)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    _copy_schema(schema_from, conn)
    # The mean number of intents decided per pipeline transaction; 1 means
    # one transaction per append, where the pipeline could never batch.
    batch = max(1, round(n / transactions))

    # 1. Cedar: the same requests, batched like the group commit batched them.
    t0 = time.perf_counter()
    for doc in docs:
        now = datetime.now(UTC)
        doc["when"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc["epoch"] = int(now.timestamp())
    results: list[Any] = []
    if batch == 1:
        for doc in docs:
            results.append(
                cedarpy.is_authorized(_cedar_request(doc), policies, _cedar_entities(doc))
            )
        calls = n
    else:
        calls = 0
        for lo in range(0, n, batch):
            chunk = docs[lo : lo + batch]
            entities = {e["uid"]["id"]: e for d in chunk for e in _cedar_entities(d)}
            results.extend(
                cedarpy.is_authorized_batch(
                    [_cedar_request(d) for d in chunk], policies, list(entities.values())
                )
            )
            calls += 1
    t1 = time.perf_counter()

    # 2. Canonical bytes and hashes: each event as event_record shapes it,
    # its RFC 9162 leaf hash and the tree nodes it completes.
    frontier = _Frontier()
    appends: list[_Append] = []
    serial = 0

    def record(into: _Append, doc: dict[str, Any], kind: str, payload: dict[str, Any]) -> None:
        nonlocal serial
        serial += 1
        seq = frontier.size
        template = templates.get(kind)
        if template is None:
            raise SystemExit(f"floor: the pipeline recorded no {kind} event for {path.name}")
        event = template | {
            "seq": seq,
            "event_id": f"{serial:026d}",
            "tenant": doc["tenant"],
            "type": kind,
            "correlation_id": doc["intent_id"],
            "event_time": doc["when"],
            "process_time": doc["when"],
            "actor": doc["actor"] if kind == "intent.recorded" else SYSTEM_ACTOR,
            "payload": template["payload"] | payload,
            "intent_id": doc["intent_id"],
        }
        canonical = rfc8785.dumps(event)
        leaf = hashlib.sha256(b"\x00" + canonical).digest()
        for level, idx, digest in frontier.append(leaf):
            into.nodes.append((doc["tenant"], level, idx, digest))
        intent_id = doc["intent_id"]
        row = (doc["tenant"], seq, event["event_id"], kind, intent_id, intent_id, canonical, leaf)
        into.events.append(row)
        into.tree_size = frontier.size

    allowed = path.status != "denied"
    recorded_decision = templates.get("decision.recorded", {}).get("payload", {}).get("decision")
    for i, (doc, result) in enumerate(zip(docs, results, strict=True)):
        verdict = "allow" if result.decision == cedarpy.Decision.Allow else "deny"
        if (verdict == "allow") != allowed:
            raise SystemExit(f"floor: Cedar said {verdict} for a {path.name} intent")
        doc["intent_id"] = f"{i:026d}"
        intent = {
            "intent_id": doc["intent_id"],
            "tenant": doc["tenant"],
            "actor": doc["actor"],
            "action": doc["action"],
            "target": doc["target"],
            "params": doc["params"],
            "safety_class": doc["safety_class"],
            "idempotency_key": doc["idempotency_key"],
            "correlation_id": doc["intent_id"],
            "event_time": doc["when"],
        }
        intent_hash = _content_hash(intent)
        names = result.diagnostics.id_annotations_by_reason
        decision = (recorded_decision or {}) | {
            "verdict": verdict,
            "reasons": sorted(names.get(r, r) for r in result.diagnostics.reasons),
            "obligations": {},
            "errors": [str(e) for e in result.diagnostics.errors],
        }
        # The pipeline's two uniqueness keys: the actor-scoped idempotency key and the intent id.
        first = _Append(
            keys=[
                (doc["tenant"], f"{doc['actor']['id']} {doc['idempotency_key']}", doc["intent_id"]),
                (doc["tenant"], f"intent id {doc['intent_id']}", doc["intent_id"]),
            ]
        )
        record(first, doc, "intent.recorded", {"intent": intent, "intent_hash": intent_hash})
        payload = {"decision": decision, "intent_hash": intent_hash}
        record(first, doc, "decision.recorded", payload)
        appends.append(first)
        if path.executes:
            payload = {"executor": "echo", "binding": doc["action"], "intent_hash": intent_hash}
            record(first, doc, "execution.started", payload)
            echoed = {"action": doc["action"], "target": doc["target"], "params": doc["params"]}
            payload = {
                "executor": "echo",
                "intent_hash": intent_hash,
                "status": "succeeded",
                "result": echoed,
                "result_hash": _content_hash(echoed),
            }
            second = _Append()
            record(second, doc, "execution.finished", payload)
            appends.append(second)
    t2 = time.perf_counter()

    # 3. The same rows, durable, in as many transactions as the pipeline used.
    groups = _split(len(appends), transactions)
    cursor = 0
    for size in groups:
        group = appends[cursor : cursor + size]
        cursor += size
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (tenant, seq, event_id, type, correlation_id, intent_id, "
            "canonical, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row for a in group for row in a.events],
        )
        conn.executemany(
            "INSERT INTO nodes (tenant, level, idx, hash) VALUES (?, ?, ?, ?)",
            [row for a in group for row in a.nodes],
        )
        conn.executemany(
            "INSERT INTO idempotency (tenant, key, intent_id) VALUES (?, ?, ?)",
            [row for a in group for row in a.keys],
        )
        conn.execute(
            "INSERT INTO trees (tenant, size) VALUES (?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET size = excluded.size",
            (TENANT, group[-1].tree_size),
        )
        conn.execute("COMMIT")
    t3 = time.perf_counter()
    conn.close()
    return FloorResult(
        seconds=t3 - t0,
        ops=n / (t3 - t0),
        cedar_calls=calls,
        cedar_batch=batch,
        cedar_s=t1 - t0,
        hash_s=t2 - t1,
        sqlite_s=t3 - t2,
        transactions=len(groups),
        rows=count_rows(db),
    )


# -- the machine ------------------------------------------------------------


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def filesystem(where: Path) -> str:
    """The filesystem type holding ``where``: fsync on tmpfs costs nothing."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(where.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def machine_info(workdir: Path) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        if found:
            cpu = found.group(1).strip()
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "exoarmur": _package("exoarmur"),
        "cedarpy": _package("cedarpy"),
        "rfc8785": _package("rfc8785"),
        "sqlite": sqlite3.sqlite_version,
        "filesystem": filesystem(workdir),
    }


# -- output -----------------------------------------------------------------

COLUMNS = (
    "path",
    "C",
    "actions/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "floor actions/s",
    "pipeline/floor",
    "commits",
)


def _cells(s: Scenario) -> list[str]:
    spread = f" ({min(s.ratios):.2f}–{max(s.ratios):.2f})" if len(s.runs) > 1 else ""
    return [
        s.path,
        str(s.concurrency),
        f"{s.ops:,.0f}",
        f"{s.latency_ms(0.50):.2f}",
        f"{s.latency_ms(0.99):.2f}",
        f"{s.latency_ms(0.999):.2f}",
        f"{s.floor_ops:,.0f}",
        f"{s.ratio:.2f}{spread}",
        f"{s.commits:,}",
    ]


FLOOR_COLUMNS = ("path", "C", "Cedar calls × batch", "Cedar s", "hashing s", "SQLite s", "floor s")


def _floor_cells(s: Scenario) -> list[str]:
    _, f = s.runs[0]
    return [
        s.path,
        str(s.concurrency),
        f"{f.cedar_calls:,} × {f.cedar_batch}",
        f"{s.floor_median('cedar_s'):.3f}",
        f"{s.floor_median('hash_s'):.3f}",
        f"{s.floor_median('sqlite_s'):.3f}",
        f"{s.floor_median('seconds'):.3f}",
    ]


def key_values(report: dict[str, Any], scenarios: Sequence[Scenario]) -> list[str]:
    lines = [
        f"BENCH_N={report['n']}",
        f"BENCH_REPEAT={report['repeat']}",
        f"BENCH_DATE={report['date']}",
    ]
    for s in scenarios:
        k = s.key
        lines += [
            f"{k}_OPS={s.ops:.1f}",
            f"{k}_P50_MS={s.latency_ms(0.50):.3f}",
            f"{k}_P99_MS={s.latency_ms(0.99):.3f}",
            f"{k}_P999_MS={s.latency_ms(0.999):.3f}",
            f"{k}_COMMITS={s.commits}",
            f"{k}_FLOOR_OPS={s.floor_ops:.1f}",
            f"{k}_RATIO={s.ratio:.3f}",
        ]
    return lines


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def markdown(report: dict[str, Any], scenarios: Sequence[Scenario]) -> str:
    m = report["machine"]
    lines = [
        f"Measured {report['date']} with `{report['command']}`: "
        f"N = {report['n']:,} intents per row, {_runs(report['repeat'])}.",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable)",
        f"- {m['platform']}; ledger on {m['filesystem']}",
        f"- Python {m['python']}, exoarmur {m['exoarmur']}, cedarpy {m['cedarpy']}, "
        f"rfc8785 {m['rfc8785']}, SQLite {m['sqlite']}",
        "",
        *_markdown_table(COLUMNS, [_cells(s) for s in scenarios]),
        "",
        "Where the floor's time went:",
        "",
        *_markdown_table(FLOOR_COLUMNS, [_floor_cells(s) for s in scenarios]),
    ]
    return "\n".join(lines) + "\n"


def _runs(repeat: int) -> str:
    if repeat == 1:
        return "one run each"
    return f"median of {repeat} runs (pipeline/floor: median of paired runs, range in brackets)"


def write_readme(text: str, start_mark: str = START_MARK, end_mark: str = END_MARK) -> None:
    """Replace what lies between two markers of the README with ``text``."""
    current = README.read_text(encoding="utf-8")
    start, end = current.find(start_mark), current.find(end_mark)
    if start < 0 or end < start:
        raise SystemExit(f"{README}: markers {start_mark} … {end_mark} not found in order")
    updated = current[: start + len(start_mark)] + "\n" + text + current[end:]
    README.write_text(updated, encoding="utf-8")


def render(console: Console, report: dict[str, Any], scenarios: Sequence[Scenario]) -> None:
    m = report["machine"]
    console.print(
        f"[bold]ExoArmur pipeline vs floor[/] — {report['date']}, "
        f"N = {report['n']:,}, {_runs(report['repeat'])}\n"
        f"{m['cpu']}, {m['cores']} cores; Python {m['python']}, cedarpy {m['cedarpy']}, "
        f"rfc8785 {m['rfc8785']}, SQLite {m['sqlite']} on {m['filesystem']}"
    )
    table = Table(title="Governed actions (durable ledger)")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < 2 else "right")
    for s in scenarios:
        table.add_row(*_cells(s))
    console.print(table)
    floor = Table(title="Floor breakdown")
    for i, name in enumerate(FLOOR_COLUMNS):
        floor.add_column(name, justify="left" if i < 2 else "right")
    for s in scenarios:
        floor.add_row(*_floor_cells(s))
    console.print(floor)


# -- the run ----------------------------------------------------------------


def _concurrency(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency values must be integers >= 1")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=None, help=f"intents per row (default {DEFAULT_N})"
    )
    parser.add_argument(
        "--concurrency", type=_concurrency, default=[1, 8], help="submitter threads, e.g. 1,8"
    )
    parser.add_argument(
        "--paths",
        type=lambda text: [p for p in text.split(",") if p],
        default=list(PATHS),
        help="which paths to run: allow,decided,deny",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per row, each pipeline run followed by its floor; medians are reported",
    )
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes (N={QUICK_N}) for tests")
    parser.add_argument("--json", action="store_true", help="print one JSON document, nothing else")
    parser.add_argument(
        "--write-readme", action="store_true", help=f"replace the measured section of {README.name}"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the ledgers go (default: TMPDIR)"
    )
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be at least 1")
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown:
        parser.error(f"unknown path {unknown[0]!r} (one of: {', '.join(PATHS)})")
    return args


def new_report(
    command: str, n: int, repeat: int, concurrency: Sequence[int], workdir: Path
) -> dict[str, Any]:
    """The header every report carries: when, how, on what."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "n": n,
        "repeat": repeat,
        "concurrency": list(concurrency),
        "machine": machine_info(workdir),
    }


def measure(
    workdir: Path,
    plan: Sequence[tuple[GovernedPath, int]],
    n: int,
    repeat: int,
    progress: Progress,
    label: str = "",
) -> list[Scenario]:
    """Every (path, concurrency) row of ``plan``: ``repeat`` pipeline runs, each with its floor.

    Adds one task per row to ``progress`` (described as ``label`` + the row).
    Raises SystemExit when a floor did not write what its pipeline wrote (the
    comparison would be unfair).
    """
    scenarios: list[Scenario] = []
    tasks = {
        (p.name, c): progress.add_task(f"{label}{p.name} C={c}", total=2 * n * repeat)
        for p, c in plan
    }
    warm_up(workdir)
    for number, (path, c) in enumerate(plan):
        task = tasks[(path.name, c)]
        runs = []
        for attempt in range(repeat):
            base = 2 * n * attempt
            pipeline_db = workdir / f"{number}-{attempt}-pipeline.db"
            pipeline = run_pipeline(
                pipeline_db,
                path,
                n,
                c,
                lambda done, task=task, base=base: progress.update(task, completed=base + done),
            )
            floor = run_floor(
                workdir / f"{number}-{attempt}-floor.db", pipeline_db, path, n, pipeline.commits
            )
            progress.update(task, completed=base + 2 * n)
            if not floor.rows.comparable(pipeline.rows):
                raise SystemExit(
                    f"{path.name} C={c}: the floor wrote {floor.rows}, "
                    f"the pipeline {pipeline.rows}; the comparison would be unfair"
                )
            runs.append((pipeline, floor))
        scenarios.append(Scenario(path.name, c, n, runs))
    return scenarios


def new_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_pipeline.py", *(argv or sys.argv[1:])])
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)  # a pipe would get 80 columns and truncated headers
    err = Console(stderr=True)
    plan = [(PATHS[name], c) for name in args.paths for c in args.concurrency]
    with tempfile.TemporaryDirectory(prefix="exoarmur-bench-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        report = new_report(command, args.n, args.repeat, args.concurrency, workdir)
        with new_progress(err) as progress:
            scenarios = measure(workdir, plan, args.n, args.repeat, progress)
    report["scenarios"] = [s.to_json() for s in scenarios]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(out, report, scenarios)
        for line in key_values(report, scenarios):
            print(line)
    if args.write_readme:
        write_readme(markdown(report, scenarios))
        err.print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
