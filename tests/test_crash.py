"""Kill -9 in the middle of work: every acknowledged event survives, nothing is half-written,
and an execution cut short is reported as outcome_unknown, never run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from exoarmur.home import Home, open_governor
from exoarmur.model.decision import OutcomeStatus

pytestmark = pytest.mark.slow

SUBMITTER = textwrap.dedent(
    """
    import sys
    from exoarmur.home import open_governor

    home = sys.argv[1]
    with open_governor(home) as governor:
        n = 0
        while True:
            klass = "A0" if n % 3 else "A2"
            outcome = governor.submit({
                "tenant": "acme",
                "actor": {"id": "agent-1", "kind": "agent"},
                "action": "demo.write" if n % 2 else "inventory.lookup",
                "target": f"item/{n}",
                "safety_class": klass,
                "idempotency_key": f"k-{n}",
            })
            print("ACK", outcome.intent_id, outcome.status.value, flush=True)
            n += 1
    """
)

SELF_KILLING_EXECUTION = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from exoarmur.home import open_governor

    home, marker = sys.argv[1], Path(sys.argv[2])

    def effect(intent):
        marker.write_text(marker.read_text() + "ran\\n" if marker.exists() else "ran\\n")
        os.kill(os.getpid(), signal.SIGKILL)

    with open_governor(home) as governor:
        governor.run({
            "tenant": "acme",
            "actor": {"id": "agent-1", "kind": "agent"},
            "action": "fs.read",
            "target": "secret.txt",
            "safety_class": "A0",
            "idempotency_key": "the-one",
        }, effect)
    """
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    Home(tmp_path / "home").init()
    return tmp_path / "home"


def test_sigkill_mid_stream_loses_no_acknowledged_event(home: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, str(home)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, str] = {}
    assert child.stdout is not None
    for line in child.stdout:
        _, intent_id, status = line.split()
        acked[intent_id] = status
        if len(acked) == 300:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with open_governor(home) as governor:
        store = governor.ledger.store
        for intent_id, status in acked.items():
            assert governor.outcome("acme", intent_id).status.value == status
        per_intent = Counter(
            (e.intent_id, e.type) for e in store.events("acme") if e.intent_id is not None
        )
        intents = {intent_id for intent_id, _ in per_intent}
        assert len(intents) >= len(acked)
        for intent_id in intents:
            # intent and decision are one atomic append: never one without the other
            assert per_intent[(intent_id, "intent.recorded")] == 1
            assert per_intent[(intent_id, "decision.recorded")] == 1
            assert per_intent[(intent_id, "execution.finished")] <= 1
        assert store.unfinished_executions("acme") == []
        governor.ledger.checkpoint("acme")
        verification = governor.ledger.verify("acme")
        assert verification.ok, verification.problems


def test_an_execution_cut_short_is_outcome_unknown_and_never_rerun(
    home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "side-effects.txt"
    child = subprocess.run(
        [sys.executable, "-c", SELF_KILLING_EXECUTION, str(home), str(marker)],
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    assert marker.read_text() == "ran\n"

    with open_governor(home) as governor:  # recovery runs on open
        events = list(governor.ledger.store.events("acme"))
        assert [e.type for e in events] == [
            "intent.recorded",
            "decision.recorded",
            "execution.started",
            "execution.outcome_unknown",
        ]
        intent_id = events[0].intent_id
        assert intent_id is not None
        assert governor.outcome("acme", intent_id).status == OutcomeStatus.OUTCOME_UNKNOWN
        # the same intent delivered again is a duplicate: it does not run again
        again = governor.run(
            events[0].payload["intent"],
            lambda _: pytest.fail("an intent with an unknown outcome ran again"),
        )
        assert again.duplicate
        assert again.status == OutcomeStatus.OUTCOME_UNKNOWN
    assert marker.read_text() == "ran\n"


def test_a_second_governor_does_not_recover_a_live_ones_execution(home: Path) -> None:
    seen_unfinished: list[str] = []

    def slow_effect(intent: object) -> dict[str, str]:
        # While this side effect is in flight, a second governor opens on the same home.
        # It must not take the in-flight execution for an abandoned one.
        with open_governor(home) as second:
            seen_unfinished.extend(second.ledger.store.unfinished_executions("acme"))
        return {"done": "yes"}

    with open_governor(home) as first:
        outcome = first.run(
            {
                "tenant": "acme",
                "actor": {"id": "agent-1", "kind": "agent"},
                "action": "fs.read",
                "target": "x",
                "safety_class": "A0",
            },
            slow_effect,
        )
        types = [e.type for e in first.ledger.store.events("acme")]
    assert seen_unfinished == [outcome.intent_id]
    assert outcome.status == OutcomeStatus.EXECUTED
    assert "execution.outcome_unknown" not in types
