"""ExoArmur: the governance layer between an agent and the systems it can change."""

__version__ = "0.1.0"
