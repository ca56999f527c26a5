"""The MCP proxy: every ``tools/call`` between an MCP client and a real server is an intent.

Built on the official ``mcp`` SDK (``pip install 'exoarmur[mcp]'``), both sides:
a low-level ``Server`` faces the client, a ``ClientSession`` the upstream.
"""

from .mapping import ProxySettings, ToolRule, load_settings
from .proxy import GovernedTools

__all__ = ["GovernedTools", "ProxySettings", "ToolRule", "load_settings"]
