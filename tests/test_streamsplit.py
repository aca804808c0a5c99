"""train.py streams its input (textops.streamsplit): a census, then the samples, then the test
rows. The split it streams is the in-memory split row for row (data.split_dataset +
Split.bounded), at any chunk size; the test metrics from running sums are the metrics of the
rows held at once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from textops import calibration, data, diagnostics, inputs, model, streamsplit, testscore, training

TWCS = shared("twcs", "twcs_head5k_raw.csv")


def in_memory(frame: pd.DataFrame, path, test: float, val: float, seed: int, limit: int,
              test_limit: int, side: tuple[str, ...] = ()) -> tuple[data.LabelledData, data.Split]:
    rows = data.prepare_labelled(frame, "text", "label", path, side)
    split = data.split_dataset(rows.texts, rows.labels, "text", test, val, seed, rows.side)
    return rows, split.bounded(limit, seed, test_limit)


def streamed(path, test: float, val: float, seed: int, limit: int, test_limit: int,
             chunk: int, side: tuple[str, ...] = (), **extra) -> tuple[streamsplit.Census, data.Split]:
    source = inputs.open_input(path, "utf-8", ",", {"text": "x", "label": "y"})
    table = streamsplit.LabelledTable(source, "text", "label", seed, test, val, side, chunk, **extra)
    census = streamsplit.take_census(table)
    return census, streamsplit.collect(table, census, data.sample_plan(census.counts, limit, seed,
                                                                       test_limit))


def assert_same_split(a: data.Split, b: data.Split) -> None:
    for part in ("train", "val", "test"):
        x_a, x_b = getattr(a, f"x_{part}"), getattr(b, f"x_{part}")
        if x_a is None:
            assert x_b is None
            continue
        pd.testing.assert_frame_equal(x_a, x_b)
        pd.testing.assert_series_equal(getattr(a, f"y_{part}"), getattr(b, f"y_{part}"))


@pytest.fixture(scope="module")
def twcs(tmp_path_factory):
    """twcs_head5k with the label renamed, a side column and a few awkward rows."""
    frame = pd.read_csv(TWCS, dtype=str).rename(columns={"inbound": "label"})
    frame.loc[::97, "text"] = "  "  # blank texts
    frame.loc[5::89, "label"] = None  # missing labels
    frame.loc[7::50, "label"] = "TRUE"  # another spelling of True
    path = tmp_path_factory.mktemp("twcs") / "twcs.csv"
    frame[["text", "label", "author_id"]].to_csv(path, index=False)
    return path


@pytest.mark.parametrize("test,val,limit,test_limit,chunk", [
    (0.2, 0.1, 0, 0, 700),  # nothing cut
    (0.2, 0.1, 1000, 300, 333),  # fit and test rows sampled
    (0.25, 0.0, 700, 0, 5000),  # no validation rows, one chunk
])
def test_the_streamed_split_is_the_in_memory_split_row_for_row(twcs, test, val, limit,
                                                                test_limit, chunk):
    frame = inputs.read_table(twcs)
    rows, expected = in_memory(frame, twcs, test, val, 42, limit, test_limit, ("author_id",))
    census, split = streamed(twcs, test, val, 42, limit, test_limit, chunk, ("author_id",))
    assert_same_split(expected, split)
    assert census.class_counts == rows.class_counts
    assert census.label_merges == rows.label_merges == {"True": ["TRUE"]}
    assert (census.dropped_blank_text, census.dropped_missing_label) == (
        rows.dropped_blank_text, rows.dropped_missing_label)
    full = data.split_dataset(rows.texts, rows.labels, "text", test, val, 42)
    assert census.sizes == full.sizes and census.usable == len(rows.labels)


def test_tiny_classes_get_a_row_in_every_partition_as_in_memory(tmp_path):
    """The tiny-class guarantee moves rows by smallest/largest hash; the census keeps only a
    few candidates per class and partition, and moves the same rows, duplicates included."""
    rng = np.random.default_rng(0)
    labels = [f"c{i % 40}" for i in range(6000)] + ["rare"] * 3 + ["pair"] * 4 + ["dup"] * 6
    texts = [f"message {rng.integers(0, 2000)} about {lab}" for lab in labels[:6000]]
    texts += ["rare one", "rare two", "rare three", "p1", "p2", "p3", "p4"] + ["same"] * 3 + ["s2"] * 3
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    frame = inputs.read_table(path)
    for chunk in (50, 1000, 10_000):
        _, expected = in_memory(frame, path, 0.2, 0.1, 7, 0, 0)
        census, split = streamed(path, 0.2, 0.1, 7, 0, 0, chunk)
        assert census.moves, "the rare classes needed moves"
        assert_same_split(expected, split)
        for part in ("train", "validation", "test"):
            assert {"rare", "pair", "dup"} <= set(census.counts[part])


def test_the_ledger_rows_come_last_and_replace_the_texts_they_label(twcs):
    frame = inputs.read_table(twcs)
    texts = data.clean_text(frame["text"]).iloc[[10, 20, 30]].tolist()
    added = pd.DataFrame({"text": texts + ["a new text from the ledger"],
                          "label": ["False", "False", "True", "True"]})
    merged = pd.concat([frame[~data.clean_text(frame["text"]).isin(texts)], added],
                       ignore_index=True)
    rows, expected = in_memory(merged, twcs, 0.2, 0.1, 3, 0, 0)
    census, split = streamed(twcs, 0.2, 0.1, 3, 0, 0, 400, extra=added, left_out=frozenset(texts))
    assert_same_split(expected, split)
    assert census.left_out >= 3 and census.usable == len(rows.labels)


def test_an_input_with_no_usable_row_is_refused_with_the_fix(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label\n ,a\nhello,\n")
    with pytest.raises(data.BadInputError, match="header but no data rows"):
        streamed(empty, 0.2, 0.1, 0, 0, 0, 100)
    with pytest.raises(data.BadInputError, match="no usable rows"):
        streamed(blank, 0.2, 0.1, 0, 0, 0, 100)


def test_test_metrics_from_running_sums_are_those_of_the_rows_held_at_once(twcs):
    """The third pass: every test row scored chunk by chunk into confusion counts,
    calibration bins and ROC scores gives the in-memory figures."""
    census, split = streamed(twcs, 0.2, 0.1, 42, 0, 0, 400)
    source = inputs.open_input(twcs, "utf-8", ",")
    table = streamsplit.LabelledTable(source, "text", "label", 42, 0.2, 0.1, (), 257)
    pipeline = diagnostics.baseline_pipeline("text").fit(*split.training_rows())
    evaluation, figures, rows = testscore.score_test_rows(
        pipeline, streamsplit.test_chunks(table, census), 1.0)
    y_pred, proba = model.predict_with_proba(pipeline, split.x_test)
    expected = model.evaluate(split.y_test, y_pred, proba, pipeline.classes_)
    assert rows == len(split.y_test) == census.sizes["test"]
    assert evaluation.metrics == pytest.approx(expected.metrics, abs=1e-12)
    assert evaluation.metrics["accuracy"] == expected.metrics["accuracy"]
    assert "roc_auc" in evaluation.metrics
    assert evaluation.report_text == expected.report_text
    assert np.array_equal(evaluation.confusion, expected.confusion)
    # chunks of other sizes than the in-memory run's: the last bits of a float may differ
    assert figures == pytest.approx(calibration.calibration_metrics(
        proba, split.y_test, pipeline.classes_, 1.0), rel=1e-6)
    # sums of separate chunks (Spark partitions) merge into the same figures
    halves = [testscore.TestSums(pipeline.classes_, 1.0) for _ in range(2)]
    for i, (x, y) in enumerate(streamsplit.test_chunks(table, census)):
        halves[i % 2].add(pipeline, x, y)
    merged = halves[0].merge(halves[1]).result()
    assert merged[0].metrics == evaluation.metrics and merged[2] == rows
    assert merged[1] == pytest.approx(figures, rel=1e-12)
    # in two worker processes (a big test split): the same figures, bit for bit
    parallel = testscore.score_test_rows(pipeline, streamsplit.test_chunks(table, census), 1.0,
                                         workers=2)
    assert (parallel[0].metrics, parallel[1], parallel[2]) == (evaluation.metrics, figures, rows)


def test_train_keeps_samples_only_and_says_so(twcs, monkeypatch):
    """A training whose data exceeds max_fit_rows and max_test_rows holds the samples; the
    census still counts every row (logged as data.rows_*), the fit rows are the in-memory
    sample."""
    import config as cfg
    from textops import settings

    config = cfg.load_config({})
    config["train"].update(data=str(twcs), max_fit_rows=1200, max_test_rows=250, chunk_size=600)
    config["data"]["label_column"] = "label"
    job = training.make_job(settings.resolve(config, cfg.PROJECT_ROOT))
    td = training.load_training_data(job)
    _, expected = in_memory(inputs.read_table(twcs), twcs, job.data.test_size,
                            job.data.validation_size, job.data.random_seed, 1200, 250)
    assert_same_split(expected, td.split)
    assert td.test_sampled and td.split.sizes["test"] < td.census.sizes["test"]
    assert sum(td.census.sizes.values()) == td.census.usable
