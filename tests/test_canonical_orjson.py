"""Canonical bytes written by orjson are the bytes the careful path writes, errors included.

``encoding.canonical_bytes`` hands the common case to orjson (``exactly_plain``
says when its sorted dump is RFC 8785) and everything else to the path it had
before (``encoding._careful``: the standard library, or the ``rfc8785``
reference). The verifier reads plainly canonical events with orjson too
(``evidence.verify._canonical_event``). Each property below puts the orjson
path beside the careful one on the inputs where they could part: key order
beyond the Basic Multilingual Plane, control characters and their escapes,
U+2028/U+2029, DEL, lone surrogates, integers at and past 2**53 and 2**64,
floats, subclasses, and mutated texts (repeated keys, NaN, spaces, escapes).
"""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exoarmur import encoding, jsontext
from exoarmur.encoding import canonical_bytes, exactly_plain
from exoarmur.errors import ExoArmurError, InputError
from exoarmur.evidence import verify as verify_module

#: the characters where JSON writers part: escapes, DEL, line separators, key order
_TRICKY = (
    "".join(chr(c) for c in range(0x20))
    + '"\\/aZ~\x7f\u0080\u00e9\u2028\u2029\ud7ff\ue000\uffef\uffff'
    + "\U00010000\U0001f600\U0010ffff"
)
tricky_text = st.text(alphabet=st.sampled_from(_TRICKY), max_size=5)
_EDGE_INTS = [2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 2**63, -(2**63) - 1, 2**64, 0]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.sampled_from(_EDGE_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, -0.0, 1e21, 1e-7, 5e-324])
    | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=5),
    max_leaves=20,
)


def _outcome(write: Any, value: Any) -> bytes | str:
    try:
        return bytes(write(value))
    except InputError as exc:
        return f"InputError: {exc}"


class _Str(str):
    pass


class _Int(int):
    pass


class _Dict(dict[str, Any]):
    def items(self) -> Any:  # the standard library writes what items() says
        return [("shadow", 1)]


class _Colour(enum.Enum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


class _Mode(enum.StrEnum):
    QUIET = "quiet"


_ODD = [
    _Str("k"),
    _Int(7),
    True,
    _Dict(a=1),
    _Colour.RED,
    _Level.HIGH,
    _Mode.QUIET,
    (1, "two"),
    float("nan"),
    float("inf"),
    "\ud800",
    "\udfff",
    2**64,
    object(),
    b"bytes",
]


def _nest(leaf: Any, place: int) -> Any:
    """``leaf`` at one of a few places: alone, in a list, as a value, as a key."""
    if place == 0:
        return leaf
    if place == 1:
        return ["x", leaf]
    if place == 2:
        return {"b": leaf, "a": [leaf]}
    try:
        return {leaf: 1, "z": 0}
    except TypeError:  # not hashable: no key
        return {"z": leaf}


@settings(max_examples=50, deadline=None)
@given(json_values, st.sampled_from(_ODD), st.integers(0, 3))
@example({}, "\ud800", 3)  # a lone surrogate as a key
@example({}, _Str("k"), 3)  # a str subclass as a key
@example({}, _Colour.RED, 2)  # orjson writes an enum's value; the reference refuses it
@example({}, _Dict(a=1), 1)  # orjson would ignore the items() the standard library calls
def test_what_orjson_does_not_take_is_written_and_refused_as_before(
    value: Any, odd: Any, place: int
) -> None:
    for tried in (value, _nest(odd, place), [value, _nest(odd, place)]):
        assert _outcome(canonical_bytes, tried) == _outcome(
            lambda v: encoding._careful(v, None), tried
        )


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_a_parse_found_plain_is_written_as_the_reference_writes_it(value: Any) -> None:
    try:
        parsed, plain = jsontext.loads_plain(json.dumps(value, ensure_ascii=False))
    except ExoArmurError:
        return  # a lone surrogate; its own test below
    if plain:
        assert canonical_bytes(parsed, plain=True) == rfc8785.dumps(parsed)
    assert plain == (exactly_plain(parsed) and not _has_astral_key(parsed))


def _has_astral_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(max(k, default="") > "\uffff" or _has_astral_key(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_astral_key(v) for v in value)


@pytest.mark.parametrize("plain", [None, True])
@pytest.mark.parametrize(
    "value", [{"t": "\ud800"}, ["\udfff"], {"\ud800": 1}, {"b": [1, {"x": "a\udc00b"}]}]
)
def test_a_lone_surrogate_reads_as_it_always_did(value: Any, plain: bool | None) -> None:
    with pytest.raises(InputError) as caught:
        canonical_bytes(value, plain=plain)
    with pytest.raises(InputError) as before:
        encoding._careful(value, plain)
    assert str(caught.value) == str(before.value)
    assert str(caught.value).startswith("text with no UTF-8 form (surrogates not allowed: ")


@pytest.mark.parametrize(
    "value", [_Dict(a=1), [_Int(7)], {"k": _Str("v")}, {"at": datetime(2026, 1, 1, tzinfo=UTC)}]
)
def test_a_promise_of_plain_passes_subclasses_and_times_to_the_careful_path(value: Any) -> None:
    assert _outcome(lambda v: canonical_bytes(v, plain=True), value) == _outcome(
        lambda v: encoding._careful(v, True), value
    )


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"a": -math.inf}])
def test_a_promise_of_plain_still_refuses_what_json_cannot_carry(value: Any) -> None:
    # orjson writes NaN as null; the standard library, told plain, refused it
    with pytest.raises(InputError, match="Out of range float"):
        canonical_bytes(value, plain=True)


def test_a_promise_of_plain_with_a_null_is_kept_once_no_float_is_found() -> None:
    # a pack carries "plan_hash": null: orjson still writes it, and no NaN hides as null
    assert encoding._fast({"plan_hash": None, "n": 1}, True) == b'{"n":1,"plan_hash":null}'
    assert encoding._fast({"plan_hash": None, "ratio": 1.5}, True) is None
    assert (
        canonical_bytes({"plan_hash": None, "ratio": 1.5}, plain=True)
        == b'{"plan_hash":null,"ratio":1.5}'
    )


def test_told_not_plain_the_reference_writes() -> None:
    assert canonical_bytes({"b": 1, "a": "x"}, plain=False) == b'{"a":"x","b":1}'


def test_keys_beyond_the_basic_plane_keep_utf16_order() -> None:
    value = {"\U0001f600": 1, "\ue000": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).index(b"\xf0") < canonical_bytes(value).index(b"\xee")


# --- events read by orjson in the verifier --------------------------------------------------


def _careful_event(raw: str) -> tuple[Any, bytes] | None:
    """The careful reading: the event and its bytes if plainly canonical, else None."""
    try:
        event, plain = jsontext.loads_plain(raw)
        data = canonical_bytes(event, plain=plain)
    except (ExoArmurError, ValueError, TypeError):
        return None
    if data != raw.encode() or type(event) is not dict:
        return None
    return event, data


_MUTATIONS = [
    lambda t: t.replace("{", '{"a":1,', 1),  # a repeated key, once "a" is there
    lambda t: t.replace("{", '{"~":0,"~":0,', 1),  # a key twice
    lambda t: t.replace(":", ": ", 1),  # a space
    lambda t: t.replace("1", "1.0", 1),  # a float that orjson writes back as it reads
    lambda t: t.replace("1", "18446744073709551616", 1),  # past 64 bits: orjson reads a float
    lambda t: t.replace("1", "9007199254740992", 1),  # 2**53
    lambda t: t.replace("1", "NaN", 1),
    lambda t: t.replace("1", "1e400", 1),
    lambda t: t.replace("1", "-0", 1),
    lambda t: t.replace('"', '"\\ud800', 1),  # a lone surrogate, escaped
    lambda t: t.replace('"', '"\\u00e9', 1),  # an escape orjson would not write
    lambda t: t.replace('"', '"\\/', 1),
    lambda t: t + " ",
    lambda t: " " + t,
    lambda t: t + "{}",
    lambda t: "\ufeff" + t,
    lambda t: t[:-1],
]


@settings(max_examples=50, deadline=None)
@given(json_values, st.lists(st.sampled_from(range(len(_MUTATIONS))), max_size=3))
@example({"a": 1, "b": [1, "x"]}, [0])
@example({"a": 1}, [3])
@example({"a": 1}, [4])
@example({"a": "x"}, [9])
def test_the_verifier_reads_with_orjson_only_what_the_careful_reading_accepts(
    value: Any, mutations: list[int]
) -> None:
    try:
        text = canonical_bytes({"seq": 1, "v": value}).decode()
    except InputError:
        return
    for index in mutations:
        text = _MUTATIONS[index](text)
    quick = verify_module._canonical_event(text)
    if quick is None:
        return  # the careful reading decides, and names what is wrong
    careful = _careful_event(text)
    assert careful is not None, text
    assert quick == careful
    assert json.dumps(quick[0]) == json.dumps(careful[0])  # same keys, same order, same types


def test_an_event_nested_deeper_than_orjson_writes_is_left_to_the_careful_reading() -> None:
    deep = '{"a":' + "[" * 300 + "]" * 300 + "}"
    assert verify_module._canonical_event(deep) is None
    assert _careful_event(deep) is not None  # still canonical: the careful reading takes it


def test_a_value_holding_itself_is_bad_input_not_an_endless_walk() -> None:
    loop: list[Any] = []
    loop.append(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = mapping
    for value in (loop, {"a": [1, loop]}, mapping):
        with pytest.raises(InputError, match="holds itself"):
            canonical_bytes(value)
        assert not encoding.exactly_plain(value)
