"""Webhooks: a durable outbox over the ledger, signed bodies, at-least-once delivery."""

from .outbox import DeliveryFailed, HttpTransport, Outbox, OutboxLoop, Transport, delivery_id
from .signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from .subscriptions import DELIVERABLE, Webhook, load, save

__all__ = [
    "DELIVERABLE",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryFailed",
    "HttpTransport",
    "Outbox",
    "OutboxLoop",
    "Transport",
    "Webhook",
    "delivery_id",
    "load",
    "save",
    "sign",
    "verify",
]
