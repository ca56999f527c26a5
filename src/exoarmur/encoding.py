"""Canonical bytes: the only place that makes bytes ExoArmur hashes or signs.

Every hashed or signed byte is RFC 8785 (JSON Canonicalization Scheme) JSON of
plain JSON values. Models never hash their own dump: they convert to plain
values (``model.to_canonical()`` style) and come here, so a change to a
model's serializer can never silently change a hash.

This module must never read the clock, the environment or a random source.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from .errors import InputError

JSONValue = Any  # a JSON value: dict / list / str / int / float / bool / None


_SAFE_INT = 2**53 - 1
#: values and containers a walk looks at before it gives up: a value that holds
#: itself (an executor's result, say) would keep a walk going for ever, and no
#: event comes near (parameters are bounded at 64 levels and far fewer bytes)
_MAX_ITEMS = 1_000_000
_MAX_CONTAINERS = 250_000
_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def _plain(value: JSONValue) -> bool:
    """True when the stdlib's sorted, compact dump is exactly RFC 8785 for ``value``.

    That holds for strings, booleans, null, integers in the interoperable range,
    lists and objects whose keys have no character outside the Basic
    Multilingual Plane (JCS sorts keys by UTF-16 code units, Python by code
    points; they agree inside the BMP). Floats go to the reference path: their
    shortest round-trip form is subtle, and events rarely carry them.
    """
    stack = [value]
    budget = _MAX_ITEMS
    while stack:
        budget -= 1
        if budget < 0:
            return False  # so large, or holding itself: the reference path says which
        item = stack.pop()
        if item is None or isinstance(item, str | bool):
            continue
        if isinstance(item, int):
            if -_SAFE_INT <= item <= _SAFE_INT:
                continue
            return False
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str) or (not key.isascii() and max(key) > "\uffff"):
                    return False
                stack.append(inner)
            continue
        if isinstance(item, list):
            stack.extend(item)
            continue
        return False
    return True


_SCALARS = frozenset({str, bool, type(None)})


def exactly_plain(value: JSONValue) -> bool:
    """True when ``value`` is made of dicts, lists, strings, booleans, null and
    integers within ±(2**53 - 1), each of exactly that type.

    Then orjson's sorted dump is RFC 8785, provided no object key lies outside
    the Basic Multilingual Plane (checked on the bytes): no float, whose form
    differs (orjson writes ``1.0``, RFC 8785 ``1``), and no subclass, tuple,
    enum, UUID or datetime, which orjson writes where the reference refuses
    them or writes them otherwise. Exact types only, so a cheaper walk than
    :func:`_plain`; anything else takes today's path.
    """
    kind = type(value)
    if kind is dict or kind is list:
        stack = [value]
        budget = _MAX_CONTAINERS
        while stack:
            budget -= 1
            if budget < 0:
                return False  # so large, or holding itself: the careful path says which
            item = stack.pop()
            for inner in item.values() if type(item) is dict else item:
                kind = type(inner)
                if kind in _SCALARS:
                    continue
                if kind is dict or kind is list:
                    stack.append(inner)
                elif kind is not int or not -_SAFE_INT <= inner <= _SAFE_INT:
                    return False
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    return kind in _SCALARS


#: orjson refuses integers past ±(2**53 - 1) and non-str keys, and (told to
#: pass them through, with no ``default``) subclasses, datetimes and
#: dataclasses; any refusal sends the value to the old path, so errors read as
#: they always did
_SORTED = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
#: a four-byte UTF-8 sequence: a character beyond the Basic Multilingual Plane,
#: where JCS (UTF-16 code units) and orjson (code points) may sort keys apart
_ASTRAL = re.compile(rb"[\xf0-\xf4]")


def _fast(value: JSONValue, plain: bool | None) -> bytes | None:
    """orjson's sorted dump where it is RFC 8785 (told ``plain``: the stdlib's); else None."""
    if plain is False or (plain is None and not exactly_plain(value)):
        return None
    try:
        data = orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:  # a lone surrogate, a non-str key, nesting past 254
        return None
    if plain:
        # the caller's word that a parse found no float: the stdlib would sort as
        # orjson does, by code point. A NaN it would refuse, where orjson writes
        # null: so a null is taken at its word only once no float is found.
        return data if b"null" not in data or exactly_plain(value) else None
    if not data.isascii() and _ASTRAL.search(data):
        return None
    return data


def canonical_bytes(value: JSONValue, *, plain: bool | None = None) -> bytes:
    """RFC 8785 canonical JSON of a plain JSON value.

    Raises :class:`InputError` for values JSON cannot carry exactly (NaN,
    infinities, integers beyond the interoperable range, non-string keys).
    The common case is written by orjson (:func:`exactly_plain` says when its
    sorted dump is RFC 8785), the rest by the standard library or the
    reference implementation; property tests prove each byte-identical to it.
    ``plain`` is what ``jsontext.loads_plain`` found while parsing ``value``
    (so it need not be walked again; True is a promise that ``value`` holds
    only what a JSON parse makes, and no float); None to find it here.
    """
    fast = _fast(value, plain)
    return _careful(value, plain) if fast is None else fast


def _careful(value: JSONValue, plain: bool | None) -> bytes:
    """The path before orjson: every value orjson does not take, and every error."""
    try:
        if _plain(value) if plain is None else plain:
            return _dumps(value).encode()
        return rfc8785.dumps(value)
    except UnicodeEncodeError as exc:
        # a lone surrogate (as "\ud800" in JSON text parses to) has no UTF-8 form
        raise InputError(
            f"text with no UTF-8 form ({exc.reason}: {exc.object[exc.start : exc.end]!r})"
        ) from None
    except RecursionError:
        raise InputError(
            "value cannot be canonicalized as JSON (RFC 8785): it holds itself, "
            "or is nested too deeply"
        ) from None
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InputError(f"value cannot be canonicalized as JSON (RFC 8785): {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(value: JSONValue) -> str:
    """``sha256:<hex>`` of the canonical bytes of ``value``."""
    return "sha256:" + sha256_hex(canonical_bytes(value))


def format_time(moment: datetime) -> str:
    """A timestamp as recorded in canonical bytes: UTC, microseconds, ``Z``.

    One fixed shape so that the same instant always gives the same bytes.
    """
    if moment.tzinfo is None:
        raise InputError("timestamp must carry a timezone")
    try:
        # isoformat, not strftime: strftime writes the year 1 as "1", not "0001",
        # and parse_time could not read such a recorded time back.
        utc = moment.astimezone(UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="microseconds") + "Z"
    except OverflowError:
        raise InputError(
            f"timestamp {moment.isoformat()} is outside the years 1 to 9999 in UTC"
        ) from None


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any ISO 8601 with an offset)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"not an ISO 8601 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise InputError(f"timestamp must carry a timezone: {text!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InputError(f"timestamp {text!r} is outside the years 1 to 9999 in UTC") from None


def strip_none(value: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """Drop absent optional fields so that 'absent' has one canonical form."""
    return {k: v for k, v in value.items() if v is not None}
