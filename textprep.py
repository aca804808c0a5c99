"""Estimators that travel inside the logged model (shipped with it via MLflow ``code_paths``).

Keep this module small, self-contained (no project imports) and backward compatible: every
registered model version imports it by the name ``textprep`` when loaded (by predict.py,
monitor.py, ``mlflow.pyfunc.load_model`` or ``mlflow models serve``), and models saved by
earlier releases are loaded with today's classes (tests/test_compatibility.py).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

URL_TOKEN = " xxurl "
HANDLE_TOKEN = " xxuser "
NUMBER_TOKEN = " xxnum "
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class TextColumn(BaseEstimator, TransformerMixin):
    """Select the text column of a DataFrame and normalise it into a 1-D array of strings.

    Accepts a DataFrame (the ``column`` is used), a Series, or a list of strings, so the
    pipeline gives one prediction per row through ``mlflow.pyfunc`` as well as in plain
    scikit-learn. Missing values become empty strings instead of raising. Texts longer than
    ``max_chars`` are cut there (a 10 MB "text" is a broken row, and would otherwise cost
    gigabytes of character n-grams).
    """

    def __init__(self, column: str = "text", mask_urls: bool = False, mask_handles: bool = False,
                 mask_numbers: bool = False, max_chars: int | None = 100_000):
        self.column = column
        self.mask_urls = mask_urls
        self.mask_handles = mask_handles
        self.mask_numbers = mask_numbers
        self.max_chars = max_chars

    def fit(self, X: Any, y: Any = None) -> "TextColumn":
        return self

    def transform(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if self.column in X.columns:
                X = X[self.column]
            elif X.shape[1] == 1:
                X = X.iloc[:, 0]
            else:
                raise KeyError(f"input has no {self.column!r} column (columns: {list(X.columns)})")
        texts = pd.Series(np.asarray(X, dtype=object).ravel(), dtype=object)
        texts = texts.where(texts.notna(), "").astype(str)
        limit = getattr(self, "max_chars", None)  # absent in models saved before it existed
        if limit and len(texts) and texts.str.len().max() > limit:
            texts = texts.str.slice(0, limit)
        if self.mask_urls:
            texts = texts.str.replace(_URL, URL_TOKEN, regex=True)
        if self.mask_handles:
            texts = texts.str.replace(_HANDLE, HANDLE_TOKEN, regex=True)
        if self.mask_numbers:
            texts = texts.str.replace(_NUMBER, NUMBER_TOKEN, regex=True)
        return texts.to_numpy(dtype=object)


class CatBoostText(ClassifierMixin, BaseEstimator):
    """CatBoost on TF-IDF features, boosted from a linear model's scores.

    With ``linear_boost=True`` (the default) a multinomial logistic regression is fitted on the
    sparse TF-IDF matrix; its out-of-fold logits are CatBoost's features *and* its starting point
    (CatBoost ``baseline``), so the trees learn corrections to a strong linear text model instead
    of rediscovering it from 20k sparse columns (much faster, especially with many classes).
    With ``linear_boost=False`` CatBoost fits the TF-IDF matrix directly.

    ``classes_`` keeps the labels in the training data's spelling; ``predict`` returns a 1-D array
    of them and is always the arg-max of ``predict_proba``. ``fit`` takes an optional
    ``eval_set=(X, y)`` for early stopping.
    """

    def __init__(self, iterations: int = 300, learning_rate: float | None = 0.1, depth: int = 4,
                 border_count: int = 32, early_stopping_rounds: int | None = 30,
                 thread_count: int = -1, random_seed: int = 0, linear_boost: bool = True,
                 linear_c: float = 10.0, cv_folds: int = 5):
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.border_count = border_count
        self.early_stopping_rounds = early_stopping_rounds
        self.thread_count = thread_count
        self.random_seed = random_seed
        self.linear_boost = linear_boost
        self.linear_c = linear_c
        self.cv_folds = cv_folds

    # -- helpers ---------------------------------------------------------------------------
    def _make_model(self, n_classes: int):
        from catboost import CatBoostClassifier  # heavy: only when fitting or scoring

        return CatBoostClassifier(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            border_count=self.border_count,
            loss_function="Logloss" if n_classes == 2 else "MultiClass",
            thread_count=self.thread_count,
            random_seed=self.random_seed,
            allow_writing_files=False,
            verbose=0,
        )

    def _make_linear(self):
        return LogisticRegression(C=self.linear_c, max_iter=2000)

    @staticmethod
    def _as_matrix(scores: np.ndarray) -> np.ndarray:
        return scores.reshape(len(scores), -1)

    def _out_of_fold_scores(self, X: Any, codes: np.ndarray) -> np.ndarray:
        folds = max(2, min(int(self.cv_folds), int(np.bincount(codes).min())))
        n_jobs = -1 if self.thread_count == -1 else max(1, int(self.thread_count))
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_seed)
        return cross_val_predict(self._make_linear(), X, codes, cv=cv,
                                 method="decision_function", n_jobs=n_jobs)

    def _pool(self, X: Any, labels: np.ndarray | None = None, linear_scores: np.ndarray | None = None):
        from catboost import Pool  # heavy: only when fitting or scoring

        if linear_scores is None:
            return Pool(X, labels)
        return Pool(self._as_matrix(linear_scores), labels, baseline=self._as_matrix(linear_scores))

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None,
            validation_mask: Any = None) -> "CatBoostText":
        """Fit on ``X``/``y``. Early stopping (when ``early_stopping_rounds`` is set) uses either

        * ``eval_set=(X_val, y_val)``: separate rows, never trained on; or
        * ``validation_mask``: a boolean mask of rows of ``X`` to stop on. The trees are first
          grown on the other rows until the validation loss stops improving, then refitted on
          all rows with that many trees; the linear model's out-of-fold logits are computed once
          for all rows, so the validation rows cost no extra fit and no accuracy.
        """
        y = np.asarray(y, dtype=object).astype(str)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two classes")
        scores = None
        if self.linear_boost:
            scores = self._as_matrix(self._out_of_fold_scores(X, codes))
            self.linear_ = self._make_linear().fit(X, codes)
        n_classes = len(self.classes_)
        stop = dict(early_stopping_rounds=self.early_stopping_rounds, use_best_model=True)
        if validation_mask is not None and self.early_stopping_rounds:
            val = np.asarray(validation_mask, dtype=bool)
            rows = lambda m: None if scores is None else scores[m]  # noqa: E731
            probe = self._make_model(n_classes)
            probe.fit(self._pool(X[~val], codes[~val], rows(~val)),
                      eval_set=self._pool(X[val], codes[val], rows(val)), **stop)
            self.best_iteration_ = max(int(probe.tree_count_), 1)
            model = self._make_model(n_classes)
            model.set_params(iterations=self.best_iteration_)
            model.fit(self._pool(X, codes, scores))
        else:
            model = self._make_model(n_classes)
            fit_kwargs: dict[str, Any] = {}
            if eval_set is not None and self.early_stopping_rounds:
                lookup = {label: i for i, label in enumerate(self.classes_)}
                y_val = np.asarray(eval_set[1], dtype=object).astype(str)
                known = np.array([label in lookup for label in y_val])
                if known.any():
                    x_val = eval_set[0][known]
                    val_codes = np.array([lookup[label] for label in y_val[known]])
                    val_scores = self.linear_.decision_function(x_val) if self.linear_boost else None
                    fit_kwargs = dict(eval_set=self._pool(x_val, val_codes, val_scores), **stop)
            model.fit(self._pool(X, codes, scores), **fit_kwargs)
            self.best_iteration_ = int(model.tree_count_)
        self.model_ = model
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores: the linear logits plus the trees' corrections (one column per class,
        or one column for binary tasks)."""
        check_is_fitted(self, "model_")
        if not self.linear_boost:
            return self._as_matrix(self.model_.predict(X, prediction_type="RawFormulaVal",
                                                       thread_count=self.thread_count))
        linear = self._as_matrix(self.linear_.decision_function(X))
        trees = self._as_matrix(self.model_.predict(self._pool(X, linear_scores=linear),
                                                    prediction_type="RawFormulaVal",
                                                    thread_count=self.thread_count))
        return linear + trees

    def predict_proba(self, X: Any) -> np.ndarray:
        raw = self.decision_function(X)
        if raw.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        raw = raw - raw.max(axis=1, keepdims=True)
        exp = np.exp(raw)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# --------------------------------------------------------------------------------------------
# Loading a logged model, and the python_function flavor: what `mlflow.pyfunc.load_model`,
# `mlflow models serve` and `mlflow.pyfunc.spark_udf` call. The MLmodel's python_function flavor
# names this module as its loader; the sklearn flavor (mlflow.sklearn.load_model) is unchanged.
# --------------------------------------------------------------------------------------------
class UnsafeModelError(ValueError):
    """The model folder is not a skops-serialised sklearn model (e.g. a pickle)."""


def load_model_folder(folder: str | os.PathLike[str]) -> Any:
    """The one model loader (predict.py, monitor.py, batch workers, pyfunc): a logged MLflow
    sklearn model folder, loaded with skops and only the trusted types its MLmodel lists.

    textops never unpickles a model: unpickling runs whatever code the file names. MLflow is not
    imported (a worker needs ~220 MB less). The ``code/`` folder logged with the model is put on
    ``sys.path`` last, so the running project's modules win over the copies shipped with it.
    """
    folder = Path(folder)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"].get("sklearn", {})
    fmt = flavor.get("serialization_format", "pickle" if flavor else "none")
    if fmt != "skops":
        raise UnsafeModelError(
            f"is stored as {fmt!r}, not skops: textops does not unpickle models (that would run "
            f"any code the file names); retrain it with train.py or pass another --model")
    code = folder / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.append(str(code))
    return sio.load(folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types", []))


def predictions_frame(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per input row: ``prediction`` (label), ``probability`` (of that label) and one
    ``proba_<class>`` column per class, in the order of ``pipeline.classes_``."""
    classes = np.asarray(pipeline.classes_).astype(str)
    proba = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
    best = np.argmax(proba, axis=1)
    out = pd.DataFrame({"prediction": classes[best],
                        "probability": proba[np.arange(len(best)), best]})
    for j, label in enumerate(classes):
        out[f"proba_{label}"] = proba[:, j]
    return out


class PyfuncModel:
    """The registered pipeline seen through pyfunc: labels and probabilities in one frame."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def get_raw_model(self) -> Any:
        """The scikit-learn Pipeline itself (``predict_proba``, ``classes_`` ...)."""
        return self.pipeline

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame({self.pipeline.steps[0][1].column: list(data)})
        return predictions_frame(self.pipeline, data)


def _load_pyfunc(path: str) -> PyfuncModel:
    """pyfunc loader: ``path`` is the serialized pipeline inside the model folder."""
    return PyfuncModel(load_model_folder(os.path.dirname(path) if os.path.isfile(path) else path))
