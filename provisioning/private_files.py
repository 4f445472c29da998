"""Keeps the runtime folder (`var/`: the SQLite database and its WAL, `local.env`, `sandbox.json`,
the sandbox CA's key, sessions) readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

# Owner read/write/search only: the folder's mode is what stops another account reading any file
# in it, whatever mode a library gave the file itself.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Files made from now on by this process (SQLite's database, WAL and shared-memory files, the
# broker's messages) get no group or other bits.
PRIVATE_UMASK = 0o077


def keep_private(var_dir: Path) -> None:
    """Make `var_dir` (created if missing) private, and tighten files an older version left open."""
    os.umask(PRIVATE_UMASK)
    var_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if var_dir.stat().st_uid != os.geteuid():
        # A folder mounted for us (a container volume): its owner decides its mode.
        return
    var_dir.chmod(PRIVATE_DIR_MODE)
    for path in var_dir.iterdir():
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_FILE_MODE)
