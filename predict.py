#!/usr/bin/env python
"""Batch-predict a CSV of texts with a registered model version (default: @champion).

The input is streamed in chunks scored by worker processes (one per core by default), so memory
does not grow with the file. The output (.csv, .csv.gz or .parquet, by extension) holds the
chosen id columns, then prediction, probability (of the predicted label) and model_version, in
input order, one row per input row, byte-identical whatever the number of workers. Rows with empty text keep a blank prediction and
probability. Rows are written to a hidden .<output>.partial file and renamed into place at the
end: a failed or killed run never leaves a half-written file under the output name, and
--resume continues a killed run from its last completed chunk.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BadInputError,
    ExitCode,
    add_common_arguments,
    cli_path,
    config_path,
    make_parser,
    run_main,
    start,
)

log = logging.getLogger("predict")
RESERVED_COLUMNS = {"prediction", "probability", "model_version", "top_tokens"}
PROGRESS_EVERY_SECONDS = 10.0


def parse_args(argv: list[str] | None, config: dict[str, Any]):
    p = config["predict"]
    parser = make_parser(
        __doc__,
        epilog="Example: python predict.py --data today.csv --output scored.csv --id-columns tweet_id",
    )
    parser.add_argument("--data", type=cli_path, default=config_path(p["data"]),
                        help="CSV to score [TEXTOPS_PREDICT_DATA]")
    parser.add_argument("--output", type=cli_path, default=config_path(p["output"]),
                        help="output file, written atomically; its extension picks the format: "
                             ".csv, .csv.gz or .parquet [TEXTOPS_PREDICT_OUTPUT]")
    parser.add_argument("--model", default=p["model"],
                        help="model to use: an alias (champion, challenger), 'latest' (newest "
                             "version) or a version number [TEXTOPS_PREDICT_MODEL]")
    parser.add_argument("--id-columns", default=p["id_columns"],
                        help="comma-separated input columns copied to the output "
                             "[TEXTOPS_PREDICT_ID_COLUMNS]")
    parser.add_argument("--chunk-size", type=int, default=p["chunk_size"],
                        help="rows read and scored at a time [TEXTOPS_PREDICT_CHUNK_SIZE]")
    parser.add_argument("--proba", choices=("best", "all"), default=p["proba"],
                        help="best: the probability of the predicted label; all: also one "
                             "proba_<class> column per class [TEXTOPS_PREDICT_PROBA]")
    parser.add_argument("--workers", type=int, default=p["workers"],
                        help="worker processes scoring chunks in parallel; 0 = one per core "
                             "[TEXTOPS_PREDICT_WORKERS]")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last completed chunk (same "
                             "input, model version and options), else start over")
    parser.add_argument("--explain", type=int, default=p["explain"], metavar="N",
                        help="add a top_tokens column: the N tokens pushing most towards each "
                             "row's prediction; 0 = off [TEXTOPS_PREDICT_EXPLAIN]")
    parser.add_argument("--engine", choices=("local", "spark"), default=p["engine"],
                        help="local: worker processes on this machine; spark: "
                             "mlflow.pyfunc.spark_udf on a Spark session (pip install -r "
                             "requirements-spark.txt; no --resume or --explain) "
                             "[TEXTOPS_PREDICT_ENGINE]")
    parser.add_argument("--spark-master", default=p["spark_master"],
                        help="Spark master URL for --engine spark [TEXTOPS_SPARK_MASTER]")
    add_common_arguments(parser, config)
    return parser.parse_args(argv)


def progress_reporter(total_hint: int | None):
    """tqdm on a terminal, a log line every few seconds otherwise (cron, CI)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total_hint, unit="rows", unit_scale=True, file=sys.stderr)
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


def score_with_spark(args, data_path: Path, fmt, output_path: Path, job, manifest, update):
    """The Spark engine: rows scored by mlflow.pyfunc.spark_udf, written by the same writer."""
    import batch
    import spark_engine

    log.info("engine: spark, master %s", args.spark_master)
    spark = spark_engine.spark_session(args.spark_master)
    try:
        chunks = spark_engine.score_chunks(
            spark, data_path, fmt.encoding, fmt.delimiter, job.model_path, job.text_column,
            job.id_columns, job.model_version, job.proba_columns, args.chunk_size)
        return batch.score_csv(chunks, output_path, job, manifest, 1, False, update,
                               prescored=True)
    except BaseException:  # no resume with this engine: nothing worth keeping
        for leftover in batch.partial_paths(output_path):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    config, args = start("predict", parse_args, argv)
    started = time.perf_counter()

    import batch
    import dataio
    import tracking

    if args.data is None or args.output is None:
        raise BadInputError("no input or output given; pass --data PATH and --output PATH")
    data_path, output_path = Path(args.data), Path(args.output)
    text_col = config["data"]["text_column"]
    id_columns = [c.strip() for c in str(args.id_columns or "").split(",") if c.strip()]
    clash = RESERVED_COLUMNS & set(id_columns)
    if clash:
        raise BadInputError(f"id column(s) {sorted(clash)} clash with output columns; rename them")
    if args.chunk_size < 1:
        raise BadInputError(f"--chunk-size must be positive, got {args.chunk_size}")
    if args.proba not in ("best", "all"):
        raise BadInputError(f"--proba / TEXTOPS_PREDICT_PROBA must be best or all, got {args.proba!r}")
    output_format = batch.output_format(output_path)
    if output_format is None:
        raise BadInputError(f"output {output_path.name} has an unsupported extension; use .csv, "
                            f".csv.gz (gzip-compressed) or .parquet")
    if output_format == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise BadInputError("a .parquet output needs pyarrow (pip install pyarrow); or write "
                                ".csv / .csv.gz") from None
    if args.engine not in ("local", "spark"):
        raise BadInputError(f"--engine / TEXTOPS_PREDICT_ENGINE must be local or spark, got "
                            f"{args.engine!r}")
    if args.engine == "spark":
        if args.resume or args.explain:
            raise BadInputError("--resume and --explain work with --engine local only")
        import spark_engine

        spark_engine.require_pyspark()
    if data_path.resolve() == output_path.resolve():
        raise BadInputError("--output is the input file; choose another output path")
    log.info("predict: data=%s output=%s model=%s@%s", data_path, output_path,
             config["mlflow"]["model_name"], args.model)

    # Input problems are reported before the model is even looked up.
    dataio.check_readable_file(data_path)
    fmt = dataio.detect_format(data_path, config["data"]["encoding"], config["data"]["delimiter"])
    header = dataio.read_header(data_path, fmt)
    dataio.require_columns(header, {text_col: "--text-column",
                                    **{c: "--id-columns" for c in id_columns}}, data_path)

    client = tracking.connect(config)
    name = config["mlflow"]["model_name"]
    version = tracking.resolve_version(client, name, args.model)
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    stat = data_path.stat()
    manifest = batch.Manifest(
        input=str(data_path.resolve()), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
        model_name=name, model_version=version.version, chunk_size=args.chunk_size,
        options={"text_column": text_col, "id_columns": id_columns, "proba":
                 args.proba, "explain": int(args.explain)})

    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        local_model = tracking.download_model(name, version.version, tmp)
        pipeline = tracking.load_pipeline(name, version.version, uri=local_model)
        log.info("using %s v%s (requested %r, run %s, %d classes), %s", name,
                 version.version, args.model, version.run_id, len(pipeline.classes_),
                 f"{workers} worker(s)" if args.engine == "local" else "engine spark")
        job = batch.Job(local_model, text_col, tuple(id_columns), version.version,
                        args.proba == "all", int(args.explain),
                        format=output_format)
        usecols = list(dict.fromkeys([text_col, *id_columns]))
        scoring_started = time.perf_counter()
        update, close = progress_reporter(None)
        try:
            if args.engine == "spark":
                rows, blank = score_with_spark(args, data_path, fmt, output_path, job, manifest,
                                               update)
            else:
                rows, blank = batch.score_csv(
                    dataio.iter_table(data_path, fmt, args.chunk_size, usecols), output_path,
                    job, manifest, workers, args.resume, update,
                    model=pipeline if workers == 1 else None)
        finally:
            close()

    scoring = time.perf_counter() - scoring_started
    if blank:
        log.warning("%d rows had empty text: their prediction and probability are blank", blank)
    log.info("wrote %d rows to %s with %s v%s: %.1f s in all, %.1f s reading+scoring+writing "
             "(%.0f rows/s)", rows, output_path, name, version.version,
             time.perf_counter() - started, scoring, rows / max(scoring, 1e-9))
    print(f"{rows} rows scored with {name} v{version.version} -> {output_path}")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main("predict.py", main))
