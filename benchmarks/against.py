"""The source of another commit, for benchmarks that measure before and after in one run.

``--against REF`` extracts ``REF``'s ``src`` with ``git archive`` and runs the
old side in child processes with ``PYTHONPATH`` pointing at it, alternating
with this tree's, so that a busy machine slows both alike.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def source_at(reference: str, into: Path) -> Path:
    """``reference``'s ``src`` extracted under ``into``: the path to put on ``PYTHONPATH``."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("--against needs git on PATH")
    archive = subprocess.run(
        [git, "archive", reference, "src"], cwd=REPO, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def env_with(source: Path | None) -> dict[str, str]:
    """This process's environment, with ``source`` first on the path when given."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env
