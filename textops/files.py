"""Output files: checked before a run writes anything, never the run's own input, written
under a temporary name and renamed into place, so no reader ever sees half a file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from textops.errors import BadInputError

def prepare_output(path: Path) -> Path:
    """Check that ``path`` can be an output file and create its folder; returns the folder."""
    if path.is_dir():
        raise BadInputError(f"output path {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create output folder {path.parent}: {exc.strerror}") from None
    return path.parent


def same_file(a: Path, b: Path) -> bool:
    """Do ``a`` and ``b`` name one file (through links, "..", hard links)?"""
    with contextlib.suppress(OSError):
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting(inputs: Mapping[str, Path | None], outputs: Mapping[str, Path | None]) -> None:
    """BadInputError when an output (flag -> path) is an input or another output: a run must
    never replace the data it reads, nor write two results into one file."""
    named_outputs = [(flag, path) for flag, path in outputs.items() if path is not None]
    for index, (flag, path) in enumerate(named_outputs):
        for in_flag, in_path in inputs.items():
            if in_path is not None and same_file(path, in_path):
                raise BadInputError(f"{flag} {path} is the input file ({in_flag}); choose another "
                                    f"output path")
        for other_flag, other in named_outputs[:index]:
            if same_file(path, other):
                raise BadInputError(f"{flag} and {other_flag} are the same file ({path}); give "
                                    f"each its own path")


def current_umask() -> int:
    """The process's umask (read without changing it where /proc tells it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(final_path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Write to a temporary file beside ``final_path`` and rename it into place on success.

    On any failure (or interruption) the temporary file is removed and ``final_path`` is left as
    it was: a reader never sees a half-written file under the final name.
    """
    final_path = Path(final_path)
    directory = prepare_output(final_path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise BadInputError(f"cannot write to output folder {directory}: {exc.strerror}") from None
    tmp_path = Path(tmp_name)
    with contextlib.suppress(OSError):  # mkstemp makes 0600; a report is as readable as any file
        os.fchmod(fd, 0o666 & ~current_umask())
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
