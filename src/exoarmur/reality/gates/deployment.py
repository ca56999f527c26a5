"""deployment: the installed package, its entry points and console script are what runs."""

from __future__ import annotations

import platform
import shutil
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ... import __version__
from ..report import Gate
from ..state import Run, why


def observe_deployment() -> dict[str, Any]:
    """The installed package, its entry points, and the console script actually running."""
    found: dict[str, Any] = {"exoarmur_module": __version__}
    found["distribution"] = metadata.version("exoarmur")
    scripts = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "exoarmur"]
    found["entry_point"] = scripts[0].value if scripts else None
    found["entry_point_resolves"] = bool(scripts) and callable(scripts[0].load())
    executors = metadata.entry_points(group="exoarmur.executors")
    found["executor_plugins"] = {ep.name: callable(ep.load()) for ep in executors}
    script = shutil.which("exoarmur", path=str(Path(sys.executable).parent)) or shutil.which(
        "exoarmur"
    )
    found["script"] = script
    if script is not None:
        answer = subprocess.run(
            [script, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        found["script_version"] = answer.stdout.strip()
        found["script_returncode"] = answer.returncode
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in ("cedarpy", "cryptography", "pydantic", "typer", "rich", "rfc8785", "orjson"):
        versions[name] = metadata.version(name)
    found["versions"] = versions
    found["platform"] = platform.platform()
    # the exoarmur package directory (this module sits two levels below it)
    found["module_path"] = str(Path(__file__).resolve().parents[2])
    return found


def judge_deployment(run: Run) -> Gate:
    found = run.deployment
    if not found:
        return Gate("deployment", False, why(run, "deployment"))
    script_ok = found["script"] is None or (
        found.get("script_returncode") == 0
        and found.get("script_version") == f"exoarmur {__version__}"
    )
    children_ran = bool(run.children) and run.children[-1].returncode == 0
    ok = (
        found["distribution"] == found["exoarmur_module"]
        and found["entry_point_resolves"]
        and all(found["executor_plugins"].values())
        and script_ok
        and children_ran
    )
    versions = ", ".join(f"{k} {v}" for k, v in found["versions"].items())
    return Gate(
        "deployment",
        ok,
        f"exoarmur {found['distribution']} installed (module {found['exoarmur_module']}); "
        f"console script exoarmur -> {found['entry_point']} resolves="
        f"{str(found['entry_point_resolves']).lower()}; "
        f"`{found['script'] or 'exoarmur (not on PATH)'} --version` -> "
        f"{found.get('script_version', 'not run')!r}; "
        f"children ran `python -m exoarmur.reality`: {'ok' if children_ran else 'FAILED'}; "
        f"{versions}",
    )
