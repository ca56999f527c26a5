"""The ledger facade: checkpoints, proofs, and verification that finds edits."""

from __future__ import annotations

import sqlite3

import pytest

from exoarmur.errors import NotFound
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from test_sqlite_store import draft


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    for n in range(13):
        ledger.append("acme", [draft(n)])
    return ledger


def test_checkpoint_signs_the_current_tree(filled: Ledger) -> None:
    signed = filled.checkpoint("acme")
    opened = open_checkpoint(signed.note, filled.verifier)
    assert opened.size == 13
    assert opened.origin == f"{filled.key.name}/acme"
    assert opened.root_hash == filled.root("acme")
    assert filled.latest_checkpoint("acme") == signed
    assert filled.current_checkpoint("acme") == signed
    filled.append("acme", [draft(99)])
    assert filled.current_checkpoint("acme").checkpoint.size == 14


def test_every_inclusion_and_consistency_proof_verifies(filled: Ledger) -> None:
    for size in range(1, 14):
        root = filled.root("acme", size)
        for seq in range(size):
            assert filled.inclusion("acme", seq, size).verify(root)
        for old in range(size + 1):
            proof = filled.consistency("acme", old, size)
            assert proof.verify(filled.root("acme", old), root)
    assert filled.inclusion("acme", 3, 13).to_json()["leaf_index"] == 3


def test_proofs_outside_the_log_are_not_found(filled: Ledger) -> None:
    with pytest.raises(NotFound):
        filled.inclusion("acme", 13, 13)
    with pytest.raises(NotFound):
        filled.consistency("acme", 3, 14)
    with pytest.raises(NotFound):
        filled.event("acme", "no-such-event")
    assert filled.latest_checkpoint("acme") is None


def test_an_untouched_ledger_verifies(filled: Ledger) -> None:
    filled.checkpoint("acme")
    result = filled.verify("acme")
    assert result.ok, result.problems
    assert result.checkpoint_size == 13


def _edit(store: SqliteStore, sql: str, *params: object) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute(sql, params)


def test_an_edited_event_byte_is_found_and_located(filled: Ledger, store: SqliteStore) -> None:
    filled.checkpoint("acme")
    row = (
        sqlite3.connect(store.path)
        .execute("SELECT canonical FROM events WHERE tenant='acme' AND seq=5")
        .fetchone()
    )
    edited = row[0].replace(b'"n":5', b'"n":6')
    _edit(store, "UPDATE events SET canonical=? WHERE tenant='acme' AND seq=5", edited)
    result = filled.verify("acme")
    assert not result.ok
    assert "event seq 5" in result.problems[0]
    assert "do not hash to the stored leaf hash" in result.problems[0]


def test_an_edit_that_rewrites_the_leaf_too_breaks_the_tree(
    filled: Ledger, store: SqliteStore
) -> None:
    from exoarmur.ledger.merkle import leaf_hash

    filled.checkpoint("acme")
    row = (
        sqlite3.connect(store.path)
        .execute("SELECT canonical FROM events WHERE tenant='acme' AND seq=2")
        .fetchone()
    )
    edited = row[0].replace(b'"n":2', b'"n":7')
    _edit(
        store,
        "UPDATE events SET canonical=?, leaf_hash=? WHERE tenant='acme' AND seq=2",
        edited,
        leaf_hash(edited),
    )
    result = filled.verify("acme")
    assert not result.ok
    assert any("stored Merkle nodes disagree" in p for p in result.problems)


def test_a_rewritten_history_is_caught_by_the_signed_checkpoint(
    filled: Ledger, store: SqliteStore
) -> None:
    filled.checkpoint("acme")
    # Rewrite the whole log consistently (bytes, leaves, nodes): only the signed
    # checkpoint still remembers the old root.
    _edit(store, "DELETE FROM events WHERE tenant='acme'")
    _edit(store, "DELETE FROM nodes WHERE tenant='acme'")
    _edit(store, "DELETE FROM trees WHERE tenant='acme'")
    with SqliteStore(store.path) as fresh:
        for n in range(13):
            fresh.append("acme", [draft(n + 100)])
        result = Ledger(fresh, filled.key).verify("acme")
    assert not result.ok
    assert any("not consistent with its signed checkpoint" in p for p in result.problems)


def test_a_forged_checkpoint_is_reported(filled: Ledger, store: SqliteStore) -> None:
    note = filled.checkpoint("acme").note
    _edit(
        store, "UPDATE checkpoints SET note=? WHERE tenant='acme'", note.replace("\n13\n", "\n12\n")
    )
    result = filled.verify("acme")
    assert any("latest checkpoint does not verify" in p for p in result.problems)


def test_a_missing_node_is_reported(filled: Ledger, store: SqliteStore) -> None:
    _edit(store, "DELETE FROM nodes WHERE tenant='acme' AND level=3")
    result = filled.verify("acme")
    assert any("stored Merkle nodes incomplete" in p for p in result.problems)
