"""Policy: Cedar bundles and the engine that decides intents under them."""

from .bundle import PolicyBundle
from .engine import PolicyEngine

__all__ = ["PolicyBundle", "PolicyEngine"]
