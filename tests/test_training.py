"""train.py's steps without MLflow: the input checks before any run, and the model card the
MLflow UI shows (the full flow runs as a subprocess in test_e2e.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import config as cfg
from common import BadInputError
from conftest import shared
from textops import model, settings, training
from textops.monitoring.profile import ReferenceProfile


def twcs_config(path) -> training.TrainJob:
    config = cfg.load_config({})
    config["train"]["data"] = str(path)
    config["data"]["label_column"] = "inbound"
    return training.make_job(settings.resolve(config, cfg.PROJECT_ROOT))


def test_no_training_data_given_is_bad_input_not_the_project_folder():
    """--data '' (or an empty TEXTOPS_TRAIN_DATA flag value) names no file: exit 2 saying so,
    instead of reading the project folder as Parquet parts."""
    with pytest.raises(BadInputError, match="no training data given; pass --data PATH"):
        twcs_config("")
    job = twcs_config("data/x.csv")
    assert job.data_path == cfg.PROJECT_ROOT / "data" / "x.csv"  # resolved once, in settings


def test_training_data_is_read_cleaned_and_split_before_any_run():
    td = training.load_training_data(twcs_config(shared("twcs", "twcs_head5k_raw.csv")))
    assert td.census.usable == 5000 and set(td.census.class_counts) == {"False", "True"}
    assert sum(td.split.sizes.values()) == 5000 and td.split.sizes["test"] > 800
    assert len(td.sha256) == 64 and td.stopwords.language == "english"


def test_bad_training_input_fails_with_the_fix(tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,inbound\n" + "".join(f"hello {i},True\n" for i in range(30)))
    with pytest.raises(BadInputError, match="single class"):
        training.load_training_data(twcs_config(one_class))
    with pytest.raises(BadInputError, match="--label-column"):
        training.load_training_data(twcs_config(shared("banking77", "test.csv")))


def test_the_model_card_says_what_is_classified_and_how_the_version_fared():
    td = training.load_training_data(twcs_config(shared("twcs", "sample.csv")))
    metrics = {"accuracy": 0.95, "macro_f1": 0.94}
    fitted = training.Fitted(None, {}, model.Evaluation(metrics, "", {}, [], np.zeros((2, 2))),
                             np.array([]), np.array([]), 1.0)
    tags = {"textops.decision": "champion", "textops.reason": "macro_f1 0.9400 reaches ...",
            "textops.baseline_macro_f1": "0.910000", "textops.leakage_warning": "none"}
    card = training.model_card(twcs_config(shared("twcs", "sample.csv")), td, fitted, tags)
    assert "`text`" in card.model and "`inbound`" in card.model and "2 classes" in card.model
    assert "sample.csv" in card.model and "False (44)" in card.model
    for needle in ("accuracy 0.9500", "macro-F1 0.9400", "baseline macro-F1 0.9100",
                   "@champion", "Leakage check: none", td.sha256[:12]):
        assert needle in card.version, needle


def test_a_versions_task_comes_from_its_tags_else_its_reference_profile(monkeypatch):
    """Versions of this release carry their classes in tags; earlier ones are read from their
    reference profile (the typed one monitor.py reads) before falling back to the model."""
    tags = {"1": {"textops.classes": '["a", "b"]', "textops.label_column": "label"}, "2": {}}
    client = SimpleNamespace(get_model_version=lambda name, v: SimpleNamespace(tags=tags[v]))
    monkeypatch.setattr(training, "load_reference", lambda client, name, version:
                        ReferenceProfile.from_dict({"classes": [0, 1, 2]}))
    assert training.version_task(client, "m", "1") == training.Task(["a", "b"], "label")
    assert training.version_task(client, "m", "2") == training.Task(["0", "1", "2"], None)


def test_a_training_file_that_grows_while_it_is_read_is_refused(tmp_path, monkeypatch):
    """A weekly train.py started while the export is still being appended to: exit 2 before any
    run, instead of a model trained (and hashed) on a torn file."""
    from textops import inputs

    path = tmp_path / "export.csv"
    path.write_bytes(shared("twcs", "twcs_head5k_raw.csv").read_bytes())
    hash_it = inputs.Input.sha256

    def appended_meanwhile(self):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("1,sprintcare,False,x,late row,,\n")
        return hash_it(self)

    monkeypatch.setattr(inputs.Input, "sha256", appended_meanwhile)
    with pytest.raises(BadInputError, match="export.csv changed while it was being read"):
        training.load_training_data(twcs_config(path))
