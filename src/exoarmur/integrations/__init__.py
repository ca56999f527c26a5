"""Faces that put ExoArmur in front of an agent's own tool calls.

``mcp`` governs the ``tools/call`` of any MCP client (a proxy in front of the
real server); ``claude_code`` answers Claude Code's ``PreToolUse`` hooks.
Each one turns a tool call into an intent and goes through the Governor's
public API, so the guarantees (write-before-execute, approvals bound to the
exact call, the ledger, replay) are the Governor's, never re-implemented here.
"""
