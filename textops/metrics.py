"""The one macro-F1 of textops, used by training's test metrics, promotion's paired test,
monitoring's alerts and the label-free estimate: the mean F1 over the classes present in the
truth (scikit-learn's ``f1_score(average="macro", labels=sorted(set(y_true)))``). A class that
is predicted but absent from the truth adds no zero term, so a small labelled batch is judged on
the same footing as the test rows the model was measured on."""
from __future__ import annotations

from typing import Any

import numpy as np


def confusion(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """(classes, counts[true, predicted]) over the labels of both, as strings."""
    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k, n = len(classes), len(y_true)
    counts = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)
    return classes, counts


def macro_f1_from_confusion(matrix: np.ndarray, present: np.ndarray | None = None) -> Any:
    """Macro-F1 of a confusion matrix [true, predicted] (counts or expected, fractional
    counts), or of a stack of them (..., true, predicted). ``present``: the classes to average
    over (default: those with a true row in each matrix). 0.0 when no class is present."""
    matrix = np.asarray(matrix, dtype=float)
    hit = np.diagonal(matrix, axis1=-2, axis2=-1)
    truth, predicted = matrix.sum(axis=-1), matrix.sum(axis=-2)
    f1 = 2 * hit / np.maximum(truth + predicted, 1e-12)
    if present is not None:
        return f1[..., present].mean(axis=-1)
    present = truth > 1e-12
    counted = present.sum(axis=-1)
    mean = np.where(present, f1, 0.0).sum(axis=-1) / np.maximum(counted, 1)
    return float(mean) if np.ndim(mean) == 0 else mean


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Macro-F1 of predicted labels against the truth (classes present in the truth)."""
    return float(macro_f1_from_confusion(confusion(y_true, y_pred)[1]))
