"""One writer at a time: an exclusive lock file (``fcntl.flock``). train.py holds one per model,
predict.py one per output file.

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
from typing import Any, Iterator

from textops.errors import TextopsError, ExitCode


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


def _open_locked(path: Path, deadline: float, what: str) -> Any:
    """The lock file at ``path``, opened and locked by this process. A file that its holder
    unlinked while this process waited for it is not the lock any more: open the new one."""
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BusyError(
                            f"another {what} is running ({holder(path)}; lock {path}); this run "
                            f"is skipped: rerun later or pass --lock-wait SECONDS to wait for "
                            f"it") from None
                    time.sleep(0.2)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle.fileno()).st_ino:
                return handle
        except BaseException:
            handle.close()
            raise
        handle.close()  # removed by its previous holder: lock the file now at ``path``


@contextlib.contextmanager
def exclusive(path: Path, wait_seconds: float, what: str, remove: bool = False) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; wait up to ``wait_seconds`` for it, then raise
    BusyError naming the holder. ``remove``: delete the lock file on release (safe: a waiter
    that locked the removed file notices and locks the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _open_locked(path, time.monotonic() + max(wait_seconds, 0.0), what)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        handle.flush()
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(OSError):
                    path.unlink()
            else:
                handle.seek(0)
                handle.truncate()
                handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
