"""How far the model's probabilities can be taken at their word: top-label expected calibration
error, Brier score and the reliability table (drawn by textops.plots), measured on the test
rows by train.py (the temperature itself is fitted inside the model, ``textprep.CatBoostText``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from textprep import scores_to_proba

BINS = 15


def label_codes(y_true: Any, classes: Any) -> np.ndarray:
    """Each true label's column in the probability matrix (-1 for labels the model lacks)."""
    lookup = {str(c): i for i, c in enumerate(classes)}
    return np.array([lookup.get(str(label), -1) for label in np.asarray(y_true, dtype=object)])


def reliability(proba: np.ndarray, codes: np.ndarray, bins: int = BINS) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: rows, mean confidence, accuracy (NaN when empty)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == codes
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / rows
        accuracy = np.bincount(which, weights=correct, minlength=bins) / rows
    return {"rows": rows, "confidence": mean_confidence, "accuracy": accuracy}


def ece(proba: np.ndarray, codes: np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error: sum over bins of share x |accuracy - confidence|."""
    table = reliability(proba, codes, bins)
    used = table["rows"] > 0
    gaps = np.abs(table["accuracy"][used] - table["confidence"][used])
    return float(np.sum(table["rows"][used] * gaps) / max(len(codes), 1))


def brier(proba: np.ndarray, codes: np.ndarray) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot truth (summed over classes)."""
    onehot = np.zeros_like(proba)
    known = codes >= 0
    onehot[np.flatnonzero(known), codes[known]] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def uncalibrated(proba: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities before temperature scaling (softmax(z / T) -> softmax(z))."""
    return scores_to_proba(temperature * np.log(np.clip(proba, 1e-300, 1.0)))


def calibration_metrics(proba: np.ndarray, y_true: Any, classes: Any,
                        temperature: float) -> dict[str, float]:
    codes = label_codes(y_true, classes)
    raw = uncalibrated(proba, temperature)
    return {"calibration.temperature": float(temperature),
            "calibration.ece_raw": ece(raw, codes), "calibration.ece": ece(proba, codes),
            "calibration.brier_raw": brier(raw, codes), "calibration.brier": brier(proba, codes)}
