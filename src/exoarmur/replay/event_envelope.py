"""Where ExoArmur-Core's README imports ``CanonicalEvent`` from; the class lives in ``engine``."""

from .engine import CanonicalEvent

__all__ = ["CanonicalEvent"]
