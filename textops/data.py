"""Reading, validating and splitting labelled text data.

Real exports are messy: bare ``\\r`` inside unquoted text, an extra unnamed index column, BOMs,
UTF-16, Latin-1, and labels spelled ``True``/``TRUE``/``true``. Everything here either copes or
raises :class:`common.BadInputError` with one line that names the problem and the fix.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from textops.errors import BadInputError, first_line
from textops.interrupts import interrupt_from
from textops import formats

log = logging.getLogger(__name__)

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
            formats.parquet_parts(path)  # a folder of Parquet parts (Spark / Hive) is an input
        except formats.FormatError as exc:
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
        kind = formats.container(path, head)
        if kind == "parquet":
            return CsvFormat(encoding, delimiter, None, "parquet")
        if kind != "csv":
            head = formats.decompressed_head(path, kind, _SNIFF_BYTES)
    except formats.FormatError as exc:
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
    damaged = formats.damage(path) if fmt.container != "csv" and isinstance(
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
    """``required`` maps column name -> the flag that selects it, for the error message."""
    for name, flag in required.items():
        if name not in columns:
            _refuse_if_damaged(Path(str(path)))  # a URI (Spark's input) is no local file
            shown = ", ".join(map(str, list(columns)[:20]))
            raise BadInputError(
                f"column {name!r} not found in {path} (columns: {shown}); pass {flag} NAME "
                f"with the right column"
            )


def _refuse_if_damaged(path: Path) -> None:
    """BadInputError naming the damage when ``path`` is a compressed file that does not
    decompress to its end (asked only on error paths: it reads the whole stream)."""
    damaged = formats.damage(path)
    if damaged:
        raise BadInputError(damaged)


def _source(path: Path, fmt: CsvFormat) -> Any:
    """What pandas reads: the path, or a decompressing stream."""
    return path if fmt.container == "csv" else formats.open_binary(path, fmt.container)


def read_header(path: Path, fmt: CsvFormat) -> list[str]:
    if fmt.container == "parquet":
        try:
            return [str(c).strip() for c in formats.parquet_columns(path)]
        except formats.FormatError as exc:
            raise BadInputError(str(exc)) from None
    try:
        frame = pd.read_csv(_source(path, fmt), nrows=0, **_read_kwargs(fmt))
    except Exception as exc:  # noqa: BLE001 - every parser failure becomes one clear line
        raise _translate_error(exc, path, fmt) from None
    return list(_clean_columns(frame).columns)


def read_table(path: Path, encoding: str = "utf-8", delimiter: str = ",",
               usecols: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a whole CSV as strings. ``usecols`` limits the columns kept in memory."""
    check_readable_file(path)
    fmt = detect_format(path, encoding, delimiter)
    header = read_header(path, fmt)
    if usecols is not None:
        require_columns(header, {c: "--text-column/--label-column" for c in usecols}, path)
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
            yield from formats.parquet_chunks(path, chunk_size, usecols)
        except formats.FormatError as exc:
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
    return formats.sha256(path)


# --------------------------------------------------------------------------------------------
# Labels and texts
# --------------------------------------------------------------------------------------------
def clean_text(series: pd.Series) -> pd.Series:
    """Missing text becomes an empty string; everything is a ``str``."""
    return series.fillna("").astype(str)


def is_blank(series: pd.Series) -> np.ndarray:
    """The blank-text rule, everywhere: a text that is missing or only white space is blank.
    Blank rows are never trained on and never scored (their prediction stays empty)."""
    return (clean_text(series).str.strip() == "").to_numpy()


def spelled_as(classes: Sequence[Any]) -> Callable[[Any], str]:
    """The label-spelling rule against a model's classes: a label that differs from a class
    only in case (and surrounding spaces) is that class (``TRUE`` and ``true`` are ``True``, as
    :func:`canonical_labels` merges them at training); any other label is kept as it is."""
    by_key = {str(c).strip().casefold(): str(c) for c in classes}

    def spell(label: Any) -> str:
        text = str(label)
        return by_key.get(text.strip().casefold(), text)

    return spell


def canonical_labels(labels: pd.Series) -> tuple[pd.Series, dict[str, list[str]]]:
    """Merge spellings that differ only in case or surrounding spaces (``True``/``TRUE``/``true``).

    Each group takes its most frequent spelling. Returns the new labels and the merges made
    (canonical spelling -> the other spellings), for logging.
    """
    stripped = labels.astype(str).str.strip()
    counts = stripped.value_counts()
    by_key: dict[str, list[str]] = {}
    for spelling in counts.index:  # most frequent first
        by_key.setdefault(spelling.casefold(), []).append(spelling)
    mapping: dict[str, str] = {}
    merges: dict[str, list[str]] = {}
    for spellings in by_key.values():
        canonical = spellings[0]
        for spelling in spellings:
            mapping[spelling] = canonical
        if len(spellings) > 1:
            merges[canonical] = spellings[1:]
    return stripped.map(mapping), merges


@dataclass
class LabelledData:
    texts: pd.Series
    labels: pd.Series
    dropped_blank_text: int
    dropped_missing_label: int
    label_merges: dict[str, list[str]]

    @property
    def class_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.labels.value_counts().sort_index().items()}


def prepare_labelled(frame: pd.DataFrame, text_column: str, label_column: str,
                     path: Path) -> LabelledData:
    """Select, clean and validate the text and label columns of a training/monitoring table."""
    require_columns(frame.columns, {text_column: "--text-column", label_column: "--label-column"}, path)
    if len(frame) == 0:
        raise BadInputError(f"{path} has a header but no data rows")
    text = clean_text(frame[text_column])
    label = frame[label_column]
    missing_label = (label.isna() | (label.astype(str).str.strip() == "")).to_numpy()
    blank = is_blank(text)
    keep = ~missing_label & ~blank
    if not keep.any():
        raise BadInputError(
            f"{path} has no usable rows: every row has an empty {text_column!r} or a missing "
            f"{label_column!r}; check --text-column and --label-column"
        )
    labels, merges = canonical_labels(label[keep])
    return LabelledData(
        texts=text[keep].reset_index(drop=True),
        labels=labels.reset_index(drop=True),
        dropped_blank_text=int(blank.sum()),
        dropped_missing_label=int((missing_label & ~blank).sum()),
        label_merges=merges,
    )


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------
@dataclass
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_val: pd.DataFrame | None
    y_val: pd.Series | None
    x_test: pd.DataFrame
    y_test: pd.Series

    def training_rows(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Training + validation rows: what a refitted model (and the baseline) learns from."""
        if self.x_val is None:
            return self.x_train, np.asarray(self.y_train)
        return (pd.concat([self.x_train, self.x_val], ignore_index=True),
                np.concatenate([np.asarray(self.y_train), np.asarray(self.y_val)]))

    def bounded(self, limit: int, seed: int, test_limit: int = 0) -> "Split":
        """This split with its training and validation rows cut to about ``limit`` together,
        and its test rows to ``test_limit`` (seeded, per class, see ``stratified_sample``);
        0 keeps all."""
        n_val = 0 if self.y_val is None else len(self.y_val)
        total = len(self.y_train) + n_val
        share = limit / total if limit and total > limit else 1.0

        def cut(x: pd.DataFrame | None, y: pd.Series | None, size: float, salt: int):
            if y is None or size >= len(y):
                return x, y
            keep = stratified_sample(y, max(1, round(size)), seed + salt)
            return x.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True)

        x_train, y_train = cut(self.x_train, self.y_train, len(self.y_train) * share, 0)
        x_val, y_val = cut(self.x_val, self.y_val, n_val * share, 1)
        x_test, y_test = cut(self.x_test, self.y_test, test_limit or len(self.y_test), 2)
        if y_train is self.y_train and y_val is self.y_val and y_test is self.y_test:
            return self
        return Split(x_train, y_train, x_val, y_val, x_test, y_test)

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.y_train),
            "validation": 0 if self.y_val is None else len(self.y_val),
            "test": len(self.y_test),
        }


def stratified_sample(labels: pd.Series | np.ndarray, size: int, seed: int,
                      floor: int = 3) -> np.ndarray:
    """Sorted positions of a seeded sample of about ``size`` rows in which every class keeps its
    share, and at least ``floor`` rows (all of them when it has fewer); all rows when there
    are no more than ``size``."""
    labels = np.asarray(labels, dtype=object)
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    picks = []
    for code in range(codes.max() + 1):
        rows = np.flatnonzero(codes == code)
        quota = min(len(rows), max(floor, round(len(rows) * size / n)))
        picks.append(rng.choice(rows, size=quota, replace=False))
    return np.sort(np.concatenate(picks))


def validate_for_split(labels: pd.Series, label_column: str, test_size: float,
                       validation_size: float) -> None:
    """Fail early, with the fix, when a stratified train/validation/test split is impossible."""
    if not 0 < test_size < 1 or not 0 <= validation_size < 1 or test_size + validation_size >= 1:
        raise BadInputError(
            f"test size {test_size} and validation size {validation_size} must be fractions "
            f"whose sum is below 1"
        )
    counts = labels.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "?"
        raise BadInputError(
            f"label column {label_column!r} has a single class ({only!r}); a classifier needs at "
            f"least two classes: check --label-column or add rows of the other classes"
        )
    needed = 3 if validation_size > 0 else 2
    rare = counts[counts < needed]
    if len(rare):
        shown = ", ".join(f"{k!r} ({v})" for k, v in rare.head(10).items())
        raise BadInputError(
            f"too few rows per class for a stratified split: {shown}; every class needs at least "
            f"{needed} rows: add rows or remove those classes"
        )
    n, k = len(labels), len(counts)
    if int(n * test_size) < k or (validation_size > 0 and int(n * validation_size) < k):
        raise BadInputError(
            f"{n} rows are too few to hold out every one of the {k} classes in the test/validation "
            f"split; add rows or raise the test/validation sizes (TEXTOPS_DATA_TEST_SIZE, "
            f"TEXTOPS_DATA_VALIDATION_SIZE)"
        )


def stable_fractions(texts: pd.Series, seed: int) -> np.ndarray:
    """A number in [0, 1) per row that depends only on the row's text and the seed."""
    salt = f"{seed}\x1f".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(salt + t.encode("utf-8", "surrogatepass"),
                                        digest_size=8).digest(), "big") / 2.0**64
         for t in texts.astype(str)),
        dtype=float, count=len(texts),
    )


def assign_partitions(fractions: np.ndarray, labels: np.ndarray, test_size: float,
                      validation_size: float) -> np.ndarray:
    """'test' / 'validation' / 'train' per row from its stable fraction.

    A row's partition depends on its own text only, so it never moves when rows are added to the
    file, and duplicate texts always land together: a test row never reaches any registered
    model, and champion comparisons in later runs stay fair. Each class is guaranteed a row in
    every partition (taken by smallest fraction), which only matters for tiny classes.
    """
    part = np.where(fractions < test_size, "test",
                    np.where(fractions < test_size + validation_size, "validation", "train"))
    part = part.astype(object)
    wanted = ["test", "validation"] if validation_size > 0 else ["test"]
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        for target in wanted + ["train"]:
            if (part[rows] == target).any():
                continue
            counts = {p: int((part[rows] == p).sum()) for p in ("train", "validation", "test")}
            donors = [r for r in rows if counts[part[r]] > 1]
            if not donors:
                continue
            pick = min(donors, key=lambda r: fractions[r]) if target != "train" \
                else max(donors, key=lambda r: fractions[r])
            part[pick] = target
    return part


def split_dataset(texts: pd.Series, labels: pd.Series, text_column: str, test_size: float,
                  validation_size: float, seed: int) -> Split:
    """Train / validation / test split by a stable hash of each text (see assign_partitions).

    Shares follow ``test_size`` and ``validation_size`` per class up to hashing noise; row order
    inside each part follows the input.
    """
    labels = pd.Series(np.asarray(labels, dtype=object)).reset_index(drop=True)
    texts = pd.Series(np.asarray(texts, dtype=object)).reset_index(drop=True)
    part = assign_partitions(stable_fractions(texts, seed), labels.to_numpy(), test_size,
                             validation_size)
    frame = pd.DataFrame({text_column: texts})

    def take(name: str):
        mask = part == name
        return frame[mask].reset_index(drop=True), labels[mask].reset_index(drop=True)

    x_train, y_train = take("train")
    x_test, y_test = take("test")
    x_val = y_val = None
    if validation_size > 0:
        x_val, y_val = take("validation")
    return Split(x_train, y_train, x_val, y_val, x_test, y_test)
