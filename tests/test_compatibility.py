"""Models registered by the previous release keep loading and scoring the same.

The fixture in tests/fixtures/legacy_model/ is a model version exactly as the previous release
logged it (see its README); these tests register it in a fresh store and score it today.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, clean_env, registry, run_script

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "legacy_model"
MODEL = "textops-classifier"


def read_inputs() -> pd.DataFrame:
    return pd.read_csv(FIXTURE / "inputs.csv", dtype=str, keep_default_na=False, na_values=[""])


def expected() -> dict:
    return json.loads((FIXTURE / "expected_proba.json").read_text())


@pytest.fixture
def legacy_store(project: Path) -> Path:
    """A project whose embedded registry holds the legacy model as version 1 (@champion)."""
    source = project / "legacy-model"
    shutil.copytree(FIXTURE / "model", source)
    client = registry(project)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, source=str(source))
    client.set_registered_model_alias(MODEL, "champion", "1")
    return project


@pytest.mark.slow
def test_predict_py_scores_a_legacy_model_byte_for_byte_as_its_release_did(legacy_store, tmp_path):
    out = tmp_path / "scored.csv"
    result = run_script(legacy_store, "predict.py", "--data", FIXTURE / "inputs.csv", "--output",
                        out, "--id-columns", "id", "--proba", "all", "--model", "1",
                        env=clean_env())
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (FIXTURE / "expected_predict.csv").read_bytes()


def test_the_registry_loader_and_pyfunc_give_the_legacy_probabilities(legacy_store, monkeypatch):
    import mlflow

    from textops import registry as reg

    uri = f"sqlite:///{legacy_store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    want = expected()
    frame = read_inputs()
    frame = frame[frame["text"].fillna("").str.strip() != ""]
    pipeline = reg.load_pipeline(MODEL, "1")
    assert [str(c) for c in pipeline.classes_] == want["classes"]
    np.testing.assert_allclose(pipeline.predict_proba(frame[["text"]]), want["proba"], rtol=0,
                               atol=1e-12)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(frame[["text"]])
    np.testing.assert_allclose(served[[f"proba_{c}" for c in want["classes"]]].to_numpy(),
                               want["proba"], rtol=0, atol=1e-12)
    assert served["prediction"].tolist() == [want["classes"][i] for i in
                                             np.argmax(want["proba"], axis=1)]
