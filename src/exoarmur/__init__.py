"""ExoArmur: the governance layer between an agent and the systems it can change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .replay.engine import CanonicalEvent, ReplayEngine

__all__ = ["CanonicalEvent", "ReplayEngine", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import exoarmur` (every CLI start) must not load the ledger and policy engine.
    if name in ("CanonicalEvent", "ReplayEngine"):
        from .replay import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'exoarmur' has no attribute {name!r}")
