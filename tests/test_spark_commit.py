"""The Spark engine's commit (textops.spark.write_distributed) on a local Spark session: the
executors write into a hidden sibling, the committed folder is renamed into place, an existing
output is replaced whole, and a failed job leaves the previous output untouched and no staging
folder behind."""
from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def session(spark_local):
    return spark_local


def _rows(session, n, offset=0):
    return session.createDataFrame(pd.DataFrame({"id": [str(i + offset) for i in range(n)],
                                                 "prediction": ["a", None, "b"] * (n // 3)}))


def test_a_committed_output_replaces_the_previous_one_whole(session, tmp_path):
    from textops.spark import write_distributed

    out = tmp_path / "scored"
    first = write_distributed(session, _rows(session, 30), str(out), "parquet")
    assert (first.rows, first.blank) == (30, 10) and (out / "_SUCCESS").exists()
    second = write_distributed(session, _rows(session, 60, offset=100).repartition(3), str(out),
                               "csv", partition_by=("prediction",))
    assert (second.rows, second.blank) == (60, 20)
    assert not list(out.glob("*.parquet")) and (out / "prediction=a").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]  # no staging, no old copy


def test_a_failed_job_publishes_nothing_and_keeps_the_previous_output(session, tmp_path):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from textops.spark import write_distributed

    out = tmp_path / "scored"
    write_distributed(session, _rows(session, 30), str(out), "parquet")
    before = sorted(p.name for p in out.iterdir())

    @F.udf(StringType())
    def broken(value):
        if value == "7":
            raise ValueError("an executor fails mid-job")
        return value

    failing = _rows(session, 30).withColumn("id", broken("id"))
    with pytest.raises(Exception, match="an executor fails mid-job"):
        write_distributed(session, failing, str(out), "parquet")
    assert sorted(p.name for p in out.iterdir()) == before
    assert len(pd.read_parquet(out)) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("make", ["user folder", "uncommitted parts", "file", "user file among parts"])
def test_an_output_that_no_spark_job_committed_is_never_replaced(session, tmp_path, make):
    from common import BadInputError
    from textops.spark import write_distributed

    out = tmp_path / "scored"
    if make == "file":
        out.write_text("a user's file\n")
    elif make == "user file among parts":
        write_distributed(session, _rows(session, 30), str(out), "parquet")
        (out / "notes.txt").write_text("mine\n")
    else:
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "keep.csv").write_text("id\n1\n")
        (out / ("notes.txt" if make == "user folder" else "part-00000.parquet")).write_text("x")
    before = out.read_bytes() if out.is_file() else {p: p.read_bytes() for p in out.rglob("*")
                                                     if p.is_file()}
    with pytest.raises(BadInputError, match="nothing was touched"):
        write_distributed(session, _rows(session, 30), str(out), "parquet")
    after = out.read_bytes() if out.is_file() else {p: p.read_bytes() for p in out.rglob("*")
                                                    if p.is_file()}
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


@pytest.mark.parametrize("values, words", [
    (["x" * 300, "a", "b"], "longer than"),
    (["", "a", "__HIVE_DEFAULT_PARTITION__"], "cannot keep apart"),
])
def test_partition_values_a_folder_cannot_hold_are_one_line_and_publish_nothing(
        session, tmp_path, values, words):
    from common import BadInputError
    from textops.spark import write_distributed

    out = tmp_path / "scored"
    write_distributed(session, _rows(session, 30), str(out), "parquet")
    before = _tree(out)
    rows = session.createDataFrame(pd.DataFrame({"id": ["1", "2", "3"], "prediction": values}))
    with pytest.raises(BadInputError, match=words) as caught:
        write_distributed(session, rows, str(out), "parquet", partition_by=("prediction",))
    assert len(str(caught.value).splitlines()) == 1
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


def test_spark_reads_hive_partition_values_with_their_spelling(session, tmp_path):
    from textops.inputs import CsvFormat
    from textops.spark import read_source, write_distributed

    rows = session.createDataFrame(pd.DataFrame({"id": ["1", "2", "3"],
                                                 "store": ["007", "010", "007"]}))
    write_distributed(session, rows.withColumnRenamed("id", "prediction"), str(tmp_path / "out"),
                      "parquet", partition_by=("store",))
    back = read_source(session, str(tmp_path / "out"), CsvFormat("utf-8", ",", None, "parquet"))
    assert sorted(r["store"] for r in back.collect()) == ["007", "007", "010"]
    # a URI input is not sniffed: read as Parquet (a folder of parts) by its name alone
    by_uri = read_source(session, (tmp_path / "out").as_uri(), None)
    assert sorted(r["store"] for r in by_uri.collect()) == ["007", "007", "010"]
