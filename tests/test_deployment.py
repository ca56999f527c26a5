"""The deployment the docs show is the one that is tested.

``deploy/topology.toml`` describes it once. ``deploy/compose.yaml`` and the
Dockerfile are checked against it, service by service, and the same topology
is started here as processes on 127.0.0.1 (no container engine where the
tests run): one shared home made by the init command, two ``exoarmur serve``
instances on one PostgreSQL, then on a three-node JetStream cluster started
with the compose file's own nats-server arguments. Intents are governed over
HTTP through both instances, one instance is SIGKILLed, the other goes on,
and nothing acknowledged is lost or doubled.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends import _free_port, _nats_server_binary, local_postgres
from cluster import NatsCluster, Node
from exoarmur.home import Home, open_governor
from exoarmur.model.event import intent_key

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
TOPOLOGY: dict[str, Any] = tomllib.loads((DEPLOY / "topology.toml").read_text(encoding="utf-8"))
EXOARMUR = str(Path(sys.executable).parent / "exoarmur")
#: intents governed through the two instances; the kill lands after ``BEFORE``
INTENTS = 60
BEFORE = 20
PATIENCE = 180.0


def _routes(nodes: list[str], port: int) -> str:
    return ",".join(f"nats://{node}:{port}" for node in nodes)


def nats_command(node: str) -> list[str]:
    """The nats-server arguments of one node, as the topology gives them."""
    nats = TOPOLOGY["nats"]
    routes = _routes(nats["nodes"], nats["route_port"])
    return [part.format(node=node, routes=routes) for part in nats["command"]]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:2])


# -- the description and the files that say it to a container engine ---------------


def test_compose_says_what_the_topology_says() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services: dict[str, Any] = compose["services"]
    pg, nats, stores, exo = (TOPOLOGY[k] for k in ("postgres", "nats", "stores", "exoarmur"))
    assert set(services) == {pg["service"], *nats["nodes"], "init", *exo["instances"]}

    postgres = services[pg["service"]]
    assert postgres["image"] == pg["image"]
    assert postgres["environment"]["POSTGRES_USER"] == pg["user"]
    assert postgres["environment"]["POSTGRES_DB"] == pg["database"]
    assert stores["postgres"].startswith(f"postgresql://{pg['user']}:")
    assert stores["postgres"].endswith(f"@{pg['service']}:5432/{pg['database']}")

    for node in nats["nodes"]:
        assert services[node]["image"] == nats["image"]
        assert services[node]["command"] == nats_command(node)
        assert any(v.endswith(f":{nats['store_dir']}") for v in services[node]["volumes"])
    assert stores["jetstream"] == (
        "nats://"
        + ",".join(f"{node}:{nats['client_port']}" for node in nats["nodes"])
        + "?replicas=3"
    )
    assert len({tuple(services[n]["volumes"]) for n in nats["nodes"]}) == len(nats["nodes"])

    default_store = "${EXOARMUR_STORE:-" + stores["postgres"] + "}"
    init = services["init"]
    assert init["command"] == ["sh", "-c", exo["init"]]
    assert init["environment"] == {"EXOARMUR_STORE": default_store}
    assert set(init["depends_on"]) == {pg["service"], *nats["nodes"]}
    homes = set()
    for instance, published in zip(exo["instances"], exo["published"], strict=True):
        service = services[instance]
        assert service["command"] == exo["serve"]
        assert service["environment"] == {"EXOARMUR_STORE": default_store}
        assert service["ports"] == [f"127.0.0.1:{published}:{exo['port']}"]
        assert service["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
        assert service["build"] == init["build"]
        homes.add(tuple(service["volumes"]))
    assert homes == {(f"home:{exo['home']}",)}, "every instance on the one home volume"
    assert f"--port {exo['port']}" in " ".join(exo["serve"])
    # The header's JetStream command names the topology's JetStream store.
    assert f"EXOARMUR_STORE='{stores['jetstream']}'" in (DEPLOY / "compose.yaml").read_text()


def test_the_dockerfile_hides_no_failure_and_runs_the_topology_commands() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "|| true" not in text
    (cmd,) = (line for line in text.splitlines() if line.startswith("CMD "))
    exo = TOPOLOGY["exoarmur"]
    assert json.loads(cmd[4:]) == [
        "sh",
        "-c",
        f"{exo['init']} && exec {shlex.join(exo['serve'])}",
    ]
    assert f"ENV EXOARMUR_HOME={exo['home']}" in text
    assert f"EXPOSE {exo['port']}" in text


def test_the_tested_servers_are_the_pinned_versions_or_later() -> None:
    pinned_nats = _version(TOPOLOGY["nats"]["image"].split(":")[1])
    assert pinned_nats >= (2, 12), "the JetStream store needs nats-server 2.12 (atomic batches)"
    tested = subprocess.run(
        [_nats_server_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert _version(tested.split("v", 1)[1]) >= pinned_nats
    pinned_pg = _version(TOPOLOGY["postgres"]["image"].split(":")[1])
    with local_postgres() as server:
        row = server.execute("postgres", "SHOW server_version")
    assert _version(str(row)) >= pinned_pg


# -- the topology, as processes --------------------------------------------------------


def loopback(node: Node, nodes: list[Node]) -> list[str]:
    """The compose file's nats-server arguments, its host names mapped to loopback ports."""
    args = nats_command(node.name)
    for other in nodes:
        route = f"nats://{other.name}:{TOPOLOGY['nats']['route_port']}"
        args = [a.replace(route, f"nats://127.0.0.1:{other.route_port}") for a in args]
    args = [
        a.replace("nats://0.0.0.0:", "nats://127.0.0.1:").replace(
            f":{TOPOLOGY['nats']['route_port']}", f":{node.route_port}"
        )
        if a.startswith("nats://0.0.0.0")
        else str(node.root / "jetstream")
        if a == TOPOLOGY["nats"]["store_dir"]
        else a
        for a in args
    ]
    return [*args, "--addr", "127.0.0.1", "--port", str(node.port)]


class Instance:
    """One ``exoarmur serve`` of the topology, on a loopback port."""

    def __init__(self, name: str, home: Path, store: str, log: Path) -> None:
        self.name = name
        self.port = _free_port()
        serve = [
            # the topology's all-interfaces address becomes loopback here
            {"0.0.0.0": "127.0.0.1", str(TOPOLOGY["exoarmur"]["port"]): str(self.port)}.get(  # noqa: S104
                a, a
            )
            for a in TOPOLOGY["exoarmur"]["serve"]
        ]
        assert serve[0] == "exoarmur"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [EXOARMUR, *serve[1:]],
                env=environment(home, store),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.log = log
        deadline = time.monotonic() + PATIENCE
        while not self.ready():
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/ready", timeout=5) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def submit(self, token: str, key: str, n: int) -> dict[str, Any]:
        body = {
            "tenant": "acme",
            "action": "inventory.lookup" if n % 3 else "inventory.write",
            "target": f"item/{n}",
            "safety_class": "A0" if n % 3 else "A2",
            "idempotency_key": key,
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/intents",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - http://127.0.0.1
            outcome: dict[str, Any] = json.loads(answer.read())
            return outcome

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:  # pragma: no cover - only on a hang
                self.process.kill()
                self.process.wait(timeout=30)


def environment(home: Path, store: str) -> dict[str, str]:
    return {**os.environ, "EXOARMUR_HOME": str(home), "EXOARMUR_STORE": store, "NO_COLOR": "1"}


def set_up(home: Path, store: str) -> str:
    """The topology's init command, then an agent's API key (the last line printed)."""
    init = subprocess.run(
        ["sh", "-c", TOPOLOGY["exoarmur"]["init"]],  # noqa: S607 - as the image runs it
        env={**environment(home, store), "PATH": f"{Path(EXOARMUR).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    added = subprocess.run(
        [EXOARMUR, "principal", "add", "agent-1", "--role", "agent", "--tenant", "acme"],
        env=environment(home, store),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    return added.stdout.strip().splitlines()[-1]


def govern_through_both(tmp_path: Path, store: str) -> str:
    home = tmp_path / "home"
    token = set_up(home, store)
    instances = [
        Instance(name, home, store, tmp_path / f"{name}.log")
        for name in TOPOLOGY["exoarmur"]["instances"]
    ]
    acked: dict[str, tuple[str, str, str]] = {}  # key -> intent id, status, instance
    failed_over: list[str] = []
    errors: list[BaseException] = []

    def client() -> None:
        # A client that knows both instances: a refused or cut connection sends the
        # same intent, with the same idempotency key, to the other one.
        try:
            for n in range(INTENTS):
                key = f"k-{n}"
                order = instances[n % 2 :] + instances[: n % 2]
                for attempt, instance in enumerate(order * 3):
                    try:
                        outcome = instance.submit(token, key, n)
                    except (OSError, urllib.error.URLError) as exc:
                        failed_over.append(f"{key} at {instance.name}: {exc}")
                        if attempt == 5:
                            raise
                        continue
                    acked[key] = (outcome["intent_id"], outcome["status"], instance.name)
                    break
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    try:
        thread = threading.Thread(target=client)
        thread.start()
        deadline = time.monotonic() + PATIENCE
        while len(acked) < BEFORE and thread.is_alive():
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        victim, survivor = instances[1], instances[0]
        victim.process.kill()  # SIGKILL, mid-stream
        victim.process.wait(timeout=30)
        killed_at = len(acked)
        thread.join(timeout=PATIENCE)
        assert not thread.is_alive(), "the client hung"
        assert not errors, errors
        assert len(acked) == INTENTS
        after = [k for k in list(acked)[killed_at:] if acked[k][2] == survivor.name]
        assert after, "the surviving instance governed nothing after the kill"
        assert survivor.ready()
    finally:
        for instance in instances:
            instance.stop()
    assert instances[0].process.returncode == 0, instances[0].log.read_text()[-3000:]

    with open_governor(Home(home, store), recover=True, record_run=False) as governor:
        ledger_store = governor.ledger.store
        events = list(ledger_store.events("acme"))
        assert [e.seq for e in events] == list(range(len(events)))
        per_intent = Counter((e.intent_id, e.type) for e in events if e.intent_id)
        recorded = {i for i, t in per_intent if t == "intent.recorded"}
        assert len(recorded) == INTENTS, "an intent lost or recorded twice"
        for key, (intent_id, status, _) in acked.items():
            assert ledger_store.intent_for_key("acme", intent_key("agent-1", key)) == intent_id
            assert per_intent[(intent_id, "intent.recorded")] == 1
            assert per_intent[(intent_id, "decision.recorded")] == 1
            assert governor.outcome("acme", intent_id).status.value == status
    replayed = subprocess.run(
        [EXOARMUR, "checkpoint", "--tenant", "acme"],
        env=environment(home, store),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    replayed = subprocess.run(
        [EXOARMUR, "replay", "verify", "--tenant", "acme"],
        env=environment(home, store),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    by = Counter(instance for _, _, instance in acked.values())
    return (
        f"{INTENTS} acknowledged ({dict(by)}), {len(failed_over)} sent again to the other "
        f"instance, lost 0, doubled 0"
    )


@pytest.fixture
def jetstream_cluster() -> Iterator[NatsCluster]:
    made = NatsCluster(tuple(TOPOLOGY["nats"]["nodes"]), command=loopback)
    try:
        made.start_all()
        yield made
    finally:
        made.remove()


@pytest.mark.slow
def test_two_instances_on_one_postgresql_one_killed(tmp_path: Path) -> None:
    with local_postgres() as server:
        database = server.create_database()
        print(f"\nPostgreSQL: {govern_through_both(tmp_path, server.dsn(database))}")


@pytest.mark.slow
def test_two_instances_on_the_jetstream_cluster_one_killed(
    tmp_path: Path, jetstream_cluster: NatsCluster
) -> None:
    nats = TOPOLOGY["nats"]
    store = TOPOLOGY["stores"]["jetstream"]
    for node in jetstream_cluster.nodes:
        store = store.replace(f"{node.name}:{nats['client_port']}", f"127.0.0.1:{node.port}")
    assert "nats-" not in store
    print(f"\nJetStream cluster: {govern_through_both(tmp_path, store)}")
