"""Where a configured path points: the one rule for paths and SQLite URIs given in the
configuration (relative to the project folder the entry point names) or on the command line
(already absolute, relative to the current directory)."""
from __future__ import annotations

import os
import re
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


HADOOP_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # hdfs://, s3a://, abfss://, file://, ...


def is_uri(location: str | os.PathLike[str]) -> bool:
    """A Hadoop-FS URI (read and written by Spark, never opened by this process): it stays as
    given, never resolved as a path."""
    return bool(HADOOP_URI.match(str(location)))


def resolve_path(path: str | os.PathLike[str], root: Path) -> Path:
    """``path`` with ``~`` expanded; absolute paths stay, relative ones hang off ``root``.

    This keeps ``cd / && python /path/to/train.py`` identical to running it from the project.
    """
    candidate = Path(os.path.expanduser(str(path)))
    return candidate if candidate.is_absolute() else root / candidate


def absolute_sqlite_uri(uri: str, base: Path) -> str:
    """``uri`` with a relative SQLite path (``sqlite:///rel/store.db``) made absolute against
    ``base``; any other URI as it is."""
    rest = uri[len(SQLITE_PREFIX):]
    if not uri.startswith(SQLITE_PREFIX) or rest.startswith("/") or \
            rest.split("?")[0] in ("", ":memory:"):
        return uri
    return SQLITE_PREFIX + str(base / os.path.expanduser(rest))
