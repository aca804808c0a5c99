"""Worker processes that die with their parent: after ``kill -9`` of a script (what the OOM
killer does) a ``ProcessPoolExecutor`` worker would otherwise wait on its task pipe forever,
holding a model in memory."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time

PARENT_CHECK_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """Worker initializer: a worker whose parent is gone exits. Linux's parent-death signal
    ends it at once; a watchdog thread checking the parent's pid covers the rest (and a parent
    that died before this ran). SIGTERM gets its default action back (the parent's handler
    raised into pipe reads), and Ctrl-C is the parent's to handle: it stops the pool (no
    traceback per worker)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):  # Linux only; the watchdog works everywhere
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
