"""Recorded bytes read in C: exactly what ``json.loads`` makes of them, errors included."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exoarmur.jsontext import loads_recorded

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too: orjson would read those as floats
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
#: edits that make text orjson refuses or reads otherwise
_EDITS = [
    b"",
    b"NaN",
    b"-Infinity",
    b"1e400",
    b'"\\ud800"',
    b"\xff",
    b"\xef\xbb\xbf",
    b"18446744073709551616",
    b'{"a":1,"a":2}',
    b"\x00",
    b"   ",
    b"]",
]


def _same(left: Any, right: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, float):
        return math.copysign(1, left) == math.copysign(1, right) and (
            left == right or (math.isnan(left) and math.isnan(right))
        )
    return bool(left == right)


def _outcome(read: Any, data: bytes) -> tuple[str, Any]:
    try:
        return ("value", read(data))
    except (ValueError, RecursionError) as exc:
        return ("error", f"{type(exc).__name__}: {exc}")


@settings(deadline=None, max_examples=200)
@given(value=_VALUES, ascii_only=st.booleans(), edit=st.sampled_from(_EDITS), at=st.integers(0))
@example(value=2**64, ascii_only=True, edit=b"", at=0)
@example(value={"a": [1, -0.0, 1e-7]}, ascii_only=False, edit=b"", at=0)
def test_loads_recorded_is_json_loads(value: Any, ascii_only: bool, edit: bytes, at: int) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if edit:
        where = at % (len(data) + 1)
        data = data[:where] + edit + data[where:]
    ours, theirs = _outcome(loads_recorded, data), _outcome(json.loads, data)
    assert ours[0] == theirs[0], (data, ours, theirs)
    if ours[0] == "error":
        assert ours[1] == theirs[1]
    else:
        assert _same(ours[1], theirs[1]), (data, ours[1], theirs[1])


@pytest.mark.parametrize(
    "data",
    [b"18446744073709551616", b'{"n":-9223372036854775809}', b"[123456789012345678901]"],
)
def test_an_integer_past_64_bits_stays_an_integer(data: bytes) -> None:
    found = loads_recorded(data)
    assert _same(found, json.loads(data))
    assert "." not in repr(found)
