"""train.py --engine spark's split (textops.sparktrain) on a local Spark session: the census the
executors count and the samples they draw are the local engine's (textops.streamsplit), row for
row, with side columns, tiny classes, label spellings and the labels ledger's rows; every test
row scored in the executors gives the local engine's metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from textops import data, diagnostics, inputs, sparktrain, streamsplit

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def session(spark_local):
    return spark_local


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    """twcs_head5k with awkward rows: blanks, missing labels, another spelling, a tiny class."""
    frame = pd.read_csv(shared("twcs", "twcs_head5k_raw.csv"), dtype=str)
    frame = frame.rename(columns={"inbound": "label"})[["text", "label", "author_id"]]
    frame.loc[::97, "text"] = " "
    frame.loc[5::89, "label"] = None
    frame.loc[7::50, "label"] = "TRUE"
    frame.loc[[11, 2222, 4001], "label"] = "rare"
    path = tmp_path_factory.mktemp("spark") / "table.csv"
    frame.to_csv(path, index=False)
    return path


def _table(path, **extra) -> streamsplit.LabelledTable:
    source = inputs.open_input(path, "utf-8", ",")
    return streamsplit.LabelledTable(source, "text", "label", 42, 0.2, 0.1, ("author_id",), 700,
                                     **extra)


def _both(session, table, limit, test_limit):
    local = streamsplit.TestRows(table, streamsplit.take_census(table))
    rows = sparktrain.prepare(session, str(table.source.path), table.source.format, table)
    census = sparktrain.take_census(rows, table)
    plan = data.sample_plan(census.counts, limit, 42, test_limit)
    spark_split = sparktrain.collect(session, sparktrain.labelled(rows, census), census, plan, table)
    return local, census, local.sample(plan), spark_split, rows


def _same(a: data.Split, b: data.Split) -> None:
    for part in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(a, f"x_{part}"), getattr(b, f"x_{part}"))
        pd.testing.assert_series_equal(getattr(a, f"y_{part}"), getattr(b, f"y_{part}"))


def test_the_executors_split_is_the_local_split_with_the_ledger_rows(session, table_file):
    frame = inputs.read_table(table_file)
    texts = data.clean_text(frame["text"]).iloc[[20, 30]].tolist()
    ledger = pd.DataFrame({"text": texts + ["a text only the ledger has"],
                           "label": ["False", "True", "True"], "author_id": ["a1", None, "a3"]})
    table = _table(table_file, extra=ledger, left_out=frozenset(texts))
    for limit, test_limit in ((0, 0), (1500, 300)):
        local, census, expected, split, _ = _both(session, table, limit, test_limit)
        assert census.counts == local.census.counts
        assert len(census.moves) == len(local.census.moves) == 2  # keys: Spark row ids, ordinals
        assert (census.rows_read, census.usable, census.dropped_blank_text,
                census.dropped_missing_label, census.left_out, census.label_merges) == (
            local.census.rows_read, local.census.usable, local.census.dropped_blank_text,
            local.census.dropped_missing_label, local.census.left_out, local.census.label_merges)
        _same(expected, split)
        assert {"rare"} <= set(split.y_test) and {"rare"} <= set(split.y_train)


def test_every_test_row_scored_in_the_executors_gives_the_local_metrics(session, table_file):
    table = _table(table_file)
    local, census, expected, _, rows = _both(session, table, 0, 0)
    pipeline = diagnostics.baseline_pipeline("text").fit(*expected.training_rows())
    done = sparktrain.SparkSplit(census, "", session, sparktrain.labelled(rows, census), table,
                                 str(table_file))
    evaluation, figures, scored = done.score(pipeline, 1.0)
    local_evaluation, local_figures, local_rows = local.score(pipeline, 1.0)
    assert scored == local_rows == census.sizes["test"]
    assert evaluation.metrics == pytest.approx(local_evaluation.metrics, abs=1e-12)
    assert np.array_equal(evaluation.confusion, local_evaluation.confusion)
    assert figures == pytest.approx(local_figures, rel=1e-6)
