"""Batch scoring: order and bytes independent of workers, atomic output, resume after a kill."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from textops import inputs
from textops.columns import Columns

import config as cfg
from textops import batch, registry, settings, spark
from textops import model as modeling
from common import BadInputError
from conftest import shared


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small twcs model saved the way train.py logs it (skops, trusted types, textprep)."""
    import mlflow

    frame = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).head(1200)
    config = cfg.load_config({})
    config["catboost"].update(iterations=30, cv_folds=3)
    config["tfidf"].update(max_features=2000, char_max_features=2000)
    pipe = modeling.build_pipeline(settings.resolve(config, cfg.PROJECT_ROOT).model, modeling.load_stopwords("english"))
    modeling.fit_pipeline(pipe, frame[["text"]], frame["inbound"])
    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.sklearn.save_model(pipe, str(path), serialization_format="skops",
                              skops_trusted_types=registry.skops_trusted_types(pipe),
                              code_paths=[str(registry.TEXTPREP_PATH)])
    return str(path)


def run(saved_model, output, workers=1, resume=False, stop_after=None, version="3", chunk=250):
    data = shared("twcs", "twcs_head5k_raw.csv")
    fmt = inputs.detect_format(data, "utf-8", ",")
    job = batch.ScoringSpec(model_path=saved_model, columns=Columns(text="text", label="label", ids=("tweet_id",)),
                            model_version=version, proba_columns=True, explain=0,
                            format=batch.output_format(output))
    stat = data.stat()
    manifest = batch.Manifest(str(data), stat.st_size, stat.st_mtime_ns, "m", version, chunk,
                              {"id_columns": ["tweet_id"]})
    seen = []

    def on_rows(rows):
        seen.append(rows)
        if stop_after is not None and len(seen) >= stop_after:
            raise KeyboardInterrupt  # a kill between two chunks
    chunks = inputs.iter_table(data, fmt, chunk, ["text", "tweet_id"])
    return batch.write_predictions(chunks, output, job, manifest,
                                   batch.Execution(workers=workers, resume=resume, on_rows=on_rows))


def test_output_is_identical_whatever_the_number_of_workers(saved_model, tmp_path):
    rows, _ = run(saved_model, tmp_path / "one.csv", workers=1)
    run(saved_model, tmp_path / "two.csv", workers=2)
    assert rows == 5000
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    ids = pd.read_csv(tmp_path / "two.csv", dtype=str)["tweet_id"]
    assert ids.tolist() == pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)["tweet_id"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "two.csv"]


def test_monitoring_probabilities_are_the_same_from_workers_and_in_order(saved_model):
    data = shared("twcs", "twcs_head5k_raw.csv")
    fmt = inputs.detect_format(data, "utf-8", ",")
    job = batch.ScoringSpec(model_path=saved_model, columns=Columns(text="text", label="label", ids=()),
                            model_version="3", proba_columns=False, explain=0)

    def scored(workers):
        chunks = inputs.iter_table(data, fmt, 700, ["text"])
        pairs = list(batch.scored_chunks(chunks, job, batch.Execution(workers=workers)))
        assert [len(chunk) for chunk, _ in pairs] == [700] * 7 + [100]
        return pd.concat([proba for _, proba in pairs])

    proba = scored(1)
    pd.testing.assert_frame_equal(proba, scored(2))
    assert proba.index.tolist() == list(range(5000))
    assert proba.columns.tolist() == ["False", "True"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_an_interrupted_run_resumes_to_the_same_bytes(saved_model, tmp_path):
    run(saved_model, tmp_path / "full.csv")
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        run(saved_model, out, workers=2, stop_after=7)
    partial, manifest = batch.partial_paths(out)
    assert not out.exists() and partial.exists()
    state = json.loads(manifest.read_text())
    assert state["chunks_done"] == 7 and state["rows_done"] == 1750
    with open(partial, "ab") as handle:  # half a chunk written when the kill came
        handle.write(b"garbage,from,a,torn,write\n")
    rows, _ = run(saved_model, out, workers=1, resume=True)
    assert rows == 5000
    assert out.read_bytes() == (tmp_path / "full.csv").read_bytes()
    assert not partial.exists() and not manifest.exists()


def test_resume_refuses_another_model_version(saved_model, tmp_path):
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        run(saved_model, out, stop_after=2, version="3")
    with pytest.raises(BadInputError, match="model_version='3'.*'4'"):
        run(saved_model, out, resume=True, version="4")


def test_without_resume_an_unfinished_run_is_started_over(saved_model, tmp_path):
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        run(saved_model, out, stop_after=2)
    rows, _ = run(saved_model, out, resume=False, chunk=1000)
    assert rows == 5000 and len(pd.read_csv(out)) == 5000
    assert not batch.partial_paths(out)[0].exists()


def test_gzip_output_is_one_valid_file_and_resumable(saved_model, tmp_path):
    import gzip

    run(saved_model, tmp_path / "plain.csv")
    out = tmp_path / "out.csv.gz"
    with pytest.raises(KeyboardInterrupt):
        run(saved_model, out, workers=2, stop_after=3)
    run(saved_model, out, workers=2, resume=True)
    assert gzip.decompress(out.read_bytes()) == (tmp_path / "plain.csv").read_bytes()
    run(saved_model, tmp_path / "again.csv.gz", workers=1)
    assert (tmp_path / "again.csv.gz").read_bytes() == out.read_bytes()  # deterministic bytes


def test_parquet_output_has_the_csv_rows_and_is_resumable(saved_model, tmp_path):
    import pyarrow.parquet as pq

    run(saved_model, tmp_path / "plain.csv")
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        run(saved_model, out, workers=2, stop_after=5)
    assert not out.exists()
    run(saved_model, out, workers=2, resume=True)
    frame = pd.read_parquet(out)
    expected = pd.read_csv(tmp_path / "plain.csv", dtype={"tweet_id": str, "prediction": str})
    assert frame.columns.tolist() == expected.columns.tolist()
    assert frame["tweet_id"].tolist() == expected["tweet_id"].tolist()
    assert frame["prediction"].tolist() == expected["prediction"].tolist()
    assert (frame["probability"] - expected["probability"]).abs().max() < 1e-6
    assert pq.ParquetFile(out).metadata.num_row_groups == 20  # one per 250-row chunk
    run(saved_model, tmp_path / "again.parquet", workers=1)
    assert (tmp_path / "again.parquet").read_bytes() == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.parquet", "out.parquet", "plain.csv"]


def test_spark_gets_its_own_names_for_python_codecs():
    assert spark.spark_encoding("latin-1") == "iso-8859-1"
    assert spark.spark_encoding("utf-8-sig") == "utf-8"
    assert spark.spark_encoding("utf-16-le") == "utf-16le"


# ------------------------------------------------------------------------------------------
# predict.py's options for the Spark engine: where the executors write, and what is refused
# ------------------------------------------------------------------------------------------
def _predict_job(**predict):
    from textops import scoring

    config = cfg.load_config({})
    config["predict"].update(predict)
    return scoring.make_job(settings.resolve(config, cfg.PROJECT_ROOT), resume=False)


@pytest.mark.parametrize("output, distributed", [
    ("scored.csv", False), ("scored.csv.gz", False),  # the small-data single file, as before
    ("scored.parquet", True), ("scored", True), ("hdfs://nn:8020/scored/day=1", True)])
def test_the_spark_engine_writes_a_folder_from_the_executors_unless_the_output_is_a_csv(
        output, distributed):
    pytest.importorskip("pyspark")
    job = _predict_job(engine="spark", data="in.csv", output=output)
    assert job.distributed is distributed
    if output.startswith("hdfs://"):
        assert job.target == output  # a URI is handed to Spark as it is, never made a path


@pytest.mark.parametrize("settings, words", [
    (dict(data="s3a://bucket/in.parquet"), ["--data", "--engine spark"]),
    (dict(output="hdfs://nn/scored"), ["--output", "--engine spark"]),
    (dict(partition_by="prediction"), ["--partition-by", "--engine spark"]),
    (dict(engine="spark", output="scored", partition_by="text"), ["--partition-by", "--id-columns"]),
])
def test_spark_only_options_are_refused_before_anything_runs(settings, words):
    from common import BadInputError

    if settings.get("engine") == "spark":
        pytest.importorskip("pyspark")
    with pytest.raises(BadInputError) as refused:
        _predict_job(**{"data": "in.csv", "output": "out.csv", **settings})
    for word in words:
        assert word in str(refused.value)


def test_an_input_changed_before_the_commit_publishes_nothing(saved_model, tmp_path):
    """predict.py checks its input once every row is written, before the output is published:
    a refusal there (the input changed while it was read) leaves no output and no partial file."""
    def changed():
        raise BadInputError("--data x changed while it was being read")

    data = shared("twcs", "twcs_head5k_raw.csv")
    fmt = inputs.detect_format(data, "utf-8", ",")
    job = batch.ScoringSpec(model_path=saved_model, columns=Columns(text="text", label="label"),
                            model_version="3", proba_columns=False, explain=0)
    manifest = batch.Manifest(str(data), 1, 1, "m", "3", 1000, {})
    with pytest.raises(BadInputError, match="changed while it was being read"):
        batch.write_predictions(inputs.iter_table(data, fmt, 1000, ["text"]),
                                tmp_path / "out.csv", job, manifest,
                                batch.Execution(before_commit=changed))
    assert list(tmp_path.iterdir()) == []
