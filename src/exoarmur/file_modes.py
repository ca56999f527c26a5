"""What ExoArmur reads from disk must be changeable by its owner only.

``config.toml`` names Python callables and executor endpoints, the ledger
holds every decision, and the home holds both: a group- or world-writable
one is code execution and a rewritable history for whoever else is on the
machine. They are refused at open, like a signing key readable by others,
with the ``chmod`` that fixes them; and what ``init`` creates gets its mode
whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

#: the modes ``init`` gives what it creates, and the ``chmod`` a refusal suggests
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def refuse_writable_by_others(path: Path, what: str) -> None:
    """Raise :class:`ConfigError` if ``path`` exists and its group or others may write it.

    A missing path is not refused here: whoever needs it says so.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        who = {0o020: "its group", 0o002: "others"}.get(mode & 0o022, "its group and others")
        fix = PRIVATE_DIR if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE
        raise ConfigError(
            f"{what} {path} is writable by {who} (mode {mode:04o}), who could change what "
            f"ExoArmur does; run chmod {fix:o} {path}"
        )


def make_private_dir(path: Path) -> bool:
    """Create ``path`` (and missing parents) with mode 0700; True if it was created.

    An existing directory is left as it is (it is checked, not changed, at open).
    """
    try:
        path.mkdir(mode=PRIVATE_DIR, parents=True)
    except FileExistsError:
        return False
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode is masked by the umask
    return True


def write_private(path: Path, text: str) -> None:
    """Write a new file, mode 0600 whatever the umask; never overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE)
        handle.write(text)
