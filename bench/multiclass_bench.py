#!/usr/bin/env python
"""Multiclass training time on BANKING77 (77 classes, official train -> test), stage by stage,
against plain TF-IDF + LogisticRegression fitted in the same run (the ratio is the figure: these
machines are noisy). The model is trained as train.py trains it (stable split, early stopping on
10 %, refit); settings are changed with SECTION.KEY=VALUE arguments, e.g.

    python bench/multiclass_bench.py                              # today's defaults
    python bench/multiclass_bench.py catboost.split_features=0    # every logit scored per split
    python bench/multiclass_bench.py catboost.calibration_folds=0 catboost.cv_folds=3
    python bench/multiclass_bench.py --dataset=sms data.random_seed=1   # a binary set, another seed

--dataset= banking77 (default), twcs or sms: quality_bench.py's datasets and splits.

Prints one line: total seconds, the stages (out-of-fold logits, every CatBoost fit, the
cross-fitted calibration copies among them, or the stopping folds with the refit when the
trees are refitted; the linear fits), trees chosen, test macro-F1 and ECE, and the same for the
logistic regression; then the time to score the test rows ten times over (predict_proba) and
the kept model's tree count (every stopping fold's trees when they are kept averaged)."""
from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config as cfg  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import settings  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops.calibration import calibration_metrics  # noqa: E402
from textops.diagnostics import baseline_pipeline  # noqa: E402
from textprep import catboost_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import quality_bench  # noqa: E402  (the datasets and their splits)

STAGES: dict[str, float] = {}
SCORE_REPEATS = 10  # the test rows scored this many times over for the scoring time
DATASET = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--dataset=")), "banking77")
SETTINGS = [a for a in sys.argv[1:] if not a.startswith("--dataset=")]


def timed(name: str, function):
    """``function`` adding its seconds to STAGES[name] on every call."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            STAGES[name] = STAGES.get(name, 0.0) + time.perf_counter() - started
    return wrapper


def main() -> int:
    import catboost

    catboost_text.CatBoostText._linear_fits = timed(
        "linear_fits", catboost_text.CatBoostText._linear_fits)
    catboost_text.CatBoostText._cross_fitted_raw = timed(
        "calibration_copies", catboost_text.CatBoostText._cross_fitted_raw)
    catboost_text.CatBoostText._fold_stopped = timed(
        "stopping_folds_and_refit", catboost_text.CatBoostText._fold_stopped)
    catboost.CatBoostClassifier.fit = timed("catboost_fits", catboost.CatBoostClassifier.fit)
    config = cfg.load_config({})
    for argument in SETTINGS:
        key, value = argument.split("=", 1)
        section, name = key.split(".")
        kind = type(config[section][name])
        config[section][name] = value.lower() == "true" if kind is bool else kind(value)
    x_fit, y_fit, x_test, y_test = quality_bench.load(DATASET)
    d = config["data"]
    split = dataio.split_dataset(x_fit["text"], y_fit, "text", 1e-9, d["validation_size"],
                                 d["random_seed"])
    started = time.perf_counter()
    pipeline = modeling.build_pipeline(settings.resolve(config, cfg.PROJECT_ROOT).model,
                                       modeling.load_stopwords("english"))
    model, info = modeling.train_model(pipeline, split.x_train, split.y_train, split.x_val,
                                       split.y_val, refit=config["train"]["refit"])
    seconds = time.perf_counter() - started
    proba = model.predict_proba(x_test)
    many = x_test.iloc[np.arange(len(x_test) * SCORE_REPEATS) % len(x_test)]
    started = time.perf_counter()
    model.predict_proba(many)  # scoring cost (features, linear model, every tree), in-process
    score_seconds = time.perf_counter() - started
    predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
    ece = calibration_metrics(proba, y_test, model.classes_,
                              float(model[-1].temperature_))["calibration.ece"]
    started = time.perf_counter()
    baseline = baseline_pipeline("text").fit(x_fit, y_fit)
    lr_seconds = time.perf_counter() - started
    lr_proba = baseline.predict_proba(x_test)
    lr_predicted = np.asarray(baseline.classes_)[lr_proba.argmax(axis=1)]
    print(json.dumps({
        "dataset": DATASET, "settings": SETTINGS, "seconds": round(seconds, 1),
        "stages": {k: round(v, 1) for k, v in STAGES.items()}, "trees": info["best_iteration"],
        "macro_f1": round(modeling.evaluate(y_test, predicted).metrics["macro_f1"], 4),
        "ece": round(ece, 4), "lr_seconds": round(lr_seconds, 1),
        "lr_macro_f1": round(modeling.evaluate(y_test, lr_predicted).metrics["macro_f1"], 4),
        "lr_ece": round(calibration_metrics(lr_proba, y_test, baseline.classes_,
                                            1.0)["calibration.ece"], 4),
        "times_lr": round(seconds / max(lr_seconds, 1e-9), 1),
        "score_rows": len(many), "score_seconds": round(score_seconds, 2),
        "kept_trees": int(model[-1].model_.tree_count_)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
