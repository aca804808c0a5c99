"""One train.py at a time per model: an exclusive lock file (``fcntl.flock``).

The kernel releases the lock when its holder exits in any way (crash, ``kill -9``, reboot), so a
dead holder never blocks the next run: there is no stale lock to clean up by hand. The file also
records who holds it (pid, host, start time) for the message the next run prints.

Scope: processes on one machine sharing the project folder (cron's overlapping runs). Training
from several machines against one tracking server needs one scheduler to own train.py.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from common import TextopsError, ExitCode


class BusyError(TextopsError):
    """Another run holds the lock and did not release it in time."""

    exit_code = ExitCode.BUSY


def holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


@contextlib.contextmanager
def exclusive(path: Path, wait_seconds: float, what: str) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; wait up to ``wait_seconds`` for it, then raise
    BusyError naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BusyError(
                        f"another {what} is running ({holder(path)}; lock {path}); this run is "
                        f"skipped: rerun later or pass --lock-wait SECONDS to wait for it") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
