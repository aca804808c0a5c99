"""Reading input, in one place: what a file is by its bytes (not its name) and how to open
it, and for CSV its dialect. Plain CSV, CSV compressed with gzip, bzip2, xz or zstd, a Parquet
file, or a folder of Parquet parts as Spark and Hive write them. Everything else that is binary
is named ("looks like a ZIP archive (an .xlsx workbook?)"), so the one-line error sends the user
after the right cause.

:func:`open_input` checks an input once (readable, its format, its header, the columns the job
needs) and returns an :class:`Input` that every script reads through.

Real exports are messy: bare ``\\r`` inside unquoted text, an extra unnamed index column, BOMs,
UTF-16, Latin-1. Everything here either copes or raises :class:`BadInputError` with one line
that names the problem and the fix. Parquet is streamed in record batches (pyarrow.dataset),
compressed CSV through a decompressing stream, so memory stays at one chunk whatever the
format. The data's SHA-256 is taken over the bytes the user has: the file as stored, or a
folder's parts in name order.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import lzma
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from textops.errors import BadInputError, first_line
from textops.interrupts import interrupt_from

COMPRESSED = {  # magic bytes -> container
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
PARQUET_MAGIC = b"PAR1"
NOT_TEXT = {  # magic bytes -> what the file looks like
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an old Office document (an .xls workbook?)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"SQLite format 3\x00": "an SQLite database",
    b"\x7fELF": "a program (ELF)",
    b"ARROW1": "an Arrow IPC file",
}
NAMES = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "zstd": "zstd", "parquet": "Parquet"}


class FormatError(ValueError):
    """The input is not something textops reads; the message names what it found."""


def container(path: Path, head: bytes) -> str:
    """``csv``, ``gzip``, ``bz2``, ``xz``, ``zstd`` or ``parquet`` (folders: ``parquet``)."""
    if path.is_dir():
        return "parquet"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            return kind
    for magic, what in NOT_TEXT.items():
        if head.startswith(magic):
            raise FormatError(f"{path} is not a CSV or Parquet file: it looks like {what}; "
                              f"export it as CSV or Parquet")
    return "csv"


def open_binary(path: Path, kind: str) -> BinaryIO:
    """The file's (decompressed) bytes as a binary stream."""
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        # pyarrow ships the zstd codec: no other package needed
        return pa.input_stream(str(path), compression="zstd")
    return open(path, "rb")


def decompressed_head(path: Path, kind: str, size: int) -> bytes:
    """The first ``size`` bytes after decompression (FormatError when it cannot decompress)."""
    try:
        with open_binary(path, kind) as stream:
            return stream.read(size)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise FormatError(f"{path} starts like a {NAMES[kind]} file but cannot be decompressed "
                          f"({str(exc).strip() or type(exc).__name__}): it is damaged or "
                          f"truncated; copy it again") from None


def damage(path: Path) -> str | None:
    """What is wrong with a compressed file's stream, read to its end (None: it decompresses
    cleanly, or is not compressed). Asked only when reading it failed otherwise (a column not
    found, bytes that are not text): a damaged stream can yield plausible garbage before its
    checksum fails, and the message must name the damage, not the encoding or the columns."""
    try:
        with open(path, "rb") as handle:
            kind = container(path, handle.read(8))
    except (OSError, FormatError):
        return None
    if kind not in COMPRESSED.values():
        return None
    try:
        with open_binary(path, kind) as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        return (f"{path} is a damaged {NAMES[kind]} file ({str(exc).strip() or type(exc).__name__}); "
                f"it cannot be decompressed to its end: copy it again")
    return None


# --------------------------------------------------------------------------------------------
# Parquet: one file, or a folder of parts (Spark / Hive layout)
# --------------------------------------------------------------------------------------------
def parquet_parts(folder: Path) -> list[Path]:
    """The data files of a folder of Parquet parts, in name order (``_SUCCESS``, ``.crc`` and
    other hidden files left out), walking Hive partition folders (``column=value/``).
    FormatError for a folder a Spark job did not commit (part files or checksums but no
    ``_SUCCESS``) and for one with no part at all."""
    entries = sorted(folder.iterdir(), key=lambda p: p.name)  # listed once
    names = [p.name for p in entries]
    parts = _data_files(entries)
    spark_like = any(n.startswith("part-") or n.endswith(".crc") for n in names)
    if spark_like and "_SUCCESS" not in names:
        raise FormatError(f"{folder} looks like a Spark job's output but has no _SUCCESS file: "
                          f"that job did not commit (it failed or is still running); rerun it")
    if not parts:
        raise FormatError(f"{folder} is a directory without data files; give a CSV or Parquet "
                          f"file, or a folder of Parquet parts")
    return parts


def _data_files(entries: list[Path]) -> list[Path]:
    """The data files among a folder's ``entries`` (name order), partition folders walked."""
    found = []
    for entry in entries:
        if entry.name.startswith(("_", ".")) or entry.name.endswith(".crc"):
            continue
        if entry.is_dir() and "=" in entry.name:  # a Hive partition: column=value/
            found += _data_files(sorted(entry.iterdir(), key=lambda p: p.name))
        elif not entry.is_dir():
            found.append(entry)
    return found


def parquet_dataset(path: Path):
    """A pyarrow dataset over a Parquet file or folder (FormatError when unreadable). A folder's
    parts are read with one schema unified from all of them (a part whose column is all-null,
    type ``null``, joins the others' type), and the partition columns of a Hive layout are
    strings, so ids such as ``store=007`` keep their spelling."""
    return _opened(path)[0]


def _opened(path: Path) -> tuple[Any, dict[str, set[str]]]:
    """The dataset, and for a folder the columns each part has (its own and its partition
    folders'), by the part's path relative to the folder."""
    if not path.is_dir():
        try:
            return ds.dataset([str(path)], format="parquet"), {}
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(path, exc) from None
    parts = parquet_parts(path)
    schemas = [_part_schema(part) for part in parts]
    relative = [part.relative_to(path) for part in parts]
    levels = [[level.split("=", 1)[0] for level in r.parts[:-1]] for r in relative]
    keys = list(dict.fromkeys(k for found in levels for k in found))
    has = {str(r): set(s.names) | set(found) for r, s, found in zip(relative, schemas, levels)}
    dataset = ds.dataset([str(p) for p in parts], format="parquet",
                         schema=_unified(path, schemas, keys), partition_base_dir=str(path),
                         partitioning=ds.partitioning(pa.schema([(k, pa.string()) for k in keys]),
                                                      flavor="hive"))
    return dataset, has


def _unreadable(path: Path, exc: BaseException) -> FormatError:
    return FormatError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]}): "
                       f"it is damaged or truncated, or not Parquet")


def _part_schema(part: Path) -> pa.Schema:
    try:
        return pq.read_schema(part)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(part, exc) from None


def _unified(folder: Path, schemas: list[pa.Schema], keys: list[str]) -> pa.Schema:
    """One schema for every part (columns in first-seen order, ``null`` joining any type, int32
    and int64 widening; the partition columns as strings, last); FormatError naming the column whose types cannot be joined."""
    try:
        unified = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        for name in dict.fromkeys(n for s in schemas for n in s.names):
            kinds = sorted({str(s.field(name).type) for s in schemas if name in s.names})
            if len(kinds) > 1:
                raise FormatError(f"the parts of {folder} disagree on column {name!r} "
                                  f"({' vs '.join(kinds)}); rewrite them with one type") from None
        raise
    return pa.schema([f for f in unified if f.name not in keys] + [(k, pa.string()) for k in keys])


def _check_columns(path: Path, schema: pa.Schema, parts: dict[str, set[str]],
                   columns: Sequence[str] | None) -> None:
    """FormatError for a column read as text whose type has no text form (lists, structs,
    maps), or one that some parts of a folder lack (their rows would read as blank)."""
    wanted = [c for c in (schema.names if columns is None else columns) if c in schema.names]
    for name in wanted:
        kind = schema.field(name).type
        if pa.types.is_nested(kind) or (pa.types.is_dictionary(kind)
                                         and pa.types.is_nested(kind.value_type)):
            raise FormatError(f"column {name!r} of {path} holds {kind} values, which textops "
                              f"cannot read as text; flatten it (join a list into one string, "
                              f"pick a struct's field) or choose another column")
    for part, has in parts.items():
        lacking = [c for c in wanted if c not in has]
        if lacking:
            raise FormatError(f"part {part} of {path} has no column {lacking[0]!r} (its columns: "
                              f"{', '.join(sorted(has)[:20])}); every part needs it: rewrite "
                              f"that part or move it out of the folder")


def parquet_columns(path: Path) -> list[str]:
    return list(parquet_dataset(path).schema.names)


NO_PRE_BUFFER = ds.ParquetFragmentScanOptions(pre_buffer=False)


def parquet_chunks(path: Path, chunk_size: int,
                   columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of exactly ``chunk_size`` rows (the last one shorter), across files and row
    groups, of the ``columns`` the files have (None: all), as DataFrames shaped like the CSV reader's: text columns as ``str`` (booleans
    spelled ``True``/``False``, as pandas writes them to CSV), floats as floats, missing values
    as NaN, and a row index that continues across chunks."""
    dataset, parts = _opened(path)
    _check_columns(path, dataset.schema, parts, columns)
    if columns is not None:  # the ones present (required ones were checked on the header)
        columns = [c for c in columns if c in set(dataset.schema.names)]
    start, buffer, buffered = 0, [], 0
    try:
        # one thread, little read-ahead: the threaded scanner decoded row groups as far ahead
        # of a slower reader as it could, and the peak grew with the file (5M predict.py rows:
        # 593 MB reading alone; now 162 MB, as at 1M, in the same time; bench/spark_monitor_bench.py)
        for batch in dataset.to_batches(columns=columns, batch_size=chunk_size,
                                        batch_readahead=2, fragment_readahead=1, use_threads=False,
                                        fragment_scan_options=NO_PRE_BUFFER):
            buffer.append(batch)
            buffered += batch.num_rows
            while buffered >= chunk_size:
                table = pa.Table.from_batches(buffer)
                yield _frame(table.slice(0, chunk_size), start)
                start += chunk_size
                rest = table.slice(chunk_size)
                buffer, buffered = rest.to_batches(), rest.num_rows
        if buffered:
            yield _frame(pa.Table.from_batches(buffer), start)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FormatError(f"{path} could not be read to the end ({str(exc).splitlines()[0]}): "
                          f"it is damaged or truncated") from None


def _frame(table: Any, start: int) -> pd.DataFrame:
    frame = pd.DataFrame(index=pd.RangeIndex(start, start + table.num_rows))
    for name, column in zip(table.schema.names, table.columns):
        if pa.types.is_floating(column.type):
            frame[name] = column.to_pandas().to_numpy()
        else:
            frame[name] = _as_text(column).to_numpy()
    return frame


def _as_text(column: Any) -> pd.Series:
    if pa.types.is_boolean(column.type):
        values = column.to_pandas()
        return values.map({True: "True", False: "False"}).astype(object)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    values = column.to_pandas().astype(object)
    return values.where(values.notna(), np.nan)


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    """SHA-256 of the input as stored: a file's bytes, or a folder's parts (name, then bytes)
    in name order."""
    digest = hashlib.sha256()
    files = parquet_parts(path) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(os.fsencode(file.name) + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# CSV dialects, headers and reading (every container)
# --------------------------------------------------------------------------------------------
_SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class CsvFormat:
    """How to parse a file, decided once from its first bytes."""

    encoding: str
    delimiter: str
    lineterminator: str | None  # None = pandas' default (\n, \r\n or \r)
    container: str = "csv"  # csv, gzip, bz2, xz, zstd (compressed CSV) or parquet


def check_readable_file(path: Path, what: str = "input file") -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInputError(f"{what} {path} does not exist; check the path (--data)") from None
    except OSError as exc:  # a symlink loop, a path through a file, no permission
        raise BadInputError(f"{what} {path} cannot be opened ({exc.strerror}); give the path of "
                            f"a readable file") from None
    if stat.S_ISDIR(info.st_mode):
        try:
            parquet_parts(path)  # a folder of Parquet parts (Spark / Hive) is an input
        except FormatError as exc:
            raise BadInputError(str(exc)) from None
        except OSError as exc:
            raise BadInputError(f"{what} {path} cannot be listed ({exc.strerror})") from None
        return
    if not stat.S_ISREG(info.st_mode):  # a FIFO, <(zcat x.gz), a device
        raise BadInputError(f"{what} {path} is not a regular file (a pipe or a device?): "
                            f"textops reads its input more than once (format, hash); write it to "
                            f"a file first, e.g. zcat x.gz > x.csv")
    if info.st_size == 0:
        raise BadInputError(f"{what} {path} is empty (0 bytes); expected a CSV with a header row")
    if not os.access(path, os.R_OK):
        raise BadInputError(f"{what} {path} is not readable (permission denied); fix its "
                            f"permissions")


def detect_format(path: Path, encoding: str, delimiter: str) -> CsvFormat:
    """Recognise the container by its bytes (CSV, gzip/bzip2/xz/zstd-compressed CSV, Parquet
    file or folder), then, for CSV, pick the encoding (a BOM wins over the configured one) and
    the line terminator.

    Files whose lines end in ``\\n`` are read with ``\\n`` as the only terminator, so that a bare
    ``\\r`` inside a tweet does not split a row in two (as it does in twcs).
    """
    head = b""
    if not path.is_dir():
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    try:
        kind = container(path, head)
        if kind == "parquet":
            return CsvFormat(encoding, delimiter, None, "parquet")
        if kind != "csv":
            head = decompressed_head(path, kind, _SNIFF_BYTES)
    except FormatError as exc:
        raise BadInputError(str(exc)) from None
    if not head:
        raise BadInputError(f"{path} holds no data once decompressed; expected a CSV with a "
                            f"header row")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return CsvFormat("utf-16", delimiter, None, kind)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    if utf8 and b"\x00" in head[:4096]:  # NUL bytes are valid UTF-8, but never in a text CSV
        if kind != "csv":
            _refuse_if_damaged(path)
        raise BadInputError(
            f"{path} holds NUL bytes: it looks like UTF-16 or UTF-32 without a byte-order mark "
            f"(or a binary file); pass --encoding utf-16-le (or utf-16-be)")
    if head.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif utf8:
        encoding = "utf-8-sig"  # harmless without a BOM, strips one if present
    return CsvFormat(encoding, delimiter, line_terminator(head), kind)


def line_terminator(head: bytes) -> str | None:
    """The rows' line ending, decided by the data (not by the first line: a header written on
    Linux above rows appended from a Windows export is common): ``None`` (pandas' default: CRLF,
    LF or CR) when most lines end in CRLF or there is no LF at all, else ``"\\n"`` only, so that
    a bare CR inside a text does not split its row."""
    lines = head.count(b"\n")
    if lines == 0:
        return None
    return None if head.count(b"\r\n") * 2 > lines else "\n"


def _read_kwargs(fmt: CsvFormat) -> dict:
    kwargs = dict(
        encoding=fmt.encoding,
        sep=fmt.delimiter,
        dtype=str,  # ids and labels keep their exact spelling; text stays text
        keep_default_na=False,  # a tweet saying "NA" is text, not a missing value
        na_values=[""],
        on_bad_lines="error",
    )
    if fmt.lineterminator is not None:
        kwargs["lineterminator"] = fmt.lineterminator
    return kwargs


def _translate_error(exc: Exception, path: Path, fmt: CsvFormat) -> BaseException:
    """The one-line BadInputError for a reader's failure (or the interruption behind it)."""
    interrupt = interrupt_from(exc)
    if interrupt is not None:
        return interrupt
    damaged = damage(path) if fmt.container != "csv" and isinstance(
        exc, (UnicodeError, pd.errors.ParserError, csv.Error)) else None
    if damaged:
        return BadInputError(damaged)  # returned, not raised: the caller raises it
    if isinstance(exc, UnicodeDecodeError):
        return BadInputError(
            f"{path} is not valid {fmt.encoding} text (byte 0x{exc.object[exc.start]:02x} at "
            f"position {exc.start} of a block); pass --encoding with the file's encoding, e.g. "
            f"--encoding latin-1 or --encoding cp1252"
        )
    if isinstance(exc, pd.errors.EmptyDataError):
        return BadInputError(f"{path} has no header row or no columns; expected a CSV with a header")
    if isinstance(exc, (pd.errors.ParserError, csv.Error)):
        detail = first_line(exc, 500)
        return BadInputError(
            f"{path} is not a well-formed CSV ({detail}); check --delimiter and that quotes are balanced"
        )
    if isinstance(exc, UnicodeError):
        return BadInputError(f"{path} cannot be decoded as {fmt.encoding} ({exc}); pass --encoding")
    if fmt.container != "csv" and isinstance(exc, (EOFError, OSError, ValueError)):
        return BadInputError(f"{path} ({fmt.container}) could not be read to the end "
                             f"({first_line(exc, 200)}): it is damaged or truncated; copy it "
                             f"again")
    if isinstance(exc, LookupError):
        return BadInputError(f"unknown encoding {fmt.encoding!r}; pass a valid --encoding, e.g. utf-8")
    return BadInputError(f"cannot read {path}: {exc}")


def _clean_columns(frame: pd.DataFrame, fmt: CsvFormat | None = None) -> pd.DataFrame:
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if fmt is not None and fmt.lineterminator == "\n" and len(frame.columns):
        last = frame.columns[-1]  # the odd CRLF line among LF lines: its CR is no data
        if pd.api.types.is_string_dtype(frame[last]):
            frame[last] = frame[last].str.removesuffix("\r")
    return frame


def require_columns(columns: Sequence[str], required: dict[str, str], path: Path) -> None:
    """``required`` maps column name -> the flag that selects it (or, not starting with "--",
    the whole fix), for the error message."""
    for name, flag in required.items():
        if name not in columns:
            _refuse_if_damaged(Path(str(path)))  # a URI (Spark's input) is no local file
            shown = ", ".join(map(str, list(columns)[:20]))
            fix = f"pass {flag} NAME with the right column" if flag.startswith("--") else flag
            raise BadInputError(f"column {name!r} not found in {path} (columns: {shown}); {fix}")


def _refuse_if_damaged(path: Path) -> None:
    """BadInputError naming the damage when ``path`` is a compressed file that does not
    decompress to its end (asked only on error paths: it reads the whole stream)."""
    damaged = damage(path)
    if damaged:
        raise BadInputError(damaged)


def _source(path: Path, fmt: CsvFormat) -> Any:
    """What pandas reads: the path, or a decompressing stream."""
    return path if fmt.container == "csv" else open_binary(path, fmt.container)


def read_header(path: Path, fmt: CsvFormat) -> list[str]:
    if fmt.container == "parquet":
        try:
            return [str(c).strip() for c in parquet_columns(path)]
        except FormatError as exc:
            raise BadInputError(str(exc)) from None
    try:
        frame = pd.read_csv(_source(path, fmt), nrows=0, **_read_kwargs(fmt))
    except Exception as exc:  # noqa: BLE001 - every parser failure becomes one clear line
        raise _translate_error(exc, path, fmt) from None
    return list(_clean_columns(frame).columns)


def fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, modification time in ns) of the input's file, or of each part of a folder
    of Parquet parts (the parts as they are now: none, when the folder is gone)."""
    try:
        files = parquet_parts(path) if path.is_dir() else [path]
        return tuple((f.name, (s := f.stat()).st_size, s.st_mtime_ns) for f in files)
    except (OSError, FormatError):
        return ()


def read_table(path: Path, encoding: str = "utf-8", delimiter: str = ",",
               usecols: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a whole table as strings. ``usecols`` limits the columns kept in memory."""
    return open_input(path, encoding, delimiter,
                      {c: "--text-column/--label-column" for c in usecols or ()}).read(usecols)


def _read_whole(path: Path, fmt: CsvFormat, usecols: Sequence[str] | None) -> pd.DataFrame:
    if fmt.container == "parquet":
        chunks = list(iter_table(path, fmt, 100_000, usecols))
        if not chunks:
            raise BadInputError(f"{path} has a header but no data rows")
        return pd.concat(chunks)
    try:
        frame = pd.read_csv(_source(path, fmt), **_read_kwargs(fmt))
    except Exception as exc:  # noqa: BLE001
        raise _translate_error(exc, path, fmt) from None
    return _select(_clean_columns(frame, fmt), usecols)


def _select(frame: pd.DataFrame, usecols: Sequence[str] | None) -> pd.DataFrame:
    """Keep ``usecols`` (in file order). Columns are selected after parsing, not with pandas'
    ``usecols``: with it, a row with too many fields (an unquoted comma in a text) is silently
    accepted, shifted, instead of failing."""
    if usecols is None:
        return frame
    wanted = set(usecols)
    return frame[[c for c in frame.columns if c in wanted]]


def iter_table(path: Path, fmt: CsvFormat, chunk_size: int,
               usecols: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Stream a CSV (or compressed CSV, or Parquet) in chunks of ``chunk_size`` rows, translating
    read errors as they happen."""
    if fmt.container == "parquet":
        try:
            yield from parquet_chunks(path, chunk_size, usecols)
        except FormatError as exc:
            raise BadInputError(str(exc)) from None
        return
    try:
        reader = pd.read_csv(_source(path, fmt), chunksize=chunk_size, **_read_kwargs(fmt))
        with reader:
            for chunk in reader:
                yield _select(_clean_columns(chunk, fmt), usecols)
    except Exception as exc:  # noqa: BLE001
        raise _translate_error(exc, path, fmt) from None


def file_sha256(path: Path) -> str:
    """SHA-256 of the input as stored (a folder of parts: each part, in name order)."""
    return sha256(path)


# --------------------------------------------------------------------------------------------
# The one way in
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """An input checked once: its path, format (container and CSV dialect) and header, and
    what its files looked like then (to tell, once it has been read, that it did not change)."""

    path: Path
    format: CsvFormat
    header: tuple[str, ...]
    fingerprint: tuple[tuple[str, int, int], ...] = ()

    def require_unchanged(self, flag: str = "--data") -> None:
        """BadInputError when the input changed since it was opened (a cron export still being
        written, a file replaced under the job): what was read is torn, so nothing built from
        it may be published."""
        now = fingerprint(self.path)
        if now != self.fingerprint:
            before = sum(size for _, size, _ in self.fingerprint)
            after = sum(size for _, size, _ in now)
            raise BadInputError(
                f"{flag} {self.path} changed while it was being read ({before:,} -> {after:,} "
                f"bytes, or a newer modification time): is it still being written? Run once the "
                f"export is complete (write it under another name and rename it into place)")

    def require(self, required: Mapping[str, str]) -> None:
        """BadInputError unless every column of ``required`` (name -> the flag that selects
        it, for the message) is in the header."""
        require_columns(self.header, dict(required), self.path)

    def chunks(self, chunk_size: int, usecols: Sequence[str] | None = None
               ) -> Iterator[pd.DataFrame]:
        """The rows in chunks of ``chunk_size`` (read errors translated as they happen)."""
        return iter_table(self.path, self.format, chunk_size, usecols)

    def read(self, usecols: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole table as strings (``usecols``: the columns kept in memory)."""
        return _read_whole(self.path, self.format, usecols)

    def sha256(self) -> str:
        return file_sha256(self.path)


def open_input(path: Path, encoding: str, delimiter: str,
               required: Mapping[str, str] | None = None, what: str = "input file") -> Input:
    """The input check every script makes first: a readable file or folder of parts, its
    format, its header and the ``required`` columns (name -> flag); BadInputError otherwise."""
    check_readable_file(path, what)
    stamp = fingerprint(path)
    fmt = detect_format(path, encoding, delimiter)
    opened = Input(path, fmt, tuple(read_header(path, fmt)), stamp)
    if required:
        opened.require(required)
    return opened
