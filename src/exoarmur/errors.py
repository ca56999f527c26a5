"""Every exception ExoArmur raises on purpose, in one tree.

Bad input and a failed environment are different branches, because the caller
must react differently: fix the request, or retry / page someone.

    ExoArmurError
    ├── InputError              bad input; nothing was written (CLI exit 2, HTTP 4xx)
    │   ├── IntentError         an intent failed validation (names the field and the rule)
    │   ├── ContainmentError    a containment action or plan is malformed (names the step and rule)
    │   ├── ObservationError    an observation failed validation (names the field and the rule)
    │   ├── JSONTextError       a document is not JSON ExoArmur accepts (repeated key, NaN…)
    │   ├── PolicyError         a policy bundle does not parse or validate
    │   └── ConfigError         the configuration file is wrong
    ├── IntegrityError          stored or shipped bytes are not what they claim to be
    │   ├── KeyFileError        signing key missing, unreadable, tampered or readable by others
    │   ├── CheckpointError     a signed checkpoint does not parse or verify
    │   ├── ProofError          an inclusion or consistency proof does not verify
    │   ├── LedgerCorrupt       the ledger's stored bytes, hashes or tree disagree
    │   └── QuorumNotReached    fewer witnesses cosigned a checkpoint than the quorum asks
    ├── StoreError              the store failed (I/O, lock, server gone); nothing is acknowledged
    │   └── StoreUnavailable    the store cannot be reached or opened
    ├── NotFound                a thing the caller named does not exist (in its tenant)
    ├── AuthenticationError     no or bad credentials (HTTP 401)
    ├── PermissionDenied        good credentials, not allowed to do this (HTTP 403)
    ├── DuplicateIntent         internal signal: the idempotency key is already taken
    ├── Conflict                internal signal: the intent changed since it was read; retry
    │   └── IntentIdTaken       a caller-supplied intent_id is already recorded (HTTP 409, exit 2)
    ├── ExecutorError           an executor could not be built or failed outside its action
    └── CheckpointRefused       a witness will not cosign a checkpoint (carries the HTTP status)

Messages are one line, written for the person at the terminal: they say what
is wrong and, where it helps, what to do.
"""

from __future__ import annotations


class ExoArmurError(Exception):
    """Base of every error ExoArmur raises on purpose."""


class InputError(ExoArmurError):
    """The caller's input is wrong. Nothing was written."""


class IntentError(InputError):
    """An intent failed validation.

    ``problems`` holds one ``(field, rule)`` pair per failure so that an API
    can return them structured; ``str()`` gives them on one line.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {rule}" for field, rule in problems))


class ContainmentError(InputError):
    """A containment action or plan is malformed: names the step or field and the rule."""


class ObservationError(InputError):
    """An observation failed validation, or reuses a recorded id for other content."""


class JSONTextError(InputError):
    """A document is not JSON, or is JSON ExoArmur refuses (a repeated key, ``NaN``…).

    ``field`` is the dotted path of the value at fault, ``None`` when the
    text does not parse at all; then ``at`` is the line and column where it stopped.
    """

    def __init__(self, field: str | None, rule: str, at: tuple[int, int] | None = None) -> None:
        self.field = field
        self.rule = rule
        self.at = at
        where = f" at line {at[0]} column {at[1]}" if at else ""
        super().__init__(f"{field}: {rule}" if field else f"{rule}{where}")


class PolicyError(InputError):
    """A policy bundle does not parse or validate."""


class ConfigError(InputError):
    """The configuration is wrong."""


class IntegrityError(ExoArmurError):
    """Stored or shipped bytes are not what they claim to be."""


class KeyFileError(IntegrityError):
    """The signing key is missing, unreadable, tampered, or readable by others."""


class CheckpointError(IntegrityError):
    """A signed checkpoint does not parse or does not verify."""


class ProofError(IntegrityError):
    """An inclusion or consistency proof does not verify."""


class LedgerCorrupt(IntegrityError):
    """The ledger's stored bytes, hashes or tree disagree with each other."""


class QuorumNotReached(IntegrityError):
    """Fewer valid witness cosignatures than the quorum asks for.

    ``refusals`` holds, per witness that did not cosign, what it said (the
    evidence of a rollback or a fork when the log is at fault).
    """

    def __init__(self, message: str, refusals: tuple[object, ...] = ()) -> None:
        self.refusals = refusals
        super().__init__(message)


class StoreError(ExoArmurError):
    """The store failed; nothing from the failed call is acknowledged."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened."""


class NotFound(ExoArmurError):
    """A thing the caller named does not exist in its tenant."""


class AuthenticationError(ExoArmurError):
    """Missing, malformed, unknown or revoked credentials."""


class PermissionDenied(ExoArmurError):
    """The authenticated principal may not do this."""


class Conflict(ExoArmurError):
    """An append's precondition failed: the intent has new events since it was read.

    Raised by a store inside ``append`` (nothing written); the caller re-reads
    and decides again. This is what makes two approvers racing for the last
    vote of a quorum count both votes, and what starts an execution once.
    """


class IntentIdTaken(Conflict):
    """A caller-supplied ``intent_id`` is already recorded in the tenant; nothing was written."""


class DuplicateIntent(ExoArmurError):
    """The (tenant, idempotency key) pair is already recorded.

    Raised by a store inside ``append`` so the pipeline can return the first
    outcome instead; callers of the public API never see it.
    """

    def __init__(self, tenant: str, idempotency_key: str, intent_id: str) -> None:
        self.tenant = tenant
        self.idempotency_key = idempotency_key
        self.intent_id = intent_id
        super().__init__(
            f"idempotency key {idempotency_key!r} of tenant {tenant!r} "
            f"is already recorded for intent {intent_id}"
        )


class ExecutorError(ExoArmurError):
    """An executor could not be built, or failed outside its own action."""


class CheckpointRefused(ExoArmurError):
    """A witness will not cosign a checkpoint (c2sp.org/tlog-witness).

    ``status`` is the protocol's HTTP status (400 malformed, 403 not signed by
    the log, 404 unknown log, 409 wrong old size, 422 inconsistent);
    ``known_size`` is the size the witness last cosigned, for a 409.
    """

    def __init__(self, status: int, message: str, known_size: int | None = None) -> None:
        self.status = status
        self.known_size = known_size
        super().__init__(message)
