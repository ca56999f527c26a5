"""The data directory: where an ExoArmur installation keeps its state.

    <home>/                 EXOARMUR_HOME or --home, default ./.exoarmur (mode 0700)
      config.toml           executor bindings and settings (TOML, read at start; mode 0600)
      keys/ledger.key       the Ed25519 checkpoint signing key (mode 0600, refused otherwise)
      policy/*.cedar        the bundle ``init`` activates (the one in force is in the ledger)
      ledger.db             the SQLite ledger (WAL; mode 0600)
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
from .errors import ConfigError, ExoArmurError, KeyFileError
from .executors import ExecutorRegistry
from .file_modes import make_private_dir, refuse_writable_by_others, write_private
from .gate import GateConfig
from .ids import IdGenerator, RandomIds, SeededIds
from .ledger.keys import SigningKey, load_signing_key, write_signing_key
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

    def exists(self) -> bool:
        stored = self.store_url is not None or self.ledger_path.exists()
        return self.config_path.exists() and self.key_path.exists() and stored

    def open_store(self) -> LedgerStore:
        return open_store(self.store_url, self.ledger_path)

    def init(self) -> list[str]:
        """Create what is missing; never overwrite. Returns what was created."""
        created = []
        if not make_private_dir(self.path):
            refuse_writable_by_others(self.path, "home")
        if not self.key_path.exists():
            key = SigningKey.generate(f"exoarmur.local/{secrets.token_hex(4)}")
            write_signing_key(self.key_path, key)
            created.append(str(self.key_path))
        if make_private_dir(self.policy_dir):
            write_private(self.policy_dir / "default.cedar", DEFAULT_POLICY)
            created.append(str(self.policy_dir / "default.cedar"))
        if not self.config_path.exists():
            write_private(self.config_path, DEFAULT_CONFIG)
            created.append(str(self.config_path))
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

    def executors(self) -> ExecutorRegistry:
        bindings = self.config().get("executors", {})
        if not isinstance(bindings, dict):
            raise ConfigError(f"{self.config_path}: [executors] must be a table")
        return ExecutorRegistry.from_config(bindings)

    def ledger(self) -> Ledger:
        """The ledger alone (for reads, proofs, checkpoints)."""
        self.require()
        key = self.signing_key()
        return Ledger(self.open_store(), key)


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
    key = where.signing_key()
    lock = _run_lock(where)
    alone = lock.acquire()
    try:
        store = where.open_store()
    except ExoArmurError:
        lock.release()
        raise
    governor = Governor(
        ledger=Ledger(store, key),
        executors=executors,
        clock=clock,
        ids=ids,
        approval_window=window,
        gate=gate,
        randomness=randomness,
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
