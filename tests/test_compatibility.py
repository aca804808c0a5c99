"""Models registered by earlier releases keep loading and scoring the same.

Each fixture is a model version exactly as its release logged it (see their READMEs):
tests/fixtures/legacy_model/ (an early release, scikit-learn TF-IDF) and
tests/fixtures/release_model/ (the release before textprep became a package: hashed TF-IDF and
CatBoostText). These tests register one in a fresh store and score it today.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, clean_env, registry, run_script

FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
MODEL = "textops-classifier"


def read_inputs(fixture: Path) -> pd.DataFrame:
    return pd.read_csv(fixture / "inputs.csv", dtype=str, keep_default_na=False, na_values=[""])


def expected(fixture: Path) -> dict:
    return json.loads((fixture / "expected_proba.json").read_text())


@pytest.fixture(params=["legacy_model", "release_model"])
def fixture(request) -> Path:
    return FIXTURES / request.param


@pytest.fixture
def legacy_store(project: Path, fixture: Path) -> Path:
    """A project whose embedded registry holds the fixture's model as version 1 (@champion)."""
    source = project / "legacy-model"
    shutil.copytree(fixture / "model", source)
    client = registry(project)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, source=str(source))
    client.set_registered_model_alias(MODEL, "champion", "1")
    return project


@pytest.mark.slow
def test_predict_py_scores_a_legacy_model_byte_for_byte_as_its_release_did(legacy_store, fixture,
                                                                          tmp_path):
    out = tmp_path / "scored.csv"
    result = run_script(legacy_store, "predict.py", "--data", fixture / "inputs.csv", "--output",
                        out, "--id-columns", "id", "--proba", "all", "--model", "1",
                        env=clean_env())
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (fixture / "expected_predict.csv").read_bytes()


def test_the_registry_loader_and_pyfunc_give_the_legacy_probabilities(legacy_store, fixture,
                                                                      monkeypatch):
    import mlflow

    from textops import registry as reg

    uri = f"sqlite:///{legacy_store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    want = expected(fixture)
    frame = read_inputs(fixture)
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
