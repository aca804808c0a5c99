"""``train.py --engine spark``: the census, the samples and the test metrics of a training
computed by Spark executors, for data in a warehouse (any Spark-readable file, folder or URI).

The executors clean each row and decide its partition by the same stable text hash as the local
engine (the same pandas functions, in ``mapInPandas``); the census is a group-by; each class's
rows are numbered within their partition in input order (a window over the row id), and the
rows ``data.sample_plan`` picked are kept by a semi-join with the picks. Only those rows
(``max_fit_rows`` + ``max_test_rows`` at most) reach the driver, which fits the pipeline as the
local engine does. Once fitted, the pipeline is broadcast and every test row is scored by the
executors into ``testscore.TestSums``, one per partition, merged by the driver: sums, never rows.

Each row's partition depends on its text alone, so the test rows (and every test metric) are
the local engine's. The per-class draws follow the row id Spark gives as it reads
(``monotonically_increasing_id``): a file's line order, so on one file the samples are the local
engine's row for row; the parts of a folder Spark plans in its own order (by size), so there the
samples are other rows with the same class shares.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from textops import data, spark as engine, streamsplit, testscore
from textops.spark import spark_errors
from textops.inputs import CsvFormat, Input, require_columns

log = logging.getLogger(__name__)

ROW = "_textops_row"
STATUS = "_textops_status"  # kept / blank / missing / left_out
SPELLING, FRACTION, PART, LABEL, ORDINAL = ("_textops_spelling", "_textops_fraction",
                                            "_textops_part", "_textops_label", "_textops_ordinal")
BLOCK = "_textops_block"  # the Spark partition a row was read in
LEDGER_ROWS = 1 << 62  # row ids of the ledger's rows, after every id Spark gives the table


@dataclass
class SparkSplit:
    """A training's data in Spark: the census the executors counted, the prepared rows (lazy,
    cached) to draw the samples and score the test rows from, and the session."""

    census: streamsplit.Census
    digest: str  # the census's digest: the data's identity when it is not a local file
    session: Any
    rows: Any  # the kept rows with their class and partition (lazy)
    table: streamsplit.LabelledTable
    location: str

    def sample(self, plan: Mapping[str, Mapping[str, np.ndarray] | None]) -> data.Split:
        """The rows ``plan`` picked (see ``data.sample_plan``), brought to the driver."""
        with spark_errors(self.location, "reading"):
            return collect(self.session, self.rows, self.census, plan, self.table)

    def score(self, pipeline: Any, temperature: float
              ) -> tuple[Any, dict[str, float], int]:
        """Every test row scored by the executors into per-partition sums, merged here."""
        with spark_errors(self.location, "scoring the test rows of"):
            result = score_test_rows(self, pipeline, temperature)
        if isinstance(self.table.source, Input):  # a local file: the rows it counted, unchanged
            self.table.source.require_unchanged()
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.stop()


def prepare(spark, location: str, fmt: CsvFormat | None, table: streamsplit.LabelledTable):
    """The table as Spark reads it, each row cleaned, its status, label spelling, hash fraction
    and base partition computed by the executors (``streamsplit``'s rules)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    columns = [table.text, table.label, *table.side]
    frame = engine.read_source(spark, location, fmt)
    require_columns(frame.columns, {**dict.fromkeys(columns[:2], "--text-column/--label-column"),
                                    **dict.fromkeys(table.side, "--feature-columns")}, location)
    frame = frame.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in columns])
    frame = frame.withColumn(ROW, F.monotonically_increasing_id())
    if table.extra is not None and len(table.extra):
        extra = table.extra[columns].astype(object).where(table.extra[columns].notna(), None)
        extra[ROW] = LEDGER_ROWS + np.arange(len(extra))
        schema = StructType([StructField(c, StringType()) for c in columns]
                            + [StructField(ROW, LongType())])
        frame = frame.unionByName(spark.createDataFrame(extra.to_dict("records"), schema))
    schema = StructType([StructField(ROW, LongType()), StructField(STATUS, StringType()),
                         StructField(table.text, StringType()), StructField(SPELLING, StringType()),
                         StructField(FRACTION, DoubleType()), StructField(PART, StringType())]
                        + [StructField(c, StringType()) for c in table.side])
    prepared = _prepared_rows(table)
    return frame.mapInPandas(prepared, schema)


def _prepared_rows(table: streamsplit.LabelledTable):
    """The function each executor maps its batches with (plain data only in its closure)."""
    text_col, label_col, side = table.text, table.label, list(table.side)
    left_out, seed = set(table.left_out), table.seed
    test_size, validation_size = table.test_size, table.validation_size

    def prepared(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            text = data.clean_text(frame[text_col])
            out_of_table = (text.isin(left_out) & (frame[ROW] < LEDGER_ROWS)).to_numpy() \
                if left_out else np.zeros(len(frame), dtype=bool)
            keep, blank, missing = data.usable_rows(text, frame[label_col])
            status = np.where(out_of_table, "left_out", np.where(
                blank, "blank", np.where(missing, "missing", "kept")))
            fractions = data.stable_fractions(text, seed)
            yield pd.DataFrame({
                ROW: frame[ROW].to_numpy(), STATUS: status, text_col: text.to_numpy(dtype=object),
                SPELLING: frame[label_col].astype(str).str.strip().to_numpy(dtype=object),
                FRACTION: fractions,
                PART: data.base_partitions(fractions, test_size, validation_size),
                **{c: frame[c].to_numpy(dtype=object) for c in side}})
    return prepared


def take_census(rows, table: streamsplit.LabelledTable) -> streamsplit.Census:
    """The census from a group-by (counts per status, spelling and partition; each spelling's
    first row) and a window (the few candidate rows of the tiny-class moves): small results."""
    from pyspark.sql import Window, functions as F

    counts = rows.groupBy(STATUS, SPELLING, PART).agg(F.count(F.lit(1)).alias("n"),
                                                      F.min(ROW).alias("first")).collect()
    statuses: dict[str, int] = {}
    tally: dict[tuple[str, str], int] = {}
    first: dict[str, int] = {}
    for row in counts:
        statuses[row[STATUS]] = statuses.get(row[STATUS], 0) + row["n"]
        if row[STATUS] == "kept":
            tally[row[SPELLING], row[PART]] = row["n"]
            first[row[SPELLING]] = min(first.get(row[SPELLING], row["first"]), row["first"])
    kept = rows.filter(F.col(STATUS) == "kept")
    # each block's few extremes per spelling and partition (windows within a block: no key
    # gathers all its rows in one task), reduced to the table's few on the driver
    by = Window.partitionBy(BLOCK, SPELLING, PART)
    low = F.row_number().over(by.orderBy(F.col(FRACTION), F.col(ROW)))
    high = F.row_number().over(by.orderBy(F.col(FRACTION).desc(), F.col(ROW)))
    candidates = (kept.withColumn(BLOCK, _block())
                  .select(SPELLING, PART, FRACTION, ROW, low.alias("low"), high.alias("high"))
                  .filter((F.col("low") <= streamsplit.EXTREMES) | (F.col("high") <= streamsplit.EXTREMES))
                  .select(SPELLING, PART, FRACTION, ROW).toPandas())
    candidates.columns = ["spelling", "part", "fraction", "ordinal"]
    candidates = streamsplit.extremes(candidates)
    seen = {s: sum(n for (sp, _), n in tally.items() if sp == s)
            for s in sorted(first, key=first.get)}
    return streamsplit.census_from(
        tally, seen, candidates, table,
        read=sum(statuses.values()), blank=statuses.get("blank", 0),
        missing=statuses.get("missing", 0), left_out=statuses.get("left_out", 0))


def labelled(rows, census: streamsplit.Census):
    """The kept rows with their class and partition (the census's moves applied)."""
    from pyspark.sql import functions as F

    mapping = F.create_map(*[F.lit(v) for pair in census.mapping.items() for v in pair])
    part = F.col(PART)
    for row, target in census.moves.items():
        part = F.when(F.col(ROW) == F.lit(row), F.lit(target)).otherwise(part)
    return (rows.filter(F.col(STATUS) == "kept")
            .withColumn(LABEL, mapping[F.col(SPELLING)]).withColumn(PART, part))


def collect(spark, rows, census: streamsplit.Census, plan, table: streamsplit.LabelledTable
            ) -> data.Split:
    """The rows ``plan`` picked, brought to the driver (bounded by the plan), as a Split in
    input order."""
    from pyspark.sql import functions as F

    numbered = numbered_rows(spark, rows)
    whole = [part for part in data.PARTS if plan[part] is None and census.sizes[part]]
    picks = [(part, label, int(o)) for part in data.PARTS if plan[part] is not None
             for label, ordinals in plan[part].items() for o in ordinals]
    chosen = numbered.filter(F.col(PART).isin(whole)) if whole else None
    if picks:
        picked = spark.createDataFrame(picks, f"{PART} string, {LABEL} string, {ORDINAL} int")
        sampled = numbered.join(F.broadcast(picked), [PART, LABEL, ORDINAL], "left_semi")
        chosen = sampled if chosen is None else chosen.unionByName(sampled)
    local = chosen.select(ROW, PART, LABEL, table.text, *table.side).toPandas().sort_values(ROW)
    return _split(local, table)


def _block():
    """The Spark partition a row was read in (``monotonically_increasing_id`` keeps it in the
    id's upper bits; the ledger's rows form the last block)."""
    from pyspark.sql import functions as F

    return F.shiftright(F.col(ROW), 33)


def numbered_rows(spark, rows):
    """``rows`` with each row's ordinal in its class and partition, in input order, as
    ``zipWithIndex`` numbers rows: each block counts its rows per class and partition, the
    driver turns the counts into offsets (blocks x classes x 3 numbers), and each block numbers
    its own rows from its offset. No key gathers all its rows in one task."""
    from pyspark.sql import Window, functions as F

    blocked = rows.withColumn(BLOCK, _block())
    counts = blocked.groupBy(BLOCK, PART, LABEL).count().collect()
    offsets, running = [], {}
    for row in sorted(counts, key=lambda r: r[BLOCK]):
        key = (row[PART], row[LABEL])
        offsets.append((int(row[BLOCK]), key[0], key[1], running.get(key, 0)))
        running[key] = running.get(key, 0) + int(row["count"])
    offset = spark.createDataFrame(offsets, f"{BLOCK} long, {PART} string, {LABEL} string, "
                                            f"_textops_offset long")
    inside = F.row_number().over(Window.partitionBy(BLOCK, PART, LABEL).orderBy(ROW)) - 1
    return (blocked.join(F.broadcast(offset), [BLOCK, PART, LABEL])
            .withColumn(ORDINAL, F.col("_textops_offset") + inside))


def _split(local: pd.DataFrame, table: streamsplit.LabelledTable) -> data.Split:
    parts = {}
    for part in data.PARTS:
        rows = local[local[PART] == part]
        x = pd.DataFrame({table.text: rows[table.text].to_numpy(dtype=object)})
        for column in table.side:  # missing values as the local reader has them
            x[column] = pd.Series(rows[column].to_numpy(dtype=object), dtype="str")
        parts[part] = (x, pd.Series(rows[LABEL].to_numpy(dtype=object)))
    if table.validation_size <= 0:
        parts["validation"] = (None, None)
    return data.Split(*parts["train"], *parts["validation"], *parts["test"])


def start(location: str, fmt: CsvFormat | None, table: streamsplit.LabelledTable,
          master: str) -> SparkSplit:
    """Start a session and count the census (see the module's docstring); BadInputError for
    input problems, EngineUnavailableError when Spark cannot run. The caller closes it."""
    session = engine.spark_session(master)
    try:
        with spark_errors(location, "reading"):
            rows = prepare(session, location, fmt, table).cache()
            census = take_census(rows, table)
    except BaseException:
        session.stop()
        raise
    return SparkSplit(census, census_digest(census, location), session, labelled(rows, census),
                      table, location)


def census_digest(census: streamsplit.Census, location: str) -> str:
    """A SHA-256 of what the census counted (for data that is no local file to hash)."""
    counted = {"location": location, "read": census.rows_read, "counts": census.counts,
               "moves": sorted(census.moves.items())}
    return hashlib.sha256(json.dumps(counted, sort_keys=True).encode()).hexdigest()


def score_test_rows(done: SparkSplit, pipeline: Any, temperature: float
                    ) -> tuple[Any, dict[str, float], int]:
    """The third pass, in the executors: each partition's test rows scored into a TestSums,
    pickled; the driver merges them (one small object per partition)."""
    from pyspark.sql import functions as F

    table = done.table
    shipped = done.session.sparkContext.broadcast(pickle.dumps(pipeline))
    classes, text_col, side = np.asarray(pipeline.classes_), table.text, list(table.side)

    def summed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = pickle.loads(shipped.value)
        sums = testscore.TestSums(classes, temperature)
        for frame in batches:
            x = pd.DataFrame({text_col: frame[text_col].to_numpy(dtype=object)})
            for column in side:
                x[column] = pd.Series(frame[column].to_numpy(dtype=object), dtype="str")
            sums.add(model, x, frame[LABEL].to_numpy(dtype=object))
        yield pd.DataFrame({"sums": [pickle.dumps(sums)]})

    test = done.rows.filter(F.col(PART) == "test").select(text_col, *side, LABEL)
    total = testscore.TestSums(classes, temperature)
    for row in test.mapInPandas(summed, "sums binary").collect():
        total.merge(pickle.loads(row["sums"]))
    shipped.unpersist()
    return total.result()
