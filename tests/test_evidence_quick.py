"""Verifying a bundle for less, exactly: what the quick paths answer is what the careful ones do.

Three quick paths stand in for careful ones on a large bundle: inclusion
proofs against one checkpoint share the nodes they climb through
(``CheckpointProofs`` for ``verify_inclusion``), events that are plainly
canonical are read in C (``_canonical_event`` for ``jsontext.loads_plain`` and
``canonical_bytes``), and each proof hash is read once. Each property below
puts the quick path beside the careful one on good and tampered input.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exoarmur import jsontext
from exoarmur.collector import PAUSED, CollectorPause
from exoarmur.encoding import canonical_bytes, content_hash
from exoarmur.errors import InputError
from exoarmur.evidence import export_bundle, export_pack, pack_bytes, verify_bundle_text
from exoarmur.evidence import verify as verify_module
from exoarmur.evidence.inclusion import CheckpointProofs
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.merkle import (
    Frontier,
    NodeKey,
    inclusion_proof,
    leaf_hash,
    root_at,
    verify_inclusion,
)
from test_replay import GOLDEN, KEY, MANIFEST, load

# --- inclusion proofs sharing nodes ----------------------------------------------------------


def _tree(size: int) -> tuple[list[bytes], dict[NodeKey, bytes]]:
    leaves = [f"leaf {i}".encode() for i in range(size)]
    frontier = Frontier()
    nodes: dict[NodeKey, bytes] = {}
    for leaf in leaves:
        nodes.update(frontier.append(leaf_hash(leaf)))
    return leaves, nodes


def _tamper_proof(proof: list[bytes], how: int, where: int) -> list[bytes]:
    if not proof or how == 0:
        return proof
    at = where % len(proof)
    changed = list(proof)
    if how == 1:  # one hash edited
        changed[at] = bytes([changed[at][0] ^ 1]) + changed[at][1:]
    elif how == 2:  # one hash dropped
        del changed[at]
    elif how == 3:  # one hash too many
        changed.insert(at, changed[at])
    elif how == 4:  # two hashes swapped
        changed[at], changed[-1] = changed[-1], changed[at]
    else:  # a hash cut short
        changed[at] = changed[at][:31]
    return changed


checks = st.lists(
    st.tuples(
        st.integers(min_value=-1, max_value=70),  # leaf index (some out of range)
        st.integers(min_value=0, max_value=69),  # whose leaf bytes are shown
        st.integers(min_value=0, max_value=5),  # how the proof is tampered (0: not)
        st.integers(min_value=0, max_value=20),  # where
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=70), checks)
@example(1, [(0, 0, 0, 0), (0, 0, 0, 0)])
@example(5, [(4, 4, 0, 0), (3, 3, 0, 0), (3, 3, 3, 1), (2, 2, 1, 2), (2, 2, 0, 0)])
def test_proofs_sharing_nodes_answer_as_each_proof_alone(
    size: int, sequence: list[tuple[int, int, int, int]]
) -> None:
    leaves, nodes = _tree(size)
    read = lambda keys: {k: nodes[k] for k in keys}  # noqa: E731
    root = root_at(size, read)
    shared = CheckpointProofs(size, root)
    for index, shown, how, where in sequence:
        proof = inclusion_proof(index if 0 <= index < size else 0, size, read)
        proof = _tamper_proof(proof, how, where)
        data = leaves[shown % size]
        alone = verify_inclusion(leaf_hash(data), index, size, proof, root)
        assert shared.includes(data, index, proof) == alone, (index, shown, how, where)
    # one node per level is kept, whatever the number of leaves
    assert len(shared._path) <= (size - 1).bit_length()


def test_a_proof_that_meets_a_known_node_with_other_hashes_above_is_walked_to_the_root() -> None:
    leaves, nodes = _tree(8)
    read = lambda keys: {k: nodes[k] for k in keys}  # noqa: E731
    root = root_at(8, read)
    shared = CheckpointProofs(8, root)
    assert shared.includes(leaves[0], 0, inclusion_proof(0, 8, read))
    proof = inclusion_proof(1, 8, read)
    # leaf 1 meets leaf 0's parent after one step; a wrong hash above it must still fail
    proof[2] = bytes(32)
    assert not shared.includes(leaves[1], 1, proof)
    assert shared.includes(leaves[1], 1, inclusion_proof(1, 8, read))
    assert not shared.includes(leaves[1], 1, [*inclusion_proof(1, 8, read), bytes(32)])


# --- events read in C when plainly canonical -------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('a"\\\n\x01\x7f\u00e9\u2028\U0001f600'), max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(alphabet=st.sampled_from("ab\u00e9\U0001f600"), max_size=2), inner, max_size=3
        )
    ),
    max_leaves=10,
)


def _spellings(value: Any) -> list[str]:
    """Ways to write ``value``: canonical, the standard library's, escaped, spaced, key twice."""
    texts = [
        json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        json.dumps(value),
        json.dumps(value, sort_keys=True, separators=(",", ":")),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),
    ]
    first = texts[0]
    if first.startswith("{") and first != "{}":
        texts.append('{"a":1,' + first[1:])
        texts.append(first[:-1] + ',"' + next(iter(sorted(value))) + '":0}')
    return texts


def _careful(raw: str) -> tuple[Any, bytes] | None:
    """The old reading: the event and its bytes if canonical, None if anything is wrong."""
    try:
        event, plain = jsontext.loads_plain(raw)
        canonical = canonical_bytes(event, plain=plain)
        if canonical != raw.encode():
            return None
    except (json.JSONDecodeError, ValueError, TypeError, InputError):
        return None
    return event, canonical


@settings(max_examples=50, deadline=None)
@given(json_values)
@example({"seq": 2**53 - 1, "big": 2**53})
@example({"\U0001f600": 1, "a": 2})
@example({"a": 1.0})
@example({"a": "\ud800"})
def test_reading_in_c_finds_what_the_careful_reading_finds(value: Any) -> None:
    for raw in _spellings(value):
        quick = verify_module._canonical_event(raw)
        if quick is None:
            continue  # the careful reading decides, and names what is wrong
        careful = _careful(raw)
        assert careful is not None, raw
        assert quick == careful
        assert json.dumps(quick[0]) == json.dumps(careful[0])  # same keys, same order


def test_constants_and_long_numbers_are_left_to_the_careful_reading() -> None:
    for raw in ('{"a":NaN}', '{"a":Infinity}', '{"a":1e400}', '{"a":12345678901234567}', "[1]"):
        assert verify_module._canonical_event(raw) is None


# --- whole bundles: quick and careful give the same verdict ----------------------------------


class _OneProofAtATime:
    """The careful inclusion check: every proof walked to the root on its own."""

    def __init__(self, size: int, root: bytes) -> None:
        self.size, self.root = size, root

    def includes(self, data: bytes, index: int, proof: list[bytes]) -> bool:
        return verify_inclusion(leaf_hash(data), index, self.size, proof, self.root)


@contextmanager
def _careful_paths() -> Iterator[None]:
    with (
        mock.patch.object(verify_module, "_canonical_event", return_value=None),
        mock.patch.object(verify_module, "CheckpointProofs", _OneProofAtATime),
        mock.patch.object(
            verify_module,
            "_proof",
            lambda hashes, _: [verify_module._digest(h) for h in hashes],
        ),
    ):
        yield


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ledger = Ledger(load(GOLDEN / MANIFEST["good"], tmp_path_factory.mktemp("g")), KEY)
    approved = next(e for e in ledger.store.events("acme") if e.type == "intent.approved")
    correlation = approved.correlation_id
    yield {
        "bundle": export_bundle(ledger, "acme", correlation),
        "pack": json.loads(pack_bytes(export_pack(ledger, "acme", correlation))),
    }
    ledger.store.close()


def _entries_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects holding an event's text (and its leaf index)."""
    if "bundle_hash" in document:
        return [*document["events"], *document["context"]]
    return [*document["evidence"]["events"], *document["attestation"]["context"]]


def _proofs_of(document: dict[str, Any]) -> list[list[Any]]:
    if "bundle_hash" in document:
        return [e["proof"] for e in document["events"] + document["context"]]
    return list(document["attestation"]["proofs"]) + [
        e["proof"] for e in document["attestation"]["context"]
    ]


def _written(event: dict[str, Any]) -> str:
    """Canonical where it can be (an earlier edit may have put a long integer in)."""
    try:
        return canonical_bytes(event).decode()
    except InputError:
        return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _retext(entry: dict[str, Any], how: int) -> None:
    event = json.loads(entry["event"])
    if not isinstance(event, dict):  # edited before into something else
        return
    if how == 0:  # spaced out
        entry["event"] = json.dumps(event, sort_keys=True)
    elif how == 1:  # a key twice
        entry["event"] = '{"seq":0,' + entry["event"][1:]
    elif how == 2:  # a float
        event["payload"]["x"] = 1.5
        entry["event"] = json.dumps(event, sort_keys=True, separators=(",", ":"))
    elif how == 3:  # a long integer
        event["seq"] = 2**60
        entry["event"] = json.dumps(event, sort_keys=True, separators=(",", ":"))
    elif how == 4:  # a key outside the BMP, canonical
        event["payload"]["\U0001f600"] = 1
        entry["event"] = _written(event)
    elif how == 5:  # an edited byte
        entry["event"] = entry["event"].replace("acme", "acmf", 1)
    elif how == 6:  # not an object
        entry["event"] = "[1]"
    elif how == 7:  # a lone surrogate, escaped
        entry["event"] = entry["event"][:-1] + ',"zz":"\\ud800"}'
    else:  # canonical, but another event
        event["payload"]["note"] = "forged"
        entry["event"] = _written(event)


def _reproof(proof: list[Any], how: int, where: int) -> None:
    if not proof:
        proof.append("0" * 64)
        return
    at = where % len(proof)
    if how == 0:
        # an earlier edit may have left no text here (a list, a number): then zeros
        proof[at] = proof[at].upper() if isinstance(proof[at], str) else "0" * 64
    elif how == 1:
        proof[at] = "0" * 64
    elif how == 2:
        del proof[at]
    elif how == 3:
        proof.append(proof[at])
    elif how == 4:
        proof[at] = [proof[at]]
    else:
        proof[at] = 7


def _rehash(document: dict[str, Any]) -> None:
    """Signed again, as a forger holding nothing but the file could (not the log's key)."""
    if "bundle_hash" in document:
        document["bundle_hash"] = content_hash(
            {k: v for k, v in document.items() if k != "bundle_hash"}
        )
    else:
        document["evidence_hash"] = content_hash(document["evidence"])


edits = st.lists(
    st.tuples(
        st.sampled_from(["event", "proof", "index"]),
        st.integers(min_value=0, max_value=200),  # which entry
        st.integers(min_value=0, max_value=8),  # how
        st.integers(min_value=0, max_value=20),  # where, in a proof
    ),
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["bundle", "pack"]), edits, st.booleans())
@example("bundle", [], False)
@example("pack", [], True)
@example("pack", [], False)
@example("bundle", [("event", 0, 6, 0), ("proof", 1, 4, 0)], True)
def test_quick_and_careful_verification_give_one_verdict(
    documents: dict[str, Any], kind: str, changes: list[tuple[str, int, int, int]], as_text: bool
) -> None:
    document = json.loads(json.dumps(documents[kind]))
    entries, proofs = _entries_of(document), _proofs_of(document)
    for what, which, how, where in changes:
        if what == "event":
            _retext(entries[which % len(entries)], how)
        elif what == "proof":
            _reproof(proofs[which % len(proofs)], how, where)
        else:
            entry = entries[which % len(entries)]
            entry["leaf_index"] = entry["leaf_index"] + 1 + how % 2
    _rehash(document)
    data = (
        pack_bytes(document)
        if kind == "pack" and as_text
        else json.dumps(document, ensure_ascii=False).encode()
    )
    quick = verify_bundle_text(data, KEY.verifier_key()).to_json()
    with _careful_paths():
        careful = verify_bundle_text(data, KEY.verifier_key()).to_json()
    assert quick == careful
    # a pack is its canonical bytes, or it fails
    good = not changes and (kind == "bundle" or as_text)
    assert quick["verdict"] == ("PASS" if good else "FAIL")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[1]", "event is a JSON list, not an object"),
        ('"acme"', "event is a JSON str, not an object"),
        ('{"seq":0,"x":"\\ud800"}', "event is not JSON: text with no UTF-8 form"),
    ],
)
def test_an_event_that_is_no_object_or_no_utf8_is_named_not_a_crash(
    documents: dict[str, Any], text: str, named: str
) -> None:
    bundle = json.loads(json.dumps(documents["bundle"]))
    bundle["events"][0]["event"] = text
    _rehash(bundle)
    verdict = verify_bundle_text(json.dumps(bundle), KEY.verifier_key())
    assert not verdict.passed
    assert any(f.startswith(f"events[0]: {named}") for f in verdict.failures), verdict.failures


def test_a_large_bundle_verifies_with_quick_paths_as_with_careful_ones(tmp_path: Path) -> None:
    """Enough leaves that proofs meet at many levels (one stream, 60 events)."""
    from exoarmur.clock import StepClock
    from exoarmur.ids import SeededIds
    from exoarmur.ledger.sqlite import SqliteStore
    from exoarmur.pipeline import Governor
    from exoarmur.policy import PolicyBundle, PolicyEngine

    ledger = Ledger(SqliteStore(tmp_path / "l.db"), KEY)
    governor = Governor(
        ledger=ledger,
        policy=PolicyEngine(
            PolicyBundle.from_text(
                '@id("reads") permit (principal, action, resource) '
                'when { context.safety_class == "A0" };'
            )
        ),
        clock=StepClock(),
        ids=SeededIds(5),
    )
    for number in range(30):
        governor.submit(
            {
                "tenant": "acme",
                "actor": {"id": "agent-1"},
                "action": "fs.read",
                "target": f"file-{number}",
                "safety_class": "A0" if number % 3 else "A2",
                "correlation_id": "many",
            }
        )
    data = json.dumps(export_bundle(ledger, "acme", "many"))
    ledger.store.close()
    quick = verify_bundle_text(data, KEY.verifier_key())
    with _careful_paths():
        careful = verify_bundle_text(data, KEY.verifier_key())
    assert quick.passed, quick.failures
    assert quick.to_json() == careful.to_json()
    assert quick.decisions == 30


@pytest.mark.parametrize(
    ("kind", "path", "named"),
    [
        ("bundle", ("correlation_id",), "bundle: text with no UTF-8 form"),
        ("pack", ("evidence", "audit_stream_id"), "pack: not canonical JSON: text with no UTF-8"),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_file_is_named_not_a_crash(
    documents: dict[str, Any], kind: str, path: tuple[str, ...], named: str
) -> None:
    document = json.loads(json.dumps(documents[kind]))
    holder = document
    for name in path[:-1]:
        holder = holder[name]
    holder[path[-1]] = "\ud800"
    verdict = verify_bundle_text(json.dumps(document), KEY.verifier_key())  # escaped: ASCII
    assert not verdict.passed
    assert verdict.failures[0].startswith(named), verdict.failures


def test_the_cycle_collector_is_paused_while_verifying_and_resumed_as_it_was(
    documents: dict[str, Any],
) -> None:
    seen: list[bool] = []
    real = verify_module.check_story

    def story(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    data = json.dumps(documents["bundle"])
    with mock.patch.object(verify_module, "check_story", story):
        assert gc.isenabled()
        assert verify_bundle_text(data, KEY.verifier_key()).passed
        assert gc.isenabled()
        gc.disable()
        try:
            assert verify_module.verify_bundle(documents["bundle"], KEY.verifier_key()).passed
            assert not gc.isenabled()  # left as it was: off
        finally:
            gc.enable()
    assert seen == [False, False]


def test_verifications_on_several_threads_resume_the_collector_once_all_have_ended(
    documents: dict[str, Any],
) -> None:
    pause = CollectorPause()
    with pause:
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer one is still verifying
    assert gc.isenabled()
    done = threading.Barrier(3)

    def verify() -> None:
        with PAUSED:
            done.wait(timeout=30)
            assert verify_bundle_text(json.dumps(documents["bundle"])).passed
            done.wait(timeout=30)

    threads = [threading.Thread(target=verify) for _ in range(2)]
    for thread in threads:
        thread.start()
    done.wait(timeout=30)
    assert not gc.isenabled()
    done.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert gc.isenabled()
