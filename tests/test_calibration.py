"""Calibrated probabilities: the temperature fitted inside the model, and the measures train.py
logs (top-label ECE, Brier, reliability)."""
from __future__ import annotations

import numpy as np
import pytest

import textprep
from textops import calibration


def synthetic(n=20000, classes=4, temperature=1.0, seed=0):
    """Raw scores, and labels drawn from softmax(scores / temperature): the probabilities at
    that temperature are perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 3, size=(n, classes))
    proba = textprep.scores_to_proba(raw / temperature)
    codes = (proba.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return raw, proba, codes


@pytest.mark.parametrize("truth", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_recovers_the_true_one(truth):
    raw, _, codes = synthetic(temperature=truth)
    assert textprep.fit_temperature(raw, codes) == pytest.approx(truth, rel=0.08)


def test_binary_scores_are_one_column_and_calibrate_the_same_way():
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 4, size=(20000, 1))
    positive = textprep.scores_to_proba(raw / 2.0)[:, 1]
    codes = (rng.random(20000) < positive).astype(int)
    assert textprep.fit_temperature(raw, codes) == pytest.approx(2.0, rel=0.08)


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
    raw, proba, codes = synthetic(temperature=2.0)
    assert calibration.ece(proba, codes) < 0.02
    overconfident = textprep.scores_to_proba(raw)  # temperature 1 instead of 2
    assert calibration.ece(overconfident, codes) > 0.05
    assert calibration.brier(proba, codes) < calibration.brier(overconfident, codes)


def test_ece_and_brier_by_hand():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    codes = np.array([0, 1, 0, 1])
    # bins: 0.9 (2 rows, accuracy 0.5), 0.6 (1 row, accuracy 1), 0.8 (1 row, accuracy 1)
    assert calibration.ece(proba, codes) == pytest.approx((2 * 0.4 + 0.4 + 0.2) / 4)
    assert calibration.brier(proba, codes) == pytest.approx(
        (0.02 + 1.62 + 0.32 + 0.08) / 4)


def test_uncalibrated_undoes_the_temperature():
    raw, _, _ = synthetic(n=100)
    calibrated = textprep.scores_to_proba(raw / 1.7)
    np.testing.assert_allclose(calibration.uncalibrated(calibrated, 1.7),
                               textprep.scores_to_proba(raw), atol=1e-9)


def test_the_model_calibrates_without_changing_a_single_prediction():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    words = np.array(["refund", "late", "broken", "thanks", "great", "love", "order", "app"])
    texts = [" ".join(rng.choice(words, 6)) for _ in range(600)]
    labels = np.array(["bad" if sum(w in t for w in ("refund", "late", "broken")) >= 2 else "good"
                       for t in texts])
    labels[rng.random(600) < 0.15] = "good"  # label noise: probabilities below 1 are right
    X = TfidfVectorizer().fit_transform(texts)
    mask = np.zeros(600, bool)
    mask[::5] = True
    kwargs = dict(iterations=40, cv_folds=3, random_seed=0)
    calibrated = textprep.CatBoostText(**kwargs).fit(X, labels, validation_mask=mask)
    plain = textprep.CatBoostText(calibrate=False, **kwargs).fit(X, labels, validation_mask=mask)
    assert calibrated.temperature_ != 1.0 and plain.temperature_ == 1.0
    assert (calibrated.predict(X) == plain.predict(X)).all()
    assert not np.allclose(calibrated.predict_proba(X), plain.predict_proba(X))
    legacy = textprep.CatBoostText(**kwargs).fit(X, labels, validation_mask=mask)
    del legacy.temperature_, legacy.calibrate  # as a model saved by an earlier release
    np.testing.assert_array_equal(legacy.predict_proba(X), plain.predict_proba(X))


def _noisy_text_task(n=600, seed=0):
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(seed)
    words = np.array(["refund", "late", "broken", "thanks", "great", "love", "order", "app"])
    texts = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    labels = np.array(["bad" if sum(w in t for w in ("refund", "late", "broken")) >= 2 else "good"
                       for t in texts])
    labels[rng.random(n) < 0.15] = "good"
    mask = np.zeros(n, bool)
    mask[::5] = True
    return TfidfVectorizer().fit_transform(texts), labels, mask


def test_after_a_refit_the_temperature_is_fitted_on_cross_fitted_copies_of_the_kept_trees():
    """The registered (refitted) model's temperature comes from rows each copy did not see:
    the same model, a different temperature than the early-stopping probe's (folds 0, the
    earlier releases' rule), and exactly the temperature of those out-of-fold scores."""
    from sklearn.model_selection import StratifiedKFold

    X, labels, mask = _noisy_text_task()
    kwargs = dict(iterations=40, cv_folds=3, random_seed=0, fold_stopping=False)
    crossfit = textprep.CatBoostText(calibration_folds=3, **kwargs).fit(X, labels, validation_mask=mask)
    probe = textprep.CatBoostText(calibration_folds=0, **kwargs).fit(X, labels, validation_mask=mask)
    np.testing.assert_array_equal(crossfit.decision_function(X), probe.decision_function(X))
    assert crossfit.temperature_ != probe.temperature_
    codes = np.searchsorted(crossfit.classes_, labels)
    linear = crossfit._as_matrix(crossfit._linear_fits(X, codes)[0])
    raw = np.empty((len(codes), 1))
    for fit_rows, own in StratifiedKFold(3, shuffle=True, random_state=1).split(X, codes):
        copy = crossfit._make_model(2)
        copy.set_params(iterations=crossfit.best_iteration_)
        copy.fit(crossfit._pool(X[fit_rows], codes[fit_rows], linear[fit_rows]))
        raw[own] = crossfit._raw(copy, X[own], linear[own])
    assert crossfit.temperature_ == pytest.approx(textprep.fit_temperature(raw, codes), rel=1e-6)


STOPPING = dict(iterations=200, early_stopping_rounds=10, cv_folds=3, random_seed=0)


def _stopping_folds(X, labels, mask):
    """A model fitted with fold stopping, the labels' codes, and its stopping folds done by
    hand: three folds (CatBoostText's default, seed + 1), each fold's trees grown on the other
    folds' rows (with the linear model's out-of-fold logits) and stopped early on its own;
    their models and out-of-fold raw scores."""
    from sklearn.model_selection import StratifiedKFold

    model = textprep.CatBoostText(**STOPPING).fit(X, labels, validation_mask=mask)
    codes = np.searchsorted(model.classes_, labels)
    linear = model._as_matrix(model._linear_fits(X, codes)[0])
    raw, folds = model._empty_scores(len(codes)), []
    for fit_rows, own in StratifiedKFold(3, shuffle=True, random_state=1).split(X, codes):
        fold = model._make_model(len(model.classes_))
        fold.fit(model._pool(X[fit_rows], codes[fit_rows], linear[fit_rows]),
                 eval_set=model._pool(X[own], codes[own], linear[own]),
                 early_stopping_rounds=10, use_best_model=True)
        folds.append(fold)
        raw[own] = model._raw(fold, X[own], linear[own])
    return model, codes, folds, raw


def test_with_fold_stopping_one_set_of_out_of_fold_trees_chooses_the_trees_and_the_temperature():
    """Each cross-fitting fold's trees stop early on that fold's own rows and score them: the
    kept model has the folds' mean number of trees, grown on every row, and its temperature is
    that of those out-of-fold scores. The validation rows are trained on like any other, so
    another validation mask gives the same model."""
    X, labels, mask = _noisy_text_task()
    kwargs = STOPPING
    model, codes, folds, raw = _stopping_folds(X, labels, mask)
    trees = [fold.tree_count_ for fold in folds]
    assert max(trees) < 200  # the folds did stop early, at their own counts
    assert model.best_iteration_ == round(np.mean(trees)) == model.model_.tree_count_
    assert model.temperature_ == pytest.approx(textprep.fit_temperature(raw, codes), rel=1e-6)
    other_mask = textprep.CatBoostText(**kwargs).fit(X, labels, validation_mask=np.roll(mask, 1))
    np.testing.assert_array_equal(other_mask.predict_proba(X), model.predict_proba(X))
    probe = textprep.CatBoostText(fold_stopping=False, **kwargs).fit(X, labels, validation_mask=mask)
    assert probe.best_iteration_ != model.best_iteration_


def _three_class_task(n=900, seed=0):
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(seed)
    groups = {"billing": ["refund", "charge", "invoice"], "delivery": ["late", "parcel", "courier"],
              "praise": ["thanks", "great", "love"]}
    words = np.array([w for group in groups.values() for w in group] + ["order", "app", "today"])
    texts = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    labels = np.array([max(groups, key=lambda g: sum(t.count(w) for w in groups[g]))
                       for t in texts])
    noisy = rng.random(n) < 0.15
    labels[noisy] = rng.choice(list(groups), noisy.sum())
    mask = np.zeros(n, bool)
    mask[::5] = True
    return TfidfVectorizer().fit_transform(texts), labels, mask


def test_with_more_than_two_classes_the_stopping_folds_trees_are_kept_averaged():
    """``fold_trees="auto"`` keeps the stopping folds' own trees for more than two classes, as
    one model whose raw scores are the mean of theirs (no refit on every row): scores are the
    linear logits plus that mean, the tree count is theirs together, ``best_iteration_`` their
    mean, and the temperature that of their out-of-fold scores. ``"refit"`` grows the trees
    again on every row from the same folds (the same temperature, another model), as fold
    stopping first did. The averaged model goes through skops like any other."""
    import skops.io as sio

    from textops import registry

    X, labels, mask = _three_class_task()
    kwargs = STOPPING
    model, codes, folds, raw = _stopping_folds(X, labels, mask)
    trees = [fold.tree_count_ for fold in folds]
    on_every_row = [model._raw(fold, X, model.linear_.decision_function(X)) for fold in folds]
    assert max(trees) < 200 and model.model_.tree_count_ == sum(trees)
    assert model.best_iteration_ == round(np.mean(trees))
    np.testing.assert_allclose(model.decision_function(X), np.mean(on_every_row, axis=0),
                               atol=1e-9)
    assert model.temperature_ == pytest.approx(textprep.fit_temperature(raw, codes), rel=1e-6)
    refit = textprep.CatBoostText(fold_trees="refit", **kwargs).fit(X, labels, validation_mask=mask)
    assert refit.model_.tree_count_ == refit.best_iteration_ == model.best_iteration_
    assert refit.temperature_ == model.temperature_
    assert not np.allclose(refit.decision_function(X), model.decision_function(X))
    restored = sio.loads(sio.dumps(model), trusted=registry.skops_trusted_types(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_which_trees_are_kept_by_the_number_of_classes_unless_chosen():
    def keeps(n_classes, **kwargs):
        clf = textprep.CatBoostText(**kwargs)
        clf.classes_ = np.array([f"c{i}" for i in range(n_classes)])
        return clf._keeps_fold_trees()

    assert (keeps(2), keeps(3), keeps(77)) == (False, True, True)
    assert keeps(2, fold_trees="mean") and not keeps(77, fold_trees="refit")
    with pytest.raises(ValueError, match="fold_trees must be one of auto, refit, mean"):
        keeps(3, fold_trees="average")


def test_a_class_too_rare_to_cross_fit_falls_back_to_the_probe_temperature():
    X, labels, mask = _noisy_text_task()
    labels = labels.copy()
    labels[np.flatnonzero(~mask)[:1]] = "rare"  # one row: no fold can hold it out and keep it
    kwargs = dict(iterations=40, random_seed=0, linear_boost=False)  # (the linear step needs 2)
    crossfit = textprep.CatBoostText(calibration_folds=3, **kwargs).fit(X, labels, validation_mask=mask)
    probe = textprep.CatBoostText(calibration_folds=0, **kwargs).fit(X, labels, validation_mask=mask)
    assert crossfit.temperature_ == probe.temperature_ != 1.0


def test_a_model_saved_before_cross_fitting_keeps_its_parameters_and_scores():
    X, labels, mask = _noisy_text_task()
    model = textprep.CatBoostText(iterations=40, cv_folds=3).fit(X, labels, validation_mask=mask)
    before = model.predict_proba(X)
    del model.calibration_folds  # as unpickled from an earlier release
    assert model.get_params()["calibration_folds"] == 0
    np.testing.assert_array_equal(model.predict_proba(X), before)
    del model.fold_stopping, model.linear_solver  # as unpickled from a release before 2026-12-06
    assert model.get_params()["fold_stopping"] is False
    assert model.get_params()["linear_solver"] == "lbfgs"
    np.testing.assert_array_equal(model.predict_proba(X), before)
    del model.fold_trees  # as unpickled from a model of fold stopping's first form (refit)
    assert model.get_params()["fold_trees"] == "refit"
    np.testing.assert_array_equal(model.predict_proba(X), before)
