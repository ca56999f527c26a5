"""The replay quickstart, as ExoArmur-Core's README writes it: one hand-built event, replayed.

    python examples/quickstart_replay.py

This in-memory form proves the events are consistent (each payload hashes to
its payload_hash, in order). Replaying a real home proves more:
``ReplayEngine(".exoarmur").replay_correlation(correlation_id)`` also checks
signatures, inclusion in the Merkle log and re-derives every decision.
"""

import hashlib
import json

from exoarmur import ReplayEngine
from exoarmur.replay.event_envelope import CanonicalEvent

payload = {"kind": "inline", "ref": {"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}
event = CanonicalEvent(
    event_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
    event_type="belief_creation_started",
    actor="demo",
    correlation_id="corr-1",
    payload=payload,
    payload_hash=hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest(),
)
engine = ReplayEngine(audit_store={"corr-1": [event]})
report = engine.replay_correlation("corr-1")
print("Replay result:", getattr(report.result, "value", report.result))
print("Failures:", report.failures or "none")
