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


def reliability_sums(proba: np.ndarray, codes: np.ndarray,
                     bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: rows, summed confidence, correct rows (they add up over
    chunks of rows)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == codes
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return (np.bincount(which, minlength=bins),
            np.bincount(which, weights=confidence, minlength=bins),
            np.bincount(which, weights=correct, minlength=bins))


def reliability(proba: np.ndarray, codes: np.ndarray, bins: int = BINS) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: rows, mean confidence, accuracy (NaN when empty)."""
    return reliability_table(*reliability_sums(proba, codes, bins))


def reliability_table(rows: np.ndarray, confidence: np.ndarray,
                      correct: np.ndarray) -> dict[str, np.ndarray]:
    """The reliability table of :func:`reliability_sums`' sums."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"rows": rows, "confidence": confidence / rows, "accuracy": correct / rows}


def ece(proba: np.ndarray, codes: np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error: sum over bins of share x |accuracy - confidence|."""
    return ece_of(reliability(proba, codes, bins), len(codes))


def ece_of(table: dict[str, np.ndarray], n: int) -> float:
    """The expected calibration error of a reliability table over ``n`` rows."""
    used = table["rows"] > 0
    gaps = np.abs(table["accuracy"][used] - table["confidence"][used])
    return float(np.sum(table["rows"][used] * gaps) / max(n, 1))


def brier(proba: np.ndarray, codes: np.ndarray) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot truth (summed over classes)."""
    return float(np.mean(squared_errors(proba, codes)))


def squared_errors(proba: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row: the squared distance to the one-hot truth (summed over classes)."""
    onehot = np.zeros_like(proba)
    known = codes >= 0
    onehot[np.flatnonzero(known), codes[known]] = 1.0
    return np.sum((proba - onehot) ** 2, axis=1)


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


class CalibrationSums:
    """:func:`calibration_metrics` over chunks of rows: the reliability bins and Brier sums of
    the probabilities as given and as before the temperature, added chunk by chunk."""

    def __init__(self, classes: Any, temperature: float, bins: int = BINS) -> None:
        self.classes, self.temperature, self.bins = classes, float(temperature), bins
        self.rows = 0
        self.sums = {kind: [np.zeros(bins, dtype=np.int64), np.zeros(bins), np.zeros(bins)]
                     for kind in ("raw", "calibrated")}
        self.brier = {"raw": 0.0, "calibrated": 0.0}

    def add(self, proba: np.ndarray, y_true: Any) -> None:
        codes = label_codes(y_true, self.classes)
        self.rows += len(codes)
        for kind, p in (("raw", uncalibrated(proba, self.temperature)), ("calibrated", proba)):
            for total, part in zip(self.sums[kind], reliability_sums(p, codes, self.bins)):
                total += part
            self.brier[kind] += float(np.sum(squared_errors(p, codes)))

    def merge(self, other: "CalibrationSums") -> None:
        """Add ``other``'s sums (rows of the same model scored elsewhere)."""
        self.rows += other.rows
        for kind in self.sums:
            for total, part in zip(self.sums[kind], other.sums[kind]):
                total += part
            self.brier[kind] += other.brier[kind]

    def metrics(self) -> dict[str, float]:
        n = max(self.rows, 1)
        ece_raw, ece_cal = (ece_of(reliability_table(*self.sums[kind]), self.rows)
                            for kind in ("raw", "calibrated"))
        return {"calibration.temperature": self.temperature,
                "calibration.ece_raw": ece_raw, "calibration.ece": ece_cal,
                "calibration.brier_raw": self.brier["raw"] / n,
                "calibration.brier": self.brier["calibrated"] / n}
