"""Issue 26 end to end: twcs with its reply flag and hour beside the text trains, registers,
predicts (local engine, pyfunc, Spark) and monitors; author_id trips the guards."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import (assert_clean_failure, clean_env, copy_project, model_folder, ok, registry,
                      run_script, shared)

pytestmark = pytest.mark.slow  # real scripts as subprocesses, on real data

MODEL = "textops-classifier"
SIDE = "is_reply,hour"


def side_table(rows: pd.DataFrame) -> pd.DataFrame:
    """twcs rows with two side columns derived from the real ones: whether the tweet answers
    another (``in_response_to_tweet_id`` present) and the hour it was posted."""
    posted = pd.to_datetime(rows["created_at"], format="%a %b %d %H:%M:%S %z %Y")
    return pd.DataFrame({"tweet_id": rows["tweet_id"], "text": rows["text"],
                         "inbound": rows["inbound"],
                         "is_reply": rows["in_response_to_tweet_id"].notna().map(str),
                         "hour": posted.dt.hour.astype(str), "author_id": rows["author_id"]})


def champion_folder(root, destination) -> str:
    """The champion's model folder (see conftest.model_folder)."""
    version = registry(root).get_model_version_by_alias(MODEL, "champion").version
    return model_folder(root, MODEL, str(version), destination)


@pytest.fixture(scope="module")
def side_project(tmp_path_factory):
    base = tmp_path_factory.mktemp("side")
    rows = side_table(pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str))
    data = base / "twcs_side.csv"
    rows.to_csv(data, index=False)
    root = copy_project(base / "project")
    trained = ok(run_script(root, "train.py", "--data", data, "--label-column", "inbound",
                            "--feature-columns", SIDE))
    return {"root": root, "data": data, "rows": rows, "base": base, "trained": trained}


def test_a_model_with_side_columns_records_them_everywhere_a_user_looks(side_project):
    root, trained = side_project["root"], side_project["trained"]
    assert f"{MODEL} v1 -> @champion" in trained.stdout
    assert "side columns: is_reply (categorical, 2 values), hour (numeric)" in trained.stderr
    client = registry(root)
    version = client.get_model_version(MODEL, "1")
    kinds = {"is_reply": "categorical", "hour": "numeric"}
    assert json.loads(version.tags["textops.side_columns"]) == kinds
    assert "side columns is_reply (categorical, 2 values), hour (numeric)" in \
        client.get_registered_model(MODEL).description
    run = client.get_run(version.run_id)
    assert json.loads(run.data.params["side.kinds"]) == kinds
    assert run.data.params["data.feature_columns"] == SIDE
    assert "leakage.side.is_reply_macro_f1" in run.data.metrics
    folder = client.download_artifacts(version.run_id, "", str(side_project["base"] / "art"))
    reference = json.loads(open(f"{folder}/reference/reference.json").read())
    assert set(reference["side"]) == {"is_reply", "hour"}
    importance = pd.read_csv(f"{folder}/token_importance.csv")
    assert {"side:is_reply", "side:hour"} <= set(importance["token"])
    import yaml

    logged = champion_folder(root, side_project["base"] / "model")
    mlmodel = yaml.safe_load(open(f"{logged}/MLmodel"))
    assert mlmodel["metadata"]["textops"] == {"text_column": "text", "side_columns": kinds}
    signature = {c["name"]: c["type"] for c in json.loads(mlmodel["signature"]["inputs"])}
    assert signature == {"text": "string", "is_reply": "string", "hour": "double"}


def test_predict_pyfunc_and_spark_score_with_the_side_columns(side_project, tmp_path):
    root, rows = side_project["root"], side_project["rows"].sample(300, random_state=5)
    data = tmp_path / "recent.csv"
    noon = np.arange(len(rows)) % 50 == 0  # six rows with an hour that is no number
    rows.drop(columns=["inbound"]).assign(hour=np.where(noon, "noon", rows["hour"])).to_csv(
        data, index=False)
    out = tmp_path / "scored.csv"
    result = ok(run_script(root, "predict.py", "--data", data, "--output", out,
                           "--id-columns", "tweet_id", "--proba", "all", "--explain", "3"))
    assert "value unseen in training" in result.stderr and "hour 6" in result.stderr
    local = pd.read_csv(out, dtype={"prediction": str, "tweet_id": str})
    assert len(local) == 300 and local["top_tokens"].str.contains("is_reply=").any()

    import mlflow

    served = mlflow.pyfunc.load_model(champion_folder(root, tmp_path / "model"))
    frame = pd.read_csv(data, dtype=str)[["text", "is_reply", "hour"]]
    frame["hour"] = pd.to_numeric(frame["hour"], errors="coerce")  # as a JSON client sends it
    answered = served.predict(frame)
    assert answered["prediction"].tolist() == local["prediction"].tolist()
    np.testing.assert_allclose(answered["probability"], local["probability"], atol=1e-6)

    pytest.importorskip("pyspark")
    spark_out = tmp_path / "spark.csv"
    ok(run_script(root, "predict.py", "--data", data, "--output", spark_out, "--id-columns",
                  "tweet_id", "--proba", "all", "--engine", "spark"))
    by_spark = pd.read_csv(spark_out, dtype={"prediction": str, "tweet_id": str})
    pd.testing.assert_frame_equal(by_spark, local.drop(columns=["top_tokens"]))


@pytest.mark.server
def test_the_scoring_server_takes_the_side_columns_and_refuses_rows_without_them(side_project,
                                                                                tmp_path):
    import sys
    from pathlib import Path

    import requests

    from conftest import free_port, start_server, stop_server

    root, port = side_project["root"], free_port()
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = start_server([str(mlflow_bin), "models", "serve", "-m", f"models:/{MODEL}@champion",
                         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                        tmp_path, f"http://127.0.0.1:{port}/ping", env=env)
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        rows = [["@AppleSupport my phone died again", "False", 22],
                ["we are sorry to hear that, send us a DM", "True", 3],
                ["hello", None, None]]  # missing side values are scored as missing
        answer = requests.post(url, json={"dataframe_split": {
            "columns": ["text", "is_reply", "hour"], "data": rows}}, timeout=60)
        assert answer.status_code == 200, answer.text[:500]
        served = pd.DataFrame(answer.json()["predictions"])
        assert served["prediction"].tolist()[:2] == ["True", "False"]
        text_only = requests.post(url, json={"dataframe_split": {"columns": ["text"],
                                                                 "data": [["hello"]]}}, timeout=60)
        assert text_only.status_code == 400 and "is_reply" in text_only.text
    finally:
        stop_server(proc)


def test_data_without_a_side_column_is_refused_before_anything_is_written(side_project, tmp_path):
    data = tmp_path / "no_hour.csv"
    side_project["rows"].head(50).drop(columns=["hour"]).to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    result = run_script(side_project["root"], "predict.py", "--data", data, "--output", out)
    assert_clean_failure(result, 2, "column 'hour' not found", "reads it beside the text")
    assert not out.exists() and not list(tmp_path.glob(".scored*"))
    monitored = run_script(side_project["root"], "monitor.py", "--data", data)
    assert_clean_failure(monitored, 2, "column 'hour' not found")


def test_monitor_checks_each_side_column_and_alerts_on_the_one_that_moved(side_project, tmp_path):
    root, rows = side_project["root"], side_project["rows"].sample(1500, random_state=9)
    same, moved = tmp_path / "same.csv", tmp_path / "moved.csv"
    rows.to_csv(same, index=False)
    rows.assign(is_reply="True").to_csv(moved, index=False)
    report = tmp_path / "report.json"
    quiet = run_script(root, "monitor.py", "--data", same, "--label-column", "inbound",
                       "--report", report)
    assert quiet.returncode == 0, quiet.stderr
    checks = {c["name"]: c for c in json.loads(report.read_text())["drift"]["checks"]}
    assert not checks["side:is_reply"]["drifted"] and not checks["side:hour"]["drifted"]
    alarmed = run_script(root, "monitor.py", "--data", moved, "--label-column", "inbound",
                         "--report", report)
    assert alarmed.returncode == 3, alarmed.stderr
    assert "ALERT drift: side:is_reply: PSI" in alarmed.stderr
    checks = {c["name"]: c for c in json.loads(report.read_text())["drift"]["checks"]}
    assert checks["side:is_reply"]["drifted"] and not checks["side:hour"]["drifted"]
    # a predictions file that carries the side columns (copied with --id-columns) is checked too
    scored = tmp_path / "scored.csv"
    ok(run_script(root, "predict.py", "--data", moved, "--output", scored, "--id-columns",
                  "is_reply,hour"))
    recorded = run_script(root, "monitor.py", "--data", scored, "--report", report)
    assert recorded.returncode == 3, recorded.stderr
    assert "ALERT drift: side:is_reply: PSI" in recorded.stderr


def test_author_id_is_refused_as_an_identifier_or_caught_by_the_leakage_probe(side_project):
    root, data = side_project["root"], side_project["data"]
    refused = run_script(root, "train.py", "--data", data, "--label-column", "inbound",
                         "--feature-columns", "is_reply,author_id", "--model-name", "authors")
    assert_clean_failure(refused, 2, "'author_id'", "more than TEXTOPS_TRAIN_MAX_CATEGORIES=1000")
    env = clean_env(TEXTOPS_TRAIN_MAX_CATEGORIES="5000", TEXTOPS_TRAIN_LEAKAGE="fail")
    failed = run_script(root, "train.py", "--data", data, "--label-column", "inbound",
                        "--feature-columns", "author_id", "--model-name", "authors", env=env)
    assert_clean_failure(failed, 2, "TEXTOPS_TRAIN_LEAKAGE=fail",
                         "feature column 'author_id' alone reaches")
    assert "LEAKAGE WARNING: feature column 'author_id' alone reaches" in failed.stderr
    client = registry(root)
    assert not client.search_model_versions("name='authors'")  # nothing registered


def test_changing_the_side_columns_of_the_champion_needs_consent(side_project, tmp_path):
    """Every consumer's scoring data must hold the champion's side columns: a training that
    would replace it with a model reading other columns (here: the text only) is a task change,
    refused without --allow-new-classes REASON; a side column missing from the data is named."""
    root, data = side_project["root"], side_project["data"]
    refused = run_script(root, "train.py", "--data", data, "--label-column", "inbound")
    assert_clean_failure(refused, 2, "side columns differ (champion v1: is_reply, hour; this "
                                     "data: none)", "--allow-new-classes")
    missing = run_script(root, "train.py", "--data", data, "--label-column", "inbound",
                         "--feature-columns", "is_reply,channel")
    assert_clean_failure(missing, 2, "column 'channel' not found", "--feature-columns")
    assert len(registry(root).search_model_versions(f"name='{MODEL}'")) == 1
