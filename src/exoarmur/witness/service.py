"""The witness process: add-checkpoint and the monitoring checkpoint, over plain HTTP.

``Witness`` ties the pure judgement (``protocol``), the durable record
(``state``) and the cosigning key together; it takes the clock as a
function so tests can fix the timestamp. ``WitnessServer`` is the standard
library's threading HTTP server around it: two routes, text bodies and the
protocol's status codes, nothing that needs an application framework::

    POST <prefix>/add-checkpoint
    GET  <prefix>/<hex SHA-256 of the origin>/checkpoint

Every request the witness refuses is written to its log (stderr) with the
sizes and roots involved, since a refused checkpoint signed by the log may be
the evidence of a fork.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO

from ..errors import CheckpointRefused, ExoArmurError
from ..ledger.keys import Verifier
from ..terminal import visible
from .cosignature import Cosigner
from .protocol import MAX_REQUEST_BYTES, admit, judge, parse_add_checkpoint
from .state import Cosigned, WitnessState

__all__ = ["Witness", "WitnessServer"]

_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")


class Witness:
    """A witness for a fixed set of logs: cosigns a checkpoint only if it extends the last one."""

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Mapping[str, Sequence[Verifier]],
        state: WitnessState,
        clock: Callable[[], int],
    ) -> None:
        self.cosigner = cosigner
        self.logs = {origin: tuple(keys) for origin, keys in logs.items()}
        self.state = state
        self._clock = clock
        self._by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in self.logs}

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line(s) for the checkpoint in ``body``, or :class:`CheckpointRefused`."""
        request = parse_add_checkpoint(body)
        checkpoint = admit(request, self.logs)

        def step(latest: Cosigned | None) -> Cosigned:
            judge(request, checkpoint, None if latest is None else latest.checkpoint)
            timestamp = self._clock()
            if timestamp <= 0:
                # The spec forbids a zero timestamp: it would make no statement of time.
                raise CheckpointRefused(500, "the witness clock reads no time")
            line = self.cosigner.cosign(checkpoint.body(), timestamp)
            return Cosigned(checkpoint, request.note + line)

        cosigned = self.state.advance(checkpoint.origin, step)
        return cosigned.note[len(request.note) :]

    def latest_note(self, origin_hash: str) -> str | None:
        """The latest cosigned checkpoint of the log whose origin hashes to ``origin_hash``."""
        origin = self._by_hash.get(origin_hash)
        if origin is None:
            return None
        latest = self.state.latest(origin)
        return None if latest is None else latest.note


class WitnessServer(ThreadingHTTPServer):
    """HTTP/1.1 with keep-alive, one thread per connection, around one :class:`Witness`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness, log: IO[str] = sys.stderr):
        self.witness = witness
        self.log = log
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-answer is routine; one line, not a traceback.
        error = sys.exc_info()[1]
        self.note(f"{client_address}: connection ended: {error!r}")

    def note(self, message: str) -> None:
        """One line in the witness's log. Request lines and origins come from strangers:
        shown literally, so no control sequence reaches the operator's terminal."""
        self.log.write(visible(message) + "\n")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: seconds a connection may stall (a slow or silent client holds one thread, not forever)
    timeout = 30
    server: WitnessServer
    server_version = "exoarmur-witness"
    sys_version = ""

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._answer(404, "no such endpoint\n")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(411, "Content-Length is required\n")
            return
        if int(length) > MAX_REQUEST_BYTES:
            self._answer(413, f"larger than {MAX_REQUEST_BYTES} bytes\n")
            self.close_connection = True
            return
        body = self.rfile.read(int(length))
        try:
            lines = self.server.witness.add_checkpoint(body)
        except CheckpointRefused as exc:
            self._refused(exc)
            return
        except ExoArmurError as exc:
            self.server.note(f"witness error: {exc}")
            self._answer(500, "the witness could not record the checkpoint\n")
            return
        self._answer(200, lines)

    def do_GET(self) -> None:
        parts = self.path.split("/")
        if len(parts) != 3 or parts[2] != "checkpoint" or not _ORIGIN_HASH.fullmatch(parts[1]):
            self._answer(404, "no such endpoint\n")
            return
        note = self.server.witness.latest_note(parts[1])
        if note is None:
            self._answer(404, "this witness has cosigned no checkpoint of that log\n")
            return
        self._answer(200, note)

    def _refused(self, exc: CheckpointRefused) -> None:
        self.server.note(f"witness refused ({exc.status}): {exc}")
        if exc.status == 409:
            self._answer(409, f"{exc.known_size}\n", "text/x.tlog.size")
        else:
            self._answer(exc.status, f"{exc}\n")

    def _answer(
        self, status: int, body: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        self.server.note(f"{self.address_string()} {format % args}")
