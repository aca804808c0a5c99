"""Batch scoring of a CSV: streamed chunks, optional worker processes, ordered output, resume.

Output bytes do not depend on the number of workers: every chunk is formatted the same way and
written in input order. Progress is kept beside the output as ``.<name>.partial`` (the rows
written so far) and ``.<name>.partial.json`` (the manifest: input, model version, chunk size,
chunks and bytes done). Only a complete file is renamed to the output name.
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
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
    gzip: bool = False  # each chunk a gzip member: the concatenation is one valid .gz file


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

    folder = Path(path)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    if flavor.get("serialization_format") != "skops":
        import mlflow  # pickle-based models: let MLflow decide how to load them

        return mlflow.sklearn.load_model(path)
    code = folder / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.append(str(code))  # textprep.py shipped with the model; the project's wins
    return sio.load(folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types", []))


def _init_worker(job: Job) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    _WORKER["job"] = job
    _WORKER["model"] = load_model(job.model_path)


def format_chunk(model, job: Job, chunk: pd.DataFrame, first: bool) -> tuple[bytes, int]:
    """One chunk scored and rendered as CSV bytes; also returns the blank-text count."""
    import modeling

    scored = modeling.score_frame(model, chunk, job.text_column, list(job.id_columns),
                                  job.model_version, job.proba_columns, job.explain)
    text = scored.to_csv(header=first, index=False, float_format="%.6f", lineterminator="\n")
    data = text.encode("utf-8")
    if job.gzip:
        import gzip

        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same bytes every run
    return data, int(scored["prediction"].isna().sum())


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
    for field in ("input", "input_size", "input_mtime_ns", "model_name", "model_version",
                  "chunk_size", "options"):
        if getattr(found, field) != getattr(expected, field):
            raise BadInputError(
                f"cannot resume: the unfinished run used {field}={getattr(found, field)!r}, this "
                f"one {getattr(expected, field)!r}; rerun without --resume to start over")
    if partial.stat().st_size < found.bytes_done:
        raise BadInputError(f"cannot resume: {partial} is shorter than its manifest says; rerun "
                            f"without --resume")
    with open(partial, "r+b") as handle:  # drop a chunk that was being written when killed
        handle.truncate(found.bytes_done)
    log.info("resuming after %d chunks (%d rows)", found.chunks_done, found.rows_done)
    return found


def score_csv(chunks: Iterator[pd.DataFrame], output: Path, job: Job, manifest: Manifest,
              workers: int, resume: bool, on_rows: Callable[[int], None],
              model: Any = None) -> tuple[int, int]:
    """Score every chunk into ``output`` atomically; returns (rows, rows with blank text).

    With ``workers`` > 1 chunks are scored in that many processes, at most two chunks per worker
    in flight, so memory stays flat whatever the input size. ``model`` (already loaded) saves
    the single-worker path a second load.
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
        _write_manifest(manifest_path, state)
        on_rows(rows)

    ok = False
    try:
        with handle:
            todo = _skip(chunks, state.chunks_done)
            if workers <= 1:
                model = model if model is not None else load_model(job.model_path)
                for index, chunk in todo:
                    data, nblank = format_chunk(model, job, chunk, index == 0)
                    blank += nblank
                    commit(data, len(chunk))
            else:
                blank = _score_parallel(todo, job, workers, commit)
        if state.rows_done == 0:
            raise BadInputError(f"{manifest.input} has a header but no data rows; nothing to score")
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
