"""End to end on every shared dataset, and against a real tracking server: the real scripts run
as subprocesses, each test in its own fresh project."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import clean_env, ok, registry, run_script, shared

pytestmark = pytest.mark.slow  # real scripts as subprocesses, on real data

MODEL = "textops-classifier"


# ------------------------------------------------------------------------------------------
# Other datasets, the demo, a real tracking server
# ------------------------------------------------------------------------------------------
def test_banking77_multiclass_end_to_end(project, tmp_path):
    train = pd.read_csv(shared("banking77", "train.csv"), dtype=str)
    subset = train.groupby("category", group_keys=False).head(40)  # keeps the suite fast
    data = tmp_path / "banking_train.csv"
    subset.to_csv(data, index=False)
    result = ok(run_script(project, "train.py", "--data", data, "--label-column", "category",
                           "--stopwords", "none", "--threshold", "0.5", "--no-leakage-check"))
    assert "v1 -> @champion" in result.stdout
    run = registry(project).get_run(registry(project).get_model_version(MODEL, "1").run_id)
    chosen, kept = run.data.metrics["best_iteration"], run.data.metrics["kept_trees"]
    assert abs(kept - 2 * chosen) <= 1  # 77 classes: both stopping folds' trees are kept
    out = tmp_path / "banking_pred.csv"
    ok(run_script(project, "predict.py", "--data", shared("banking77", "test.csv"), "--output", out,
                  "--proba", "all"))
    scored = pd.read_csv(out, dtype=str)
    truth = pd.read_csv(shared("banking77", "test.csv"), dtype=str)["category"]
    assert len(scored) == 3080 and sum(c.startswith("proba_") for c in scored.columns) == 77
    assert (scored["prediction"] == truth).mean() > 0.75
    report = tmp_path / "r.json"
    result = ok(run_script(project, "monitor.py", "--data", shared("banking77", "test.csv"),
                           "--label-column", "category", "--report", report,
                           "--min-accuracy", "0.75", "--min-macro-f1", "0.75"))
    assert json.loads(report.read_text())["performance"]["overall"]["rows"] == 3080


def test_sms_spam_imbalanced_end_to_end(project, tmp_path):
    import mlflow

    ok(run_script(project, "train.py", "--data", shared("sms_spam", "sms_spam.csv")))
    out = tmp_path / "sms_pred.csv"
    ok(run_script(project, "predict.py", "--data", shared("sms_spam", "sms_spam.csv"),
                  "--output", out))
    scored = pd.read_csv(out, dtype=str)
    texts = pd.read_csv(shared("sms_spam", "sms_spam.csv"), dtype=str)[["text"]]
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{project / 'mlflow.db'}")
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(texts)
    assert (scored["prediction"].to_numpy() == expected["prediction"].to_numpy()).all()
    assert set(scored["prediction"]) == {"ham", "spam"}


def test_demo_main_job_runs_with_no_configuration(project):
    ok(run_script(project, "demo_data.py"))
    assert len(pd.read_csv(project / "data" / "demo" / "train.csv")) == 1780
    assert "@champion" in ok(run_script(project, "train.py")).stdout
    ok(run_script(project, "predict.py", "--id-columns", "id"))
    assert len(pd.read_csv(project / "data" / "predictions.csv")) == 445
    result = ok(run_script(project, "monitor.py"))
    assert result.stdout.startswith("HEALTHY")
    assert json.loads((project / "reports" / "monitor.json").read_text())["status"] == "healthy"


@pytest.mark.server
def test_same_scripts_work_unchanged_against_a_real_mlflow_server(mlflow_server, project, tmp_path):
    """train -> predict -> monitor, then champion set and rollback, against a server on
    PostgreSQL with proxied artifacts."""
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server, TEXTOPS_MODEL_NAME="served-twcs")
    data = shared("twcs", "twcs_head5k.csv")
    first = ok(run_script(project, "train.py", "--data", data, "--label-column", "inbound", env=env))
    assert "served-twcs v1 -> @champion" in first.stdout
    second = ok(run_script(project, "train.py", "--data", data, "--label-column", "inbound",
                           env=env))
    assert "v2 -> @challenger" in second.stdout  # same data and seed: a tie keeps the champion
    client = registry(project, uri=mlflow_server)
    runs = [client.get_run(client.get_model_version("served-twcs", v).run_id) for v in ("1", "2")]
    for key in ("accuracy", "macro_f1", "roc_auc", "baseline.macro_f1"):
        assert runs[0].data.metrics[key] == runs[1].data.metrics[key], key  # reproducible
    out = tmp_path / "p.csv"
    ok(run_script(project, "predict.py", "--data", shared("twcs", "sample.csv"), "--output", out,
                  env=env))
    assert pd.read_csv(out, dtype=str)["model_version"].eq("1").all()
    ok(run_script(project, "monitor.py", "--data", shared("twcs", "sample.csv"),
                  "--label-column", "inbound", "--report", tmp_path / "r.json", "--ks-max", "1",
                  env=env))  # --ks-max 1: sample.csv's longer tweets are a known length drift
    assert json.loads((tmp_path / "r.json").read_text())["drift"]["reference_version"] == "1"
    assert not (project / "mlflow.db").exists()  # nothing went to the embedded store
    aliases = {k: str(v) for k, v in client.get_registered_model("served-twcs").aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}
    ok(run_script(project, "champion.py", "set", "2", "--reason", "canary", env=env))
    assert str(client.get_registered_model("served-twcs").aliases["champion"]) == "2"
    ok(run_script(project, "champion.py", "rollback", "--reason", "canary over", env=env))
    assert str(client.get_registered_model("served-twcs").aliases["champion"]) == "1"
    history = ok(run_script(project, "champion.py", "history", env=env)).stdout
    assert "canary over" in history and "rollback" in history


def test_tuning_logs_each_trial_as_a_nested_run_and_registers_the_best(project):
    result = ok(run_script(project, "train.py", "--data", shared("twcs", "sample.csv"),
                           "--label-column", "inbound", "--tune", "--tune-trials", "3",
                           "--threshold", "0.5", "--no-leakage-check"))
    assert "v1 -> @" in result.stdout
    client = registry(project)
    experiment = client.get_experiment_by_name("textops")
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(parent) == 1 and len(children) == 3
    assert all("validation_macro_f1" in c.data.metrics for c in children)
    top = max(c.data.metrics["validation_macro_f1"] for c in children)
    best = [c for c in children if c.data.metrics["validation_macro_f1"] == top]
    tuned = {k[len("tuned."):]: v for k, v in parent[0].data.params.items() if k.startswith("tuned.")}
    assert tuned and any(all(c.data.params[k] == v for k, v in tuned.items()) for c in best)
    assert "tuning.best_validation_macro_f1" in parent[0].data.metrics
