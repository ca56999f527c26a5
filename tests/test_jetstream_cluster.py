"""A three-node JetStream cluster that loses a node under load, for real.

Two ExoArmur processes (one home each, the same signing key, the same
``replicas=3`` stream) govern a stream of intents, each for a tenant of its
own, while a node is SIGKILLed and restarted: the stream's leader, a follower,
or all three at once. Afterwards every acknowledged intent is in the ledger
exactly once with its acknowledged outcome, nothing is doubled, the Merkle
root read through each node alone is the same, and ``exoarmur replay verify``
passes. How long writes paused is measured and printed, never asserted: on a
loaded two-core machine an election takes what it takes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from children import whole_lines
from cluster import NatsCluster
from exoarmur.errors import StoreUnavailable
from exoarmur.home import Home, open_governor
from exoarmur.ledger.jetstream import JetStreamStore
from exoarmur.ledger.log import Ledger
from exoarmur.model.event import intent_key

pytestmark = pytest.mark.slow

#: intents each of the two processes governs; the fault lands once both passed ``BEFORE``
INTENTS = 40
BEFORE = 10
#: generous bounds: on a loaded two-core machine everything is slower, never wrong
PATIENCE = 180.0

SUBMITTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from exoarmur.errors import ExoArmurError
    from exoarmur.home import Home, open_governor

    home, url, tenant, count, patience = sys.argv[1:6]
    deadline = time.monotonic() + float(patience)

    def patiently(work, what):
        # A node down, an election under way: the store fails fast and says so;
        # the same work is tried again, with the same idempotency key.
        while True:
            try:
                return work()
            except ExoArmurError as exc:
                why = str(exc)[:160]
                print("RETRY", what, type(exc).__name__, why, file=sys.stderr, flush=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    governor = patiently(lambda: open_governor(Home(Path(home), url), recover=False), "open")
    for n in range(int(count)):
        key = f"{tenant}-{n}"
        intent = {
            "tenant": tenant,
            "actor": {"id": "agent-1", "kind": "agent"},
            "action": "inventory.lookup" if n % 3 else "inventory.write",
            "target": f"item/{n}",
            "safety_class": "A0" if n % 3 else "A2",
            "idempotency_key": key,
        }
        outcome = patiently(lambda: governor.submit(intent), key)
        print("ACK", key, outcome.intent_id, outcome.status.value, f"{time.time():.6f}", flush=True)
    governor.close()
    print("DONE", flush=True)
    """
)


@dataclass
class Writer:
    """One ExoArmur process and what it acknowledged: key -> (intent id, status, wall time)."""

    tenant: str
    process: subprocess.Popen[str]
    errors: Path
    acked: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    done: bool = False
    reader: threading.Thread | None = None

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in whole_lines(self.process.stdout):
            words = line.split()
            if words[:1] == ["DONE"]:
                self.done = True
            elif words[:1] == ["ACK"] and len(words) == 5:
                self.acked[words[1]] = (words[2], words[3], float(words[4]))


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    made = NatsCluster()
    try:
        made.start_all()
        yield made
    finally:
        made.remove()


def exoarmur(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "exoarmur"), "--home", str(home), "--store", url, *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


@pytest.fixture
def homes(cluster: NatsCluster, tmp_path: Path, request: pytest.FixtureRequest) -> list[Path]:
    """Two homes with one signing key and config, on a fresh ``replicas=3`` stream."""
    stream = f"C{os.getpid()}_{request.node.name.removeprefix('test_')[:40]}".replace("-", "_")
    stream = "".join(c for c in stream if c.isalnum() or c == "_")[:60]
    first = tmp_path / "home-1"
    made = exoarmur(first, cluster.url(stream), "init")
    assert made.returncode == 0, made.stdout + made.stderr
    second = tmp_path / "home-2"
    shutil.copytree(first, second)
    (second / "anchors.json").unlink(missing_ok=True)  # each home anchors what it signs
    request.node.stream = stream
    return [first, second]


def writers(cluster: NatsCluster, stream: str, homes: list[Path]) -> list[Writer]:
    made = []
    for n, home in enumerate(homes):
        tenant = f"tenant-{n + 1}"
        errors = home.parent / f"{tenant}.stderr"
        with errors.open("w") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SUBMITTER,
                    str(home),
                    cluster.url(stream),
                    tenant,
                    str(INTENTS),
                    str(PATIENCE),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        writer = Writer(tenant, process, errors)
        writer.reader = threading.Thread(target=writer.read, daemon=True)
        writer.reader.start()
        made.append(writer)
    return made


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {PATIENCE}s waiting for {what}")
        time.sleep(0.02)


def finish(running: list[Writer]) -> str:
    """Wait for both processes to govern all their intents; their retries, for the report."""
    retries = []
    try:
        for writer in running:
            writer.process.wait(timeout=PATIENCE)
    finally:
        for writer in running:
            if writer.process.poll() is None:  # only on a hang
                writer.process.kill()
                writer.process.wait(timeout=30)
    for writer in running:
        assert writer.reader is not None
        writer.reader.join(timeout=30)
        assert writer.process.stdout is not None
        writer.process.stdout.close()
        err = writer.errors.read_text()
        assert writer.process.returncode == 0, err[-3000:]
        assert writer.done, err[-3000:]
        assert len(writer.acked) == INTENTS, (len(writer.acked), err[-3000:])
        retries += [line for line in err.splitlines() if line.startswith("RETRY")]
    return f"{len(retries)} retried calls" + (f" (first: {retries[0]})" if retries else "")


def gap_after(running: list[Writer], fault_at: float) -> tuple[float, float]:
    """The longest pause between two acknowledgements once the fault landed, and before it.

    (Calls in flight at the kill may still be acknowledged at once: the pause
    that the election causes shows as the longest one after the fault.)
    """
    times = sorted(t for writer in running for _, _, t in writer.acked.values())
    pauses = list(itertools.pairwise(times))
    after = max((b - a for a, b in pauses if b > fault_at), default=float("nan"))
    before = max((b - a for a, b in pauses if b <= fault_at), default=float("nan"))
    return after, before


def _stored_state(
    cluster: NatsCluster, stream: str, homes: list[Path], running: list[Writer], key: Any
) -> dict[str, str]:
    """What the writers acknowledged is stored once each; the roots per tenant."""
    with open_governor(Home(homes[0], cluster.url(stream)), recover=False) as governor:
        store = governor.ledger.store
        for writer in running:
            events = list(store.events(writer.tenant))
            assert [e.seq for e in events] == list(range(len(events)))
            per_intent = Counter((e.intent_id, e.type) for e in events if e.intent_id)
            recorded = {i for i, t in per_intent if t == "intent.recorded"}
            assert len(recorded) == INTENTS, "an intent lost or recorded twice"
            for intent_id in recorded:
                assert per_intent[(intent_id, "intent.recorded")] == 1
                assert per_intent[(intent_id, "decision.recorded")] == 1
            for name, (intent_id, status, _) in writer.acked.items():
                assert store.intent_for_key(writer.tenant, intent_key("agent-1", name)) == (
                    intent_id
                ), name
                assert intent_id in recorded
                assert governor.outcome(writer.tenant, intent_id).status.value == status, name
        ledger = Ledger(store, key)
        expected = {w.tenant: ledger.root(w.tenant).hex() for w in running}
    return expected


def check_ledger(
    cluster: NatsCluster, stream: str, homes: list[Path], running: list[Writer]
) -> str:
    """Nothing acknowledged lost or doubled; one root through every node; replay verifies."""
    key = Home(homes[0]).signing_key()
    roots: dict[str, dict[str, str]] = {}
    # A cluster that just took a node back can answer "temporarily unavailable" for a
    # while on a loaded machine: the reads are asked again until it serves them.
    for attempt in range(120):
        try:
            expected = _stored_state(cluster, stream, homes, running, key)
            break
        except StoreUnavailable:
            if attempt == 119:
                raise
            time.sleep(1)

    def same_everywhere() -> bool:
        for node in cluster.nodes:
            try:
                with JetStreamStore(cluster.node_url(node.name, stream)) as alone:
                    ledger = Ledger(alone, key)
                    roots[node.name] = {w.tenant: ledger.root(w.tenant).hex() for w in running}
            except StoreUnavailable:
                return False  # that node is still catching up: ask again
        return all(found == expected for found in roots.values())

    wait_until(same_everywhere, "every node to serve the same Merkle roots")  # a node catching up
    for writer in running:
        signed = exoarmur(homes[0], cluster.url(stream), "checkpoint", "--tenant", writer.tenant)
        assert signed.returncode == 0, signed.stdout + signed.stderr
        replayed = exoarmur(
            homes[0], cluster.url(stream), "replay", "verify", "--tenant", writer.tenant
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "REPLAY_VERIFIED=true" in replayed.stdout
    return ", ".join(f"{t} root {r[:16]}" for t, r in expected.items())


def started(cluster: NatsCluster, stream: str, homes: list[Path]) -> list[Writer]:
    running = writers(cluster, stream, homes)
    wait_until(
        lambda: all(len(w.acked) >= BEFORE or w.process.poll() is not None for w in running),
        f"{BEFORE} acknowledged intents from each process",
    )
    for writer in running:
        if writer.process.poll() is not None:
            finish(running)
    return running


def test_the_stream_leader_is_killed_mid_load(
    cluster: NatsCluster, homes: list[Path], request: pytest.FixtureRequest
) -> None:
    stream = request.node.stream
    running = started(cluster, stream, homes)
    leader = cluster.leader(stream)
    fault_at = time.time()
    cluster.kill(leader)
    new_leader = cluster.leader(stream, other_than=leader)  # elected among the two left
    cluster.start(leader)
    retries = finish(running)
    first, longest = gap_after(running, fault_at)
    roots = check_ledger(cluster, stream, homes, running)
    print(
        f"\nleader {leader} SIGKILLed, {new_leader} elected: longest pause between "
        f"acknowledgements {first:.2f}s after the kill ({longest:.2f}s before it); {retries}; "
        f"acknowledged {sum(len(w.acked) for w in running)}, lost 0, doubled 0; {roots}"
    )


def test_a_follower_is_killed_mid_load(
    cluster: NatsCluster, homes: list[Path], request: pytest.FixtureRequest
) -> None:
    stream = request.node.stream
    running = started(cluster, stream, homes)
    leader = cluster.leader(stream)
    follower = next(node.name for node in cluster.nodes if node.name != leader)
    fault_at = time.time()
    cluster.kill(follower)
    wait_until(
        lambda: (
            all(any(t > fault_at for _, _, t in w.acked.values()) for w in running)
            or any(w.process.poll() is not None for w in running)
        ),
        "acknowledgements with a follower down",
    )
    cluster.start(follower)
    retries = finish(running)
    first, longest = gap_after(running, fault_at)
    roots = check_ledger(cluster, stream, homes, running)
    print(
        f"\nfollower {follower} SIGKILLed (leader {leader}): longest pause between "
        f"acknowledgements {first:.2f}s after the kill ({longest:.2f}s before it); {retries}; "
        f"acknowledged {sum(len(w.acked) for w in running)}, lost 0, doubled 0; {roots}"
    )


def test_the_whole_cluster_is_killed_and_restarted_mid_load(
    cluster: NatsCluster, homes: list[Path], request: pytest.FixtureRequest
) -> None:
    stream = request.node.stream
    running = started(cluster, stream, homes)
    fault_at = time.time()
    for node in cluster.nodes:
        cluster.kill(node.name)
    cluster.start_all()
    leader = cluster.leader(stream)
    retries = finish(running)
    first, longest = gap_after(running, fault_at)
    roots = check_ledger(cluster, stream, homes, running)
    print(
        f"\nall three nodes SIGKILLed and restarted, {leader} leads: longest pause between "
        f"acknowledgements {first:.2f}s after the kill ({longest:.2f}s before it); {retries}; "
        f"acknowledged {sum(len(w.acked) for w in running)}, lost 0, doubled 0; {roots}"
    )
