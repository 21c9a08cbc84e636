"""The end of a log file, for the error messages of the launchers."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tail"]


def tail(path: Path, lines: int = 40, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of ``path`` (reading at most its last ``max_bytes``), or why it cannot be read."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
