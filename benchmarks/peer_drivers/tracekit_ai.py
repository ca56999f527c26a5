"""tracekit-ai 1.4 (Cygnux Labs' Tracekit): its signer deciding and recording tool calls.

Runs in its own virtual environment and prints one JSON document. Tracekit is
used as its README deploys it: a signer process (``tracekit signer serve
--config``) holds the keys and the log, and the agent reaches it through the
SDK (``tracekit.sdk.client.Client``) over a Unix socket. One governed call is
what the SDK's own example does: ``RunHandle.decide`` (the signer decides the
call against its policy and appends a signed ``policy.decision`` record), the
tool runs (an echo, as ours), then ``RunHandle.complete`` with the result (a
signed ``tool.result`` record). Both records are Ed25519-signed, hash-chained
(log and run), leaves of the log's RFC 6962 tree, and appended to a JSONL
file by the signer's single writer, which batches whatever is queued.

Measured in both of its durability modes, each with a fresh signer and data
directory on the filesystem the suite gives (``--dir``, where ExoArmur's
durable ledgers are):

- ``ack-on-fsync``: the signer answers once the batch holding the record is
  fsynced (``fdatasync``); equal durability to ours, the row that counts;
- ``ack-on-write`` (its default): the signer answers once the record is
  written to the file, and a background sync follows within 5 ms.

At C > 1 each submitter thread has its own client, run and connection: the
signer answers one connection's frames one at a time, so C threads sharing
one client would queue behind each other instead of letting the writer batch.
The policy is ours in its language: the tool is a file read, reads of
``db/prod`` are denied, anything else is allowed (checked once per signer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _timing import WARMUP, timed_concurrent

#: its two durability modes, by the short name the rows carry
MODES = {"fsync": "ack-on-fsync", "write": "ack-on-write"}
LEDGERS = {
    "fsync": "JSONL file, fdatasync before reply",
    "write": "JSONL file, synced ≤ 5 ms after reply",
}
TOOL = "bench_read"
TARGET = "reports/q3.txt"
FORBIDDEN = "db/prod"
DENY_RULE = "BENCH-NEVER-PROD-DB"
READY_TIMEOUT_S = 120.0
#: records a governed call must add to the log: its decision and its result
RECORDS_PER_CALL = 2

#: ours, in policy v2 (JSON is YAML): the tool is a file read; a read of the
#: production database is denied, every other read allowed; unknown tools denied
POLICY = {
    "description": "the ExoArmur benchmark's policy: never the production database",
    "unknown_tools": "deny",
    "tools": {TOOL: "fs"},
    "deny": [
        {
            "id": DENY_RULE,
            "class": "fs",
            "field": "path",
            "pattern": "^db/prod",
            "reason": "never the production database",
        }
    ],
}


def row_name(mode: str, concurrency: int) -> str:
    return f"{mode}_allow_c{concurrency}"


def signer_config(data_dir: Path, socket: Path, policy: Path, mode: str) -> dict[str, Any]:
    """The signer's configuration: no witnesses, anchors, metrics or background fsck,
    and rate limits out of the way (its default, 200 events/s, would be the measurement)."""
    return {
        "data_dir": str(data_dir),
        "socket": str(socket),
        "durability": MODES[mode],
        "policy": str(policy),
        "fsck_every_s": 0,
        "limits": {"events_per_s": 1e9, "burst": 1_000_000_000, "open_runs": 100_000},
    }


def records_per_call(lines_before: int, lines_after: int, calls: int) -> float:
    """Records the log gained per timed call; fewer than a decision and a result is a broken run."""
    gained = (lines_after - lines_before) / calls
    if gained < RECORDS_PER_CALL:
        raise SystemExit(
            f"the signer's log gained {lines_after - lines_before} records for {calls} calls: "
            f"fewer than the {RECORDS_PER_CALL} a decided and completed call writes"
        )
    return gained


def cpu_seconds(stat: str, ticks_per_s: float) -> float:
    """User + system CPU of a process from its ``/proc/PID/stat`` line (fields 14 and 15,
    counted after the parenthesised command name, which may hold spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_s


def _signer_cpu(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:  # not Linux: no figure rather than a guess
        return None
    return cpu_seconds(stat, os.sysconf("SC_CLK_TCK"))


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


class Signer:
    """One ``tracekit signer serve`` child process with a fresh data directory."""

    def __init__(self, where: Path, mode: str) -> None:
        self.where = where
        # a Unix socket path is short (108 bytes); the socket is not data, TMPDIR will do
        self.socket_dir = Path(tempfile.mkdtemp(prefix="tk-"))
        self.socket = self.socket_dir / "signer.sock"
        policy = where / "policy.json"
        policy.write_text(json.dumps(POLICY), encoding="utf-8")
        config = where / "signer.yaml"
        config.write_text(
            json.dumps(signer_config(where / "data", self.socket, policy, mode)), encoding="utf-8"
        )
        self.records = where / "data" / "store" / "records.jsonl"
        self.errors = (where / "signer.err").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracekit", "signer", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.errors,
            cwd=where,
        )

    def wait_ready(self) -> None:
        from tracekit.sdk.client import SignerUnavailable, connect

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the signer exited ({self.process.returncode}): {self._tail()}")
            if self.socket.exists():
                try:
                    sock, _, _ = connect(str(self.socket))
                except SignerUnavailable:
                    pass
                else:
                    sock.close()
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"the signer did not answer in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def _tail(self) -> str:
        self.errors.flush()
        text = (self.where / "signer.err").read_text(encoding="utf-8", errors="replace")
        return " | ".join(text.strip().splitlines()[-5:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def _governed(run: Any, prefix: str) -> Any:
    """One governed call on ``run``: decide, run the echo tool, complete with its result."""

    def one(i: int) -> Any:
        call = f"{prefix}-{i + 1_000_000_000}"
        args = {"path": TARGET, "bytes": 4096, "attempt": i}
        decided = run.decide(call, TOOL, args)
        if decided.get("decision") != "allow":
            return decided
        echoed = {"action": TOOL, "target": TARGET, "params": args}
        return run.complete(call, "ok", result=echoed)

    return one


def _completed(reply: Any) -> bool:
    return isinstance(reply, dict) and isinstance(reply.get("run_seq"), int)


def _check_deny(run: Any) -> None:
    denied = run.decide("deny-check", TOOL, {"path": FORBIDDEN, "bytes": 4096, "attempt": 0})
    if denied.get("decision") != "deny" or DENY_RULE not in denied.get("rule_ids", []):
        raise SystemExit(f"the policy did not deny {FORBIDDEN}: {denied}")


def measure_mode(where: Path, mode: str, n: int, levels: list[int]) -> dict[str, Any]:
    """Every concurrency level against one fresh signer in ``mode``; rows by name."""
    from tracekit.sdk.client import Client

    signer = Signer(where, mode)
    rows: dict[str, Any] = {}
    try:
        signer.wait_ready()
        warm = Client(signer=str(signer.socket))
        run = warm.run(agent="bench-warmup")
        _check_deny(run)
        one = _governed(run, "warmup")
        for i in range(min(WARMUP, n)):
            if not _completed(one(i)):
                raise SystemExit(f"{mode}: a warm-up call was not completed")
        run.close()
        warm.close()
        for c in levels:
            clients = [Client(signer=str(signer.socket)) for _ in range(c)]
            runs = [client.run(agent=f"bench-c{c}-{k}") for k, client in enumerate(clients)]
            callers = [_governed(r, f"c{c}") for r in runs]
            for k, caller in enumerate(callers):  # each connection's first calls, untimed
                caller(-1 - k)
            before = _lines(signer.records)
            signer_before, client_before = _signer_cpu(signer.process.pid), time.process_time()
            # C = 1 too: `timed` would warm up inside the count of records
            row = timed_concurrent(row_name(mode, c), n, callers, _completed)
            signer_after, client_after = _signer_cpu(signer.process.pid), time.process_time()
            after = _lines(signer.records)
            row["records_per_call"] = records_per_call(before, after, n)
            # CPU per call on each side of the socket (the signer's includes its fsync calls)
            row["client_cpu_ms"] = (client_after - client_before) / n * 1e3
            if signer_before is not None and signer_after is not None:
                row["signer_cpu_ms"] = (signer_after - signer_before) / n * 1e3
            row["ledger"] = LEDGERS[mode]
            row["durability"] = MODES[mode]
            rows[row_name(mode, c)] = row
            for r in runs:
                r.close()
            for client in clients:
                client.close()
    finally:
        signer.stop()
    return rows


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("--concurrency takes positive integers, e.g. 1,8,32")
    return levels


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=None, help="where the signers' data goes")
    parser.add_argument("--concurrency", type=_levels, default=[1, 8, 32])
    parser.add_argument("--modes", default="fsync,write")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--modes takes {', '.join(MODES)}, not {unknown[0]}")
    where = Path(tempfile.mkdtemp(prefix="tracekit-bench-", dir=args.dir))
    rows: dict[str, Any] = {}
    try:
        for mode in modes:
            (where / mode).mkdir()
            rows |= measure_mode(where / mode, mode, args.n, args.concurrency)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    report = {
        "peer": "tracekit-ai",
        "version": version("tracekit-ai"),
        "python": sys.version.split()[0],
        "transport": "Unix socket, one signer process, one client per submitter",
        "data_dir": str(args.dir or tempfile.gettempdir()),
        "rows": rows,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
