"""``train.py --tune``: a seeded random search over model settings, bounded by trials and time."""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from textops.errors import BadInputError
from textops.timing import Stopwatch
from textops import model
from textops.features import SideSpec
from textops.data import Split
from textops.settings import ModelSpec

log = logging.getLogger(__name__)

SEARCH_SPACE: dict[tuple[str, str], list[Any]] = {
    ("tfidf", "ngram_max"): [1, 2, 3],
    ("tfidf", "max_features"): [10000, 20000, 50000],
    ("tfidf", "min_df"): [1, 2, 3],
    ("preprocessing", "stopwords"): ["<configured>", "none"],
    ("catboost", "linear_c"): [1.0, 3.0, 10.0, 30.0],
    ("catboost", "depth"): [4, 6],
    ("catboost", "learning_rate"): [0.05, 0.1, 0.2],
}


def sample_specs(spec: ModelSpec, trials: int, seed: int) -> list[ModelSpec]:
    """``trials`` model settings: the given ones first, then seeded random draws from
    SEARCH_SPACE (no repeats)."""
    rng = np.random.default_rng(seed)
    out: list[ModelSpec] = [spec]
    seen = {_key(spec)}
    attempts = 0
    while len(out) < trials and attempts < trials * 50:
        attempts += 1
        candidate = spec
        for (section, name), values in SEARCH_SPACE.items():
            value = values[int(rng.integers(len(values)))]
            if value != "<configured>":
                candidate = candidate.with_setting(section, name, value)
        if _key(candidate) not in seen:
            seen.add(_key(candidate))
            out.append(candidate)
    return out


def _key(spec: ModelSpec) -> tuple:
    return tuple(trial_params(spec).values())


def trial_params(spec: ModelSpec) -> dict[str, Any]:
    return {f"{s}.{k}": getattr(getattr(spec, s), k) for s, k in SEARCH_SPACE}


def tune(spec: ModelSpec, split: Split, trials: int, minutes: float,
         side: SideSpec | None = None) -> ModelSpec:
    """Seeded random search over at most ``trials`` settings and ``minutes``; each trial is a
    nested MLflow run scored on the validation rows (reading the ``side`` columns too, as the
    final model will). Returns the best model settings."""
    import mlflow  # heavy: only when tuning inside a run

    if split.x_val is None:
        raise BadInputError("--tune needs validation rows; set a validation size above 0")
    candidates = sample_specs(spec, max(1, trials), spec.seed)
    deadline = time.monotonic() + 60 * minutes
    best, best_score = spec, -1.0
    stopwords: dict[str, model.Stopwords] = {}  # at most two lists: read each once
    experiment_id = mlflow.active_run().info.experiment_id
    for i, candidate in enumerate(candidates):
        if i and time.monotonic() > deadline:
            log.info("tuning: time budget spent after %d trials", i)
            break
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{i}", nested=True):
            mlflow.log_params(trial_params(candidate))
            with Stopwatch() as took:
                language = candidate.preprocessing.stopwords
                if language not in stopwords:
                    stopwords[language] = model.load_stopwords(language)
                pipe = model.build_pipeline(candidate, stopwords[language], side)
                model.fit_pipeline(pipe, split.x_train, split.y_train, split.x_val, split.y_val)
                score = model.evaluate(split.y_val, pipe.predict(split.x_val)).metrics["macro_f1"]
            mlflow.log_metrics({"validation_macro_f1": score, "training_seconds": took.seconds})
        log.info("tuning trial %d: validation macro-F1 %.4f in %.1f s", i, score, took.seconds)
        if score > best_score:
            best, best_score = candidate, score
    mlflow.log_metric("tuning.best_validation_macro_f1", best_score)
    return best
