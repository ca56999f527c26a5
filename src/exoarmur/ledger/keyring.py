"""Which key signs a ledger's checkpoints: recorded in its system log, changed only by rotation.

``init`` records the key's verifier string (``key.recorded``); every start
compares the key file with the latest recorded one and refuses another. A
key copied over ``keys/ledger.key`` would otherwise sign checkpoints of a
ledger it never signed, and nothing would say so.

``exoarmur key rotate`` is the one way to change it: a ``key.rotated`` event
names the old and the new verifier strings and every retired one before
them, so checkpoints signed by an old key still verify, and each log's
current checkpoint is signed again by both keys, which binds the new key to
the old one in a note anyone holding the old public key can check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import KeyFileError, LedgerCorrupt
from ..ids import IdGenerator
from ..model.event import KEY_RECORDED, KEY_ROTATED, SYSTEM_LOG, Event, EventDraft
from .checkpoint import Checkpoint, sign_note
from .keys import SigningKey, Verifier
from .store import LedgerStore

_SYSTEM_ACTOR = {"id": "exoarmur", "kind": "system"}


@dataclass(frozen=True)
class KeyRecord:
    """The key the system log says signs this ledger, and the keys rotated away."""

    verifier_key: str | None
    retired: tuple[str, ...]

    def retired_verifiers(self) -> tuple[Verifier, ...]:
        return tuple(Verifier.from_string(vkey) for vkey in self.retired)


def key_record(store: LedgerStore) -> KeyRecord:
    """What the system log says about the signing key (nothing, before keys were recorded)."""
    recorded = store.latest_of_type(SYSTEM_LOG, KEY_RECORDED)
    rotated = store.latest_of_type(SYSTEM_LOG, KEY_ROTATED)
    try:
        retired = tuple(str(v) for v in rotated.payload["retired"]) if rotated else ()
        if rotated is not None and (recorded is None or rotated.seq > recorded.seq):
            return KeyRecord(str(rotated.payload["new_verifier_key"]), retired)
        if recorded is not None:
            return KeyRecord(str(recorded.payload["verifier_key"]), retired)
    except (KeyError, TypeError) as exc:
        raise LedgerCorrupt(f"log {SYSTEM_LOG!r}: a signing key record lacks {exc}") from None
    return KeyRecord(None, retired)


def check_signing_key(record: KeyRecord, key: SigningKey, where: str) -> None:
    """Refuse a key file holding another key than the one the ledger records."""
    if record.verifier_key is None or record.verifier_key == key.verifier_key():
        return
    recorded = Verifier.from_string(record.verifier_key)
    raise KeyFileError(
        f"the signing key in {where} ({key.name}+{key.key_id().hex()}) is not the key this "
        f"ledger records ({recorded.name}+{recorded.key_id.hex()}); put the recorded key "
        "back, or change keys only with `exoarmur key rotate`"
    )


def _system_draft(
    clock: Clock, ids: IdGenerator, event_type: str, payload: dict[str, Any]
) -> EventDraft:
    now = clock.now()
    event_id = ids.new(now)
    return EventDraft(
        event_id=event_id,
        tenant=SYSTEM_LOG,
        type=event_type,
        correlation_id=event_id,
        event_time=now,
        process_time=now,
        actor=dict(_SYSTEM_ACTOR),
        payload=payload,
    )


def record_key(store: LedgerStore, key: SigningKey, clock: Clock, ids: IdGenerator) -> Event:
    """Record ``key`` as the one that signs this ledger's checkpoints."""
    draft = _system_draft(clock, ids, KEY_RECORDED, {"verifier_key": key.verifier_key()})
    (event,) = store.append(SYSTEM_LOG, [draft])
    return event


def rotate_key(
    store: LedgerStore,
    old: SigningKey,
    new: SigningKey,
    clock: Clock,
    ids: IdGenerator,
    root: Callable[[str, int], bytes],
    origin: Callable[[str], str],
    on_checkpoint: Callable[[str, Checkpoint, str], None] | None = None,
) -> tuple[Event, str]:
    """Record the rotation from ``old`` to ``new``; the system log's checkpoint signed by both.

    Returns the rotation event and that note: whoever holds the old public key
    learns the new one from it, and the log it commits to records both.
    """
    if new.name != old.name:
        raise KeyFileError(
            f"a rotated key keeps the name {old.name!r} (checkpoint origins are named by it)"
        )
    record = key_record(store)
    check_signing_key(record, old, "the key file")
    retired = [*record.retired, old.verifier_key()]
    payload = {
        "old_verifier_key": old.verifier_key(),
        "new_verifier_key": new.verifier_key(),
        "retired": retired,
    }
    (event,) = store.append(SYSTEM_LOG, [_system_draft(clock, ids, KEY_ROTATED, payload)])
    size = store.size(SYSTEM_LOG)
    checkpoint = Checkpoint(origin=origin(SYSTEM_LOG), size=size, root_hash=root(SYSTEM_LOG, size))
    note = sign_note(checkpoint.body(), [old, new])
    store.save_checkpoint(SYSTEM_LOG, size, note)
    if on_checkpoint is not None:
        on_checkpoint(SYSTEM_LOG, checkpoint, note)
    return event, note
