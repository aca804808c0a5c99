"""``monitor.py --engine spark``: the stream's running sums folded by Spark executors.

Each executor folds its partition's rows into the same :class:`StreamTotals` the local engine
builds (``stream.accumulate``: the same pandas code, batch by batch), with samples that merge
(``sampling.KeyedSample``); the totals are pickled, one per partition, and merged in a tree
(``treeReduce``), so the driver receives a few bounded objects and never a row. What the
executors need from the registry is resolved on the driver first: each version's ATC threshold
(the versions from a group-by of ``model_version``), the label sampler's strata, the slice
values kept apart (the most frequent ones, from a group-by), and for raw texts the model itself
(broadcast). Counts and sums equal the local engine's (floating-point sums up to the order of
addition); the samples are other uniform samples of the same rows.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from textops import batch, spark as engine
from textops.columns import MODEL_VERSION, PREDICTION, PROBA_PREFIX, PROBABILITY
from textops.errors import BadInputError
from textops.inputs import CsvFormat
from textops.monitoring.labelling import Collector
from textops.monitoring.profile import Threshold
from textops.monitoring.sampling import sample_maker
from textops.monitoring.sideprofile import SideProfile
from textops.monitoring.sidedrift import SideSums
from textops.monitoring.slices import MAX_TRACKED, slice_strings
from textops.monitoring.stream import StreamSpec, StreamTotals, accumulate, accumulate_scored

log = logging.getLogger(__name__)
SLICE = "_textops_slice"
OUTCOME = "no report was written"


@dataclass
class SparkData:
    """The monitored data opened by Spark: its session, header and (lazy) rows."""

    session: Any
    location: str
    frame: Any
    header: list[str]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # stopping is best effort
            self.session.stop()


@dataclass(frozen=True)
class Fold:
    """What every executor needs to fold its rows (plain data, shipped in the closure)."""

    spec: StreamSpec
    thresholds: Mapping[str, Threshold | None]
    collector: Collector
    edges: list[float]
    side: Mapping[str, SideProfile] | None = None
    admitted: frozenset[str] | None = None
    scoring: batch.ScoringSpec | None = None  # raw texts: how the model reads them


def open_data(location: str, fmt: CsvFormat | None, master: str) -> SparkData:
    """A Spark session over the data (a local file or folder already checked: ``fmt``; a
    URI: read as its name says). The caller closes it."""
    session = engine.spark_session(master)
    try:
        with engine.spark_errors(location, "reading", OUTCOME):
            frame = engine.read_source(session, location, fmt)
            header = [str(c) for c in frame.columns]
    except BaseException:
        session.stop()
        raise
    return SparkData(session, location, frame, header)


def csv_parts(path: Path) -> bool:
    """A local folder of CSV parts (predict.py --engine spark --spark-format csv): Spark reads
    it as CSV (the local reader reads folders of Parquet parts only)."""
    return path.is_dir() and any(part.name.startswith("part-") and part.name.endswith(
        engine.CSV_NAMES) for part in path.iterdir())


def fingerprint(data: SparkData) -> list[tuple[str, int, int]]:
    """The data's files (names, sizes, modification times) as the file system lists them."""
    with engine.spark_errors(data.location, "listing", OUTCOME):
        return engine.HadoopFs(data.session).fingerprint(engine.spark_location(data.location))


def digest(files: list[tuple[str, int, int]], location: str) -> str:
    """A SHA-256 naming data that is no local file to hash (a URI): its location and files."""
    return hashlib.sha256(json.dumps({"location": location, "files": files}).encode()).hexdigest()


def _typed(data: SparkData, columns: list[str]):
    """The columns monitor.py reads, typed as the local reader types them: a numeric column of
    probabilities stays a number, everything else is text."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    types = {f.name: f.dataType for f in data.frame.schema.fields}
    return data.frame.select(*[
        F.col(f"`{c}`").cast("double" if _probability(c) and isinstance(types[c], NumericType)
                             else "string").alias(c) for c in columns])


def _probability(column: str) -> bool:
    return column == PROBABILITY or column.startswith(PROBA_PREFIX)


def versions(data: SparkData) -> dict[str, int]:
    """Rows per model version of a predictions file's predicted rows (a group-by)."""
    from pyspark.sql import functions as F

    with engine.spark_errors(data.location, "counting the versions of", OUTCOME):
        rows = (_typed(data, [PREDICTION, MODEL_VERSION]).filter(F.col(PREDICTION).isNotNull())
                .groupBy(F.trim(F.coalesce(F.col(MODEL_VERSION), F.lit(""))).alias("v"))
                .count().collect())
    return {row["v"]: int(row["count"]) for row in rows}


def top_slice_values(data: SparkData, column: str) -> frozenset[str]:
    """The MAX_TRACKED most frequent values of the slice column (ties by name), named as the
    slices name them: the values kept apart (the local engine keeps the first ones seen)."""
    from pyspark.sql import functions as F

    def named(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            yield pd.DataFrame({SLICE: slice_strings(frame[column]).to_numpy(dtype=object)})

    with engine.spark_errors(data.location, "counting the slices of", OUTCOME):
        rows = (_typed(data, [column]).mapInPandas(named, f"{SLICE} string").groupBy(SLICE)
                .count().orderBy(F.desc("count"), F.asc(SLICE)).limit(MAX_TRACKED).collect())
    return frozenset(row[SLICE] for row in rows)


def accumulate_spark(data: SparkData, fold: Fold, model: Any = None) -> StreamTotals:
    """Every partition folded by an executor, the parts merged in a tree (see the module's
    docstring); ``model``: the pipeline scoring raw texts (broadcast)."""
    columns = fold.spec.columns(data.header)
    shipped = data.session.sparkContext.broadcast(pickle.dumps(model)) if model is not None \
        else None
    folded = _folder(fold, shipped)
    try:
        with engine.spark_errors(data.location, "monitoring", OUTCOME):
            parts = _typed(data, columns).mapInPandas(folded, "part binary").rdd
            try:
                total = parts.map(lambda row: pickle.loads(row[0])).treeReduce(_merged, depth=2)
            except ValueError:  # no partition at all (an empty folder)
                total = StreamTotals(seed=fold.spec.seed, part=0)
    finally:
        if shipped is not None:
            shipped.unpersist()
    return total


def _merged(a: StreamTotals, b: StreamTotals) -> StreamTotals:
    a.merge(b)
    return a


def _folder(fold: Fold, shipped: Any) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each executor maps its partition with: one pickled StreamTotals out."""

    def folded(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        collector = fold.collector.for_part(part, fold.edges)
        side = SideSums(fold.side, fold.spec.seed, sample_maker(part)) if fold.side else None
        frames = (_as_read(frame) for frame in batches)
        try:
            if shipped is None:
                seen = accumulate(frames, fold.spec, None, fold.thresholds.get, collector, side,
                                  part, fold.admitted)
            else:
                model = batch.single_threaded(pickle.loads(shipped.value))
                pairs = batch.scored_chunks(frames, fold.scoring,
                                            batch.Execution(workers=1, model=model))
                seen = accumulate_scored(pairs, fold.spec, fold.thresholds.get, collector, side,
                                         part, fold.admitted)
        except BadInputError as exc:
            raise engine.refused_input(exc) from None
        yield pd.DataFrame({"part": [pickle.dumps(seen.detached())]})

    return folded


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """A batch as the local reader gives it: text cells as ``str`` objects, missing as NaN."""
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), np.nan)
    return frame
