"""``predict.py --engine spark``: score a CSV through ``mlflow.pyfunc.spark_udf``.

The path for users who outgrow one machine: the registered model runs inside Spark executors
(``local[*]`` by default, any master by config) through MLflow's own UDF, and the scored rows
come back to the driver in input order, chunk by chunk, to be written by the same atomic writer
as the local engine (same columns, same formatting). PySpark is optional
(``requirements-spark.txt``); on one small machine the local engine is faster.
"""
from __future__ import annotations

import codecs
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from common import BadInputError, EngineUnavailableError, first_line
from textops.batch import Job
from textops.data import CsvFormat
from textprep import PROBA_PREFIX

log = logging.getLogger(__name__)
ROW = "_textops_row"
SCORES = "_textops_scores"


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401 - optional extra (requirements-spark.txt), heavy: lazy
    except ImportError:
        raise BadInputError("--engine spark needs PySpark: pip install -r requirements-spark.txt "
                            "(and Java 17), or use --engine local") from None


def spark_session(master: str):
    """A Spark session whose Python workers use this interpreter (and so this environment)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    quiet_log4j = Path(tempfile.gettempdir()) / "textops-spark-log4j2.properties"
    quiet_log4j.write_text("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                           "appender.console.type = Console\nappender.console.name = console\n"
                           "appender.console.target = SYSTEM_ERR\n"
                           "appender.console.layout.type = PatternLayout\n"
                           "appender.console.layout.pattern = spark: %p %c{1}: %m%n\n")
    from pyspark.sql import SparkSession  # optional and heavy: only for --engine spark

    try:
        return (SparkSession.builder.master(master).appName("textops-predict")
                .config("spark.ui.enabled", "false")
                .config("spark.log.level", "ERROR")
                .config("spark.driver.extraJavaOptions",
                        f"-Dlog4j2.configurationFile=file:{quiet_log4j}")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .getOrCreate())
    except Exception as exc:  # noqa: BLE001 - no Java, bad master URL, cluster unreachable
        raise EngineUnavailableError(
            f"cannot start a Spark session on {master!r} ({first_line(exc, 200)}); check Java 17 and "
            f"--spark-master, or use --engine local") from None


def spark_encoding(encoding: str) -> str:
    """Spark's name for a Python codec (a UTF-8 byte-order mark is handled by Spark itself)."""
    name = codecs.lookup(encoding).name
    return {"utf-8-sig": "utf-8", "iso8859-1": "iso-8859-1", "latin-1": "iso-8859-1",
            "ascii": "us-ascii", "utf-16-le": "utf-16le", "utf-16-be": "utf-16be"}.get(name, name)


def score_chunks(spark, data: Path, fmt: CsvFormat, job: Job,
                 chunk_size: int) -> Iterator[pd.DataFrame]:
    """Scored chunks of ``chunk_size`` rows, in input order, with the local engine's columns:
    id columns, prediction, probability, model_version (and proba_<class>). Rows with blank
    text get a blank prediction and probability, as with the local engine (the blank-text rule
    of ``textops.data.is_blank``, written in Spark SQL: trim, then empty)."""
    import mlflow.pyfunc  # heavy: only for this engine
    from pyspark.sql import functions as F

    text_column, model_version = job.text_column, job.model_version
    if fmt.container == "parquet":  # a Parquet file or a committed folder of parts
        frame = spark.read.parquet(str(data))
    else:  # Spark decompresses .gz / .bz2 / ... itself, by extension
        frame = (spark.read.option("header", True).option("multiLine", True)
                 .option("escape", '"').option("encoding", spark_encoding(fmt.encoding))
                 .option("sep", fmt.delimiter).option("inferSchema", False).csv(str(data)))
    frame = frame.withColumn(ROW, F.monotonically_increasing_id())  # input order
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its env_manager="local" advice: this is the environment
    try:
        udf = mlflow.pyfunc.spark_udf(spark, job.model_path, env_manager="local")
    finally:
        quiet.setLevel(level)
    output = [f.name for f in udf.returnType.fields] if hasattr(udf, "returnType") else None
    text = F.coalesce(F.col(f"`{text_column}`"), F.lit(""))
    blank = F.trim(text) == ""
    scored = frame.withColumn(SCORES, udf(F.struct(text.alias(text_column))))
    columns = [F.col(f"`{c}`") for c in job.id_columns]
    columns += [F.when(~blank, F.col(f"{SCORES}.prediction")).alias("prediction"),
                F.when(~blank, F.col(f"{SCORES}.probability")).alias("probability"),
                F.lit(str(model_version)).alias("model_version")]
    if job.proba_columns:
        names = output or []
        columns += [F.when(~blank, F.col(f"{SCORES}.`{c}`")).alias(c)
                    for c in names if c.startswith(PROBA_PREFIX)]
    rows = scored.select(F.col(ROW), *columns).orderBy(ROW).drop(ROW)
    names = rows.columns
    buffer: list = []
    for row in rows.toLocalIterator(prefetchPartitions=True):
        buffer.append(tuple(row))
        if len(buffer) == chunk_size:
            yield _frame(buffer, names)
            buffer = []
    if buffer:
        yield _frame(buffer, names)


def _frame(rows: list, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=names)
    for column in names:
        if column == "probability" or column.startswith(PROBA_PREFIX):
            frame[column] = frame[column].astype(float)
    return frame
