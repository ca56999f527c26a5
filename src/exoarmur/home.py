"""The data directory: where an ExoArmur installation keeps its state.

    <home>/                 EXOARMUR_HOME or --home, default ./.exoarmur (mode 0700)
      config.toml           executor bindings and settings (TOML, read at start; mode 0600)
      keys/ledger.key       the Ed25519 checkpoint signing key (mode 0600, refused otherwise)
      policy/*.cedar        the bundle ``init`` activates (the one in force is in the ledger)
      ledger.db             the SQLite ledger (WAL; mode 0600)
      anchors.json          each log's latest signed checkpoint: a rolled-back store is refused
      run.lock              held shared by every running governor; exclusive for recovery

Anything here that others may write is refused at open (see ``file_modes``).

This is the edge: it reads files and the environment and builds the pure
parts (policy engine, governor) from them.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import Clock, StepClock, SystemClock
from .errors import ConfigError, ExoArmurError, InputError, KeyFileError
from .executors import ExecutorRegistry
from .file_modes import make_private_dir, refuse_writable_by_others, write_private
from .gate import GateConfig
from .ids import IdGenerator, RandomIds, SeededIds
from .ledger.anchor import Anchors
from .ledger.keyring import KeyRecord, check_signing_key, key_record, record_key
from .ledger.keys import SigningKey, is_valid_key_name, load_signing_key, write_signing_key
from .ledger.log import Ledger
from .ledger.sqlite import SqliteStore
from .ledger.store import LedgerStore
from .model.event import POLICY_ACTIVATED, SYSTEM_LOG
from .pipeline import DEFAULT_APPROVAL_WINDOW, Governor
from .policy import PolicyBundle, PolicyEngine

HOME_ENV = "EXOARMUR_HOME"
STORE_ENV = "EXOARMUR_STORE"
DEFAULT_HOME = ".exoarmur"

DEFAULT_POLICY = """\
// ExoArmur default policy: read-only (A0) actions are allowed, everything else
// is denied. Nothing is allowed unless a policy permits it (default deny).
// Edit this file, or add more .cedar files next to it, to allow more.

@id("allow-read-only")
permit (principal, action, resource)
when { context.safety_class == "A0" };
"""

DEFAULT_CONFIG = """\
# ExoArmur configuration. Read when a command starts.

# Bind actions to executors. An allowed action with no executor bound is
# recorded as decided and handed back to the caller to carry out.
# Patterns are exact action names or globs; the most specific one wins.
[executors]
"demo.*" = { type = "echo" }
# Simulated containment effectors (state is a fold over the ledger) and plans.
"containment.revoke_sessions" = { type = "revoke_sessions" }
"containment.isolate_endpoint" = { type = "isolate_endpoint" }
"containment.freeze_identity" = { type = "freeze_identity" }
"containment.rate_limit" = { type = "rate_limit" }
"containment.disable_workload" = { type = "disable_workload" }
"containment.plan" = { type = "containment_plan" }
# "http.notify" = { type = "http", url = "http://127.0.0.1:8080/hook" }

[approvals]
# How long approvers have, unless a policy's @approval_window says otherwise.
window_seconds = 3600

# The safety gate tightens decisions, never loosens them.
[gate.rate_limits]
# At most N intents per window, counted on recorded times ("N/SECONDSs").
tenant = "6000/60s"
actor = "1200/60s"
action = "3000/60s"
approvals_per_operator = "120/3600s"

[gate.posture]
# lockdown: every class above this one needs approval
lockdown_approval_above = "A0"
# heightened: these classes need this many more approvals
heightened_classes = ["A2", "A3"]
heightened_extra_approvals = 1

[gate.class_floor]
# Approvals each safety class needs whatever policy says. Policy and posture
# can raise it, never lower it. Lowering it is recorded (the configuration
# snapshot) and `exoarmur health` warns about it.
A2 = 1
A3 = 2

[gate.protected]
# Targets and principals no agent may touch without a quorum.
targets = []
principals = []
quorum = 2
"""


def resolve_home(home: Path | str | None) -> Path:
    if home is not None:
        return Path(home)
    return Path(os.environ.get(HOME_ENV, DEFAULT_HOME))


@dataclass
class Home:
    path: Path
    #: where the ledger lives: None for ``<home>/ledger.db``, else a store URL
    store_url: str | None = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def key_path(self) -> Path:
        return self.path / "keys" / "ledger.key"

    @property
    def policy_dir(self) -> Path:
        return self.path / "policy"

    @property
    def ledger_path(self) -> Path:
        return self.path / "ledger.db"

    @property
    def anchors(self) -> Anchors:
        """Each log's latest checkpoint signed here, kept outside the store (see ``anchor``)."""
        return Anchors(self.path / "anchors.json")

    def exists(self) -> bool:
        stored = self.store_url is not None or self.ledger_path.exists()
        return self.config_path.exists() and self.key_path.exists() and stored

    def open_store(self) -> LedgerStore:
        return open_store(self.store_url, self.ledger_path)

    def init(self, origin: str | None = None, created: list[str] | None = None) -> list[str]:
        """Create what is missing; never overwrite. Returns what was created.

        ``origin`` names the signing key, so the logs' checkpoint origin lines
        (``<origin>/<tenant>``); default ``exoarmur.local/<random>``. Each thing
        made is appended to ``created`` as it is made, so a caller learns what
        an init that fails part-way left behind.
        """
        created = [] if created is None else created
        if origin is not None and not is_valid_key_name(origin):
            raise InputError(
                f"--origin: {origin!r} is not a valid origin: it must be non-empty UTF-8 "
                "without spaces, plus signs or control characters"
            )
        if origin is not None and self.key_path.exists():
            existing = self.signing_key().name
            if existing != origin:
                raise InputError(
                    f"--origin: this home's logs already have the origin {existing!r}; "
                    "the origin is set once, when the signing key is made"
                )
        if make_private_dir(self.path):
            created.append(str(self.path))
        else:
            refuse_writable_by_others(self.path, "home")
        if not self.key_path.exists():
            key = SigningKey.generate(origin or f"exoarmur.local/{secrets.token_hex(4)}")
            write_signing_key(self.key_path, key)
            created.append(str(self.key_path))
        if make_private_dir(self.policy_dir):
            write_private(self.policy_dir / "default.cedar", DEFAULT_POLICY)
            created.append(str(self.policy_dir / "default.cedar"))
        if not self.config_path.exists():
            write_private(self.config_path, DEFAULT_CONFIG)
            created.append(str(self.config_path))
        # Opening the governor records the signing key in the system log (``keyring``).
        with open_governor(self, recover=False, record_run=False) as governor:
            for private in (self.ledger_path, self.config_path):
                if private.exists():  # 0600 whatever the umask; the home is 0700 too
                    os.chmod(private, 0o600)
            if governor.ledger.store.latest_of_type(SYSTEM_LOG, POLICY_ACTIVATED) is None:
                event = governor.activate_policy(PolicyBundle.from_dir(self.policy_dir))
                created.append(f"policy activation {event.payload['policy_hash']}")
        return created

    def require(self) -> None:
        if not (self.config_path.exists() and self.key_path.exists()):
            raise ConfigError(
                f"{self.path} is not an ExoArmur home (no config.toml or signing key); "
                "run `exoarmur init` first"
            )
        self.refuse_unsafe_modes()

    def refuse_unsafe_modes(self) -> None:
        """Refuse a home, key directory, config or ledger that others may write."""
        refuse_writable_by_others(self.path, "home")
        refuse_writable_by_others(self.key_path.parent, "key directory")
        refuse_writable_by_others(self.config_path, "configuration")
        database = self.sqlite_path()
        if database is not None:
            for suffix in ("", "-wal", "-shm"):
                refuse_writable_by_others(Path(f"{database}{suffix}"), "ledger database")

    def sqlite_path(self) -> Path | None:
        """The SQLite ledger file, if the ledger is one."""
        if self.store_url is None:
            return self.ledger_path
        scheme, _, rest = self.store_url.partition("://")
        return Path(rest[1:]) if scheme == "sqlite" and len(rest) > 1 else None

    def config(self) -> dict[str, Any]:
        refuse_writable_by_others(self.config_path, "configuration")
        try:
            with self.config_path.open("rb") as handle:
                return tomllib.load(handle)
        except FileNotFoundError:
            return {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None

    def gate(self) -> GateConfig:
        return GateConfig.from_table(self.config().get("gate"))

    def signing_key(self) -> SigningKey:
        return load_signing_key(self.key_path)

    def policy(self) -> PolicyEngine:
        """The bundle in the policy directory (not necessarily the one in force)."""
        refuse_writable_by_others(self.policy_dir, "policy directory")
        return PolicyEngine(PolicyBundle.from_dir(self.policy_dir))

    def approval_window(self) -> int:
        approvals = self.config().get("approvals", {})
        window = approvals.get("window_seconds", DEFAULT_APPROVAL_WINDOW)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(
                f"{self.config_path}: approvals.window_seconds must be a positive integer"
            )
        return window

    def evidence(self) -> dict[str, Any]:
        """The ``[evidence]`` settings that are set (checked; empty when none is)."""
        from .evidence.artifacts import enforcement_enabled

        section = self.config().get("evidence", {})
        if not isinstance(section, dict):
            raise ConfigError(f"{self.config_path}: [evidence] must be a table")
        unknown = sorted(set(section) - {"governance_artifact_enforcement"})
        if unknown:
            raise ConfigError(f"{self.config_path}: [evidence] has no setting {unknown[0]!r}")
        try:
            enforced = enforcement_enabled({}, {"evidence": section})
        except InputError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None
        return {"governance_artifact_enforcement": True} if enforced else {}

    def executors(self) -> ExecutorRegistry:
        bindings = self.config().get("executors", {})
        if not isinstance(bindings, dict):
            raise ConfigError(f"{self.config_path}: [executors] must be a table")
        return ExecutorRegistry.from_config(bindings)

    def ledger(self, *, rollback_check: bool = True) -> Ledger:
        """The ledger alone (for reads, proofs, checkpoints), with the key it records.

        ``rollback_check=False`` is for ``verify``, which reports a rollback
        (the anchors' notes are among the checkpoints it checks) instead.
        """
        self.require()
        key = self.signing_key()
        store = self.open_store()
        try:
            return self.bind_ledger(store, key, key_record(store), rollback_check=rollback_check)
        except BaseException:
            store.close()
            raise

    def bind_ledger(
        self, store: LedgerStore, key: SigningKey, record: KeyRecord, *, rollback_check: bool = True
    ) -> Ledger:
        """A ledger over ``store`` once ``key`` is the key it records and nothing was rolled back.

        Raises KeyFileError for a swapped key and LedgerCorrupt for a log
        shorter than (or another tree than) its last checkpoint signed here.
        """
        check_signing_key(record, key, str(self.key_path))
        ledger = Ledger(
            store,
            key,
            retired=record.retired_verifiers(),
            on_checkpoint=self.anchors.record,
        )
        if rollback_check:
            self.anchors.check(ledger.size, ledger.root)
        return ledger


@dataclass
class RunLock:
    """Who may recover: the one process that finds no other governor running.

    Every governor holds ``run.lock`` shared while it lives. At start it first
    tries to take it exclusive: success means no other governor is mid-way
    through an execution, so unfinished executions really are abandoned.
    """

    path: Path
    _fd: int = field(default=-1, init=False)

    def acquire(self) -> bool:
        """Hold the lock shared; return True if we were alone (may recover)."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        if not alone:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
        return alone

    def share(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def deterministic_parts(seed: int) -> tuple[StepClock, SeededIds]:
    """The clock and ids of a deterministic run: the same seed, the same bytes."""
    return StepClock(), SeededIds(seed)


def open_store(url: str | None, default: Path) -> LedgerStore:
    """The store a URL names: ``sqlite:///PATH``, ``postgresql://…``, ``nats://…``; None: default.

    ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db``, as elsewhere.
    """
    if not url:
        return SqliteStore(default)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store: {url!r} is not a URL (sqlite:///PATH, postgresql://...)")
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(f"store: {url!r}: write sqlite:///relative.db or sqlite:////abs.db")
        return SqliteStore(Path(rest[1:]))
    if scheme in ("postgresql", "postgres"):
        from .ledger.postgres import PostgresStore

        return PostgresStore(url)
    if scheme == "nats":
        from .ledger.jetstream import JetStreamStore

        return JetStreamStore(url)
    raise ConfigError(f"store: unknown scheme {scheme!r} (sqlite, postgresql, nats)")


def _run_lock(home: Home) -> RunLock | Any:
    """Who may recover: a file lock for one machine, a database lock for PostgreSQL,
    leases in a bucket for JetStream."""
    if home.store_url and home.store_url.split("://", 1)[0] in ("postgresql", "postgres"):
        from .ledger.postgres import RunLock as DatabaseRunLock

        return DatabaseRunLock(home.store_url)
    if home.store_url and home.store_url.startswith("nats://"):
        from .ledger.jetstream import RunLock as LeaseRunLock

        return LeaseRunLock(home.store_url)
    return RunLock(home.path / "run.lock")


def open_governor(
    home: Home | Path | str | None = None,
    *,
    seed: int | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    recover: bool = True,
    record_run: bool = True,
) -> Governor:
    """A governor over a data directory, with recovery of abandoned executions."""
    if isinstance(home, Home):
        where = home
    else:
        where = Home(resolve_home(home), os.environ.get(STORE_ENV) or None)
    where.require()
    run_settings: dict[str, Any] | None = None
    randomness = None
    if seed is not None:
        step_clock, seeded_ids = deterministic_parts(seed)
        clock, ids = step_clock, seeded_ids
        randomness = seeded_ids.random_bytes
        run_settings = {
            "mode": "deterministic",
            "clock": step_clock.describe(),
            "ids": {"generator": "seeded-ulid", "seed": seed},
        }
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    executors = where.executors()
    window = where.approval_window()
    gate = where.gate()
    evidence = where.evidence()
    key = where.signing_key()
    lock = _run_lock(where)
    alone = lock.acquire()
    try:
        store = where.open_store()
    except ExoArmurError:
        lock.release()
        raise
    try:
        record = key_record(store)
        ledger = where.bind_ledger(store, key, record)
        if record.verifier_key is None:
            # A ledger from before keys were recorded: the key it starts with is the one
            # from now on. Wall clock and random id: it must not shift a seeded run's ids.
            record_key(store, key, SystemClock(), RandomIds())
    except BaseException:
        store.close()
        lock.release()
        raise
    governor = Governor(
        ledger=ledger,
        executors=executors,
        clock=clock,
        ids=ids,
        approval_window=window,
        gate=gate,
        randomness=randomness,
        evidence=evidence,
    )
    governor.add_close_hook(lock.release)
    if alone:
        try:
            if recover:
                governor.recover()
            lock.share()
        except BaseException:
            governor.close()
            raise
    if run_settings is None and record_run:
        # Recorded once per distinct setting (the record is idempotent).
        run_settings = {
            "mode": "live",
            "clock": {"kind": getattr(clock, "name", type(clock).__name__)},
            "ids": {
                "generator": "random-ulid" if isinstance(ids, RandomIds) else type(ids).__name__
            },
        }
    if run_settings is not None:
        try:
            governor.record_run(run_settings)
        except BaseException:
            governor.close()
            raise
    return governor


__all__ = ["Home", "KeyFileError", "open_governor", "resolve_home"]
