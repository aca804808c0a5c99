"""Batch scoring of a CSV: streamed chunks, optional worker processes, ordered output, resume.

Output bytes do not depend on the number of workers: every chunk is formatted the same way and
written in input order. Progress is kept beside the output as ``.<name>.partial`` (the rows
written so far) and ``.<name>.partial.json`` (the manifest: input, model version, chunk size,
chunks and bytes done). Only a complete file is renamed to the output name.

Formats, by the output's extension: ``.csv``; ``.csv.gz`` (each chunk one gzip member, so the
concatenation is one valid gzip file); ``.parquet`` (each chunk an Arrow IPC stream in the
partial file, turned into one Parquet row group per chunk once every chunk is done).
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from common import BadInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to score a chunk (picklable)."""

    model_path: str
    text_column: str
    id_columns: tuple[str, ...]
    model_version: str
    proba_columns: bool
    explain: int
    format: str = "csv"  # one of OUTPUT_FORMATS' values


@dataclass
class Manifest:
    input: str
    input_size: int
    input_mtime_ns: int
    model_name: str
    model_version: str
    chunk_size: int
    options: dict[str, Any]
    chunks_done: int = 0
    bytes_done: int = 0
    rows_done: int = 0
    segments: list[int] = field(default_factory=list)  # bytes per chunk (Parquet only)


OUTPUT_FORMATS = {".csv.gz": "csv.gz", ".csv": "csv", ".parquet": "parquet"}


def output_format(path: Path) -> str | None:
    """The output format chosen by the file name's extension, or None when unsupported."""
    name = path.name.lower()
    return next((fmt for ext, fmt in OUTPUT_FORMATS.items() if name.endswith(ext)), None)


def partial_paths(output: Path) -> tuple[Path, Path]:
    return (output.with_name(f".{output.name}.partial"),
            output.with_name(f".{output.name}.partial.json"))


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def load_model(path: str):
    """Load a downloaded MLflow sklearn model folder with skops directly.

    Same trusted-type list as ``mlflow.sklearn.load_model`` (read from MLmodel), without
    importing MLflow: a worker then needs ~220 MB less memory."""
    import sys

    import skops.io as sio
    import yaml

    from tracking import refuse_unsafe

    folder = Path(path)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"].get("sklearn", {})
    refuse_unsafe(flavor, path)
    code = folder / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.append(str(code))  # textprep.py shipped with the model; the project's wins
    return sio.load(folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types", []))


def _init_worker(job: Job) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    _WORKER["job"] = job
    _WORKER["model"] = single_threaded(load_model(job.model_path))


def single_threaded(model):
    """One scoring thread per worker: the workers already fill the cores, and CatBoost's own
    threads on top of them only add contention."""
    steps = getattr(model, "steps", [])
    for _, step in steps:
        if hasattr(step, "thread_count"):
            step.thread_count = 1
    return model


def format_chunk(model, job: Job, chunk: pd.DataFrame, first: bool) -> tuple[bytes, int]:
    """One chunk scored and rendered as CSV bytes; also returns the blank-text count."""
    import modeling

    scored = modeling.score_frame(model, chunk, job.text_column, list(job.id_columns),
                                  job.model_version, job.proba_columns, job.explain)
    return render_chunk(scored, job, first)


def render_chunk(scored: pd.DataFrame, job: Job, first: bool) -> tuple[bytes, int]:
    """Scored rows as the output format's bytes; also returns the blank-text count."""
    blank = int(scored["prediction"].isna().sum())
    if job.format == "parquet":
        return arrow_segment(scored), blank
    data = scored.to_csv(header=first, index=False, float_format="%.6f",
                         lineterminator="\n").encode("utf-8")
    if job.format == "csv.gz":
        import gzip

        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same bytes every run
    return data, blank


def arrow_segment(scored: pd.DataFrame) -> bytes:
    """A scored chunk as one compressed Arrow IPC stream. Float columns stay float64, every
    other column is a string column, so every chunk has the same schema (a chunk whose
    predictions are all blank included)."""
    import pyarrow as pa

    schema = pa.schema([(c, pa.float64() if pd.api.types.is_float_dtype(scored[c]) else pa.string())
                        for c in scored.columns])
    table = pa.Table.from_pandas(scored, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_parquet(partial: Path, segments: list[int], destination: Path) -> None:
    """Turn the partial file's Arrow segments into one Parquet file, a row group per chunk,
    reading one segment at a time (memory stays at one chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        with open(partial, "rb") as handle:
            for size in segments:
                table = pa.ipc.open_stream(handle.read(size)).read_all()
                if writer is None:
                    writer = pq.ParquetWriter(destination, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
    finally:
        if writer is not None:
            writer.close()


def _score_in_worker(chunk: pd.DataFrame, first: bool) -> tuple[bytes, int]:
    return format_chunk(_WORKER["model"], _WORKER["job"], chunk, first)


# --------------------------------------------------------------------------------------------
# Main side
# --------------------------------------------------------------------------------------------
def _write_manifest(path: Path, manifest: Manifest) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(manifest)))
    os.replace(tmp, path)


def _resume_point(partial: Path, manifest_path: Path, expected: Manifest, resume: bool) -> Manifest:
    """The manifest to continue from (fresh unless ``resume`` and it matches ``expected``)."""
    if not resume:
        for stale in (partial, manifest_path):
            if stale.exists():
                log.info("removing an unfinished earlier run's %s (pass --resume to continue it)",
                         stale.name)
                stale.unlink()
        return expected
    if not manifest_path.exists() or not partial.exists():
        log.info("nothing to resume: starting from the first row")
        return expected
    try:
        found = Manifest(**json.loads(manifest_path.read_text()))
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"cannot resume: {manifest_path} is unreadable ({exc}); rerun "
                            f"without --resume") from None
    for key in ("input", "input_size", "input_mtime_ns", "model_name", "model_version",
                "chunk_size", "options"):
        if getattr(found, key) != getattr(expected, key):
            raise BadInputError(
                f"cannot resume: the unfinished run used {key}={getattr(found, key)!r}, this "
                f"one {getattr(expected, key)!r}; rerun without --resume to start over")
    if partial.stat().st_size < found.bytes_done:
        raise BadInputError(f"cannot resume: {partial} is shorter than its manifest says; rerun "
                            f"without --resume")
    with open(partial, "r+b") as handle:  # drop a chunk that was being written when killed
        handle.truncate(found.bytes_done)
    log.info("resuming after %d chunks (%d rows)", found.chunks_done, found.rows_done)
    return found


def score_csv(chunks: Iterator[pd.DataFrame], output: Path, job: Job, manifest: Manifest,
              workers: int, resume: bool, on_rows: Callable[[int], None],
              model: Any = None, prescored: bool = False) -> tuple[int, int]:
    """Score every chunk into ``output`` atomically; returns (rows, rows with blank text).

    With ``workers`` > 1 chunks are scored in that many processes, at most two chunks per worker
    in flight, so memory stays flat whatever the input size. ``model`` (already loaded) saves
    the single-worker path a second load. ``prescored``: the chunks are already scored (by
    another engine) and are only written.
    """
    if output.is_dir():
        raise BadInputError(f"output path {output} is a directory; give a file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create output folder {output.parent}: {exc.strerror}") from None
    partial, manifest_path = partial_paths(output)
    state = _resume_point(partial, manifest_path, manifest, resume)
    blank = 0
    try:
        handle = open(partial, "ab" if state.chunks_done else "wb")
    except OSError as exc:
        raise BadInputError(f"cannot write to output folder {output.parent}: {exc.strerror}") from None

    def commit(data: bytes, rows: int) -> None:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        state.chunks_done += 1
        state.bytes_done += len(data)
        state.rows_done += rows
        if job.format == "parquet":
            state.segments.append(len(data))
        _write_manifest(manifest_path, state)
        on_rows(rows)

    ok = False
    try:
        with handle:
            todo = _skip(chunks, state.chunks_done)
            if prescored:
                for index, chunk in todo:
                    data, nblank = render_chunk(chunk, job, index == 0)
                    blank += nblank
                    commit(data, len(chunk))
            elif workers <= 1:
                model = model if model is not None else load_model(job.model_path)
                for index, chunk in todo:
                    data, nblank = format_chunk(model, job, chunk, index == 0)
                    blank += nblank
                    commit(data, len(chunk))
            else:
                blank = _score_parallel(todo, job, workers, commit)
        if state.rows_done == 0:
            raise BadInputError(f"{manifest.input} has a header but no data rows; nothing to score")
        if job.format == "parquet":
            assembled = partial.with_name(partial.name + ".parquet")
            try:
                write_parquet(partial, state.segments, assembled)
                os.replace(assembled, output)
            finally:
                with contextlib.suppress(OSError):
                    assembled.unlink()
            partial.unlink()
        else:
            os.replace(partial, output)
        ok = True
    except BadInputError:
        for leftover in (partial, manifest_path):  # input problems: nothing worth resuming
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    finally:
        if ok:
            with contextlib.suppress(OSError):
                manifest_path.unlink()
    return state.rows_done, blank


def _skip(chunks: Iterator[pd.DataFrame], done: int) -> Iterator[tuple[int, pd.DataFrame]]:
    for index, chunk in enumerate(chunks):
        if index >= done:
            yield index, chunk


def _score_parallel(todo, job: Job, workers: int, commit) -> int:
    blank = 0
    pending: collections.deque[tuple[int, Future]] = collections.deque()
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(job,)) as pool:
        try:
            for index, chunk in todo:
                pending.append((len(chunk), pool.submit(_score_in_worker, chunk, index == 0)))
                while len(pending) >= 2 * workers:
                    rows, future = pending.popleft()
                    data, nblank = future.result()
                    blank += nblank
                    commit(data, rows)
            while pending:
                rows, future = pending.popleft()
                data, nblank = future.result()
                blank += nblank
                commit(data, rows)
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
    return blank
