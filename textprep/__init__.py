"""Estimators that travel inside the logged model (shipped with it via MLflow ``code_paths``).

Keep this package small, self-contained (no project imports) and backward compatible: every
registered model version imports it by the name ``textprep`` when loaded (by predict.py,
monitor.py, ``mlflow.pyfunc.load_model`` or ``mlflow models serve``), and models saved by
earlier releases are loaded with today's classes (tests/test_compatibility.py).

One module per job; every name is also importable from ``textprep`` itself, where models
registered before the package existed (when textprep was one module) find them. The classes a
saved model names (skops files, their trusted-type lists) declare ``__module__ = "textprep"``,
so models saved by this release name them ``textprep.<Class>`` too and both resolve alike:

- :mod:`textprep.text`           TextColumn: the text column, normalised and optionally masked
- :mod:`textprep.ngrams`         hashed n-grams: hash functions, reference and compiled counters
- :mod:`textprep.hashed_tfidf`   HashedTfidf: TF-IDF of hashed word and character n-grams
- :mod:`textprep.catboost_text`  CatBoostText: boosted classifier, temperature-calibrated
- :mod:`textprep.side`           side columns beside the text: SideColumns, TextAndSide
- :mod:`textprep.serving`        loading a model folder safely; the pyfunc flavor (_load_pyfunc)
"""
from __future__ import annotations

from textprep.catboost_text import (PARALLEL_FOLDS_MAX_BYTES, CatBoostText, fit_temperature,
                                    fold_copy_bytes, scores_to_proba)
from textprep.hashed_tfidf import HashedTfidf
from textprep.ngrams import reference_ngrams
from textprep.serving import (PREDICTION, PROBA_PREFIX, PROBABILITY, PyfuncModel,
                              UnsafeModelError, _load_pyfunc, load_model_folder,
                              predictions_frame, top_class)
from textprep.side import SideColumns, SideFeatures, TextAndSide
from textprep.text import HANDLE_TOKEN, NUMBER_TOKEN, URL_TOKEN, TextColumn

__all__ = ["CatBoostText", "HANDLE_TOKEN", "HashedTfidf", "NUMBER_TOKEN", "PARALLEL_FOLDS_MAX_BYTES",
           "PREDICTION", "PROBABILITY", "PROBA_PREFIX", "PyfuncModel", "SideColumns", "SideFeatures", "TextAndSide", "TextColumn", "URL_TOKEN",
           "UnsafeModelError", "_load_pyfunc", "fit_temperature", "fold_copy_bytes",
           "load_model_folder", "predictions_frame", "reference_ngrams", "scores_to_proba",
           "top_class"]
