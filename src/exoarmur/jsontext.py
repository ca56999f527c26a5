"""JSON text as it enters ExoArmur: one reading, stricter than the standard library's.

Every document a caller hands in (an intent file, a request body, an evidence
bundle, a policy test case) is read here. The standard library accepts what
ExoArmur must not: a key twice in one object (last one wins, while a proxy
that keeps the first sees another document), ``NaN`` and ``Infinity`` (not
JSON), numbers that overflow to infinity, and integers too long to convert
(a ``ValueError`` nobody expects). Each is refused with the path of the value
at fault, so the caller learns which field and which rule.

This module reads no clock, environment or file: it turns text into values.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from .errors import JSONTextError

#: Longest integer accepted, in digits: Python's own limit for converting
#: text to int (beyond it ``int()`` raises). Canonical bytes refuse integers
#: outside ±(2**53 - 1) later anyway; this bound only keeps parsing total.
MAX_INTEGER_DIGITS = 4300


class _Refused:
    """A value met while parsing that will be refused once its path is known."""

    __slots__ = ("rule",)

    def __init__(self, rule: str) -> None:
        self.rule = rule


class _Repeated(dict[str, Any]):
    """An object in which ``key`` appeared more than once."""

    key: str = ""


#: the largest integer RFC 8785 writes as the standard library does (I-JSON's range)
_SAFE_INT = 2**53 - 1


#: every digit made "0" and every other byte " ": a run of 19 digits, as an
#: integer past 64 bits needs (orjson reads one as a float), is then a
#: substring search in C (a regular expression costs ten times as much)
_DIGITS_ONLY = bytes(b"0"[0] if 0x30 <= byte <= 0x39 else b" "[0] for byte in range(256))
_LONG_DIGITS = b"0" * 19


def loads_recorded(data: bytes) -> Any:
    """Bytes read back from a ledger, parsed exactly as ``json.loads`` parses them, in C.

    For the read paths (events decoded from a store, replay), not for input:
    what enters is read by :func:`loads`. orjson and the standard library agree
    on every document except an integer past 64 bits (orjson makes it a float;
    no run of 19 digits, none can be there) and what orjson refuses (NaN,
    Infinity, an overflowing number, a lone surrogate, text that is not UTF-8
    or not JSON): all of those go to ``json.loads``, errors included. One
    difference is left: arrays nested deeper than the interpreter's recursion
    limit (about 1,000) and at most 1,024 deep are read, where ``json.loads``
    raises RecursionError; nothing ExoArmur writes nests that deep.
    """
    if _LONG_DIGITS not in data.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def loads(raw: bytes | str) -> Any:
    """Parse one JSON document, refusing repeated keys and non-JSON numbers.

    Raises :class:`~exoarmur.errors.JSONTextError`: ``field`` is the dotted
    path of the value at fault (``None`` when the text is not JSON at all).
    """
    return loads_plain(raw)[0]


def loads_plain(raw: bytes | str) -> tuple[Any, bool]:
    """:func:`loads`, and whether the document is *plain*, as ``encoding._plain`` means it.

    Plain: no float, no integer beyond ±(2**53 - 1), no object key with a
    character outside the Basic Multilingual Plane; then the standard
    library's sorted, compact dump is the document's RFC 8785 form. Noted
    while parsing (the hooks see every number and key), so that a verifier
    checking many documents' canonical bytes need not walk each one again.
    """
    refused = False
    plain = True

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal refused, plain
        value = dict(items)
        if plain:
            for key in value:
                if not key.isascii() and max(key) > "\uffff":
                    plain = False
                    break
        if len(value) == len(items):
            return value
        refused = True
        seen: set[str] = set()
        repeated = _Repeated(value)
        for key, _ in items:
            if key in seen:
                repeated.key = key
                break
            seen.add(key)
        return repeated

    def integer(digits: str) -> Any:
        nonlocal refused, plain
        count = len(digits) - digits.startswith("-")
        if count > MAX_INTEGER_DIGITS:
            refused = True
            return _Refused(
                f"an integer of {count} digits exceeds the limit of {MAX_INTEGER_DIGITS} digits"
            )
        value = int(digits)
        if count > 15 and not -_SAFE_INT <= value <= _SAFE_INT:
            plain = False
        return value

    def number(text: str) -> Any:
        nonlocal refused, plain
        plain = False
        value = float(text)
        if math.isfinite(value):
            return value
        refused = True
        return _Refused(f"the number {text[:40]} is out of range")

    def constant(name: str) -> Any:
        nonlocal refused
        refused = True
        return _Refused(f"{name} is not a JSON value")

    try:
        document = json.loads(
            raw,
            object_pairs_hook=pairs,
            parse_int=integer,
            parse_float=number,
            parse_constant=constant,
        )
    except json.JSONDecodeError as exc:
        raise JSONTextError(None, f"malformed JSON: {exc.msg}", (exc.lineno, exc.colno)) from None
    except UnicodeDecodeError as exc:
        raise JSONTextError(None, f"malformed JSON: not UTF-8 ({exc.reason})") from None
    except RecursionError:
        raise JSONTextError(None, "malformed JSON: nested too deeply") from None
    if refused:
        _raise_first_refusal(document)
    return document, plain


def _raise_first_refusal(document: Any) -> None:
    """Find, in document order, the value the parse marked, and name its path."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Refused):
            raise JSONTextError(_dotted(path), node.rule)
        if isinstance(node, _Repeated):
            raise JSONTextError(
                _dotted((*path, node.key)), "the key appears more than once in one object"
            )
        if isinstance(node, dict):
            children = [(value, (*path, key)) for key, value in node.items()]
        elif isinstance(node, list):
            children = [(value, (*path, str(index))) for index, value in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    raise AssertionError("a refusal was marked but not found")  # pragma: no cover


def _dotted(path: tuple[str, ...]) -> str | None:
    return ".".join(path) or None
