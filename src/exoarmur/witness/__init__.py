"""Witnesses: cosigning a log's checkpoints so it cannot roll back or fork unseen.

c2sp.org/tlog-witness and c2sp.org/tlog-cosignature. A witness keeps, per log
it follows, the latest checkpoint it cosigned, and cosigns a new one only
with a consistency proof from there. A reader that requires K witness
cosignatures on a checkpoint knows that K independent parties saw this exact
tree and no smaller or conflicting one after it.

    cosignature   the ``cosignature/v1`` format: sign and verify (pure)
    protocol      the add-checkpoint request and its judgement (pure)
    state         the witness's durable record (SQLite)
    service       the witness over HTTP
    client        a log collecting cosignatures from K of N witnesses

This package never imports the pipeline, the server or the CLI.
"""

from .client import Cosigned, Refusal, collect_cosignatures
from .cosignature import Cosignature, CosignatureVerifier, Cosigner, verify_cosignatures

__all__ = [
    "Cosignature",
    "CosignatureVerifier",
    "Cosigned",
    "Cosigner",
    "Refusal",
    "collect_cosignatures",
    "verify_cosignatures",
]
