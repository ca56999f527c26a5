"""The stretch of a log a JetStream writer indexed itself answers exactly, or not at all (pure)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.ledger.jetstream.recent import Recent

#: a log's events: (event id, intent id, idempotency key); ids and keys are unique in a
#: log (the writer refuses a repeat), intents repeat
EVENTS = st.lists(
    st.tuples(
        st.none() | st.sampled_from([f"i{n}" for n in range(5)]),
        st.none() | st.sampled_from([f"k{n}" for n in range(5)]),
    ),
    max_size=12,
).map(
    lambda drawn: [
        (f"e{seq}", intent, key if key not in [k for _, k in drawn[:seq]] else None)
        for seq, (intent, key) in enumerate(drawn)
    ]
)
NAMES = st.sets(st.sampled_from([f"{p}{n}" for p in "eik" for n in range(13)]), max_size=8)


def truth(
    log: list[tuple[str, str | None, str | None]],
) -> tuple[dict[str, str], set[str], dict[str, int]]:
    owners: dict[str, str] = {}
    lasts: dict[str, int] = {}
    for seq, (event_id, intent_id, key) in enumerate(log):
        if key is not None:
            owners.setdefault(key, intent_id or event_id)
        if intent_id is not None:
            lasts[intent_id] = seq
    return owners, {event_id for event_id, _, _ in log}, lasts


@settings(max_examples=50, deadline=None)
@given(log=EVENTS, data=st.data(), names=NAMES)
def test_an_answer_is_the_log_s_or_left_to_the_indexes(
    log: list[tuple[str, str | None, str | None]], data: st.DataObject, names: set[str]
) -> None:
    start = data.draw(st.integers(0, len(log)), label="start")
    cuts = sorted(data.draw(st.lists(st.integers(start, len(log)), max_size=3), label="cuts"))
    recent = Recent()
    recent.add(start, [])
    for lo, hi in zip([start, *cuts], [*cuts, len(log)], strict=True):
        recent.add(lo, log[lo:hi])  # contiguous pieces, as groups are indexed
    keys = {n for n in names if n.startswith("k")}
    ids = {n for n in names if n.startswith("e")}
    intents = {n for n in names if n.startswith("i")}
    known = recent.answer(len(log), keys, ids, intents)
    owners, taken, lasts = truth(log)
    stretch = truth(log[start:])
    # every answer given is the whole log's; what is not answered is asked
    assert known.owners == {k: owners[k] for k in keys if k in stretch[0]}
    assert known.taken_ids == ids & stretch[1]
    assert known.lasts == {i: lasts[i] for i in intents if i in stretch[2]}
    assert known.ask_keys == (set() if start == 0 else keys - set(known.owners))
    assert known.ask_ids == (set() if start == 0 else ids - known.taken_ids)
    assert known.ask_intents == (set() if start == 0 else intents - set(known.lasts))
    if start == 0:  # a stretch from the first event also answers "absent"
        assert set(known.owners) == keys & set(owners)
        assert known.taken_ids == ids & taken


def test_a_stretch_that_no_longer_reaches_the_tip_answers_nothing() -> None:
    recent = Recent()
    recent.add(0, [("e0", "i0", "k0")])
    known = recent.answer(2, {"k0"}, {"e0"}, {"i0"})  # another writer appended seq 1
    assert (known.owners, known.taken_ids, known.lasts) == ({}, set(), {})
    assert (known.ask_keys, known.ask_ids, known.ask_intents) == ({"k0"}, {"e0"}, {"i0"})


def test_a_piece_that_is_not_contiguous_starts_the_stretch_again() -> None:
    recent = Recent()
    recent.add(0, [("e0", "i0", "k0")])
    recent.add(5, [("e5", "i1", None)])  # seqs 1-4 were indexed by someone else
    assert (recent.start, recent.end) == (5, 6)
    known = recent.answer(6, {"k0"}, {"e0", "e5"}, {"i0", "i1"})
    assert known.taken_ids == {"e5"}
    assert known.lasts == {"i1": 5}
    assert (known.ask_keys, known.ask_ids, known.ask_intents) == ({"k0"}, {"e0"}, {"i0"})


def test_a_stretch_past_its_limit_starts_again_at_its_end() -> None:
    recent = Recent(limit=2)
    recent.add(0, [("e0", None, None), ("e1", None, None), ("e2", None, None)])
    recent.add(3, [("e3", None, None)])
    assert (recent.start, recent.end, recent.ids) == (3, 4, {"e3"})


def test_events_that_fail_to_be_listed_change_nothing() -> None:
    recent = Recent()
    recent.add(0, [("e0", "i0", None)])

    def corrupt() -> Iterator[tuple[str, str | None, str | None]]:
        yield ("e1", "i0", None)
        raise ValueError("a message that does not decode")

    with pytest.raises(ValueError, match="does not decode"):
        recent.add(1, corrupt())
    assert (recent.end, recent.ids, recent.lasts) == (1, {"e0"}, {"i0": 0})
