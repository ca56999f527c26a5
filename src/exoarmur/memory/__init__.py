"""Defensive memory: what a tenant's log says about its past, and advice drawn from it.

:mod:`.snapshot` folds a tenant's log into a MemorySnapshotV1 (outcome rates,
reversals and compensation, approval latency, posture drift, detector
precision) with a stable ``memory_hash``; :mod:`.advice` draws
recommendations from a snapshot by fixed rules. Both are pure. :mod:`.room`
reads the ledger and records advice. Memory never approves, allows or lowers
anything: a recommendation changes nothing until a person applies it with
``exoarmur memory apply``, through the governed posture path.
"""

from .advice import Recommendation, recommend
from .snapshot import SNAPSHOT_FORMAT, MemoryFold, MemorySnapshotV1, fold

__all__ = [
    "SNAPSHOT_FORMAT",
    "MemoryFold",
    "MemorySnapshotV1",
    "Recommendation",
    "fold",
    "recommend",
]
