"""Advice from a memory snapshot: deterministic rules that only ever suggest tightening.

Pure: a snapshot in, recommendations out. A recommendation is a suggestion a
person may apply (``exoarmur memory apply``); nothing here or anywhere else
applies one on its own. Every rule suggests something stricter than what is
in force: a higher posture, a longer TTL. None can suggest approving,
allowing, or lowering a requirement, and a property test holds them to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..containment.model import MAX_TTL_SECONDS
from ..encoding import content_hash
from ..errors import InputError
from ..gate.controls import POSTURES
from .snapshot import MemorySnapshotV1

#: what a recommendation may suggest: a posture (raised only) or a control's TTL (widened only)
KINDS = ("posture", "ttl")
#: how long a suggested posture lasts before it returns to normal by itself (one day)
POSTURE_TTL_SECONDS = 24 * 3600
#: failures and blocks among executions that call for a heightened posture
FAILURE_COUNT = 3
#: ... when they are at least one in this many executions (a quarter)
FAILURE_SHARE = 4


@dataclass(frozen=True)
class Recommendation:
    """One suggestion, bound to the snapshot it was drawn from."""

    kind: str
    rule: str
    subject: str
    suggestion: dict[str, Any]
    reasons: tuple[str, ...]
    snapshot_hash: str
    position: int

    @property
    def recommendation_id(self) -> str:
        """Content-derived: the same snapshot gives the same ids in any home."""
        bound = {
            "kind": self.kind,
            "subject": self.subject,
            "suggestion": self.suggestion,
            "snapshot_hash": self.snapshot_hash,
        }
        return "rec_" + content_hash(bound)[7:31]

    @property
    def text(self) -> str:
        if self.kind == "posture":
            return f"suggest {self.suggestion['posture']} posture for tenant {self.subject}"
        return (
            f"suggest a wider TTL for {self.subject} "
            f"({self.suggestion['ttl_seconds']}s instead of {self.suggestion['from_ttl_seconds']}s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
            "kind": self.kind,
            "rule": self.rule,
            "subject": self.subject,
            "suggestion": self.suggestion,
            "reasons": list(self.reasons),
            "text": self.text,
            "snapshot_hash": self.snapshot_hash,
            "position": self.position,
        }


def recommend(snapshot: MemorySnapshotV1) -> list[Recommendation]:
    """Every recommendation the rules draw from ``snapshot``, in a stable order."""
    body = snapshot.body
    made = []
    reasons = _heighten_reasons(body)
    if reasons and body["posture"]["current"] == "normal":
        made.append(
            Recommendation(
                "posture",
                "heighten-after-incident",
                body["tenant"],
                {"posture": "heightened", "ttl_seconds": POSTURE_TTL_SECONDS},
                tuple(reasons),
                snapshot.memory_hash,
                snapshot.position,
            )
        )
    for name, effector in body["containment"]["effectors"].items():
        current = effector["max_ttl_seconds"]
        wider = min(2 * current, MAX_TTL_SECONDS)
        if effector["reapplied_after_expiry"] and wider > current:
            made.append(
                Recommendation(
                    "ttl",
                    "widen-ttl-when-reapplied",
                    name,
                    {"ttl_seconds": wider, "from_ttl_seconds": current},
                    (
                        f"{name} was applied again within its own TTL of expiring "
                        f"{effector['reapplied_after_expiry']} time(s)",
                    ),
                    snapshot.memory_hash,
                    snapshot.position,
                )
            )
    return made


def _heighten_reasons(body: dict[str, Any]) -> list[str]:
    containment, outcomes = body["containment"], body["outcomes"]
    reasons = []
    contained = containment["controls_applied"]
    if contained:
        reasons.append(f"{contained} containment control(s) applied; the posture is normal")
    if containment["plans_compensated"]:
        reasons.append(f"{containment['plans_compensated']} plan(s) failed and were compensated")
    troubled = outcomes["failed"] + outcomes["blocked"]
    ran = troubled + outcomes["succeeded"]
    if troubled >= FAILURE_COUNT and troubled * FAILURE_SHARE >= ran:
        reasons.append(f"{troubled} of {ran} executions failed or were blocked")
    return reasons


def raises(current_posture: str, suggested: str) -> bool:
    """True only if ``suggested`` is stricter than ``current_posture``."""
    return POSTURES.index(suggested) > POSTURES.index(current_posture)


def parse_recorded(payload: Any) -> dict[str, Any]:
    """A recorded ``memory.recommendation``'s recommendation, checked enough to act on.

    Whatever the log holds, only a posture with a TTL in range gets through:
    a record memory did not make is refused, never guessed at.
    """
    rec = payload.get("recommendation") if isinstance(payload, dict) else None
    if not isinstance(rec, dict) or rec.get("kind") not in KINDS:
        raise InputError("recommendation: the recorded recommendation is not one memory made")
    suggestion = rec.get("suggestion")
    if not isinstance(suggestion, dict):
        raise InputError("recommendation.suggestion: must be an object")
    if rec["kind"] == "posture":
        if suggestion.get("posture") not in POSTURES:
            raise InputError("recommendation.suggestion.posture: not a posture")
        ttl = suggestion.get("ttl_seconds")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_TTL_SECONDS:
            raise InputError(
                f"recommendation.suggestion.ttl_seconds: must be 1 to {MAX_TTL_SECONDS} seconds"
            )
    return rec
