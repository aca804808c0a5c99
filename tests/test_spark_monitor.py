"""monitor.py's Spark engine in process: the executors fold a folder of parts (one Spark
partition each) into the same counts and sums as the local engine's one stream, and bad input
an executor finds is the local engine's one-line exit 2."""
from __future__ import annotations

import pytest

from textops.columns import Columns
from textops.errors import BadInputError
from textops.inputs import open_input
from textops.monitoring import labelling, sparkstream
from textops.monitoring.stream import StreamSpec, accumulate

from test_monitor_parts import PROFILES, SPEC, THRESHOLDS, _predictions, _same_sums

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """predict.py-like output as a folder of four Parquet parts."""
    folder = tmp_path_factory.mktemp("scored") / "tonight"
    folder.mkdir()
    frame = _predictions(4_000, seed=3)
    for n, start in enumerate(range(0, 4_000, 1_000)):
        frame.iloc[start:start + 1_000].to_parquet(folder / f"part-{n:05d}.parquet", index=False)
    (folder / "_SUCCESS").touch()  # committed, as Spark leaves it
    return folder


def _fold(spec=SPEC, side=PROFILES):
    collector = labelling.Collector(40, 9, ("id",), "text", None)
    return sparkstream.Fold(spec, THRESHOLDS, collector, [0.6, 0.8], side,
                            frozenset({"a", "b", "c", "(missing)"}))


def test_the_executors_sums_of_a_folder_of_parts_are_the_local_engines(spark_local, parts):
    source = open_input(parts, "utf-8", ",")
    data = sparkstream.SparkData(spark_local, str(parts), sparkstream.engine.read_source(
        spark_local, str(parts), source.format), list(source.header))
    assert data.frame.rdd.getNumPartitions() > 1
    spark = sparkstream.accumulate_spark(data, _fold())
    local = accumulate(source.chunks(700, SPEC.columns(source.header)), SPEC, None,
                       THRESHOLDS.get, labelling.Collector(40, 9, ("id",), "text",
                                                           lambda v: [0.6, 0.8]),
                       sparkstream.SideSums(PROFILES, 5))
    for name in ("rows", "scored", "skipped", "unlabelled"):
        assert getattr(spark, name) == getattr(local, name) > 0
    assert spark.versions == local.versions and spark.predicted == local.predicted
    assert spark.tallies == local.tallies
    for version in ("3", "4"):
        _same_sums(spark.expected[version], local.expected[version])
        _same_sums(spark.expected_labelled[version], local.expected_labelled[version])
        assert sorted(spark.confidences(version)) == sorted(local.confidences(version))
    assert spark.slices.rows == local.slices.rows and spark.slices.tallies == local.slices.tallies
    assert spark.side.counts == local.side.counts and spark.side.missing == local.side.missing
    numbers = spark.side.numbers["amount"], local.side.numbers["amount"]  # 3,600 values: sampled
    assert numbers[0].seen == numbers[1].seen and len(numbers[0].items) == len(numbers[1].items)
    assert set(numbers[0].items) <= set(_predictions(4_000, seed=3)["amount"].dropna().astype(float))
    strata = [(s.rows, len(s.kept)) for s in spark.collector.sampler.strata]
    assert strata == [(s.rows, len(s.kept)) for s in local.collector.sampler.strata]
    assert sparkstream.versions(data) == {"3": local.versions["3"], "4": local.versions["4"]}
    assert sparkstream.top_slice_values(data, "store") == frozenset(local.slices.rows)


def test_bad_input_an_executor_finds_is_one_line_exit_2(spark_local, tmp_path):
    bad = _predictions(300)
    bad["probability"] = bad["probability"].astype(str)
    bad.loc[7, "probability"] = "high"
    path = tmp_path / "scored.csv"
    bad.to_csv(path, index=False)
    source = open_input(path, "utf-8", ",")
    data = sparkstream.SparkData(spark_local, str(path), sparkstream.engine.read_source(
        spark_local, str(path), source.format), list(source.header))
    spec = StreamSpec(Columns(text="text", label="label"), has_text=True, has_labels=True,
                      recorded=True)
    with pytest.raises(BadInputError, match=r"^column 'probability' holds 1 value\(s\) that are "
                                            r"not probabilities .*'high'"):
        sparkstream.accumulate_spark(data, _fold(spec, None))


def test_a_path_spark_cannot_find_is_bad_input(spark_local, tmp_path):
    """A URI naming nothing (a night's folder not written yet): exit 2 naming it, not exit 4."""
    missing = (tmp_path / "scored" / "2026-12-06").as_uri()
    with pytest.raises(BadInputError, match="does not exist .*check --data"):
        with sparkstream.engine.spark_errors(missing, "reading", sparkstream.OUTCOME):
            sparkstream.engine.read_source(spark_local, missing, None).columns
