"""End to end: the real scripts, run as subprocesses on real data, as cron or CI would run them."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import (
    assert_clean_failure,
    clean_env,
    copy_project,
    free_port,
    model_folder,
    ok,
    registry,
    run_script,
    shared,
)

pytestmark = pytest.mark.slow  # real scripts as subprocesses, on real data

MODEL = "textops-classifier"


@pytest.fixture(scope="module")
def twcs_project(tmp_path_factory):
    """A project whose registry holds v1 (@champion, trained on twcs_head5k_raw) and v2, a
    deliberately weak challenger, trained keeping only 400 test rows in memory (its test metrics
    stream all of them) and reading its data 700 rows at a time."""
    root = copy_project(tmp_path_factory.mktemp("twcs") / "project")
    first = ok(run_script(root, "train.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                          "--label-column", "inbound"))
    weak_env = clean_env(TEXTOPS_CATBOOST_LINEAR_BOOST="false", TEXTOPS_TFIDF_MAX_FEATURES="20")
    second = ok(run_script(root, "train.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                           "--label-column", "inbound", "--iterations", "3", "--threshold", "0.5",
                           "--max-test-rows", "400", env={**weak_env, "TEXTOPS_TRAIN_CHUNK_SIZE": "700"}))
    return {"root": root, "first": first, "second": second}


# ------------------------------------------------------------------------------------------
# train.py
# ------------------------------------------------------------------------------------------
def test_first_training_is_promoted_to_champion_with_everything_logged(twcs_project):
    root, result = twcs_project["root"], twcs_project["first"]
    assert f"{MODEL} v1 -> @champion" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1  # one summary line
    client = registry(root)
    assert client.get_registered_model(MODEL).aliases["champion"] in ("1", 1)
    version = client.get_model_version(MODEL, "1")
    assert version.tags["textops.decision"] == "champion"
    assert "no champion yet" in version.tags["textops.reason"]
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    metrics, params = run.data.metrics, run.data.params
    for key in ("accuracy", "macro_f1", "roc_auc", "recall.True", "precision.False", "f1.True",
                "training_seconds"):
        assert key in metrics, key
    assert metrics["macro_f1"] > 0.85
    assert {"baseline.macro_f1", "baseline.accuracy", "gap.macro_f1"} <= set(metrics)
    assert "identifiers alone" in run.data.tags["textops.leakage_warning"]  # twcs leaks via @handles
    assert "identifiers alone" in version.tags["textops.leakage_warning"]
    assert "LEAKAGE WARNING" in result.stderr
    assert params["data.rows_usable"] == "5000" and len(params["data.sha256"]) == 64
    assert 900 < int(params["data.rows_test"]) < 1100  # stable hash split: about 20 %
    assert params["stopwords.source"].endswith("english") or params["stopwords.source"] == "nltk"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "classification_report.txt", "classification_report.json",
            "data_profile.json", "stopwords.txt", "token_importance.csv"} <= artifacts
    assert (root / "mlflow.db").is_file() and (root / "mlartifacts").is_dir()
    assert not (root / "catboost_info").exists()
    assert "v1 -> @champion" in (root / "logs" / "train.log").read_text()


def test_the_mlflow_ui_reads_as_a_model_card(twcs_project):
    client = registry(twcs_project["root"])
    card = client.get_registered_model(MODEL).description
    assert "`text`" in card and "`inbound`" in card and "2 classes" in card
    assert "twcs_head5k_raw.csv" in card and "5000 usable rows" in card
    first, second = (client.get_model_version(MODEL, v).description for v in ("1", "2"))
    assert "accuracy 0." in first and "linear baseline macro-F1" in first
    assert "Promotion: @champion" in first and "Leakage check: the identifiers alone" in first
    assert "Promotion: @challenger" in second and "does not beat champion v1" in second


def test_logged_model_has_signature_input_example_and_safe_serialisation(twcs_project):
    import mlflow

    root = twcs_project["root"]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{root / 'mlflow.db'}")
    info = mlflow.models.get_model_info(f"models:/{MODEL}@champion")
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs] == ["text"]
    sklearn_flavor = info.flavors["sklearn"]
    assert sklearn_flavor["serialization_format"] == "skops"
    assert sorted(sklearn_flavor["skops_trusted_types"]) == [  # the names older models record
        "catboost.core.CatBoostClassifier", "textprep.CatBoostText", "textprep.HashedTfidf",
        "textprep.TextColumn"]
    assert info.saved_input_example_info is not None
    assert [c.name for c in info.signature.outputs.inputs] == [
        "prediction", "probability", "proba_False", "proba_True"]
    assert info.flavors["python_function"]["loader_module"] == "textprep"
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")  # the raw Pipeline too
    assert list(model.classes_) == ["False", "True"]


def test_a_worse_model_becomes_challenger_and_the_champion_stays(twcs_project):
    root, result = twcs_project["root"], twcs_project["second"]
    assert f"{MODEL} v2 -> @challenger" in result.stdout
    assert "does not beat champion v1" in result.stdout
    client = registry(root)
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["textops.decision"] == "challenger" and tags["textops.previous_champion"] == "1"
    assert float(tags["textops.champion_score"]) > float(tags["textops.score"])
    assert tags["textops.promotion_test"] == "paired bootstrap"  # the metric is macro-F1
    assert float(tags["textops.promotion_difference"]) < 0 and float(tags["textops.promotion_pvalue"]) > 0.5
    low, high = json.loads(tags["textops.promotion_interval"])
    assert low <= float(tags["textops.promotion_difference"]) <= high
    run = client.get_run(client.get_model_version(MODEL, "2").run_id)
    assert run.data.tags["textops.decision"] == "challenger"
    assert run.data.tags["textops.promotion_pvalue"] == tags["textops.promotion_pvalue"]
    assert "champion_macro_f1" in run.data.metrics


def test_test_metrics_cover_every_test_row_when_only_a_sample_is_kept(twcs_project, tmp_path):
    """v2 kept 400 of its test rows in memory (the champion was compared on them) and streamed
    every test row for its metrics: they are the metrics of the registered model on the whole
    test split, computed here in memory."""
    import mlflow

    from textops import data, inputs, model

    root, client = twcs_project["root"], registry(twcs_project["root"])
    run = client.get_run(client.get_model_version(MODEL, "2").run_id)
    params, metrics = run.data.params, run.data.metrics
    assert "on the same sample of the test rows" in twcs_project["second"].stdout
    path = shared("twcs", "twcs_head5k_raw.csv")
    rows = data.prepare_labelled(inputs.read_table(path), "text", "inbound", path)
    split = data.split_dataset(rows.texts, rows.labels, "text", 0.2, 0.1, 42)
    assert int(params["data.rows_test"]) == len(split.y_test) > 900
    assert int(params["data.rows_test_sample"]) == 400
    pipeline = mlflow.sklearn.load_model(model_folder(root, MODEL, "2", tmp_path / "v2"))
    predicted, proba = model.predict_with_proba(pipeline, split.x_test)
    expected = model.evaluate(split.y_test, predicted, proba, pipeline.classes_).metrics
    for name in ("accuracy", "macro_f1", "roc_auc"):
        assert metrics[name] == pytest.approx(expected[name], abs=1e-9), name
    assert "all %d test rows scored" % len(split.y_test) in (root / "logs" / "train.log").read_text()


# ------------------------------------------------------------------------------------------
# predict.py
# ------------------------------------------------------------------------------------------
def test_predict_matches_the_registered_champion_through_pyfunc(twcs_project, tmp_path):
    import mlflow

    root = twcs_project["root"]
    out = tmp_path / "scored" / "predictions.csv"
    result = ok(run_script(root, "predict.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                           "--output", out, "--id-columns", "tweet_id,author_id",
                           "--chunk-size", "700", "--proba", "all"))
    assert f"5000 rows scored with {MODEL} v1" in result.stdout
    scored = pd.read_csv(out, dtype=str)
    assert list(scored.columns) == ["tweet_id", "author_id", "prediction", "probability",
                                    "model_version", "proba_False", "proba_True"]
    assert len(scored) == 5000 and scored["model_version"].eq("1").all()
    source = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)
    assert scored["tweet_id"].tolist() == source["tweet_id"].tolist()  # input order kept

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    raw = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)
    # twcs_head5k.csv is the cleaned twin of the raw file: \r became \n in one tweet
    expected = model.predict(raw[["text"]])  # pyfunc: labels and probabilities
    assert list(expected.columns) == ["prediction", "probability", "proba_False", "proba_True"]
    assert (scored["prediction"].to_numpy() == expected["prediction"].to_numpy()).mean() > 0.999
    np.testing.assert_allclose(scored[["probability", "proba_False", "proba_True"]].astype(float)
                               .head(200), expected.iloc[:200, 1:], atol=1e-6)
    proba = model.get_raw_model().predict_proba(raw[["text"]].head(200))
    np.testing.assert_allclose(expected[["proba_False", "proba_True"]].head(200), proba, atol=1e-12)
    assert not list(out.parent.glob(".*tmp"))  # no temporary file left behind


@pytest.mark.parametrize("ref, version", [("latest", "2"), ("challenger", "2"), ("1", "1")])
def test_predict_by_alias_latest_or_version(twcs_project, tmp_path, ref, version):
    out = tmp_path / "p.csv"
    ok(run_script(twcs_project["root"], "predict.py", "--data", shared("twcs", "sample.csv"),
                  "--output", out, "--model", ref))
    assert pd.read_csv(out, dtype=str)["model_version"].eq(version).all()


def test_predict_can_explain_each_row_with_its_top_tokens(twcs_project, tmp_path):
    out = tmp_path / "explained.csv"
    ok(run_script(twcs_project["root"], "predict.py", "--data", shared("twcs", "sample.csv"),
                  "--output", out, "--explain", "3"))
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(scored.columns)[-1] == "top_tokens"
    lengths = scored["top_tokens"].str.split(" | ", regex=False).map(len)
    assert lengths.between(1, 3).mean() > 0.9


def test_predict_picks_the_format_by_extension_and_refuses_unknown_ones(twcs_project, tmp_path):
    frames = {}
    for name in ("scored.csv", "scored.csv.gz", "scored.parquet"):
        ok(run_script(twcs_project["root"], "predict.py", "--data", shared("twcs", "sample.csv"),
                      "--output", tmp_path / name, "--proba", "all", "--id-columns", "tweet_id"))
        frames[name] = (pd.read_parquet(tmp_path / name) if name.endswith(".parquet")
                        else pd.read_csv(tmp_path / name, dtype={"tweet_id": str}))
    plain = frames["scored.csv"]
    assert len(plain) == 93 and {"proba_True", "proba_False"} <= set(plain.columns)
    pd.testing.assert_frame_equal(frames["scored.csv.gz"], plain)
    parquet = frames["scored.parquet"]
    assert parquet.columns.tolist() == plain.columns.tolist()
    assert parquet["tweet_id"].tolist() == plain["tweet_id"].tolist()
    assert parquet["prediction"].tolist() == plain["prediction"].astype(str).tolist()
    np.testing.assert_allclose(parquet["probability"], plain["probability"], atol=1e-6)
    result = run_script(twcs_project["root"], "predict.py", "--data", shared("twcs", "sample.csv"),
                        "--output", tmp_path / "scored.xlsx")
    assert_clean_failure(result, 2, ".parquet")


@pytest.mark.spark
def test_spark_engine_writes_the_same_bytes_as_the_local_engine(twcs_project, tmp_path):
    pytest.importorskip("pyspark")  # the optional scale-out extra (installed by .ci/run)
    data = tmp_path / "tweets.csv"
    tweets = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).head(1500)
    tweets.loc[3, "text"] = ""  # a blank text stays blank with both engines
    tweets.to_csv(data, index=False)
    outputs = {}
    for engine in ("local", "spark"):
        outputs[engine] = tmp_path / f"{engine}.csv"
        ok(run_script(twcs_project["root"], "predict.py", "--data", data, "--output",
                      outputs[engine], "--id-columns", "tweet_id", "--proba", "all", "--engine",
                      engine, "--chunk-size", "400"))
    assert len(pd.read_csv(outputs["spark"])) == 1500
    assert outputs["spark"].read_bytes() == outputs["local"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.csv", "spark.csv", "tweets.csv"]
    result = run_script(twcs_project["root"], "predict.py", "--data", shared("twcs", "sample.csv"),
                        "--output", tmp_path / "x.csv", "--engine", "spark", "--resume")
    assert_clean_failure(result, 2, "--engine local only")


@pytest.mark.spark
def test_spark_engine_writes_a_committed_folder_from_the_executors(twcs_project, tmp_path):
    """--engine spark into a folder: Parquet parts partitioned by prediction, committed with
    _SUCCESS and renamed into place (no hidden staging folder left); the same prediction per
    id as the local engine; monitor.py --engine spark reads the folder as it is (replacing an
    output and a failed job: tests/test_spark_commit.py)."""
    pytest.importorskip("pyspark")
    data = tmp_path / "tweets.csv"
    tweets = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).iloc[1500:2700]
    tweets.iloc[3, tweets.columns.get_loc("text")] = "  "  # blank: no prediction, as locally
    tweets.to_csv(data, index=False)
    local, folder = tmp_path / "local.csv", tmp_path / "scored"
    ok(run_script(twcs_project["root"], "predict.py", "--data", data, "--output", local,
                  "--id-columns", "tweet_id,inbound"))
    result = ok(run_script(twcs_project["root"], "predict.py", "--data", data, "--output", folder,
                           "--id-columns", "tweet_id,inbound", "--engine", "spark",
                           "--spark-master", "local[2]", "--partition-by", "prediction"))
    assert f"1200 rows scored with {MODEL} v1 -> {folder}" in result.stdout
    assert (folder / "_SUCCESS").exists()
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == \
        ["prediction=False", "prediction=True", "prediction=__HIVE_DEFAULT_PARTITION__"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.csv", "scored", "tweets.csv"]
    import pyarrow.dataset as ds

    spark_rows = ds.dataset(folder, partitioning="hive").to_table().to_pandas().set_index("tweet_id")
    local_rows = pd.read_csv(local, dtype={"tweet_id": str}).set_index("tweet_id")
    assert len(spark_rows) == 1200 and spark_rows.index.is_unique
    spark_rows = spark_rows.loc[local_rows.index]
    blank = local_rows["prediction"].isna()
    assert blank.sum() == 1 and spark_rows["prediction"][blank].isna().all()
    assert (spark_rows["prediction"][~blank] == local_rows["prediction"][~blank].astype(str)).all()
    np.testing.assert_allclose(spark_rows["probability"][~blank], local_rows["probability"][~blank],
                               atol=1e-6)
    # monitor.py --engine spark reads the folder where it is: the executors fold the parts
    report, to_label = tmp_path / "r.json", tmp_path / "to_label.csv"
    monitored = run_script(twcs_project["root"], "monitor.py", "--data", folder, "--label-column",
                           "inbound", "--report", report, "--html", "", "--engine", "spark",
                           "--spark-master", "local[2]", "--id-columns", "tweet_id",
                           "--label-sample", "20", "--to-label", to_label)
    assert monitored.returncode in (0, 1) and "Traceback" not in monitored.stderr
    seen = json.loads(report.read_text())
    assert seen["data"]["rows"] == 1200 and seen["performance"]["overall"]["rows"] == 1199
    local_accuracy = (local_rows["prediction"][~blank].astype(str) ==
                      local_rows["inbound"][~blank].astype(str)).mean()
    assert seen["performance"]["overall"]["accuracy"] == pytest.approx(local_accuracy)
    drawn = pd.read_csv(to_label, dtype=str)  # known by their ids: no row numbers across parts
    assert len(drawn) == 20 and "row" not in drawn and drawn["tweet_id"].is_unique
    assert drawn["tweet_id"].isin(local_rows.index[~blank]).all()


def test_rows_with_empty_text_get_a_blank_prediction(twcs_project, tmp_path):
    data = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": ["@AppleSupport my phone is broken", "", "thanks!"]}) \
        .to_csv(data, index=False)
    out = tmp_path / "out.csv"
    ok(run_script(twcs_project["root"], "predict.py", "--data", data, "--output", out,
                  "--id-columns", "id"))
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == ["1", "2", "3"]
    assert scored["prediction"].tolist()[1] == "" and scored["probability"].tolist()[1] == ""
    assert scored["prediction"].tolist()[0] in ("True", "False")


# ------------------------------------------------------------------------------------------
# monitor.py
# ------------------------------------------------------------------------------------------
def test_monitor_on_another_twcs_excerpt_performs_well_but_reports_its_longer_texts(
        twcs_project, tmp_path):
    """sample.csv is the dataset's public excerpt, not part of twcs_head5k: the model still
    classifies it well (no performance alert), but its tweets are longer (median ~104 -> ~132
    characters), which the text-length drift check reports with exit 3."""
    root = twcs_project["root"]
    report = tmp_path / "report.json"
    result = run_script(root, "monitor.py", "--data", shared("twcs", "sample.csv"),
                        "--label-column", "inbound", "--report", report)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout.startswith("DRIFT") and "Traceback" not in result.stderr
    body = json.loads(report.read_text())
    assert body["status"] == "drift" and body["exit_code"] == 3 and body["alerts"] == []
    assert [c["name"] for c in body["drift"]["checks"] if c["drifted"]] == ["text_length"]
    [drifted] = body["drift"]["drifted"]  # a drift that does not hurt, as the estimate says
    assert "; estimated accuracy did not move (" in drifted
    assert body["estimated"]["realized"]["accuracy"] == body["performance"]["overall"]["accuracy"]
    assert body["model"]["versions"] == ["1"] and body["data"]["rows_checked"] == 93
    assert body["performance"]["overall"]["accuracy"] > 0.9
    assert body["performance"]["per_version"]["1"]["reference"]["macro_f1"] > 0.85
    assert [c["name"] for c in body["drift"]["checks"]] == [
        "predicted_class_distribution", "confidence", "text_length", "out_of_vocabulary_rate",
        "text_content"]  # the last one skipped: 93 texts are too few to judge content
    client = registry(root)
    experiment = client.get_experiment_by_name("textops-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and runs[0].data.tags["textops.model_version"] == "1"
    assert runs[0].data.tags["textops.status"] == "drift"
    assert "accuracy" in runs[0].data.metrics


def test_monitor_alerts_with_exit_1_when_labels_are_shuffled(twcs_project, tmp_path):
    frame = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).sample(600, random_state=0)
    frame["inbound"] = frame["inbound"].sample(frac=1, random_state=1).to_numpy()
    data = tmp_path / "shuffled.csv"
    frame.to_csv(data, index=False)
    report = tmp_path / "report.json"
    result = run_script(twcs_project["root"], "monitor.py", "--data", data, "--label-column",
                        "inbound", "--report", report)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("ALERT") and "Traceback" not in result.stderr
    body = json.loads(report.read_text())
    assert body["status"] == "alert" and body["exit_code"] == 1
    assert any("accuracy" in a for a in body["alerts"])


def test_monitor_evaluates_recorded_predictions_per_model_version(twcs_project, tmp_path):
    root = twcs_project["root"]
    source = shared("twcs", "twcs_head5k.csv")
    parts = []
    for ref in ("1", "2"):
        out = tmp_path / f"v{ref}.csv"
        ok(run_script(root, "predict.py", "--data", source, "--output", out, "--model", ref,
                      "--id-columns", "tweet_id"))
        parts.append(pd.read_csv(out, dtype=str).head(1000))
    labels = pd.read_csv(source, dtype=str)[["tweet_id", "inbound"]]
    joined = pd.concat(parts).merge(labels, on="tweet_id")
    joined["inbound"] = joined["inbound"].str.upper()  # other spelling of the same labels
    data = tmp_path / "joined.csv"
    joined.to_csv(data, index=False)
    report = tmp_path / "report.json"
    result = run_script(root, "monitor.py", "--data", data, "--label-column", "inbound",
                        "--report", report, "--min-accuracy", "0.1", "--min-macro-f1", "0.1")
    ok(result)
    body = json.loads(report.read_text())["performance"]
    assert sorted(body["per_version"]) == ["1", "2"]
    assert body["per_version"]["1"]["rows"] == 1000
    assert body["per_version"]["1"]["accuracy"] > body["per_version"]["2"]["accuracy"]
    assert body["unknown_labels"] == []


def test_monitor_estimates_accuracy_with_the_labels_withheld(twcs_project, tmp_path):
    """The nightly flow before the labels arrive: predict.py's output (no label column) is
    checked on the calibrated probabilities alone; when the labels come, the same check reports
    the estimate beside the realized accuracy."""
    root = twcs_project["root"]
    scored = tmp_path / "scored.csv"
    ok(run_script(root, "predict.py", "--data", shared("twcs", "sample.csv"), "--output", scored,
                  "--id-columns", "tweet_id", "--proba", "all"))
    report, html = tmp_path / "report.json", tmp_path / "report.html"
    result = run_script(root, "monitor.py", "--data", scored, "--report", report, "--html", html)
    ok(result)  # no text column in predict.py's output: the model-side checks and the estimate
    body = json.loads(report.read_text())
    estimated = body["performance"], body["estimated"]
    assert estimated[0] is None and body["alerts"] == []
    estimated = estimated[1]
    low, high = estimated["accuracy_interval"]
    assert estimated["rows"] == 93 and low < estimated["accuracy"] < high and 0 < high - low < 0.2
    assert estimated["macro_f1"] is not None and estimated["per_version"]["1"]["calibrated"]
    assert "estimated accuracy" in result.stdout
    assert "Estimated performance" in html.read_text()

    truth = pd.read_csv(shared("twcs", "sample.csv"), dtype=str)[["tweet_id", "inbound"]]
    labelled = tmp_path / "labelled.csv"
    pd.read_csv(scored, dtype=str).merge(truth, on="tweet_id").to_csv(labelled, index=False)
    run_script(root, "monitor.py", "--data", labelled, "--label-column", "inbound",
               "--report", report)
    realized = json.loads(report.read_text())["estimated"]["realized"]
    assert realized["rows"] == 93 and realized["accuracy"] > 0.9
    assert realized["accuracy_error"] == pytest.approx(
        realized["estimated_accuracy"] - realized["accuracy"])
    assert abs(realized["accuracy_error"]) < high - low  # 93 rows: within the interval's width

    runs = registry(root).search_runs(
        [registry(root).get_experiment_by_name("textops-monitoring").experiment_id],
        order_by=["attributes.start_time DESC"], max_results=2)
    assert "estimated.accuracy" in runs[1].data.metrics
    assert "estimated.accuracy_error" in runs[0].data.metrics


def test_monitor_alerts_with_exit_1_when_the_estimated_accuracy_is_too_low(twcs_project, tmp_path):
    """Without labels, a model that has become unsure (here: its recorded probabilities pulled
    towards 0.5) raises the performance alert from its estimate alone."""
    root = twcs_project["root"]
    scored = tmp_path / "scored.csv"
    ok(run_script(root, "predict.py", "--data", shared("twcs", "twcs_head5k.csv"), "--output",
                  scored, "--id-columns", "tweet_id"))
    frame = pd.read_csv(scored, dtype=str).head(2000)
    frame["probability"] = "0.6"
    unsure = tmp_path / "unsure.csv"
    frame.to_csv(unsure, index=False)
    report = tmp_path / "report.json"
    result = run_script(root, "monitor.py", "--data", unsure, "--report", report)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("ALERT") and "Traceback" not in result.stderr
    found = json.loads(report.read_text())
    assert any(a.startswith("overall: estimated accuracy (ATC ") for a in found["alerts"])
    assert found["estimated"]["methods"]["cbpe"]["accuracy"] == pytest.approx(0.6)
    assert found["estimated"]["accuracy"] < 0.6  # no row reaches the ATC threshold any more


# ------------------------------------------------------------------------------------------
# Bad input, missing models, unreachable servers, crashes
# ------------------------------------------------------------------------------------------
def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.csv"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "header_only":
        path.write_text("text,label\n")
    elif kind == "no_text_column":
        path.write_text("body,label\nhello,a\nbye,b\n")
    elif kind == "single_class":
        path.write_text("text,label\n" + "".join(f"text {i},spam\n" for i in range(30)))
    elif kind == "latin1":
        path.write_bytes(("text,label\n" + "".join(f"niño {i},{'ab'[i % 2]}\n"
                                                   for i in range(30))).encode("latin-1"))
    return path


@pytest.mark.parametrize("kind, needle", [
    ("empty", "is empty"),
    ("header_only", "no data rows"),
    ("no_text_column", "--text-column"),
    ("single_class", "single class"),
    ("latin1", "--encoding"),
])
def test_train_rejects_bad_input_cleanly_before_any_run(project, tmp_path, kind, needle):
    result = run_script(project, "train.py", "--data", _bad_file(tmp_path, kind))
    assert_clean_failure(result, 2, needle)
    assert not (project / "mlflow.db").exists()  # nothing was logged or registered


@pytest.mark.parametrize("kind, needle", [
    ("empty", "is empty"), ("no_text_column", "--text-column"), ("latin1", "--encoding")])
def test_predict_rejects_bad_input_and_writes_no_output(twcs_project, tmp_path, kind, needle):
    out = tmp_path / "out" / "predictions.csv"
    result = run_script(twcs_project["root"], "predict.py", "--data", _bad_file(tmp_path, kind),
                        "--output", out)
    assert_clean_failure(result, 2, needle)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporary file either


def test_predict_failure_keeps_a_previous_output_intact(twcs_project, tmp_path):
    out = tmp_path / "predictions.csv"
    out.write_text("yesterday's predictions\n")
    data = tmp_path / "in.csv"
    data.write_bytes(b"text\nfine\n" + "niño\n".encode("latin-1"))  # fails in the 2nd chunk
    result = run_script(twcs_project["root"], "predict.py", "--data", data, "--output", out,
                        "--chunk-size", "1")
    assert_clean_failure(result, 2, "--encoding")
    assert out.read_text() == "yesterday's predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "predictions.csv"]


def test_monitor_rejects_missing_label_column(twcs_project, tmp_path):
    report = tmp_path / "r.json"
    result = run_script(twcs_project["root"], "monitor.py", "--data", shared("twcs", "sample.csv"),
                        "--label-column", "nope", "--report", report)
    assert_clean_failure(result, 2, "--label-column")
    assert not report.exists()


def test_no_champion_is_an_infrastructure_error_naming_the_fix(project, tmp_path):
    out = tmp_path / "p.csv"
    result = run_script(project, "predict.py", "--data", shared("twcs", "sample.csv"),
                        "--output", out)
    assert_clean_failure(result, 4, "train.py")
    assert not out.exists()
    result = run_script(project, "monitor.py", "--data", shared("twcs", "sample.csv"),
                        "--label-column", "inbound")
    assert_clean_failure(result, 4, "train.py")


@pytest.mark.parametrize("script", ["train.py", "predict.py", "monitor.py"])
def test_unreachable_tracking_server_fails_fast_with_exit_4(project, tmp_path, script):
    env = clean_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
                    TEXTOPS_CONNECT_TIMEOUT="3")
    args = {"train.py": ["--label-column", "inbound"],
            "predict.py": ["--output", tmp_path / "p.csv"],
            "monitor.py": ["--label-column", "inbound", "--report", tmp_path / "r.json"]}[script]
    started = time.monotonic()
    result = run_script(project, script, "--data", shared("twcs", "sample.csv"), *args, env=env)
    assert time.monotonic() - started < 60
    assert_clean_failure(result, 4, "unreachable", "MLFLOW_TRACKING_URI")
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "r.json").exists()


def test_a_crash_during_training_marks_the_run_failed_and_changes_no_alias(twcs_project):
    root = twcs_project["root"]
    module = root / "textops" / "calibration.py"
    original = module.read_text()
    module.write_text(original + "\n\ndef calibration_metrics(*args, **kwargs):  # injected bug\n"
                      "    raise RuntimeError('injected fault after the fit')\n")
    try:  # a bug mid-run (settings out of range are refused before the run now)
        result = run_script(root, "train.py", "--data", shared("twcs", "sample.csv"),
                            "--label-column", "inbound")
    finally:
        module.write_text(original)
    assert result.returncode == 70, result.stderr
    assert "internal error" in result.stderr
    client = registry(root)
    experiment = client.get_experiment_by_name("textops")
    failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert len(failed) == 1 and "textops.error" in failed[0].data.tags
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 2


def test_running_from_another_directory_uses_the_project_store(project, tmp_path):
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    ok(run_script(project, "train.py", "--data", shared("twcs", "sample.csv"), "--label-column",
                  "inbound", "--threshold", "0.5", "--no-leakage-check", "--no-baseline",
                  cwd=elsewhere))
    assert (project / "mlflow.db").is_file() and (project / "logs" / "train.log").is_file()
    assert list(elsewhere.iterdir()) == []
    # relative paths on the command line are relative to where the user stands
    shutil.copy(shared("twcs", "sample.csv"), elsewhere / "today.csv")
    ok(run_script(project, "predict.py", "--data", "today.csv", "--output", "scored.csv",
                  cwd=elsewhere))
    assert len(pd.read_csv(elsewhere / "scored.csv")) == 93


def test_kill_9_during_predict_leaves_no_output_and_resume_completes_it(twcs_project, tmp_path):
    import json
    import signal
    import subprocess
    import sys

    from textops import batch

    root = twcs_project["root"]
    data = shared("twcs", "twcs_head5k_raw.csv")
    clean = tmp_path / "clean.csv"
    ok(run_script(root, "predict.py", "--data", data, "--output", clean, "--chunk-size", "20",
                  "--id-columns", "tweet_id", "--workers", "2"))
    out = tmp_path / "killed.csv"
    partial, manifest = batch.partial_paths(out)
    proc = subprocess.Popen([sys.executable, str(root / "predict.py"), "--data", str(data),
                             "--output", str(out), "--chunk-size", "20", "--id-columns",
                             "tweet_id", "--workers", "1"], cwd=root, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(manifest.read_text())["chunks_done"] >= 5:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "predict finished before it could be killed"
    assert not out.exists() and partial.exists()
    result = ok(run_script(root, "predict.py", "--data", data, "--output", out, "--chunk-size",
                           "20", "--id-columns", "tweet_id", "--resume"))
    assert "5000 rows scored" in result.stdout
    assert out.read_bytes() == clean.read_bytes()
    assert not partial.exists() and not manifest.exists()


# ------------------------------------------------------------------------------------------
# Serving: the champion behind `mlflow models serve`, queried over HTTP
# ------------------------------------------------------------------------------------------
@pytest.mark.server
def test_served_champion_answers_like_predict_py(twcs_project, tmp_path):
    import sys

    import requests

    from conftest import clean_env, free_port, start_server, stop_server

    root = twcs_project["root"]
    rows = pd.read_csv(shared("twcs", "sample.csv"), dtype=str).head(20)
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    ok(run_script(root, "predict.py", "--data", data, "--output", out, "--proba", "all"))
    expected = pd.read_csv(out, dtype={"prediction": str})

    port = free_port()
    base = tmp_path / "serve"
    base.mkdir()
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = start_server([str(mlflow_bin), "models", "serve", "-m", f"models:/{MODEL}@champion",
                         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                        base, f"http://127.0.0.1:{port}/ping", env=env)
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        payloads = {
            "dataframe_split": {"dataframe_split": {"columns": ["text"],
                                                    "data": [[t] for t in rows["text"]]}},
            "inputs": {"inputs": {"text": rows["text"].tolist()}},
        }
        for kind, payload in payloads.items():
            response = requests.post(url, json=payload, timeout=60)
            assert response.status_code == 200, (kind, response.text[:500])
            served = pd.DataFrame(response.json()["predictions"])
            assert list(served.columns) == ["prediction", "probability", "proba_False", "proba_True"]
            assert served["prediction"].tolist() == expected["prediction"].tolist(), kind
            np.testing.assert_allclose(served[["probability", "proba_False", "proba_True"]],
                                       expected[["probability", "proba_False", "proba_True"]],
                                       atol=1e-6)
        wrong = requests.post(url, json={"dataframe_split": {"columns": ["body"], "data": [["x"]]}},
                              timeout=60)
        assert wrong.status_code == 400
    finally:
        stop_server(proc)


# ------------------------------------------------------------------------------------------
# train.py --engine spark (last: it registers v3)
# ------------------------------------------------------------------------------------------
@pytest.mark.spark
def test_the_spark_engine_trains_what_the_local_engine_trained(twcs_project):
    """train.py --engine spark with v2's settings: the executors count the census, draw the
    samples and score every test row; the driver fits and registers. The same rows, so the
    same model: v3's split, samples, metrics and promotion are v2's."""
    pytest.importorskip("pyspark")
    root = twcs_project["root"]
    env = clean_env(TEXTOPS_CATBOOST_LINEAR_BOOST="false", TEXTOPS_TFIDF_MAX_FEATURES="20")
    result = ok(run_script(root, "train.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                           "--label-column", "inbound", "--iterations", "3", "--threshold", "0.5",
                           "--max-test-rows", "400", "--engine", "spark", "--spark-master",
                           "local[2]", env=env))
    assert f"{MODEL} v3 -> @challenger" in result.stdout
    assert "on the same sample of the test rows" in result.stdout
    client = registry(root)
    local, spark = (client.get_run(client.get_model_version(MODEL, v).run_id).data
                    for v in ("2", "3"))
    for key in ("data.rows_usable", "data.rows_train", "data.rows_validation", "data.rows_test",
                "data.rows_fit_sample", "data.rows_test_sample", "data.sha256", "data.n_classes"):
        assert spark.params[key] == local.params[key], key
    for name in ("accuracy", "macro_f1", "roc_auc", "calibration.ece", "calibration.brier",
                 "champion_macro_f1", "best_iteration", "kept_trees", "n_features"):
        assert spark.metrics[name] == pytest.approx(local.metrics[name], abs=1e-9), name
    assert (spark.params["train.engine"], "train.engine" in local.params) == ("spark", False)
    for tag in ("textops.decision", "textops.classes", "textops.promotion_pvalue"):
        assert spark.tags[tag] == local.tags[tag], tag


def test_a_spark_training_refuses_bad_input_before_spark_starts(project, tmp_path):
    """A local file is checked as the local engine checks it (exit 2 before any session or
    run); a Hadoop-FS URI needs --engine spark."""
    pytest.importorskip("pyspark")
    missing = run_script(project, "train.py", "--data", shared("twcs", "sample.csv"), "--engine",
                         "spark", "--label-column", "no_such_column")
    assert_clean_failure(missing, 2, "no_such_column")
    uri = run_script(project, "train.py", "--data", "hdfs://nn:8020/tables/tweets")
    assert_clean_failure(uri, 2, "--engine spark")
    assert not (project / "mlflow.db").exists()

