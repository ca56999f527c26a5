"""How a webhook body is signed, and how a receiver checks it.

Each delivery carries::

    ExoArmur-Delivery:  dlv_<hex>          the same on every retry: dedupe on it
    ExoArmur-Event:     approval.requested the ledger event type delivered
    ExoArmur-Timestamp: 1796000000         unix seconds when this attempt was signed
    ExoArmur-Signature: v1=<hex>           HMAC-SHA256(secret, "<timestamp>." + raw body)

The signed string binds the timestamp, so a captured request cannot be
replayed later with a fresh timestamp; a receiver refuses timestamps further
than its tolerance from its own clock. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from ...errors import AuthenticationError

DELIVERY_HEADER: Final = "ExoArmur-Delivery"
EVENT_HEADER: Final = "ExoArmur-Event"
TIMESTAMP_HEADER: Final = "ExoArmur-Timestamp"
SIGNATURE_HEADER: Final = "ExoArmur-Signature"
#: the scheme tag in the signature header: a future scheme gets a new tag, never a new meaning
SCHEME: Final = "v1"
#: how far a receiver lets a delivery's timestamp be from its own clock (seconds)
DEFAULT_TOLERANCE_SECONDS: Final = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``ExoArmur-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    raise AuthenticationError(f"{name}: header missing")


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """The delivery id of a correctly signed, fresh delivery; AuthenticationError if not.

    ``body`` must be the raw bytes received, before any JSON parsing.
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise AuthenticationError(f"{TIMESTAMP_HEADER}: must be unix seconds, got {stamp!r}")
    timestamp = int(stamp)
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise AuthenticationError(
            f"{TIMESTAMP_HEADER}: {timestamp} is more than {tolerance_seconds} s from now"
        )
    presented = _header(headers, SIGNATURE_HEADER)
    if not hmac.compare_digest(presented.encode(), sign(secret, timestamp, body).encode()):
        raise AuthenticationError(f"{SIGNATURE_HEADER}: does not match the body and timestamp")
    return _header(headers, DELIVERY_HEADER)
