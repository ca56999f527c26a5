"""Replay's comparison of recorded and re-derived values: the C check hides no find of the walk."""

from __future__ import annotations

import enum
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from exoarmur.replay.verify import first_difference, same_json


class Kind(enum.StrEnum):
    ALLOW = "allow"


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.integers()
    | st.floats()  # NaN and -0.0 too
    | st.sampled_from(["allow", Kind.ALLOW, "1", ""])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "verdict"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(deadline=None, max_examples=300)
@given(recorded=_VALUES, replayed=_VALUES)
@example(recorded={"v": 1}, replayed={"v": True})
@example(recorded={"v": 1}, replayed={"v": 1.0})
@example(recorded={"v": "allow"}, replayed={"v": Kind.ALLOW})
@example(recorded=[float("nan")], replayed=[None])
@example(recorded={"v": 2**60}, replayed={"v": 2**60})
def test_same_json_only_when_the_walk_finds_nothing(recorded: Any, replayed: Any) -> None:
    if same_json(recorded, replayed):
        assert first_difference(recorded, replayed) is None


@given(value=_VALUES)
@settings(deadline=None, max_examples=100)
def test_a_plain_value_is_the_same_as_itself(value: Any) -> None:
    plain = first_difference(value, value) is None
    assert same_json({"decision": "x", "n": [1, 2]}, {"n": [1, 2], "decision": "x"})
    if plain:
        assert first_difference(value, value) is None


def test_what_orjson_cannot_write_is_walked_not_raised() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    for value in (deep, {1: "x"}, {"a": "\ud800"}):
        assert same_json(value, value) is False
        assert first_difference(value, value) is None
