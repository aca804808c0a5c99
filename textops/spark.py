"""``predict.py --engine spark``: score any Spark source through ``mlflow.pyfunc.spark_udf``.

The path for users who outgrow one machine: the registered model runs inside Spark executors
(``local[*]`` by default, any master by config) through MLflow's own UDF, and the executors write
the scored rows with Spark's own writer (Parquet or CSV parts, optionally partitioned) into a
hidden sibling of the output; when the job has committed (``_SUCCESS``) the driver renames it
into place through the Hadoop FileSystem API, so a failed or killed job leaves nothing under the
output name. No row passes through the driver (no sort, no collect); the id columns carry each
row's identity. Only a ``.csv`` / ``.csv.gz`` output keeps the small-data convenience of one
local file in input order, which funnels the rows through the driver. PySpark is optional
(``requirements-spark.txt``); on one small machine the local engine is faster.
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from textops.errors import BadInputError, EngineUnavailableError, first_line
from textops.interrupts import interrupt_from
from textops.batch import ScoringSpec
from textops.inputs import CsvFormat
from textops.paths import is_uri
from textops.columns import MODEL_VERSION, PREDICTION, PROBA_PREFIX, PROBABILITY
from textprep.side import NUMERIC

log = logging.getLogger(__name__)
ROW = "_textops_row"
SCORES = "_textops_scores"


@contextlib.contextmanager
def spark_errors(location: str, doing: str, outcome: str = "nothing was registered"
                 ) -> Iterator[None]:
    """A Spark job's failure as one line (the JVM trace goes to the log file): exit 4."""
    try:
        yield
    except (BadInputError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - a JVM failure becomes one line (trace: log file)
        interrupt = interrupt_from(exc)
        if interrupt is not None:
            raise interrupt from None
        log.error("the Spark job %s %s failed: %s", doing, location, exc, extra={"file_only": True})
        refused = re.search(re.escape(GUARD) + r"([^\n]*?)(?:\s+SQLSTATE|\n|$)", str(exc))
        if refused:  # bad input found by an executor (see refused_input): exit 2
            raise BadInputError(refused.group(1).rstrip(". ")) from None
        if "PATH_NOT_FOUND" in str(exc):
            raise BadInputError(f"{location} does not exist (Spark found no such path); check "
                                f"--data") from None
        raise EngineUnavailableError(f"the Spark job {doing} {location} failed "
                                     f"({first_line(exc, 200)}); {outcome}") from None


def refused_input(error: BadInputError) -> RuntimeError:
    """Bad input an executor found, as the error that carries it to the driver (where
    :func:`spark_errors` makes it the same one-line exit 2 as the local engine's)."""
    return RuntimeError(GUARD + str(error).replace("\n", " "))


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
    quiet_log4j.write_text("rootLogger.level = fatal\nrootLogger.appenderRef.stderr.ref = console\n"
                           "appender.console.type = Console\nappender.console.name = console\n"
                           "appender.console.target = SYSTEM_ERR\n"
                           "appender.console.layout.type = PatternLayout\n"
                           "appender.console.layout.pattern = spark: %p %c{1}: %m%n\n")
    from pyspark.sql import SparkSession  # optional and heavy: only for --engine spark

    try:
        return (SparkSession.builder.master(master).appName("textops-predict")
                .config("spark.ui.enabled", "false")
                .config("spark.log.level", "FATAL")  # failures: one line of ours (trace: log file)
                .config("spark.driver.extraJavaOptions",
                        f"-Dlog4j2.configurationFile=file:{quiet_log4j}")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                # Hive partition values are ids: store=007 stays "007", as in the local reader
                .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
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


CSV_NAMES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".gz", ".bz2")


def spark_location(location: str | Path) -> str:
    """What Spark is given: a URI as it is, a local path as an absolute ``file://`` URI."""
    return str(location) if is_uri(str(location)) else Path(location).resolve().as_uri()


def read_source(spark, location: str, fmt: CsvFormat | None):
    """A DataFrame over the input: a local file or folder already sniffed (``fmt``), or a URI
    (``fmt`` None: CSV by its extension, else Parquet, a file or a folder of parts)."""
    if fmt is None:
        csv = location.lower().rstrip("/").endswith(CSV_NAMES)
        fmt = CsvFormat(encoding="utf-8", delimiter=",", lineterminator=None,
                        container="csv" if csv else "parquet")
    if fmt.container == "parquet":  # a Parquet file or a committed folder of parts
        return spark.read.option("mergeSchema", True).parquet(spark_location(location))
    # Spark decompresses .gz / .bz2 / ... itself, by extension
    return (spark.read.option("header", True).option("multiLine", True)
            .option("escape", '"').option("encoding", spark_encoding(fmt.encoding))
            .option("sep", fmt.delimiter).option("inferSchema", False)
            .csv(spark_location(location)))


def score_chunks(spark, data: Path, fmt: CsvFormat, job: ScoringSpec,
                 chunk_size: int) -> Iterator[pd.DataFrame]:
    """The small-data convenience (a single local .csv output): scored chunks of ``chunk_size``
    rows, in input order, with the local engine's columns, brought to the driver one row at a
    time (a global sort and ``toLocalIterator``: fine for thousands of rows, not for billions;
    ``write_distributed`` is the scalable path)."""
    from pyspark.sql import functions as F

    frame = read_source(spark, str(data), fmt).withColumn(ROW, F.monotonically_increasing_id())
    rows = scored_frame(spark, frame, job, keep=(ROW,)).orderBy(ROW).drop(ROW)
    names = rows.columns
    buffer: list = []
    for row in rows.toLocalIterator(prefetchPartitions=True):
        buffer.append(tuple(row))
        if len(buffer) == chunk_size:
            yield _frame(buffer, names)
            buffer = []
    if buffer:
        yield _frame(buffer, names)


def scored_frame(spark, frame, job: ScoringSpec, keep: tuple[str, ...] = ()):
    """The input DataFrame scored lazily by ``spark_udf``, with the local engine's columns: id
    columns, prediction, probability, model_version (and proba_<class>). Rows with blank text
    get a blank prediction and probability, as with the local engine (the blank-text rule of
    ``textops.data.is_blank``, written in Spark SQL: trim, then empty)."""
    import mlflow.pyfunc  # heavy: only for this engine
    from pyspark.sql import functions as F

    text_column, model_version = job.columns.text, job.model_version
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
    given = [text.alias(text_column)]
    if job.side_columns:  # typed as the model's signature asks: numbers as double (else null)
        given = [text.alias(job.model_text)] + [
            (F.col(f"`{c}`").try_cast("double") if kind == NUMERIC
             else F.col(f"`{c}`").cast("string")).alias(c)
            for c, kind in zip(job.side_columns, job.side_kinds)]
    scored = frame.withColumn(SCORES, udf(F.struct(*given)))
    columns = [F.col(c) for c in keep] + [F.col(f"`{c}`") for c in job.columns.ids]
    columns += [F.when(~blank, F.col(f"{SCORES}.{PREDICTION}")).alias(PREDICTION),
                F.when(~blank, F.col(f"{SCORES}.{PROBABILITY}")).alias(PROBABILITY),
                F.lit(str(model_version)).alias(MODEL_VERSION)]
    if job.proba_columns:
        names = output or []
        columns += [F.when(~blank, F.col(f"{SCORES}.`{c}`")).alias(c)
                    for c in names if c.startswith(PROBA_PREFIX)]
    return scored.select(*columns)


@dataclass(frozen=True)
class Written:
    """What a distributed write published: its location and rows (counted by the executors)."""

    location: str
    rows: int
    blank: int


def write_distributed(spark, scored, output: str, file_format: str,
                      partition_by: tuple[str, ...] = ()) -> Written:
    """Write ``scored`` from the executors with Spark's writer into a hidden sibling of
    ``output`` (dot-prefixed: Spark, Hive and pyarrow readers skip it), then, once the job has
    committed (``_SUCCESS``), rename it into place (an existing output is replaced). On any
    failure the sibling is deleted and nothing appears under the output name; after a kill -9
    only the hidden sibling can remain. The row counts come from reading the committed parts
    back (one aggregate row to the driver)."""
    from pyspark.sql import functions as F

    fs = HadoopFs(spark)
    target = spark_location(output)
    fs.check_replaceable(target, output)  # before the job: a user's folder is never touched
    staging = fs.sibling(target, f".{fs.name(target)}.textops-partial-{uuid.uuid4().hex[:12]}")
    try:
        writer = _guarded(scored, partition_by).write.mode("errorifexists").format(file_format)
        if file_format == "csv":
            writer = writer.option("header", True).option("escape", '"')
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.save(staging)
        except Exception as exc:  # noqa: BLE001 - a JVM trace becomes one line (trace: log file)
            raise writer_failure(exc, output) from None
        if not fs.exists(f"{staging}/_SUCCESS"):
            raise EngineUnavailableError(f"the Spark job writing {output} did not commit "
                                         f"(no _SUCCESS); nothing was published")
        back = spark.read.format(file_format)
        if file_format == "csv":
            back = back.option("header", True).option("escape", '"')
        counts = back.load(staging).agg(F.count(F.lit(1)), F.count(PREDICTION)).first()
        fs.check_replaceable(target, output)  # again: something may have appeared meanwhile
        fs.replace(staging, target)
    except BaseException:
        with contextlib.suppress(Exception):
            spark.sparkContext.cancelAllJobs()
        with contextlib.suppress(Exception):
            fs.delete(staging)
        raise
    return Written(target, int(counts[0]), int(counts[0]) - int(counts[1]))


GUARD = "textops-refused: "
# a partition folder's name is "column=value", at most 255 bytes on every common file system
MAX_NAME_BYTES = 255


def _guarded(scored, partition_by: tuple[str, ...]):
    """``scored`` with each partition column checked row by row inside the executors (no
    extra pass): a value that cannot name a folder (too long) or would not read back as
    written (``''`` and ``__HIVE_DEFAULT_PARTITION__`` both read back as null) fails the job
    with a message :func:`writer_failure` turns into one line."""
    from pyspark.sql import functions as F

    for name in partition_by:
        column = F.col(f"`{name}`")
        room = MAX_NAME_BYTES - len(name.encode("utf-8")) - 1 - 20  # escapes, checksum prefix
        scored = scored.withColumn(name, F
            .when(column.isin("", "__HIVE_DEFAULT_PARTITION__"), F.raise_error(F.lit(
                f"{GUARD}--partition-by {name}: a value is '' or '__HIVE_DEFAULT_PARTITION__', "
                f"which a Hive partition folder cannot keep apart from a missing value; "
                f"partition by another column")))
            .when(F.length(F.encode(column, "utf-8")) > room, F.raise_error(F.lit(
                f"{GUARD}--partition-by {name}: a value is longer than the {room} bytes a "
                f"folder name allows; partition by another column")))
            .otherwise(column))
    return scored


def writer_failure(exc: BaseException, output: str) -> Exception:
    """The one-line error for a failed Spark write (the JVM trace goes to the log file only):
    a value textops refused or a name the file system refused is bad input (exit 2), anything
    else the engine's failure (exit 4)."""
    text = str(exc)
    log.error("the Spark job writing %s failed: %s", output, text, extra={"file_only": True})
    interrupt = interrupt_from(exc)
    if interrupt is not None:
        return interrupt
    refused = re.search(re.escape(GUARD) + r"([^\n]*?)(?:\s+SQLSTATE|\n|$)", text)
    if refused:
        return BadInputError(refused.group(1).rstrip(". "))
    if "File name too long" in text:
        return BadInputError(f"a value of --partition-by is too long to name a folder under "
                             f"{output}; partition by another column")
    cause = next((line.strip() for line in text.splitlines()
                  if "Exception:" in line or "Error:" in line), first_line(exc, 200))
    return EngineUnavailableError(f"the Spark job writing {output} failed ({cause[:240]}); "
                                  f"nothing was published; the trace is in the log file")


class HadoopFs:
    """The few Hadoop FileSystem calls the commit needs, made from the driver (metadata only):
    the same code for file://, hdfs://, s3a:// and abfss:// outputs."""

    def __init__(self, spark) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, location: str):
        return self._jvm.org.apache.hadoop.fs.Path(location)

    def _fs(self, location: str):
        return self._path(location).getFileSystem(self._conf)

    def name(self, location: str) -> str:
        return str(self._path(location).getName())

    def sibling(self, location: str, name: str) -> str:
        return str(self._jvm.org.apache.hadoop.fs.Path(self._path(location).getParent(), name).toUri())

    def exists(self, location: str) -> bool:
        return bool(self._fs(location).exists(self._path(location)))

    def listing(self, location: str, limit: int = 100_000) -> list[tuple[str, bool]]:
        """(path relative to ``location``, is a folder) of everything below it, at most
        ``limit`` entries; ``[("", False)]`` when it is a file itself."""
        fs, root = self._fs(location), self._path(location)
        if not fs.getFileStatus(root).isDirectory():
            return [("", False)]
        found, folders = [], [("", root)]
        while folders and len(found) < limit:
            prefix, folder = folders.pop()
            for status in fs.listStatus(folder):
                name = prefix + str(status.getPath().getName())
                found.append((name, bool(status.isDirectory())))
                if status.isDirectory():
                    folders.append((name + "/", status.getPath()))
        return found

    def fingerprint(self, location: str, limit: int = 100_000) -> list[tuple[str, int, int]]:
        """(path relative to ``location``, size, modification time) of every file below it (or
        of the file itself): what the data looked like, to name it and to tell it changed."""
        fs, root = self._fs(location), self._path(location)
        status = fs.getFileStatus(root)
        if not status.isDirectory():
            return [("", int(status.getLen()), int(status.getModificationTime()))]
        found, folders = [], [("", root)]
        while folders and len(found) < limit:
            prefix, folder = folders.pop()
            for status in fs.listStatus(folder):
                name = prefix + str(status.getPath().getName())
                if status.isDirectory():
                    folders.append((name + "/", status.getPath()))
                else:
                    found.append((name, int(status.getLen()), int(status.getModificationTime())))
        return sorted(found)

    def check_replaceable(self, location: str, shown: str) -> None:
        """BadInputError unless ``location`` is absent or an earlier committed Spark output
        (see :func:`foreign_entries`): a user's folder or file is never replaced."""
        if not self.exists(location):
            return
        entries = self.listing(location)
        if entries == [("", False)]:
            raise BadInputError(f"--output {shown} is an existing file, not an earlier Spark "
                                f"output; nothing was touched: give a new folder name, or "
                                f"move that file away")
        foreign = foreign_entries(entries)
        if foreign:
            listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                                else "")
            raise BadInputError(f"--output {shown} holds files that no Spark job committed there "
                                f"({listed}); nothing was touched: only an earlier output (with "
                                f"_SUCCESS, part files and Spark's markers) is replaced; give a "
                                f"new folder name, or empty it")

    def delete(self, location: str) -> None:
        if self.exists(location):
            self._fs(location).delete(self._path(location), True)

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target``; an existing target is first moved aside, then
        deleted (a rename on HDFS and local disks; a copy on object stores, see README)."""
        fs = self._fs(target)
        old = None
        if fs.exists(self._path(target)):
            old = self.sibling(target, f".{self.name(target)}.textops-replaced-{uuid.uuid4().hex[:12]}")
            if not fs.rename(self._path(target), self._path(old)):
                raise EngineUnavailableError(f"cannot move the previous {target} aside")
        if not fs.rename(self._path(source), self._path(target)):
            if old is not None:
                fs.rename(self._path(old), self._path(target))
            raise EngineUnavailableError(f"cannot rename the committed output into {target}")
        if old is not None:
            self.delete(old)


SPARK_MARKER = re.compile(r"^(_SUCCESS|_committed_.*|_started_.*|\..*\.crc|part-.*)$")
PARTITION_FOLDER = re.compile(r"^[^=/]+=[^/]*$")


def foreign_entries(entries: list[tuple[str, bool]]) -> list[str]:
    """What, in a folder's listing ((relative path, is a folder) pairs), an earlier committed
    Spark output would not hold: anything but ``_SUCCESS`` at the top, part files, their
    ``.crc`` checksums, commit markers, and Hive partition folders of the same. A folder
    without ``_SUCCESS`` (an uncommitted job, or a user's folder) is foreign unless empty."""
    if entries and ("_SUCCESS", False) not in entries:
        return ["no _SUCCESS file"] + [name for name, _ in entries][:2]
    return [name + ("/" if folder else "") for name, folder in entries
            if not _spark_written(name, folder)]


def _spark_written(name: str, folder: bool) -> bool:
    *parents, leaf = name.split("/")
    if not all(PARTITION_FOLDER.match(p) for p in parents):
        return False
    if folder:
        return bool(PARTITION_FOLDER.match(leaf))
    return bool(SPARK_MARKER.match(leaf)) and not (leaf == "_SUCCESS" and parents)


def _frame(rows: list, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=names)
    for column in names:
        if column == PROBABILITY or column.startswith(PROBA_PREFIX):
            frame[column] = frame[column].astype(float)
    return frame
