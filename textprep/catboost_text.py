"""CatBoostText: CatBoost on TF-IDF features boosted from a linear model's scores, with its
probabilities calibrated by temperature scaling."""
from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed, parallel_config
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

from textprep.side import CATEGORICAL, SideFeatures


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

    __module__ = "textprep"  # its name in saved models, as when textprep was one module

    calibrate = False  # models saved before calibration existed have neither it nor temperature_
    calibration_folds = 0  # nor this: their temperature (if any) came from the probe's rows
    side_kinds: tuple[str, ...] = ()  # nor side columns (textprep.side): text only
    split_features = 0  # nor a share of features per split: every feature scored
    linear_solver = "lbfgs"  # nor a choice of solver: every linear model was fitted by lbfgs
    fold_stopping = False  # nor trees that stop early on their own fold: a probe did
    fold_trees = "refit"  # nor the stopping folds' trees kept: they were grown again on every row

    def __init__(self, iterations: int = 300, learning_rate: float | None = 0.1, depth: int = 4,
                 border_count: int = 32, early_stopping_rounds: int | None = 30,
                 thread_count: int = -1, random_seed: int = 0, linear_boost: bool = True,
                 linear_c: float = 10.0, cv_folds: int = 5, calibrate: bool = True,
                 calibration_folds: int = 3, side_kinds: tuple[str, ...] = (),
                 split_features: int = 0, linear_solver: str = "auto", fold_stopping: bool = True,
                 fold_trees: str = "auto"):
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
        self.calibrate = calibrate
        self.calibration_folds = calibration_folds
        self.side_kinds = side_kinds
        self.split_features = split_features
        self.linear_solver = linear_solver
        self.fold_stopping = fold_stopping
        self.fold_trees = fold_trees

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
            **self._split_share(n_classes),
        )

    def _split_share(self, n_classes: int) -> dict[str, float]:
        """CatBoost's ``rsm`` when the trees have more features than ``split_features``: each
        split then scores about that many (the linear logits of 77 classes: 4x faster at the
        same macro-F1); nothing for fewer (a binary model is trained exactly as before)."""
        wanted = int(getattr(self, "split_features", 0) or 0)
        n_features = (1 if n_classes == 2 else n_classes) + len(self.side_kinds) \
            if self.linear_boost else 0
        if not wanted or not n_features or n_features <= wanted:
            return {}
        return {"rsm": wanted / n_features}

    def _solver(self) -> str:
        """The linear model's solver: ``auto`` is lbfgs for two classes and sag for more (the
        multinomial lbfgs spends two thirds of its time in its own bookkeeping of
        features x classes coefficients; sag reaches the same macro-F1 in about half the time
        and releases the GIL, so its folds share X in threads)."""
        solver = getattr(self, "linear_solver", "lbfgs")
        if solver == "auto":
            return "lbfgs" if len(self.classes_) == 2 else "sag"
        return solver

    def _keeps_fold_trees(self) -> bool:
        """Whether the kept trees are the stopping folds' own, averaged into one model
        (``fold_trees="mean"``), rather than grown again on every row with the folds' mean
        number of trees (``"refit"``). ``auto`` keeps the folds' trees for more than two
        classes, where the refit costs as much again as the folds (BANKING77, six seeds, with
        learning rate 0.2 and 450 trees at most: 9.6x -> 8.2x LR's time at the same macro-F1,
        0.9172, and ECE 0.0123 -> 0.0120; each fold's trees are scored, 19 % more scoring
        time); two classes refit (their trees stop after a few dozen, so the refit is cheap,
        and SMS's macro-F1 was 0.0005 higher with it on average: one seed of four differed).
        """
        kept = getattr(self, "fold_trees", "refit")
        if kept not in FOLD_TREES:
            raise ValueError(f"fold_trees must be one of {', '.join(FOLD_TREES)}, not {kept!r}")
        return len(self.classes_) > 2 if kept == "auto" else kept == "mean"

    def _make_linear(self):
        if self._solver() == "lbfgs":
            return LogisticRegression(C=self.linear_c, max_iter=2000)
        return LogisticRegression(C=self.linear_c, solver=self._solver(), tol=SAG_TOL,
                                  max_iter=2000, random_state=self.random_seed)

    def _empty_scores(self, rows: int) -> np.ndarray:
        """Room for ``rows`` rows of raw scores: one column for two classes, one per class else."""
        return np.empty((rows, 1 if len(self.classes_) == 2 else len(self.classes_)))

    @staticmethod
    def _as_matrix(scores: np.ndarray) -> np.ndarray:
        return scores.reshape(len(scores), -1)

    def _linear_fits(self, X: Any, codes: np.ndarray) -> tuple[np.ndarray, Any]:
        """The linear model's out-of-fold logits of every row, and the linear model kept for
        scoring new rows: with lbfgs a model fitted on all rows; with sag the mean of the fold
        models (a mean of linear models is one linear model, so scoring costs the same). sag
        fits to convergence, so a model fitted on all rows is sharper on new rows than the fold
        models were on the out-of-fold rows the trees learned from (BANKING77's ECE 0.013 ->
        0.016 with lbfgs's C); the fold models' mean keeps them matched, with one fit fewer.
        (lbfgs stops earlier, and on twcs its full fit is worth 0.002 of macro-F1 over the mean.)

        The fits run side by side: in threads sharing X where the solver releases the GIL
        (sag; the binary lbfgs, whose time is spent in numpy/scipy); the multinomial lbfgs holds
        the GIL (BANKING77's five folds: 40.7 s in one thread, 40.3 s in two), so its fits go to
        worker processes, each with its copy of X (which the memory guard bounds): 51 -> 29 s.
        Small problems stay in threads (starting the processes would cost more than it saves).
        """
        X = _text_of(X)
        folds = max(2, min(int(self.cv_folds), int(np.bincount(codes).min())))
        n_jobs = (os.cpu_count() or 1) if self.thread_count == -1 else max(1, int(self.thread_count))
        if n_jobs > 1 and fold_copy_bytes(X, folds) * n_jobs > PARALLEL_FOLDS_MAX_BYTES:
            n_jobs = 1  # one fold at a time: its copy of X is the fit's memory peak
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_seed)
        work = (X.nnz if sp.issparse(X) else int(np.prod(X.shape))) * len(self.classes_)
        processes = (len(self.classes_) > 2 and self._solver() == "lbfgs" and n_jobs > 1
                     and work >= PROCESS_FITS_MIN_WORK)
        mean = self._solver() == "sag" and np.bincount(codes).min() >= folds
        if not processes and not mean:  # as earlier releases: the folds, then the full fit
            with parallel_config(backend="threading"):
                scores = cross_val_predict(self._make_linear(), X, codes, cv=cv,
                                           method="decision_function", n_jobs=n_jobs)
            return scores, self._make_linear().fit(X, codes)
        parts = list(cv.split(np.zeros(len(codes)), codes))
        if not mean:
            parts.append((np.arange(len(codes)), None))
        if not processes and n_jobs > 1 \
                and fold_copy_bytes(X, folds) * len(parts) <= PARALLEL_FOLDS_MAX_BYTES:
            n_jobs = len(parts)  # all at once: the cores share them, none idles in a last round
        fitted = Parallel(n_jobs=n_jobs, backend="loky" if processes else "threading")(
            delayed(_fit_linear)(self._make_linear(), X, codes, fit_rows, own_rows)
            for fit_rows, own_rows in parts)
        scores = self._empty_scores(len(codes))
        for (_, own_rows), (_, own_scores) in zip(parts[:folds], fitted[:folds]):
            scores[own_rows] = self._as_matrix(own_scores)
        if mean:
            return scores, mean_model([model for model, _ in fitted])
        return scores, fitted[-1][0]

    def _pool(self, X: Any, labels: np.ndarray | None = None, linear_scores: np.ndarray | None = None):
        from catboost import Pool  # heavy: only when fitting or scoring

        if linear_scores is None:
            return Pool(X, labels)
        linear = self._as_matrix(linear_scores)
        if not self.side_kinds:
            return Pool(linear, labels, baseline=linear)
        # the trees see the linear logits and the side columns, categorical ones as categories
        frame = pd.DataFrame(linear, columns=[f"linear_logit_{j}" for j in range(linear.shape[1])])
        categorical = []
        for j, kind in enumerate(self.side_kinds):
            name = f"side_{j}"
            if kind == CATEGORICAL:
                frame[name] = X.side[:, j].astype(np.int64)
                categorical.append(frame.shape[1] - 1)
            else:
                frame[name] = X.side[:, j]
        return Pool(frame, labels, cat_features=categorical, baseline=linear)

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None,
            validation_mask: Any = None) -> "CatBoostText":
        """Fit on ``X``/``y``. Early stopping (when ``early_stopping_rounds`` is set) uses either

        * ``eval_set=(X_val, y_val)``: separate rows, never trained on; or
        * ``validation_mask``: a boolean mask of rows of ``X`` (early stopping wanted, then a
          refit on all rows). With ``fold_stopping`` (the default) the trees stop on the
          cross-fitting folds of every row instead (``_fold_stopped``), and the kept trees are
          grown again on all rows or, with ``fold_trees`` (``auto``: more than two classes),
          are the folds' own trees averaged into one model; without it they are
          first grown on the other rows until the masked rows' loss stops improving, then
          refitted on all rows with that many trees. The linear model's out-of-fold logits are
          computed once for all rows, so the validation rows cost no extra fit and no accuracy.

        With ``calibrate``, the temperature is fitted for the model that is kept, on rows it was
        not fitted on: after a refit, by cross-fitting (``calibration_folds`` copies of the
        refitted trees, each grown on the other folds, score their own fold); otherwise on the
        early-stopping rows the kept model never saw. With ``fold_stopping`` (the default) and
        ``validation_mask``, those cross-fitted trees also do the early stopping, each on its
        own fold, instead of a probe on the masked rows (see ``_fold_stopped``).
        """
        y = np.asarray(y, dtype=object).astype(str)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two classes")
        self._keeps_fold_trees()  # an unknown fold_trees fails here, before any fit
        if self.side_kinds and not (self.linear_boost and isinstance(X, SideFeatures)):
            raise ValueError("side columns need linear_boost and a TextAndSide feature step")
        scores, held_out = None, None
        if self.linear_boost:
            scores, self.linear_ = self._linear_fits(X, codes)
            scores = self._as_matrix(scores)
        stop = dict(early_stopping_rounds=self.early_stopping_rounds, use_best_model=True)
        fold_stopped = None
        if validation_mask is not None and self.early_stopping_rounds \
                and getattr(self, "fold_stopping", False):
            fold_stopped = self._fold_stopped(X, codes, scores, stop)
        if fold_stopped is not None:
            model, held_out = fold_stopped
        elif validation_mask is not None and self.early_stopping_rounds:
            model, held_out = self._probe_and_refit(
                X, codes, scores, np.asarray(validation_mask, dtype=bool), stop)
        else:
            model, held_out = self._fit_on_eval_set(X, codes, scores, eval_set, stop)
        self.model_ = model
        self.n_features_in_ = X.shape[1]
        self.temperature_ = 1.0
        if self.calibrate and held_out is not None and len(held_out[1]):
            self.temperature_ = fit_temperature(*held_out)
        return self

    def _probe_and_refit(self, X: Any, codes: np.ndarray, scores: np.ndarray | None,
                         val: np.ndarray, stop: dict[str, Any]):
        """Trees grown on the rows outside ``val`` until ``val``'s loss stops improving, then
        grown again on every row with that many; returns the kept model and the held-out raw
        scores for its temperature (the cross-fitted copies', else the probe's on ``val``)."""
        rows = lambda m: None if scores is None else scores[m]  # noqa: E731
        probe = self._make_model(len(self.classes_))
        probe.fit(self._pool(X[~val], codes[~val], rows(~val)),
                  eval_set=self._pool(X[val], codes[val], rows(val)), **stop)
        self.best_iteration_ = max(int(probe.tree_count_), 1)
        held_out = (self._raw(probe, X[val], rows(val)), codes[val])
        model = self._make_model(len(self.classes_))
        model.set_params(iterations=self.best_iteration_)
        model.fit(self._pool(X, codes, scores))
        if self.calibrate:
            held_out = self._cross_fitted_raw(X, codes, scores) or held_out
        return model, held_out

    def _fit_on_eval_set(self, X: Any, codes: np.ndarray, scores: np.ndarray | None,
                         eval_set: tuple[Any, Any] | None, stop: dict[str, Any]):
        """Fit on every row, stopping early on ``eval_set`` (its rows of known classes) when
        given; returns the model and the eval rows' raw scores with their codes (or None)."""
        model = self._make_model(len(self.classes_))
        fit_kwargs: dict[str, Any] = {}
        held_out = None
        if eval_set is not None and self.early_stopping_rounds:
            lookup = {label: i for i, label in enumerate(self.classes_)}
            y_val = np.asarray(eval_set[1], dtype=object).astype(str)
            known = np.array([label in lookup for label in y_val])
            if known.any():
                x_val = eval_set[0][known]
                val_codes = np.array([lookup[label] for label in y_val[known]])
                val_scores = (self.linear_.decision_function(_text_of(x_val)) if self.linear_boost
                              else None)
                fit_kwargs = dict(eval_set=self._pool(x_val, val_codes, val_scores), **stop)
                held_out = (x_val, val_codes, val_scores)
        model.fit(self._pool(X, codes, scores), **fit_kwargs)
        self.best_iteration_ = int(model.tree_count_)
        if held_out is not None:
            held_out = (self._raw(model, held_out[0], held_out[2]), held_out[1])
        return model, held_out

    def _calibration_splits(self, codes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The cross-fitting folds (rows to grow on, rows to score); none when folds are off
        or a class is too rare to appear in every fold."""
        folds = min(int(self.calibration_folds), int(np.bincount(codes).min()))
        if folds < 2:
            return []
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_seed + 1)
        return list(cv.split(np.zeros(len(codes)), codes))

    def _cross_fitted_raw(self, X: Any, codes: np.ndarray,
                          scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Raw scores of every row from a copy of the refitted trees (same number of trees)
        grown without that row's fold: the held-out scores of the model that is kept. The
        linear logits are already out of fold. None when folds are off or a class is too rare."""
        splits = self._calibration_splits(codes)
        if not splits:
            return None
        raw = self._empty_scores(len(codes))
        for fit_rows, own_rows in splits:
            copy = self._make_model(len(self.classes_))
            copy.set_params(iterations=self.best_iteration_)
            copy.fit(self._pool(X[fit_rows], codes[fit_rows],
                                None if scores is None else scores[fit_rows]))
            raw[own_rows] = self._raw(copy, X[own_rows],
                                      None if scores is None else scores[own_rows])
        return raw, codes

    def _fold_stopped(self, X: Any, codes: np.ndarray, scores: np.ndarray | None,
                      stop: dict[str, Any]) -> tuple[Any, tuple[np.ndarray, np.ndarray]] | None:
        """One set of out-of-fold trees serves early stopping *and* the temperature: on each
        cross-fitting fold, trees grown on the other folds stop early on this fold's rows and
        score them; the temperature is fitted on those out-of-fold scores (every row once).
        The kept trees are then either grown again on every row with the folds' mean number of
        trees, or (``_keeps_fold_trees``) the folds' own trees averaged into one model, which
        saves that refit (a mean of tree ensembles is one ensemble whose raw scores are the mean
        of theirs; scoring new rows with it kept BANKING77's ECE, 0.0120).
        This replaces the probe on the validation rows plus the cross-fitted copies (two folds:
        two fits' worth of trees instead of 3.9), and the stopping is decided on every row
        instead of a tenth.
        None (the probe's way) when folds are off or a class is too rare."""
        splits = self._calibration_splits(codes)
        if not splits:
            return None
        rows = lambda m: None if scores is None else scores[m]  # noqa: E731
        cores = (os.cpu_count() or 1) if self.thread_count == -1 else max(1, int(self.thread_count))

        def fold_fit(fit_rows: np.ndarray, own_rows: np.ndarray) -> tuple[Any, np.ndarray]:
            fold = self._make_model(len(self.classes_))
            fold.set_params(thread_count=max(1, cores // len(splits)))
            fold.fit(self._pool(X[fit_rows], codes[fit_rows], rows(fit_rows)),
                     eval_set=self._pool(X[own_rows], codes[own_rows], rows(own_rows)), **stop)
            return fold, self._raw(fold, X[own_rows], rows(own_rows))

        # the folds side by side, each with its share of the cores: CatBoost releases the GIL,
        # and its trees do not depend on the thread count (BANKING77: 9.9 -> 7.8 s)
        fitted = Parallel(n_jobs=min(len(splits), cores), backend="threading")(
            delayed(fold_fit)(fit_rows, own_rows) for fit_rows, own_rows in splits)
        raw = self._empty_scores(len(codes))
        for (_, own_rows), (_, own_raw) in zip(splits, fitted):
            raw[own_rows] = own_raw
        folds = [fold for fold, _ in fitted]
        self.best_iteration_ = int(round(float(np.mean([fold.tree_count_ for fold in folds]))))
        if self._keeps_fold_trees():
            return mean_trees(folds), (raw, codes)
        model = self._make_model(len(self.classes_))
        model.set_params(iterations=max(self.best_iteration_, 1))
        model.fit(self._pool(X, codes, scores))
        return model, (raw, codes)

    def _raw(self, model: Any, X: Any, linear: np.ndarray | None) -> np.ndarray:
        """Raw scores of ``model`` (trees) on ``X``, plus the linear logits when boosting."""
        if linear is None:
            return self._as_matrix(model.predict(X, prediction_type="RawFormulaVal",
                                                 thread_count=self.thread_count))
        linear = self._as_matrix(linear)
        trees = model.predict(self._pool(X, linear_scores=linear), prediction_type="RawFormulaVal",
                              thread_count=self.thread_count)
        return linear + self._as_matrix(trees)

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores: the linear logits plus the trees' corrections (one column per class,
        or one column for binary tasks)."""
        check_is_fitted(self, "model_")
        return self._raw(self.model_, X,
                         self.linear_.decision_function(_text_of(X)) if self.linear_boost else None)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; calibrated (raw scores divided by ``temperature_``, fitted on
        held-out rows) for models trained with ``calibrate``. The arg-max, and so ``predict``,
        is the same with or without calibration."""
        return scores_to_proba(self.decision_function(X) / getattr(self, "temperature_", 1.0))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _fit_linear(model: Any, X: Any, codes: np.ndarray, fit_rows: np.ndarray,
                own_rows: np.ndarray | None) -> tuple[Any, np.ndarray | None]:
    """One linear fit on ``fit_rows`` (in a worker process) and its logits of ``own_rows``."""
    model.fit(X[fit_rows], codes[fit_rows])
    return model, None if own_rows is None else model.decision_function(X[own_rows])


def mean_model(models: list[Any]) -> Any:
    """One linear model whose scores are the mean of ``models``' scores (same classes): the
    mean of their coefficients and intercepts."""
    mean = copy.deepcopy(models[0])
    mean.coef_ = np.mean([model.coef_ for model in models], axis=0)
    mean.intercept_ = np.mean([model.intercept_ for model in models], axis=0)
    return mean


def mean_trees(models: list[Any]) -> Any:
    """One CatBoost model whose raw scores are the mean of ``models``' (``sum_models`` with
    weights 1/k). Every model's category tables are kept as they are, so categorical side
    columns score exactly as in their own model (the default policy averages the tables of
    a shared column, which moves the scores)."""
    from catboost import sum_models  # heavy: only when fitting

    return sum_models(models, weights=[1.0 / len(models)] * len(models),
                      ctr_merge_policy="KeepAllTables")


def _text_of(X: Any) -> Any:
    """The TF-IDF part of the features (all of them for a text-only model)."""
    return X.text if isinstance(X, SideFeatures) else X


def scores_to_proba(raw: np.ndarray) -> np.ndarray:
    """Probabilities from raw scores: sigmoid of one column (binary), softmax of several."""
    if raw.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    raw = raw - raw.max(axis=1, keepdims=True)
    exp = np.exp(raw)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(raw: np.ndarray, codes: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the log loss of ``scores_to_proba(raw / T)``
    on held-out rows (one parameter, so it cannot overfit them, and the arg-max never moves)."""
    rows = np.arange(len(codes))

    def loss(log_t: float) -> float:
        proba = scores_to_proba(raw / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(proba[rows, codes], 1e-15, 1.0))))

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


# What the kept trees are with fold stopping (CatBoostText._keeps_fold_trees).
FOLD_TREES = ("auto", "refit", "mean")

# sag stops when an epoch moves no coefficient by more than this share of the largest. BANKING77
# (the whole training, seeds 42 / 1): 1e-3 fits in 10.2 s, ECE 0.0087 / 0.0097; 3e-3 in 8.4 s,
# ECE 0.0121 / 0.0084; 1e-2 in 6.3 s, ECE 0.0166 / 0.0122; macro-F1 within 0.001 of each other
SAG_TOL = 3e-3

# Many classes: the linear fits go to worker processes only when there is enough work (stored
# values x classes) to pay for starting them (~2 s); BANKING77: 1.6M x 77 = 123M.
PROCESS_FITS_MIN_WORK = 20_000_000

# Out-of-fold logits: folds are fitted side by side only while their copies of X (each fold's
# training rows, converted to float64 by the solver) stay below this; above it, one at a time.
# Measured on 300k tweet-like rows (2 cores): peak 2.85 -> 2.42 GiB, fit 42 -> 53 s.
PARALLEL_FOLDS_MAX_BYTES = 1 << 30


def fold_copy_bytes(X: Any, folds: int) -> int:
    """Bytes of one fold's float64 copy of its training rows of ``X``."""
    stored = X.nnz if sp.issparse(X) else int(np.prod(X.shape))
    per_value = 12 if sp.issparse(X) else 8  # sparse: value + column index
    return int(stored * per_value * (folds - 1) / folds)
