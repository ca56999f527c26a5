"""Canonical bytes: the only place that makes bytes ExoArmur hashes or signs.

Every hashed or signed byte is RFC 8785 (JSON Canonicalization Scheme) JSON of
plain JSON values. Models never hash their own dump: they convert to plain
values (``model.to_canonical()`` style) and come here, so a change to a
model's serializer can never silently change a hash.

This module must never read the clock, the environment or a random source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785

from .errors import InputError

JSONValue = Any  # a JSON value: dict / list / str / int / float / bool / None


def canonical_bytes(value: JSONValue) -> bytes:
    """RFC 8785 canonical JSON of a plain JSON value.

    Raises :class:`InputError` for values JSON cannot carry exactly (NaN,
    infinities, integers beyond the interoperable range, non-string keys).
    """
    try:
        return rfc8785.dumps(value)
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
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any ISO 8601 with an offset)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"not an ISO 8601 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise InputError(f"timestamp must carry a timezone: {text!r}")
    return moment.astimezone(UTC)


def strip_none(value: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """Drop absent optional fields so that 'absent' has one canonical form."""
    return {k: v for k, v in value.items() if v is not None}
