"""What predict.py does: check the options and the input (before the registry is touched),
resolve the model version once, download it once, and write the predictions with the chosen
engine (worker processes, or Spark)."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

import config as cfg
from common import BadInputError, refuse_overwriting
from textops import batch, data, registry, spark

log = logging.getLogger(__name__)

RESERVED_COLUMNS = {"prediction", "probability", "model_version", "top_tokens"}
PROGRESS_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class PredictJob:
    """One predict.py run, resolved from the configuration and flags."""

    data: Path
    output: Path
    model: str
    id_columns: tuple[str, ...]
    chunk_size: int
    proba_all: bool
    workers: int
    explain: int
    engine: str
    spark_master: str
    resume: bool
    output_format: str
    lock_wait: float = 0.0
    excel_safe: bool = False


def job_from_config(config: dict[str, Any], resume: bool) -> PredictJob:
    """The run's options, validated (BadInputError names the flag to fix)."""
    p = config["predict"]
    if not p["data"] or not p["output"]:
        raise BadInputError("no input or output given; pass --data PATH and --output PATH")
    data_path, output = cfg.resolve_path(p["data"]), cfg.resolve_path(p["output"])
    id_columns = tuple(c.strip() for c in str(p["id_columns"] or "").split(",") if c.strip())
    clash = RESERVED_COLUMNS & set(id_columns)
    if clash:
        raise BadInputError(f"id column(s) {sorted(clash)} clash with output columns; rename them")
    if int(p["chunk_size"]) < 1:
        raise BadInputError(f"--chunk-size must be positive, got {p['chunk_size']}")
    output_format = batch.output_format(output)
    if output_format is None:
        raise BadInputError(f"output {output.name} has an unsupported extension; use .csv, "
                            f".csv.gz (gzip-compressed) or .parquet")
    if p["engine"] == "spark":
        if resume or p["explain"]:
            raise BadInputError("--resume and --explain work with --engine local only")
        spark.require_pyspark()
    refuse_overwriting({"--data": data_path}, {"--output": output})
    workers = int(p["workers"]) if int(p["workers"]) > 0 else (os.cpu_count() or 1)
    return PredictJob(data_path, output, str(p["model"]), id_columns, int(p["chunk_size"]),
                      p["proba"] == "all", workers, int(p["explain"]), p["engine"],
                      p["spark_master"], resume, output_format, float(p["lock_wait"]),
                      bool(p["excel_safe"]))


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


def predict(config: dict[str, Any], job: PredictJob) -> tuple[str, int, int]:
    """Score the file; returns (model version, rows written, rows with blank text)."""
    text_col, name = config["data"]["text_column"], config["mlflow"]["model_name"]
    log.info("predict: data=%s output=%s model=%s@%s", job.data, job.output, name, job.model)
    # Input problems are reported before the model is even looked up.
    data.check_readable_file(job.data)
    fmt = data.detect_format(job.data, config["data"]["encoding"], config["data"]["delimiter"])
    if job.engine == "spark" and fmt.container not in ("csv", "parquet") and \
            not job.data.name.lower().endswith((".gz", ".bz2", ".xz", ".zst")):
        raise BadInputError(f"{job.data} is {fmt.container}-compressed without the matching "
                            f"extension, which Spark needs to read it; rename it (e.g. "
                            f"{job.data.name}.gz) or use --engine local")
    header = data.read_header(job.data, fmt)
    data.require_columns(header, {text_col: "--text-column",
                                  **{c: "--id-columns" for c in job.id_columns}}, job.data)
    client = registry.connect(config)
    version = registry.resolve_version(client, name, job.model)
    stat = job.data.stat()
    manifest = batch.Manifest(
        input=str(job.data.resolve()), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
        model_name=name, model_version=version.version, chunk_size=job.chunk_size,
        options={"text_column": text_col, "id_columns": list(job.id_columns),
                 "proba": "all" if job.proba_all else "best", "explain": job.explain,
                 **({"excel_safe": True} if job.excel_safe else {})})
    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        batch_job = batch.Job(registry.download_model(name, version.version, tmp), text_col,
                              job.id_columns, version.version, job.proba_all, job.explain,
                              format=job.output_format, model_name=name,
                              excel_safe=job.excel_safe)
        log.info("using %s v%s (requested %r, run %s), %s", name, version.version, job.model,
                 version.run_id, f"{job.workers} worker(s)" if job.engine == "local"
                 else f"engine spark, master {job.spark_master}")
        update, close = progress_reporter()
        started = time.perf_counter()
        try:
            if job.engine == "spark":
                rows, blank = _with_spark(job, fmt, batch_job, manifest, update)
            else:
                chunks = data.iter_table(job.data, fmt, job.chunk_size,
                                         list(dict.fromkeys([text_col, *job.id_columns])))
                rows, blank = batch.write_predictions(
                    chunks, job.output, batch_job, manifest,
                    batch.Run(workers=job.workers, resume=job.resume, on_rows=update,
                              lock_wait=job.lock_wait))
        finally:
            close()
    seconds = time.perf_counter() - started
    log.info("scored %d rows in %.1f s reading+scoring+writing (%.0f rows/s, model loading "
             "included)", rows, seconds, rows / max(seconds, 1e-9))
    return version.version, rows, blank


def _with_spark(job: PredictJob, fmt: data.CsvFormat, batch_job: batch.Job,
                manifest: batch.Manifest, update: Callable[[int], None]) -> tuple[int, int]:
    """The Spark engine: rows scored by mlflow.pyfunc.spark_udf, written by the same writer."""
    session = spark.spark_session(job.spark_master)
    try:
        chunks = spark.score_chunks(session, job.data, fmt, batch_job, job.chunk_size)
        # no resume with this engine: a failed run's partial file is not worth keeping
        return batch.write_predictions(chunks, job.output, batch_job, manifest,
                                       batch.Run(on_rows=update, lock_wait=job.lock_wait,
                                                 resumable=False), prescored=True)
    finally:
        session.stop()
