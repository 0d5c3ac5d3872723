"""Where a model came from: the code version that built it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def git_commit() -> str:
    """The commit of the working tree, or ``GIT_COMMIT`` when built outside git."""
    if commit := os.environ.get("GIT_COMMIT"):
        return commit
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return result.stdout.strip() or UNKNOWN
