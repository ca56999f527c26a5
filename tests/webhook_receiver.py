"""A real HTTP receiver on 127.0.0.1 for webhook tests: records each request, fails on cue."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str = ""


@dataclass
class Receiver:
    #: answer this many requests with 500 before answering 200
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    #: called (in the server's thread) before answering each request
    during: Any = None
    #: the body of each 200 answer
    answer: bytes = b""

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(Received(dict(self.headers.items()), body, self.path))
                if receiver.during is not None:
                    receiver.during()
                failing = len(receiver.requests) <= receiver.fail_first
                answer = b"" if failing else receiver.answer
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 30
        while True:  # ready when it accepts a connection
            try:
                with socket.create_connection(self.server.server_address[:2], timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
