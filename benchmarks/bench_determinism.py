"""Determinism under load: the same scenario, C concurrent submitters, N fresh homes, one root.

Each run makes a fresh benchmark home and, before any submitter starts,
opens one deterministic governor per submitter on it, all over one shared
ledger: submitter 0's is ``open_governor(home, seed=SEED)``, submitter k's
has the clock and ids of seed ``SEED + k``. It creates the two operators
(sequentially: the system log is written in the same order every run). Then
C asyncio tasks start together; submitter k governs its scenario in its own
tenant ``t<k>`` through its own governor, one intent at a time on a pool of
at most ``MAX_THREADS`` threads: executed, decided and denied intents, and
intents that two operators approve (so they run). Every outcome is checked.
C logical submitters on a bounded pool is what lets C=500 hold on a
two-core machine (500 threads and 500 SQLite connections would not).

Why one governor per submitter, and a tenant each: positions in a log are
decided by the order of appends, and a deterministic governor's clock and id
generator hand out times and ids in the order they are asked. Were the C
submitters to share one governor (or one tenant), the thread interleaving
would decide which submitter got which time, id and position, and the bytes
would change from run to run. With a governor and a tenant each, every
tenant log is written by exactly one task (one intent at a time) from exactly
one seeded clock and id generator, in program order, while the C submitters still contend for
the same SQLite file, writer lock and fsyncs concurrently.

A run's root is SHA-256 over the sorted ``tenant size root`` lines of the C
tenant logs. The system log is left out on purpose: ``exoarmur init`` records
its configuration and policy with the wall clock and random ids (a home is
not made deterministically), and nothing in a tenant log refers to those ids.
PASS means every run gave the same root.

The runs are independent (a fresh home each, nothing shared), so they run in
as many worker processes as there are cores, each run whole inside one
process: within a run the C submitters still contend for one SQLite file
and one writer, and a second core would otherwise sit idle behind the GIL.
A run's home is deleted once its root is taken: a hundred homes of a few
megabytes each need not pile up in the temporary directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from exoarmur.approvals import Vote
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from history import OPERATORS, block, make_home

SEED = 20260101
#: pool threads at most, whatever the concurrency (each holds a SQLite reader connection);
#: measured on two cores: 8 threads keep the writer's batches full (about seven appends
#: a commit at C=500) with less time lost to GIL hand-offs than 16 or 32
MAX_THREADS = 8
EXPECTED = ("executed", "decided", "denied")


def _scenario(
    governor: Governor, tenant: str, intents: int, approvers: list[Any], offset: int = 0
) -> Iterator[int]:
    """Govern ``intents`` intents in ``tenant``, yielding after each.

    The intents are a stream of executed, decided and denied ones, every
    fourth of them approved by two operators instead; submitter k starts
    ``offset`` intents into it, so that C submitters with one intent each
    still cover every path. A generator, so that a pool thread runs one
    intent of one submitter at a time and the C submitters stay logically
    concurrent on a few threads.
    """
    for done, position in enumerate(range(offset, offset + intents), start=1):
        intent = block(position // 3)[position % 3] | {"tenant": tenant}
        if position % 4 == 3:
            outcome = governor.submit(
                intent | {"action": "bench.deploy", "safety_class": "A2", "target": "services/api"}
            )
            for approver in approvers:
                result = governor.vote(tenant, outcome.intent_id, approver, Vote.APPROVE, "ok")
            if result.outcome.status != OutcomeStatus.EXECUTED:
                raise RuntimeError(f"{tenant}: approved intent ended {result.outcome.status}")
        else:
            expected = EXPECTED[position % 3]
            outcome = governor.submit(intent)
            if outcome.status.value != expected:
                raise RuntimeError(f"{tenant}: {expected} intent ended {outcome.status.value}")
        yield done


def intents_per_submitter(size: int, concurrency: int) -> int:
    """``size`` intents each up to 4 submitters; beyond, the same work per run, one at least.

    A run of C=500 submitters with 40 intents each would take the better part
    of an hour on two cores; spreading 4 x size over them keeps a run short.
    """
    return max(1, min(size, size * 4 // concurrency))


def pool_size(concurrency: int) -> int:
    """Threads doing the submitters' work: enough to keep the writer busy, never C of them."""
    return max(1, min(concurrency, MAX_THREADS))


async def _submitters(
    governors: list[Governor], tenants: list[str], intents: int, approvers: list[Any]
) -> list[str]:
    """C submitter tasks in flight together, each one intent at a time on a bounded pool."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=pool_size(len(governors))) as pool:

        async def submitter(k: int) -> None:
            steps = _scenario(governors[k], tenants[k], intents, approvers, offset=k % 12)
            try:
                while await loop.run_in_executor(pool, next, steps, None) is not None:
                    pass
            except Exception as exc:  # reported below: a broken run has no root
                errors.append(f"submitter {k}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(submitter(k) for k in range(len(governors))))
    return errors


def one_run(workdir: Path, run: int, concurrency: int, intents: int) -> dict[str, Any]:
    from exoarmur.home import deterministic_parts, open_governor

    home = make_home(workdir / f"determinism-{run}")
    tenants = [f"t{k}" for k in range(concurrency)]
    first = open_governor(home.path, seed=SEED)
    # One ledger (one store, one writer lock) shared by C governors, each with its own
    # seeded clock and ids: C file handles would not hold at C=500 on a small machine.
    governors = [first]
    for k in range(1, concurrency):
        clock, ids = deterministic_parts(SEED + k)
        governors.append(
            Governor(
                ledger=first.ledger,
                executors=first.executors,
                clock=clock,
                ids=ids,
                approval_window=first.approval_window,
                gate=first.gate,
                randomness=ids.random_bytes,
            )
        )
    try:
        approvers = [first.add_principal(name, "operator", tenants)[0] for name in OPERATORS]
        errors = asyncio.run(_submitters(governors, tenants, intents, approvers))
        if errors:
            raise SystemExit(f"determinism run {run}: {errors[0]}")
        ledger = first.ledger
        lines = [f"{t} {ledger.size(t)} {ledger.root(t).hex()}" for t in sorted(tenants)]
    finally:
        first.close()  # closes the shared store once
        shutil.rmtree(home.path, ignore_errors=True)
    return {
        "run": run,
        "root": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "logs": lines,
    }


def workers_for(runs: int, cores: int | None = None) -> int:
    """Processes running whole runs side by side: one per core, never more than runs."""
    return max(1, min(runs, cores if cores is not None else (os.cpu_count() or 1)))


def _worker_path(folder: str) -> None:
    # A spawned worker imports this module by name: give it the benchmarks folder.
    if folder not in sys.path:
        sys.path.insert(0, folder)


def determinism_load(
    workdir: Path,
    runs: int,
    concurrency: int,
    intents: int,
    progress: Callable[[int], None],
    workers: int | None = None,
) -> dict[str, Any]:
    intents = intents_per_submitter(intents, concurrency)
    processes = workers_for(runs) if workers is None else workers_for(runs, workers)
    by_run: dict[int, dict[str, Any]] = {}
    if processes == 1:
        for run in range(runs):
            by_run[run] = one_run(workdir, run, concurrency, intents)
            progress(len(by_run))
    else:
        # spawn, not fork: the caller may hold threads (a progress bar's refresher)
        with ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_path,
            initargs=(str(Path(__file__).resolve().parent),),
        ) as pool:
            futures = [
                pool.submit(one_run, workdir, run, concurrency, intents) for run in range(runs)
            ]
            for future in as_completed(futures):
                result = future.result()
                by_run[result["run"]] = result
                progress(len(by_run))
    results = [by_run[run] for run in range(runs)]
    roots = sorted({r["root"] for r in results})
    return {
        "runs": runs,
        "concurrency": concurrency,
        "intents_per_submitter": intents,
        "processes": processes,
        "seed": SEED,
        "distinct_roots": len(roots),
        "roots": [r["root"] for r in results],
        "status": "PASS" if len(roots) == 1 else "FAIL",
    }
