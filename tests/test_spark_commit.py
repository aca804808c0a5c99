"""The Spark engine's commit (textops.spark.write_distributed) on a local Spark session: the
executors write into a hidden sibling, the committed folder is renamed into place, an existing
output is replaced whole, and a failed job leaves the previous output untouched and no staging
folder behind."""
from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def session():
    pytest.importorskip("pyspark")
    from textops import spark

    active = spark.spark_session("local[2]")
    yield active
    active.stop()


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
