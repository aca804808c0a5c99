#!/usr/bin/env python
"""Batch-predict a CSV of texts with a registered model version (default: @champion).

The input is streamed in chunks scored by worker processes (one per core by default), so memory
does not grow with the file. The output (.csv, .csv.gz or .parquet, by extension) holds the
chosen id columns, then prediction, probability (of the predicted label) and model_version, in
input order, one row per input row, byte-identical whatever the number of workers. Rows with
empty text keep a blank prediction and probability. Rows are written to a hidden
.<output>.partial file and renamed into place at the end: a failed or killed run never leaves a
half-written file under the output name, and --resume continues a killed run from its last
completed chunk. One run at a time writes an output: a second one exits 5 naming the first (or
waits --lock-wait seconds). --excel-safe protects CSV cells that a spreadsheet would run as
formulas.

--engine spark with a folder or URI output (hdfs://, s3a://, file://, ...): Spark reads the
input, its executors score it (mlflow.pyfunc.spark_udf) and write Parquet (or --spark-format
csv) parts, optionally --partition-by COL; the folder appears under the output name only once
the job has committed (_SUCCESS). No row passes through the driver; the id columns identify rows.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from common import ExitCode, make_parser, run_main, start
from textops import scoring

log = logging.getLogger("predict")


def build_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    parser = make_parser("predict", config, __doc__, epilog="Example: python predict.py --data "
                         "today.csv --output scored.csv --id-columns tweet_id")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last completed chunk (same "
                             "input, model version and options), else start over")
    return parser


def main(argv: list[str] | None = None) -> int:
    resolved, args = start("predict", build_parser, argv)
    started = time.perf_counter()
    job = scoring.make_job(resolved, args.resume)
    version, rows, blank = scoring.predict(job)
    if blank:
        log.warning("%d rows had empty text: their prediction and probability are blank", blank)
    seconds = time.perf_counter() - started
    name = job.tracking.model_name
    log.info("wrote %d rows to %s with %s v%s in %.1f s (%.0f rows/s)", rows, job.target, name,
             version, seconds, rows / max(seconds, 1e-9))
    print(f"{rows} rows scored with {name} v{version} -> {job.target}")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main("predict.py", main))
