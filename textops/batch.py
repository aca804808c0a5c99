"""Batch scoring of a CSV: streamed chunks, optional worker processes, ordered output, resume.

Output bytes do not depend on the number of workers: every chunk is formatted the same way and
written in input order. Progress is kept beside the output as ``.<name>.partial`` (the rows
written so far) and ``.<name>.partial.json`` (the manifest: input, model version, chunk size,
chunks and bytes done). Only a complete file is renamed to the output name.

Scoring a chunk (:func:`output_rows`) is the same in every engine and worker; the model is loaded
once per process through ``textops.registry.load_pipeline``.

Formats, by the output's extension: ``.csv``; ``.csv.gz`` (each chunk one gzip member, so the
concatenation is one valid gzip file); ``.parquet`` (each chunk an Arrow IPC stream in the
partial file, turned into one Parquet row group per chunk once every chunk is done).
"""
from __future__ import annotations

import collections
from collections import Counter
import contextlib
import gzip
import json
import logging
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textops.columns import (FLOAT_FORMAT, MODEL_VERSION, PREDICTION, PROBA_PREFIX, PROBABILITY,
                             TOP_TOKENS, Columns)
from textops.data import clean_text, is_blank
from textops.diagnostics import top_tokens
from textops.model import side_columns
from textops.errors import BadInputError
from textops.files import prepare_output
from textops.locking import exclusive
from textops.workers import die_with_parent
from textops.registry import load_pipeline, model_inputs
from textprep import top_class

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ScoringSpec:
    """Everything a worker needs to score a chunk (picklable): the downloaded model and what to
    write for each row. Not a job: predict.py's job is scoring.PredictJob."""

    model_path: str  # a downloaded model folder
    columns: Columns  # the text the model reads, the id columns copied to each output row
    model_version: str
    proba_columns: bool
    explain: int
    format: str = "csv"  # one of OUTPUT_FORMATS' values
    model_name: str = "model"  # for messages
    excel_safe: bool = False  # CSV: cells that a spreadsheet would run as formulas get a '
    # a model reading side columns (registry.ModelInputs): its own name for the text column
    # and the side columns, which go to it with the text; empty: a text-only model
    model_text: str = ""
    side_columns: tuple[str, ...] = ()
    side_kinds: tuple[str, ...] = ()  # categorical / numeric, one per side column

    @property
    def read_columns(self) -> list[str]:
        """The input columns a chunk needs: the text, the id and the side columns."""
        return list(dict.fromkeys([self.columns.text, *self.columns.ids, *self.side_columns]))


def with_side_columns(spec: ScoringSpec) -> ScoringSpec:
    """``spec`` for its downloaded model: the side columns it reads, if any (its MLmodel says)."""
    reads = model_inputs(spec.model_path)
    if not reads.side:
        return spec
    log.info("the model reads the side columns %s beside the text",
             ", ".join(f"{c} ({k})" for c, k in reads.side.items()))
    return replace(spec, model_text=reads.text, side_columns=tuple(reads.side),
                   side_kinds=tuple(reads.side.values()))


def side_columns_needed(spec: ScoringSpec) -> dict[str, str]:
    """The side columns the model reads, each with how to fix its absence."""
    return {c: f"the model {spec.model_name} v{spec.model_version} reads it beside the text: "
               f"add it to the input, or score with a text-only version (--model)"
            for c in spec.side_columns}


def model_input(chunk: pd.DataFrame, texts: pd.Series, job: ScoringSpec) -> pd.Series | pd.DataFrame:
    """What the pipeline is given for ``chunk`` (``texts``: its cleaned text column): the
    texts, or for a model with side columns a frame of the text (under the model's own name
    for it) and the side columns as read."""
    if not job.side_columns:
        return texts
    frame = chunk[list(job.side_columns)].copy()
    frame.insert(0, job.model_text, texts)
    return frame


@dataclass(frozen=True)
class Execution:
    """How to run a job: worker processes (1 = in this process), resume an unfinished run,
    ``on_rows`` called after each written chunk, and an already loaded ``model`` (saves the
    single-process path a second load)."""

    workers: int = 1
    resume: bool = False
    on_rows: Callable[[int], None] = lambda rows: None
    model: Any = None
    lock_wait: float = 0.0  # seconds to wait for another run writing the same output
    resumable: bool = True  # False: a failed run's partial file is removed (nothing can resume it)
    # called once every row is written, before the output is published: raising there (e.g.
    # the input changed while it was read) removes the partial output instead
    before_commit: Callable[[], None] = lambda: None


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


def lock_path(output: Path) -> Path:
    """The lock a run holds while it writes ``output`` (its partial file and manifest included)."""
    return output.with_name(f".{output.name}.lock")


# --------------------------------------------------------------------------------------------
# Scoring one chunk (in a worker or in this process)
# --------------------------------------------------------------------------------------------
def output_rows(pipeline: Any, chunk: pd.DataFrame, job: ScoringSpec) -> pd.DataFrame:
    """Batch-prediction output for one chunk, rows in input order.

    Columns: the id columns, ``prediction`` (label in the training data's spelling),
    ``probability`` (of that label), ``model_version``, optionally ``proba_<class>`` and
    ``top_tokens`` (the ``explain`` tokens contributing most to the prediction).
    Rows whose text is blank are kept with a blank prediction and probability: the model is not
    asked to guess from nothing. Labels and probabilities follow the pyfunc flavor's rule
    (``textprep.top_class``).
    """
    texts = clean_text(chunk[job.columns.text])
    scorable = ~is_blank(texts)
    classes = np.asarray(pipeline.classes_).astype(str)
    prediction = np.full(len(chunk), None, dtype=object)
    probability = np.full(len(chunk), np.nan)
    proba = np.full((len(chunk), len(classes)), np.nan)
    given = model_input(chunk, texts, job)
    if scorable.any():  # the texts go to the pipeline as they are (its first step reads them)
        found = np.asarray(pipeline.predict_proba(given[scorable]), dtype=np.float64)
        proba[scorable] = found
        prediction[scorable], probability[scorable] = top_class(found, classes)
    out = pd.DataFrame({c: chunk[c].to_numpy() for c in job.columns.ids})
    out[PREDICTION] = prediction
    out[PROBABILITY] = probability
    out[MODEL_VERSION] = str(job.model_version)
    if job.proba_columns:
        for j, c in enumerate(classes):
            out[PROBA_PREFIX + c] = proba[:, j]
    if job.explain > 0:
        out[TOP_TOKENS] = top_tokens(pipeline, given, prediction, job.explain)
    return out


def surprises(pipeline: Any, chunk: pd.DataFrame, job: ScoringSpec) -> Counter:
    """Per side column, the rows of ``chunk`` with a category unseen in training or a
    non-number in a numeric column (empty for a text-only model)."""
    encoder = side_columns(pipeline) if job.side_columns else None
    return Counter() if encoder is None else Counter(encoder.surprises(chunk))


def _score_chunk(pipeline: Any, chunk: pd.DataFrame, job: ScoringSpec, first: bool
                 ) -> tuple[bytes, int, Counter]:
    data, blank = render_chunk(output_rows(pipeline, chunk, job), job, first)
    return data, blank, surprises(pipeline, chunk, job)


def render_chunk(scored: pd.DataFrame, job: ScoringSpec, first: bool) -> tuple[bytes, int]:
    """Scored rows as the output format's bytes; also returns the blank-text count."""
    blank = int(scored[PREDICTION].isna().sum())
    if job.format == "parquet":
        return arrow_segment(scored), blank
    if job.excel_safe:
        scored = excel_safe(scored)
    data = scored.to_csv(header=first, index=False, float_format=FLOAT_FORMAT,
                         lineterminator="\n").encode("utf-8")
    if job.format == "csv.gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same bytes every run
    return data, blank


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or
    CR: OWASP's CSV-injection list) prefixed with a single quote; numbers and other cells
    unchanged."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]) or pd.api.types.is_integer_dtype(out[column]):
            continue
        values = out[column]
        risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        if risky.any():
            out[column] = values.where(~risky, "'" + values.astype(str))
    return out


def arrow_segment(scored: pd.DataFrame) -> bytes:
    """A scored chunk as one compressed Arrow IPC stream. Float columns stay float64, every
    other column is a string column, so every chunk has the same schema (a chunk whose
    predictions are all blank included)."""
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


def single_threaded(model: Any) -> Any:
    """One scoring thread per worker: the workers already fill the cores, and CatBoost's own
    threads on top of them only add contention."""
    for _, step in getattr(model, "steps", []):
        if hasattr(step, "thread_count"):
            step.thread_count = 1
    return model


def load_job_model(job: ScoringSpec) -> Any:
    return load_pipeline(job.model_name, job.model_version, job.model_path)


_WORKER: dict[str, Any] = {}


def _worker_model(job: ScoringSpec) -> Any:
    """The worker's model, loaded by its first task (so a load failure reaches the main process
    as the task's exception, with its message, not as a broken pool)."""
    if "model" not in _WORKER:
        warnings.filterwarnings("ignore")
        _WORKER["model"] = single_threaded(load_job_model(job))
    return _WORKER["model"]


def _warm_up(job: ScoringSpec) -> None:
    _worker_model(job)


def _score_in_worker(job: ScoringSpec, chunk: pd.DataFrame, first: bool
                     ) -> tuple[bytes, int, Counter]:
    return _score_chunk(_worker_model(job), chunk, job, first)


def class_probabilities(model: Any, texts: pd.Series) -> pd.DataFrame:
    """Each text's probability of each class (columns: the model's classes as text), indexed
    like ``texts``."""
    proba = model.predict_proba(texts)
    return pd.DataFrame(proba, index=texts.index, columns=[str(c) for c in model.classes_])


def _proba_in_worker(job: ScoringSpec, texts: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return class_probabilities(_worker_model(job), texts)


def _monitor_input(chunk: pd.DataFrame, job: ScoringSpec) -> pd.Series | pd.DataFrame:
    """What monitor.py's scoring gives the model: the text column as read, or with the side
    columns for a model that reads them (the pipeline's first step cleans the text)."""
    if not job.side_columns:
        return chunk[job.columns.text]
    return model_input(chunk, chunk[job.columns.text], job)


def scored_chunks(chunks: Iterable[pd.DataFrame], job: ScoringSpec, run: Execution = Execution()
                  ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Each chunk with the class probabilities of its texts, in input order, scored by
    ``run.workers`` worker processes (monitor.py on raw texts; only the text column travels to
    them) or in this process."""
    if run.workers <= 1:
        model = run.model if run.model is not None else load_job_model(job)
        for chunk in chunks:
            yield chunk, class_probabilities(model, _monitor_input(chunk, job))
        return
    with _Pool(job, run.workers) as pool:
        yield from pool.ordered(_proba_in_worker,
                                ((chunk, (_monitor_input(chunk, job),)) for chunk in chunks))


# --------------------------------------------------------------------------------------------
# Scorers: in this process, in worker processes, or already scored (another engine)
# --------------------------------------------------------------------------------------------
Scored = tuple[int, bytes, int, Counter]  # rows, bytes to write, rows with blank text, surprises


class _InProcess:
    def __init__(self, job: ScoringSpec, model: Any):
        self.job, self.model = job, model

    def __enter__(self) -> "_InProcess":
        if self.model is None:
            self.model = load_job_model(self.job)
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def scored(self, todo: Iterable[tuple[int, pd.DataFrame]]) -> Iterator[Scored]:
        for index, chunk in todo:
            yield len(chunk), *_score_chunk(self.model, chunk, self.job, index == 0)


class _Prescored(_InProcess):
    def __enter__(self) -> "_Prescored":
        return self

    def scored(self, todo: Iterable[tuple[int, pd.DataFrame]]) -> Iterator[Scored]:
        for index, chunk in todo:
            data, blank = render_chunk(chunk, self.job, index == 0)
            yield len(chunk), data, blank, Counter()


class _Pool:
    """Worker processes, at most two chunks per worker in flight, results in input order."""

    def __init__(self, job: ScoringSpec, workers: int):
        self.job, self.workers = job, workers

    def __enter__(self) -> "_Pool":
        self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=die_with_parent,
                                        initargs=(os.getpid(),))
        try:  # every worker loads the model before any output file is opened
            for ready in [self.pool.submit(_warm_up, self.job) for _ in range(self.workers)]:
                ready.result()
        except BaseException:
            self.pool.shutdown(cancel_futures=True)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(cancel_futures=True)

    def ordered(self, task: Callable[..., Any], items: Iterable[tuple[Any, tuple[Any, ...]]]
                ) -> Iterator[tuple[Any, Any]]:
        """(key, task(job, *args)) for each (key, args) of ``items``, in their order."""
        pending: collections.deque = collections.deque()
        for key, args in items:
            pending.append((key, self.pool.submit(task, self.job, *args)))
            while len(pending) >= 2 * self.workers:
                key, future = pending.popleft()
                yield key, future.result()
        while pending:
            key, future = pending.popleft()
            yield key, future.result()

    def scored(self, todo: Iterable[tuple[int, pd.DataFrame]]) -> Iterator[Scored]:
        tasks = ((len(chunk), (chunk, index == 0)) for index, chunk in todo)
        for rows, (data, blank, unseen) in self.ordered(_score_in_worker, tasks):
            yield rows, data, blank, unseen


def _scorer(job: ScoringSpec, run: Execution, prescored: bool) -> _InProcess | _Pool:
    if prescored:
        return _Prescored(job, None)
    if run.workers <= 1:
        return _InProcess(job, run.model)
    return _Pool(job, run.workers)


# --------------------------------------------------------------------------------------------
# Writing: partial file + manifest, resume, atomic rename
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


def _skip(chunks: Iterable[pd.DataFrame], done: int) -> Iterator[tuple[int, pd.DataFrame]]:
    for index, chunk in enumerate(chunks):
        if index >= done:
            yield index, chunk


def _finish(partial: Path, output: Path, state: Manifest, fmt: str, inode: int) -> None:
    """Rename the complete partial file into place (Parquet: assemble it first). A partial file
    that is not the one this run wrote (``inode``), or not as long, is never published."""
    found = partial.stat()
    if found.st_ino != inode or found.st_size != state.bytes_done:
        raise RuntimeError(f"{partial} is not the file this run wrote ({found.st_size} bytes, "
                           f"{state.bytes_done} written): another process wrote to it; "
                           f"{output} was left as it was")
    if fmt != "parquet":
        os.replace(partial, output)
        return
    assembled = partial.with_name(partial.name + ".parquet")
    try:
        write_parquet(partial, state.segments, assembled)
        os.replace(assembled, output)
    finally:
        with contextlib.suppress(OSError):
            assembled.unlink()
    partial.unlink()


def write_predictions(chunks: Iterable[pd.DataFrame], output: Path, job: ScoringSpec, manifest: Manifest,
                      run: Execution = Execution(), prescored: bool = False) -> tuple[int, int]:
    """Score every chunk and write ``output`` atomically (.csv, .csv.gz or .parquet, by
    ``job.format``); returns (rows, rows with blank text).

    The output is a critical section: the run holds ``.<output>.lock`` from before it touches
    the partial file to after the rename, so a second run on the same output waits
    ``run.lock_wait`` seconds, then fails with exit 5 naming the holder (the kernel drops the
    lock of a killed run, so ``--resume`` works after a crash). The model is loaded (in every
    worker) before any file is opened; each written chunk is synced and recorded in the
    manifest, so ``run.resume`` can continue after a kill. ``prescored``: the chunks are already
    scored (by another engine) and are only written.
    """
    prepare_output(output)
    try:
        with exclusive(lock_path(output), run.lock_wait, f"predict.py writing {output.name}",
                       remove=True):
            return _write_locked(chunks, output, job, manifest, run, prescored)
    except PermissionError as exc:
        raise BadInputError(f"cannot write to output folder {output.parent}: "
                            f"{exc.strerror}") from None


def _write_locked(chunks: Iterable[pd.DataFrame], output: Path, job: ScoringSpec, manifest: Manifest,
                  run: Execution, prescored: bool) -> tuple[int, int]:
    partial, manifest_path = partial_paths(output)
    state = _resume_point(partial, manifest_path, manifest, run.resume)
    blank, unseen = 0, Counter()
    with _scorer(job, run, prescored) as scorer:
        try:
            handle = open(partial, "ab" if state.chunks_done else "wb")
        except OSError as exc:
            raise BadInputError(f"cannot write to output folder {output.parent}: "
                                f"{exc.strerror}") from None
        inode = os.fstat(handle.fileno()).st_ino
        try:
            with handle:
                for rows, data, nblank, chunk_unseen in scorer.scored(
                        _skip(chunks, state.chunks_done)):
                    unseen.update(chunk_unseen)
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                    state.chunks_done += 1
                    state.bytes_done += len(data)
                    state.rows_done += rows
                    if job.format == "parquet":
                        state.segments.append(len(data))
                    _write_manifest(manifest_path, state)
                    blank += nblank
                    run.on_rows(rows)
            if state.rows_done == 0:
                raise BadInputError(f"{manifest.input} has a header but no data rows; nothing "
                                    f"to score")
            run.before_commit()
            _finish(partial, output, state, job.format, inode)
        except BaseException as exc:
            if isinstance(exc, BadInputError) or not run.resumable:  # nothing worth resuming
                for leftover in (partial, manifest_path):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            raise
    with contextlib.suppress(OSError):
        manifest_path.unlink()
    if any(unseen.values()):
        log.warning("side columns: rows scored with a value unseen in training (a new category, "
                    "scored as CatBoost scores one; or a non-number in a numeric column, scored as "
                    "missing): %s", ", ".join(f"{c} {n}" for c, n in unseen.items() if n))
    return state.rows_done, blank
