"""What the integration tests share: a policy over tool calls, a home, a governor, a tally.

Not a test module. Reads (A0) run, changes (A2) wait for one approval, and
anything irreversible (A3) is denied.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exoarmur.approvals import Vote
from exoarmur.home import Home, open_governor
from exoarmur.model.event import EXECUTION_OUTCOME_UNKNOWN
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle

TOOL_POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("changes") @approval("1")
permit (principal, action, resource) when { context.safety_class == "A2" };
"""


def tool_home(path: Path) -> Path:
    Home(path).init()
    with open_governor(path) as governor:
        governor.activate_policy(PolicyBundle.from_text(TOOL_POLICY))
        governor.add_principal("alice", "operator", ["acme"])
    return path


@contextmanager
def governor_at(home: Path) -> Iterator[Governor]:
    with open_governor(home) as governor:
        yield governor


def approve(governor: Governor, tenant: str, intent_id: str) -> None:
    alice = governor.principals().get("alice")
    assert alice is not None
    result = governor.vote(tenant, intent_id, alice, Vote.APPROVE, "looks right")
    assert result.accepted, result.message


def killed_mid_call(home: Path, program: str) -> list[str]:
    """Run ``program`` (which calls a governed tool that kills its own process) to its death;
    then open the home as the next process would: the ids recovery found ``outcome_unknown``."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from exoarmur.home import open_governor
        governor = open_governor(Path({str(home)!r}))
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        """
    ) + textwrap.dedent(program)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert process.returncode == -9, process.stderr
    with open_governor(home) as governor:
        store = governor.ledger.store
        return [
            str(e.intent_id)
            for e in store.events("acme", 0, store.size("acme"))
            if e.type == EXECUTION_OUTCOME_UNKNOWN
        ]
