"""What predict.py does: check the options and the input (before the registry is touched),
resolve the model version once, download it once, and write the predictions with the chosen
engine (worker processes, or Spark)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from textops.errors import BadInputError
from textops.files import refuse_overwriting
from textops import batch, inputs, locking, registry, spark
from textops.columns import Columns, MODEL_VERSION, OUTPUT_COLUMNS, PREDICTION, PROBA_PREFIX
from textops.settings import Settings, Tracking, columns

log = logging.getLogger(__name__)

RESERVED_COLUMNS = set(OUTPUT_COLUMNS)
PROGRESS_EVERY_SECONDS = 10.0


@dataclass(frozen=True, kw_only=True)
class PredictJob:
    """One predict.py run, resolved from the settings and flags."""

    data: Path
    output: Path
    model: str  # alias, 'latest' or version
    columns: Columns  # the text column and the id columns copied to the output
    chunk_size: int
    proba_all: bool
    workers: int
    explain: int
    engine: str
    spark_master: str
    resume: bool
    output_format: str
    lock_wait: float
    excel_safe: bool
    encoding: str
    delimiter: str
    tracking: Tracking
    # where the run reads and writes, as logged and as Spark is given it: the resolved local
    # path, or a Hadoop-FS URI (--engine spark only)
    source: str
    target: str
    distributed: bool  # the executors write a folder of parts (else one local file)
    spark_format: str
    partition_by: tuple[str, ...]


def make_job(settings: Settings, resume: bool) -> PredictJob:
    """The run's options, validated (BadInputError names the flag to fix)."""
    p = settings.predict
    if not p.data or not p.output:
        raise BadInputError("no input or output given; pass --data PATH and --output PATH")
    uris = {flag: value for flag, value in (("--data", p.data), ("--output", p.output))
            if spark.is_uri(value)}
    if uris and p.engine != "spark":
        raise BadInputError(f"{' and '.join(uris)} {', '.join(uris.values())} is a Hadoop-FS URI, "
                            "which only Spark reads and writes; add --engine spark")
    data_path = settings.path(p.data) if "--data" not in uris else Path(p.data)
    output = settings.path(p.output) if "--output" not in uris else Path(p.output)
    cols = settings.columns(p.id_columns)
    id_columns = cols.ids
    clash = [c for c in id_columns if c in RESERVED_COLUMNS or c.startswith(PROBA_PREFIX)]
    if clash:
        raise BadInputError(f"id column(s) {clash} would be overwritten by, or mistaken for, the "
                            f"output columns ({', '.join(OUTPUT_COLUMNS)}, {PROBA_PREFIX}<class>); "
                            f"rename them in the input")
    output_format = batch.output_format(output)
    distributed = p.engine == "spark" and ("--output" in uris or output_format not in
                                           ("csv", "csv.gz"))
    partition_by = columns(p.partition_by)
    if partition_by and not distributed:
        raise BadInputError("--partition-by needs --engine spark and an output folder or URI")
    unknown = [c for c in partition_by if c not in (*id_columns, PREDICTION, MODEL_VERSION)]
    if unknown:
        raise BadInputError(f"--partition-by {unknown} is not an output column; partition by an "
                            f"--id-columns column, prediction or model_version")
    if output_format is None and not distributed:
        raise BadInputError(f"output {output.name} has an unsupported extension; use .csv, "
                            f".csv.gz (gzip-compressed) or .parquet (or --engine spark to "
                            f"write a folder of parts)")
    if p.engine == "spark":
        if resume or p.explain:
            raise BadInputError("--resume and --explain work with --engine local only")
        spark.require_pyspark()
    refuse_overwriting({"--data": data_path}, {"--output": output})
    d = settings.data
    return PredictJob(
        data=data_path, output=output, model=p.model, columns=cols,
        chunk_size=p.chunk_size, proba_all=p.proba == "all",
        workers=p.workers if p.workers > 0 else (os.cpu_count() or 1), explain=p.explain,
        engine=p.engine, spark_master=p.spark_master, resume=resume,
        output_format=output_format or p.spark_format, lock_wait=p.lock_wait,
        excel_safe=p.excel_safe, encoding=d.encoding,
        delimiter=d.delimiter, tracking=settings.tracking,
        source=uris.get("--data", str(data_path)), target=uris.get("--output", str(output)),
        distributed=distributed, spark_format=p.spark_format, partition_by=partition_by)


def progress_reporter() -> tuple[Callable[[int], None], Callable[[], None]]:
    """tqdm on a terminal, a log line every few seconds otherwise (cron, CI)."""
    if sys.stderr.isatty():
        bar = tqdm(unit="rows", unit_scale=True, file=sys.stderr)
        return bar.update, bar.close
    state = {"rows": 0, "last": time.perf_counter(), "start": time.perf_counter()}

    def update(rows: int) -> None:
        state["rows"] += rows
        now = time.perf_counter()
        if now - state["last"] >= PROGRESS_EVERY_SECONDS:
            state["last"] = now
            log.info("progress: %d rows scored (%.0f rows/s)", state["rows"],
                     state["rows"] / max(now - state["start"], 1e-9))

    return update, lambda: None


def predict(job: PredictJob) -> tuple[str, int, int]:
    """Score the file; returns (model version, rows written, rows with blank text)."""
    text_col, name = job.columns.text, job.tracking.model_name
    log.info("predict: data=%s output=%s model=%s@%s", job.source, job.target, name, job.model)
    if job.distributed:
        return _distributed(job)
    source = _checked_input(job)  # input problems before the model is even looked up
    client = registry.connect(job.tracking)
    version = registry.resolve_version(client, name, job.model)
    stat = job.data.stat()
    manifest = batch.Manifest(
        input=str(job.data.resolve()), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
        model_name=name, model_version=version.version, chunk_size=job.chunk_size,
        options={"text_column": text_col, "id_columns": list(job.columns.ids),
                 "proba": "all" if job.proba_all else "best", "explain": job.explain,
                 **({"excel_safe": True} if job.excel_safe else {})})
    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        batch_job = batch.with_side_columns(batch.ScoringSpec(
            model_path=registry.download_model(name, version.version, tmp), columns=job.columns,
            model_version=version.version, proba_columns=job.proba_all, explain=job.explain, format=job.output_format,
            model_name=name, excel_safe=job.excel_safe))
        source.require(batch.side_columns_needed(batch_job))  # before anything is written
        log.info("using %s v%s (requested %r, run %s), %s", name, version.version, job.model,
                 version.run_id, f"{job.workers} worker(s)" if job.engine == "local"
                 else f"engine spark, master {job.spark_master}")
        update, close = progress_reporter()
        started = time.perf_counter()
        try:
            if job.engine == "spark":
                rows, blank = _with_spark(job, source.format, batch_job, manifest, update)
            else:
                chunks = source.chunks(job.chunk_size, batch_job.read_columns)
                rows, blank = batch.write_predictions(
                    chunks, job.output, batch_job, manifest,
                    batch.Execution(workers=job.workers, resume=job.resume, on_rows=update,
                                    lock_wait=job.lock_wait,
                                    before_commit=source.require_unchanged))
        finally:
            close()
    seconds = time.perf_counter() - started
    log.info("scored %d rows in %.1f s reading+scoring+writing (%.0f rows/s, model loading "
             "included)", rows, seconds, rows / max(seconds, 1e-9))
    return version.version, rows, blank


def _input_columns(job: PredictJob) -> dict[str, str]:
    """The input columns the run needs, each with the flag that names it."""
    return {job.columns.text: "--text-column", **{c: "--id-columns" for c in job.columns.ids}}


def _checked_input(job: PredictJob) -> inputs.Input:
    """A local input, checked as every engine needs it (readable, its format, its columns);
    Spark also needs a compressed CSV to carry its extension."""
    source = inputs.open_input(job.data, job.encoding, job.delimiter)
    fmt = source.format
    if job.engine == "spark" and fmt.container not in ("csv", "parquet") and \
            not job.data.name.lower().endswith((".gz", ".bz2", ".xz", ".zst")):
        raise BadInputError(f"{job.data} is {fmt.container}-compressed without the matching "
                            f"extension, which Spark needs to read it; rename it (e.g. "
                            f"{job.data.name}.gz) or use --engine local")
    source.require(_input_columns(job))
    return source


def _distributed(job: PredictJob) -> tuple[str, int, int]:
    """``--engine spark`` into a folder or URI: the executors read, score and write; the
    driver only plans the job, commits it and counts the rows. A local input is checked first
    as for the local engine (format, columns) before the registry is touched."""
    name = job.tracking.model_name
    fmt = None if spark.is_uri(job.source) else _checked_input(job).format  # a URI: Spark checks it
    client = registry.connect(job.tracking)
    version = registry.resolve_version(client, name, job.model)
    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        batch_job = batch.with_side_columns(batch.ScoringSpec(
            model_path=registry.download_model(name, version.version, tmp), columns=job.columns,
            model_version=version.version, proba_columns=job.proba_all, explain=0, format=job.spark_format, model_name=name))
        log.info("using %s v%s (requested %r, run %s), engine spark, master %s, writing %s parts "
                 "from the executors", name, version.version, job.model, version.run_id,
                 job.spark_master, job.spark_format)
        started = time.perf_counter()
        session = spark.spark_session(job.spark_master)
        try:
            frame = spark.read_source(session, job.source, fmt)
            inputs.require_columns(frame.columns, {**_input_columns(job),
                                                   **batch.side_columns_needed(batch_job)}, job.source)
            scored = spark.scored_frame(session, frame, batch_job)
            with _output_lock(job):
                written = spark.write_distributed(session, scored, job.target, job.spark_format,
                                                  job.partition_by)
        finally:
            session.stop()
    seconds = time.perf_counter() - started
    log.info("the executors scored and wrote %d rows to %s in %.1f s (%.0f rows/s, model loading "
             "included)", written.rows, written.location, seconds, written.rows / max(seconds, 1e-9))
    return version.version, written.rows, written.blank


def _output_lock(job: PredictJob):
    """A local output folder gets the local engine's per-output lock (a second run exits 5 or
    waits --lock-wait); a URI has no local lock: let one scheduler own each output."""
    if spark.is_uri(job.target):
        return contextlib.nullcontext()
    return locking.exclusive(batch.lock_path(job.output), job.lock_wait,
                             f"predict.py writing {job.output.name}", remove=True)


def _with_spark(job: PredictJob, fmt: inputs.CsvFormat, batch_job: batch.ScoringSpec,
                manifest: batch.Manifest, update: Callable[[int], None]) -> tuple[int, int]:
    """The Spark engine: rows scored by mlflow.pyfunc.spark_udf, written by the same writer."""
    session = spark.spark_session(job.spark_master)
    try:
        chunks = spark.score_chunks(session, job.data, fmt, batch_job, job.chunk_size)
        # no resume with this engine: a failed run's partial file is not worth keeping
        return batch.write_predictions(chunks, job.output, batch_job, manifest,
                                       batch.Execution(on_rows=update, lock_wait=job.lock_wait,
                                                 resumable=False), prescored=True)
    finally:
        session.stop()
