"""The promotion rule and registry look-ups."""
from __future__ import annotations

import math

import numpy as np
import pytest

import config as cfg
from textops import promotion, registry, settings
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


@pytest.mark.parametrize("score, compared, champion_score, alias, words", [
    # the test metric on every test row meets the threshold; the champion, scored on the sample
    # of test rows train.py keeps in memory, is compared with the new model on that sample
    (0.90, 0.86, 0.85, "champion", "on the same sample of the test rows (0.8600 on them)"),
    (0.90, 0.84, 0.85, "challenger", "macro_f1 0.8400 does not beat champion v3"),
    (0.65, 0.95, 0.85, "challenger", "below the threshold"),  # the threshold reads all rows
])
def test_a_champion_scored_on_a_sample_of_the_test_rows_is_compared_on_that_sample(
        score, compared, champion_score, alias, words):
    decision = promotion.decide_promotion("macro_f1", score, 0.7, "3", champion_score,
                                          compared=compared)
    assert (decision.alias, words in decision.reason) == (alias, True), decision.reason


def _test(pvalue):
    return promotion.PairedTest("paired bootstrap", 0.01, (-0.002, 0.02), pvalue)


@pytest.mark.parametrize("score, champion_score, test, min_gain, alias, words", [
    (0.90, 0.85, _test(0.001), 0.0, "champion", "significantly (paired bootstrap p=0.001)"),
    (0.90, 0.85, _test(0.31), 0.0, "challenger", "not significantly (paired bootstrap p=0.310 >= 0.05)"),
    (0.90, 0.85, _test(0.05), 0.0, "challenger", "not significantly"),  # p must be below alpha
    (0.90, 0.89, _test(0.001), 0.02, "challenger", "less than the minimum gain 0.0200"),
    (0.90, 0.85, None, 0.0, "champion", "beats champion v3"),  # alpha 0: any margin, as before
    (0.85, 0.85, _test(0.001), 0.0, "challenger", "does not beat champion v3"),
    (0.60, 0.50, _test(0.001), 0.0, "challenger", "below the threshold"),
])
def test_promotion_rule_with_a_significance_gate(score, champion_score, test, min_gain, alias,
                                                 words):
    decision = promotion.decide_promotion("macro_f1", score, 0.7, "3", champion_score, test,
                                          0.05, min_gain)
    assert decision.alias == alias and words in decision.reason


def _audit(difference, low, high, pvalue):
    test = promotion.PairedTest("weighted paired z-test", difference, (low, high), pvalue)
    return promotion.AuditComparison(120, 3, 0.9 + difference, 0.9, test)


TIED = promotion.PairedTest("paired bootstrap", 0.002, (-0.01, 0.015), 0.4)  # cannot tell apart
WORSE = promotion.PairedTest("paired bootstrap", -0.03, (-0.05, -0.01), 0.99)  # significantly worse


@pytest.mark.parametrize("score, champion_score, test, audit, alias, words", [
    # the test rows decide, the audit rows only veto a significant loss on recent data
    (0.90, 0.85, _test(0.001), _audit(0.01, -0.02, 0.04, 0.3), "champion",
     "significantly (paired bootstrap p=0.001); on 120 audit rows of 3 batch(es)"),
    (0.90, 0.85, _test(0.001), _audit(-0.08, -0.12, -0.04, 0.999), "challenger",
     "but significantly worse on 120 audit rows"),
    # the test rows cannot tell them apart: significantly better on the audit rows promotes
    (0.86, 0.85, TIED, _audit(0.07, 0.03, 0.11, 0.002), "champion",
     "the test rows cannot tell it from champion v3"),
    (0.85, 0.85, TIED, _audit(0.07, 0.03, 0.11, 0.002), "champion", "significantly better on 120"),
    (0.86, 0.85, TIED, _audit(0.02, -0.01, 0.05, 0.2), "challenger",
     "not significantly (paired bootstrap p=0.400 >= 0.05): kept as challenger; on 120 audit"),
    # never against a significant loss on the test rows, nor below the threshold
    (0.82, 0.85, WORSE, _audit(0.07, 0.03, 0.11, 0.002), "challenger", "does not beat"),
    (0.60, 0.55, TIED, _audit(0.07, 0.03, 0.11, 0.002), "challenger", "below the threshold"),
    (0.90, 0.85, _test(0.001), None, "champion", "significantly (paired bootstrap p=0.001)"),
])
def test_promotion_rule_with_the_ledgers_audit_rows(score, champion_score, test, audit, alias,
                                                    words):
    decision = promotion.decide_promotion("macro_f1", score, 0.7, "3", champion_score, test,
                                          0.05, 0.0, audit)
    assert decision.alias == alias and words in decision.reason, decision.reason


def test_the_audit_comparison_weights_rows_by_their_design_and_knows_noise():
    truth = np.array(["a"] * 100)
    same = np.where(np.arange(100) % 10 == 0, "b", "a")
    tie = promotion.audit_comparison(truth, same, same, np.ones(100), 2)
    assert tie.test.difference == 0 and tie.test.pvalue == 1.0 and not tie.accuracy - 0.9
    # the new model is right on 10 more rows; weights make each of them count 3 times
    new = np.array(["a"] * 100)
    weights = np.where(np.arange(100) % 10 == 0, 3.0, 1.0)
    better = promotion.audit_comparison(truth, new, same, weights, 2)
    assert math.isclose(better.test.difference, 30 / 120) and better.accuracy == 1.0
    assert math.isclose(better.champion_accuracy, 90 / 120)
    assert better.test.pvalue < 0.001 and better.test.interval[0] > 0
    one_row = promotion.audit_comparison(truth[:20], new[:20], same[:20], np.ones(20), 1)
    assert one_row.test.pvalue > 0.05  # 2 wins in 20 rows is noise


def _labels(seed, n=3000, right_new=0.9, right_old=0.9, classes="abc"):
    rng = np.random.default_rng(seed)
    truth = rng.choice(list(classes), n)
    other = lambda: rng.choice(list(classes), n)  # noqa: E731 - a random (often wrong) label
    new = np.where(rng.random(n) < right_new, truth, other())
    old = np.where(rng.random(n) < right_old, truth, other())
    return truth, new, old


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_paired_test_measures_the_difference_and_knows_noise_from_a_real_gain(metric):
    from sklearn.metrics import accuracy_score, f1_score

    score = (accuracy_score if metric == "accuracy"
             else lambda t, p: f1_score(t, p, average="macro"))
    truth, new, old = _labels(0, right_new=0.93, right_old=0.88)
    test = promotion.paired_test(metric, truth, new, old)
    assert test.difference == pytest.approx(score(truth, new) - score(truth, old))
    assert test.interval[0] < test.difference < test.interval[1]
    assert test.interval[0] > 0 and test.pvalue < 0.001
    # equally good models: about half score higher by chance (the old any-margin rule promoted
    # each of those); the gate lets few of them through (alpha 0.05, one-sided)
    noise = [promotion.paired_test(metric, *_labels(seed)) for seed in range(40)]
    assert sum(t.difference > 0 for t in noise) >= 15
    assert sum(t.pvalue < 0.05 for t in noise) <= 6
    same = promotion.paired_test(metric, truth, new, new)
    assert same.difference == 0 and same.pvalue == 1.0


def test_mcnemar_is_exact_on_discordant_pairs():
    truth = np.array(["a"] * 20)
    new = np.array(["a"] * 18 + ["b"] * 2)  # 8 rows only new gets right, 2 only the champion
    old = np.array(["b"] * 8 + ["a"] * 10 + ["a"] * 2)
    test = promotion.paired_test("accuracy", truth, new, old)
    assert test.method == "exact McNemar" and test.difference == pytest.approx(0.3)
    assert test.pvalue == pytest.approx(sum(math.comb(10, k) for k in range(8, 11)) / 2 ** 10)


def test_embedded_store_lives_in_the_project_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking = settings.resolve(cfg.load_config({}), cfg.PROJECT_ROOT).tracking
    assert tracking.embedded
    assert tracking.uri == f"sqlite:///{cfg.PROJECT_ROOT / 'mlflow.db'}"
    tracking = settings.resolve(cfg.load_config({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}), cfg.PROJECT_ROOT).tracking
    assert tracking.uri == "http://127.0.0.1:5000" and not tracking.embedded


def test_resolving_versions_aliases_and_latest(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    config = cfg.load_config({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'r.db'}"})
    client = registry.connect(settings.resolve(config, cfg.PROJECT_ROOT).tracking)
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
