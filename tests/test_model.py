"""The TF-IDF + CatBoost pipeline: correct through pyfunc, binary and multiclass, and its metrics."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from textops.columns import Columns

import config as cfg
from textops import data as dataio
from textops import batch, diagnostics, registry, settings, tuning
from textops import model as modeling
from common import BadInputError
from conftest import PROJECT_ROOT, shared
from textprep import CatBoostText, TextColumn


def spec(config):
    """The model settings of a configuration dict, as train.py resolves them."""
    return settings.resolve(config, cfg.PROJECT_ROOT).model


def small_config(**catboost):
    config = cfg.load_config({})
    config["catboost"].update({"iterations": 40, "cv_folds": 3, **catboost})
    config["tfidf"]["max_features"] = 3000
    config["tfidf"]["char_max_features"] = 3000
    return config


@pytest.fixture(scope="module")
def twcs():
    frame = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).head(1500)
    return frame[["text"]], frame["inbound"]


@pytest.fixture(scope="module")
def banking():
    frame = pd.read_csv(shared("banking77", "train.csv"), dtype=str)
    frame = frame.groupby("category", group_keys=False).head(15)
    return frame[["text"]].reset_index(drop=True), frame["category"].reset_index(drop=True)


@pytest.fixture(scope="module")
def binary_model(twcs):
    x, y = twcs
    pipe = modeling.build_pipeline(spec(small_config()), modeling.load_stopwords("english"))
    return modeling.fit_pipeline(pipe, x.iloc[:1200], y.iloc[:1200], x.iloc[1200:], y.iloc[1200:])


def test_shipped_stopwords_are_used_when_nltk_has_no_corpus():
    words = modeling.load_stopwords("english")
    assert words.source.endswith(os.path.join("stopwords", "english")) or words.source == "nltk"
    assert "the" in words.words and len(words.words) > 100
    assert "de" in modeling.load_stopwords("Spanish").words
    assert modeling.load_stopwords("none").words == ()
    with pytest.raises(BadInputError, match="TEXTOPS_PREPROCESSING_STOPWORDS"):
        modeling.load_stopwords("klingon")


def test_nltk_corpus_wins_when_installed():
    code = "from textops import model; s = model.load_stopwords('english'); print(s.source, len(s.words))"
    env = {**os.environ, "NLTK_DATA": str(PROJECT_ROOT / "nltk_data")}
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["nltk", "179"]


def test_text_column_accepts_frames_series_lists_and_missing_values():
    step = TextColumn("text")
    frame = pd.DataFrame({"id": [1, 2, 3], "text": ["a", None, float("nan")]})
    assert step.transform(frame).tolist() == ["a", "", ""]
    assert step.transform(pd.Series(["x", None])).tolist() == ["x", ""]
    assert step.transform(["y"]).tolist() == ["y"]


def test_masking_replaces_handles_urls_and_numbers():
    step = TextColumn("text", mask_urls=True, mask_handles=True, mask_numbers=True)
    out = step.transform(["@115712 see https://t.co/x1 ref 4521 ^AB"])[0]
    assert "115712" not in out and "t.co" not in out and "4521" not in out
    assert "xxuser" in out and "xxurl" in out and "xxnum" in out


def test_binary_pipeline_one_prediction_per_row_in_training_spelling(binary_model, twcs):
    x, y = twcs
    frame = x.iloc[1200:1300].assign(extra=1)  # pyfunc passes whole frames, extra columns too
    pred = binary_model.predict(frame)
    proba = binary_model.predict_proba(frame)
    assert pred.shape == (100,) and proba.shape == (100, 2)
    assert set(pred) <= {"True", "False"} and list(binary_model.classes_) == ["False", "True"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (pred == binary_model.classes_[proba.argmax(axis=1)]).all()
    assert (pred == y.iloc[1200:1300].to_numpy()).mean() > 0.8


def test_multiclass_pipeline_on_banking77(banking):
    x, y = banking
    pipe = modeling.build_pipeline(spec(small_config(iterations=20)), modeling.load_stopwords("none"))
    modeling.fit_pipeline(pipe, x, y)
    pred, proba = modeling.predict_with_proba(pipe, x.head(50))
    assert proba.shape == (50, 77) and pred.shape == (50,)
    assert (pred == y.head(50).to_numpy()).mean() > 0.7  # seen rows: a sanity floor only


def test_plain_catboost_without_linear_boost_still_works(twcs):
    x, y = twcs
    pipe = modeling.build_pipeline(spec(small_config(linear_boost=False)), modeling.load_stopwords("none"))
    modeling.fit_pipeline(pipe, x.iloc[:800], y.iloc[:800])
    assert pipe.predict(x.iloc[800:810]).shape == (10,)


def test_training_twice_with_the_same_seed_gives_identical_probabilities(twcs):
    x, y = twcs
    runs = []
    for _ in range(2):
        pipe = modeling.build_pipeline(spec(small_config()), modeling.load_stopwords("english"))
        modeling.fit_pipeline(pipe, x.iloc[:600], y.iloc[:600], x.iloc[600:700], y.iloc[600:700])
        runs.append(pipe.predict_proba(x.iloc[700:800]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_evaluate_reports_per_class_metrics_and_binary_auc():
    y_true = np.array(["a", "a", "b", "b"])
    y_pred = np.array(["a", "b", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.1, 0.9]])
    ev = modeling.evaluate(y_true, y_pred, proba, np.array(["a", "b"]))
    assert ev.metrics["accuracy"] == 0.75
    assert ev.metrics["recall.a"] == 0.5 and ev.metrics["precision.b"] == pytest.approx(2 / 3)
    assert ev.metrics["roc_auc"] == 1.0
    assert ev.confusion.tolist() == [[1, 1], [0, 2]]
    assert "macro avg" in ev.report_text


def test_output_rows_keep_rows_with_blank_text_unscored(binary_model):
    frame = pd.DataFrame({"tweet_id": ["1", "2", "3"], "text": ["@AppleSupport help", "  ", None]})
    job = batch.ScoringSpec(model_path="unused", columns=Columns(text="text", label="label", ids=("tweet_id",)),
                            model_version="7", proba_columns=True, explain=0)
    out = batch.output_rows(binary_model, frame, job)
    assert list(out.columns) == ["tweet_id", "prediction", "probability", "model_version",
                                 "proba_False", "proba_True"]
    assert out["tweet_id"].tolist() == ["1", "2", "3"]
    assert out["prediction"].notna().tolist() == [True, False, False]
    assert out["probability"].iloc[0] >= 0.5 and out["model_version"].eq("7").all()


def test_the_default_features_are_hashed_and_carry_no_vocabulary(binary_model):
    (vectorizer,) = modeling.vectorizers(binary_model)
    assert type(vectorizer).__name__ == "HashedTfidf"
    assert not hasattr(vectorizer, "vocabulary_") and not hasattr(vectorizer, "stop_words_")
    assert len(modeling.feature_names(binary_model)) == binary_model[-1].n_features_in_


def test_fitted_sklearn_vectorizers_drop_heavy_introspection_state(twcs):
    x, y = twcs
    config = small_config()
    config["tfidf"]["vectorizer"] = "sklearn"
    pipe = modeling.build_pipeline(spec(config), modeling.load_stopwords("english"))
    modeling.fit_pipeline(pipe, x.iloc[:600], y.iloc[:600])
    for vectorizer in modeling.vectorizers(pipe):
        assert not hasattr(vectorizer, "stop_words_")
        assert all(type(v) is int for v in vectorizer.vocabulary_.values())


def test_skops_round_trip_needs_only_the_declared_trusted_types(binary_model, twcs):
    import skops.io as sio

    trusted = registry.skops_trusted_types(binary_model)
    assert set(trusted) <= set(registry.TRUSTED_TYPES)
    restored = sio.loads(sio.dumps(binary_model), trusted=trusted)
    x, _ = twcs
    np.testing.assert_array_equal(restored.predict_proba(x.head(20)),
                                  binary_model.predict_proba(x.head(20)))


def test_catboost_text_rejects_a_single_class():
    with pytest.raises(ValueError, match="two classes"):
        CatBoostText(iterations=5).fit(np.eye(3), ["a", "a", "a"])


def test_train_model_refits_on_train_and_validation_with_the_chosen_trees(twcs):
    x, y = twcs
    pipe = modeling.build_pipeline(spec(small_config()), modeling.load_stopwords("none"))
    final, info = modeling.train_model(pipe, x.iloc[:1000], y.iloc[:1000], x.iloc[1000:1200],
                                       y.iloc[1000:1200], refit=True)
    assert info["refit"] and info["fit_rows"] == 1200
    assert final[-1].model_.tree_count_ == info["best_iteration"] == info["kept_trees"] <= 40
    assert final[-1].linear_.coef_.shape[1] == final[-1].n_features_in_
    same, info = modeling.train_model(modeling.build_pipeline(spec(small_config()), modeling.load_stopwords("none")),
                                      x.iloc[:1000], y.iloc[:1000], x.iloc[1000:1200],
                                      y.iloc[1000:1200], refit=False)
    assert not info["refit"] and info["fit_rows"] == 1000


def test_token_importance_and_per_row_explanations(binary_model, twcs):
    x, _ = twcs
    table = diagnostics.token_importance(binary_model, x.head(500), top=20)
    assert list(table.columns) == ["token", "importance", "share", "pushes_towards"]
    assert len(table) == 20 and table["importance"].is_monotonic_decreasing
    assert set(table["pushes_towards"]) <= {"True", "False"}
    frame = pd.DataFrame({"text": ["@AppleSupport my iphone battery dies", ""]})
    pred = np.array(["True", None], dtype=object)
    tokens = diagnostics.top_tokens(binary_model, frame, pred, n=3)
    assert len(tokens) == 2 and tokens[1] == ""
    assert 1 <= len(tokens[0].split(" | ")) <= 3
    assert set(tokens[0].split(" | ")) <= set(modeling.feature_names(binary_model))


def test_identifiers_only_keeps_handles_numbers_urls_and_signatures():
    out = diagnostics.identifiers_only(pd.Series(["@115712 sorry! DM us ^AB", "no ids here", None]))
    assert out.tolist() == ["@115712 ^AB", "-", "-"]


def test_leakage_guard_fires_on_raw_twcs_and_not_on_banking77(banking):
    def check(texts, labels, masks=False):
        config = small_config()
        config["preprocessing"].update(mask_handles=masks, mask_urls=masks, mask_numbers=masks)
        split = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=0)
        pipe, _ = modeling.train_model(modeling.build_pipeline(spec(config), modeling.load_stopwords("none")),
                                       split.x_train, split.y_train, split.x_val, split.y_val)
        score = modeling.evaluate(split.y_test, pipe.predict(split.x_test)).metrics["macro_f1"]
        return diagnostics.leakage_check(pipe, split, score, "text")

    raw = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)
    report = check(raw["text"], raw["inbound"])
    assert report.suspicious and any("identifiers alone" in r for r in report.reasons)
    assert report.figures["identifiers_only_macro_f1"] > 0.9
    x, y = banking
    report = check(x["text"], y)
    assert not report.suspicious, report.reasons
    assert report.figures["identifiers_only_macro_f1"] < 0.2


def test_search_space_sampling_is_seeded_and_starts_with_the_given_config():
    given = spec(small_config())
    one = tuning.sample_specs(given, 6, seed=1)
    two = tuning.sample_specs(given, 6, seed=1)
    assert one == two and len(one) == 6 and one[0] == given
    assert len({tuple(sorted(tuning.trial_params(c).items())) for c in one}) == 6


@pytest.mark.parametrize("kind, steps", [("hashed", 1), ("sklearn", 2)])
def test_character_ngrams_join_the_word_features(twcs, kind, steps):
    x, y = twcs
    config = small_config()
    config["tfidf"].update(char_ngram_max=4, char_max_features=2000, vectorizer=kind)
    pipe = modeling.build_pipeline(spec(config), modeling.load_stopwords("none"))
    modeling.fit_pipeline(pipe, x.iloc[:600], y.iloc[:600])
    names = modeling.feature_names(pipe)
    assert len(names) == pipe[-1].n_features_in_
    assert any(n.startswith("[") for n in names) and any(not n.startswith("[") for n in names)
    assert len(modeling.vectorizers(pipe)) == steps
    table = diagnostics.token_importance(pipe, x.iloc[:200], top=10)
    assert len(table) == 10


@pytest.mark.parametrize("kind", ["hashed", "sklearn"])
def test_out_of_vocabulary_rates_know_the_models_words(twcs, kind):
    from textops.monitoring import drift

    x, y = twcs
    config = small_config()
    config["tfidf"]["vectorizer"] = kind
    pipe = modeling.build_pipeline(spec(config), modeling.load_stopwords("english"))
    modeling.fit_pipeline(pipe, x.iloc[:600], y.iloc[:600])
    vocabulary, stop_words, preprocess = drift.word_vocabulary(pipe)
    assert "the" in stop_words and preprocess("HeLLo") == "hello"
    rates = drift.oov_rates(["Thanks for the HELP with my order", "qzxv wkpj flrb", "the", ""],
                            vocabulary, stop_words, preprocess)
    assert rates[0] < 0.25 and rates[1] == 1.0 and np.isnan(rates[2]) and np.isnan(rates[3])


def test_many_class_trees_score_a_share_of_the_logits_per_split_and_binary_ones_all():
    """Issue 27: with 77 linear logits each split scores about ``split_features`` of them
    (CatBoost's rsm: 230 -> 94 s on BANKING77 at the same macro-F1); a binary model, with one
    logit, is trained exactly as before (no rsm passed at all)."""
    from textprep import CatBoostText

    clf = CatBoostText(split_features=8)
    assert clf._split_share(77) == {"rsm": 8 / 77}
    assert clf._split_share(2) == {}  # one logit
    assert CatBoostText(split_features=8, side_kinds=("numeric",) * 3)._split_share(2) == {}
    assert CatBoostText(split_features=0)._split_share(77) == {}
    assert CatBoostText(split_features=8, linear_boost=False)._split_share(77) == {}
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.random((300, 40)) * (rng.random((300, 40)) < 0.3))
    y = np.array([f"c{i % 12}" for i in range(300)])
    fitted = CatBoostText(iterations=5, cv_folds=2, calibrate=False, split_features=4).fit(X, y)
    assert fitted.model_.get_params()["rsm"] == pytest.approx(4 / 12)
    assert "rsm" not in CatBoostText(iterations=5, cv_folds=2, calibrate=False, split_features=4).fit(
        X, np.where(np.arange(300) % 2, "a", "b")).model_.get_params()


@pytest.mark.parametrize("solver", ["lbfgs", "sag"])
def test_many_class_linear_fits_side_by_side_equal_the_fits_done_one_by_one(monkeypatch, solver):
    """The multinomial fits run side by side (lbfgs, which holds the GIL, in worker processes;
    sag in threads): the out-of-fold logits are those of fitting each fold one by one in this
    process; the model kept is the fit on all rows (lbfgs) or the fold models' mean (sag),
    whose logits are the mean of theirs."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    from textprep import CatBoostText

    rng = np.random.default_rng(1)
    X = sp.csr_matrix(rng.random((240, 30)) * (rng.random((240, 30)) < 0.4))
    codes = np.arange(240) % 6
    clf = CatBoostText(cv_folds=3, thread_count=2, linear_solver=solver)
    clf.classes_ = np.array([f"c{i}" for i in range(6)])
    import textprep.catboost_text as module

    monkeypatch.setattr(module, "PROCESS_FITS_MIN_WORK", 0)  # this small problem side by side too
    scores, kept = clf._linear_fits(X, codes)
    expected, folds = np.empty_like(scores), []
    for fit_rows, own in StratifiedKFold(3, shuffle=True, random_state=0).split(X, codes):
        folds.append(clone(clf._make_linear()).fit(X[fit_rows], codes[fit_rows]))
        expected[own] = folds[-1].decision_function(X[own])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert kept.solver == solver
    if solver == "lbfgs":
        np.testing.assert_allclose(kept.coef_, clone(clf._make_linear()).fit(X, codes).coef_,
                                   atol=1e-6)
    else:
        np.testing.assert_allclose(kept.decision_function(X),
                                   np.mean([m.decision_function(X) for m in folds], axis=0),
                                   atol=1e-9)


def test_averaged_trees_score_exactly_as_the_mean_of_their_models_categories_included():
    """``mean_trees`` (the stopping folds' trees kept as one model): raw scores are the mean of
    the models', also for a categorical side column, whose category tables each model keeps
    (CatBoost's default merge policy averages shared tables and moves the scores)."""
    from catboost import CatBoostClassifier, Pool

    from textprep.catboost_text import mean_trees

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"logit": rng.normal(size=2000), "channel": rng.integers(0, 20, 2000)})
    y = ((frame.channel % 3 == 0) ^ (rng.random(2000) < 0.1)).astype(int)
    models = [CatBoostClassifier(iterations=30 + 10 * i, random_seed=i, thread_count=1, verbose=0,
                                 allow_writing_files=False)
              .fit(Pool(frame.iloc[i::2], y[i::2], cat_features=[1])) for i in range(2)]
    pool = Pool(frame, cat_features=[1])
    mean = mean_trees(models)
    assert mean.tree_count_ == 70
    np.testing.assert_allclose(
        mean.predict(pool, prediction_type="RawFormulaVal"),
        np.mean([m.predict(pool, prediction_type="RawFormulaVal") for m in models], axis=0),
        atol=1e-12)


def test_the_linear_solver_is_lbfgs_for_two_classes_and_sag_for_more_unless_chosen():
    from textprep import CatBoostText

    def solver(n_classes, **kwargs):
        clf = CatBoostText(**kwargs)
        clf.classes_ = np.array([f"c{i}" for i in range(n_classes)])
        return clf._make_linear().solver

    assert (solver(2), solver(3), solver(77)) == ("lbfgs", "sag", "sag")
    assert solver(77, linear_solver="lbfgs") == "lbfgs" and solver(2, linear_solver="sag") == "sag"
    legacy = CatBoostText()
    del legacy.linear_solver  # as unpickled from a release before 2026-12-06
    legacy.classes_ = np.array([f"c{i}" for i in range(77)])
    assert legacy._make_linear().solver == "lbfgs"
