"""The promotion rule and registry look-ups."""
from __future__ import annotations

import pytest

import config as cfg
from textops import promotion, registry
from common import ModelNotFoundError


@pytest.mark.parametrize("score, champion, champion_score, alias, words", [
    (0.90, None, None, "champion", "no champion yet"),
    (0.60, None, None, "challenger", "below the threshold"),
    (0.90, "3", 0.85, "champion", "beats champion v3"),
    (0.85, "3", 0.85, "challenger", "does not beat champion v3"),  # a tie keeps the champion
    (0.80, "3", 0.90, "challenger", "does not beat"),
    (0.60, "3", 0.50, "challenger", "below the threshold"),  # beating a weak champion is not enough
    (0.90, "3", None, "champion", "could not be evaluated"),
])
def test_promotion_rule(score, champion, champion_score, alias, words):
    decision = promotion.decide_promotion("macro_f1", score, 0.7, champion, champion_score)
    assert decision.alias == alias
    assert words in decision.reason
    assert decision.promoted == (alias == "champion")


def test_embedded_store_lives_in_the_project_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = cfg.load_config({})
    assert registry.is_embedded(config)
    assert registry.tracking_uri(config) == f"sqlite:///{cfg.PROJECT_ROOT / 'mlflow.db'}"
    config = cfg.load_config({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert registry.tracking_uri(config) == "http://127.0.0.1:5000"
    assert not registry.is_embedded(config)


def test_resolving_versions_aliases_and_latest(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    config = cfg.load_config({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'r.db'}"})
    client = registry.connect(config)
    with pytest.raises(ModelNotFoundError, match="run train.py first"):
        registry.resolve_version(client, "m", "champion")
    client.create_registered_model("m")
    for _ in range(3):
        client.create_model_version("m", source=str(tmp_path), run_id=None)
    client.set_registered_model_alias("m", "champion", "2")
    assert registry.resolve_version(client, "m", "champion").version == "2"
    assert registry.resolve_version(client, "m", "latest").version == "3"
    assert registry.resolve_version(client, "m", "1").version == "1"
    assert registry.resolve_version(client, "m", "v1").version == "1"
    with pytest.raises(ModelNotFoundError, match="no @challenger alias"):
        registry.resolve_version(client, "m", "challenger")
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        registry.resolve_version(client, "m", "9")
    assert registry.aliases_of(client, "m") == {"champion": "2"}
