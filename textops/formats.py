"""What an input file is, by its bytes (not its name), and how to open it: plain CSV, CSV
compressed with gzip, bzip2, xz or zstd, a Parquet file, or a folder of Parquet parts as Spark
and Hive write them. Everything else that is binary is named ("looks like a ZIP archive (an
.xlsx workbook?)"), so the one-line error sends the user after the right cause.

Parquet is streamed in record batches (pyarrow.dataset), compressed CSV through a decompressing
stream, so memory stays at one chunk whatever the format. The data's SHA-256 is taken over the
bytes the user has: the file as stored, or a folder's parts in name order.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

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
        for batch in dataset.to_batches(columns=columns, batch_size=chunk_size):
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
