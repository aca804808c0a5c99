"""Performance without labels: confidence-based performance estimation (CBPE, as NannyML
names it). When the model's probabilities are calibrated, a row predicted with probability p is
right with probability p, so:

- the expected accuracy of n rows is the mean of their top probabilities, and the number right
  is a sum of independent Bernoulli(p_i) draws: its 90 % interval is
  ``mean(p) +/- 1.645 * sqrt(sum p_i (1 - p_i)) / n`` (it narrows as rows grow);
- the expected confusion matrix puts each row's whole probability vector in the column of its
  predicted class (``E[C[t, k]] = sum of p_i(t) over rows predicted k``), and macro-F1 follows
  from it as from counted confusions.

What it cannot see: concept shift (the same text now meaning another label) leaves the
probabilities, and so the estimate, unchanged. And it is only as good as the calibration, which
train.py measures on the test rows (``calibration.ece``).

Everything here is a bounded running sum (a k x k matrix per model version), folded chunk by
chunk like the rest of monitor.py's summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

Z90 = 1.6448536269514722  # two-sided 90 % normal quantile


@dataclass
class Expected:
    """Running sums for one model version's estimate: per predicted label, the rows, the sum of
    their top probabilities and of p (1 - p) (the variance of the number right); and, for rows
    whose whole probability vector is known, the expected confusion matrix."""

    by_label: dict[str, np.ndarray] = field(default_factory=dict)  # [rows, sum p, sum p(1-p)]
    classes: list[str] | None = None
    confusion: np.ndarray | None = None  # expected counts [true class, predicted class]
    confusion_rows: int = 0

    @property
    def rows(self) -> int:
        return int(sum(v[0] for v in self.by_label.values()))

    def add(self, predicted: np.ndarray, confidence: np.ndarray,
            proba: np.ndarray | None = None, classes: Sequence[str] | None = None) -> None:
        """Fold in rows: their predicted labels and top probabilities, and optionally their whole
        probability vectors (columns in ``classes`` order; a row with a missing value counts by
        its top probability only)."""
        predicted = np.asarray(predicted).astype(str)
        p = np.asarray(confidence, dtype=float)
        ok = np.isfinite(p)
        predicted, p = predicted[ok], np.clip(p[ok], 0.0, 1.0)
        for label in np.unique(predicted):
            q = p[predicted == label]
            sums = np.array([len(q), q.sum(), np.sum(q * (1.0 - q))])
            self.by_label[str(label)] = self.by_label.get(str(label), np.zeros(3)) + sums
        if proba is None or classes is None:
            return
        proba = np.asarray(proba, dtype=float)[ok]
        proba = proba[np.isfinite(proba).all(axis=1)]
        classes = [str(c) for c in classes]
        if self.classes is None:
            self.classes = classes
            self.confusion = np.zeros((len(classes), len(classes)))
        elif classes != self.classes:
            proba = proba[:, [classes.index(c) for c in self.classes]]
        onehot = np.zeros_like(proba)
        onehot[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
        self.confusion = self.confusion + proba.T @ onehot
        self.confusion_rows += len(proba)

    def merge(self, other: "Expected") -> None:
        """Add another version's sums (the overall figure)."""
        mine = self.rows
        for label, sums in other.by_label.items():
            self.by_label[label] = self.by_label.get(label, np.zeros(3)) + sums
        if other.confusion is None:
            return
        if mine == 0:
            self.classes, self.confusion = other.classes, other.confusion.copy()
        elif self.confusion is not None and self.classes == other.classes:
            self.confusion = self.confusion + other.confusion
        else:  # versions with different classes: no common matrix
            self.confusion = None
            return
        self.confusion_rows += other.confusion_rows

    def expected_confusion(self, classes: Sequence[str]) -> np.ndarray | None:
        """The expected confusion matrix over every row: from whole probability vectors, or, for
        a two-class model, from the top probabilities alone (the other class has the rest)."""
        if self.confusion is not None and self.confusion_rows == self.rows:
            return self.confusion
        classes = [str(c) for c in classes]
        if len(classes) != 2 or not set(self.by_label) <= set(classes):
            return None
        matrix = np.zeros((2, 2))
        for k, label in enumerate(classes):
            rows, right, _ = self.by_label.get(label, np.zeros(3))
            matrix[k, k] += right
            matrix[1 - k, k] += rows - right
        return matrix


def macro_f1(confusion: np.ndarray) -> float:
    """Macro-F1 from a (possibly expected, fractional) confusion matrix [true, predicted],
    over the classes present as truth or prediction, as :func:`alerts.performance` counts it."""
    hit = np.diag(confusion)
    truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (truth + predicted) > 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * hit / (truth + predicted), 0.0)
    return float(np.mean(f1[present])) if present.any() else 0.0


def estimate(expected: Expected, classes: Sequence[str]) -> dict[str, Any] | None:
    """The estimate: accuracy with its 90 % interval and, when the expected confusion matrix is
    known (whole probability vectors, or a two-class model), macro-F1; None without rows."""
    n = expected.rows
    if n == 0:
        return None
    right = sum(v[1] for v in expected.by_label.values())
    variance = sum(v[2] for v in expected.by_label.values())
    accuracy = float(right / n)
    half = float(Z90 * np.sqrt(variance) / n)
    matrix = expected.expected_confusion(classes)
    return {
        "accuracy": accuracy,
        "accuracy_interval": [max(accuracy - half, 0.0), min(accuracy + half, 1.0)],
        "macro_f1": macro_f1(matrix) if matrix is not None else None,
        "rows": n,
    }


def estimation_alerts(estimated: dict[str, Any], reference_accuracy: float | None,
                      thresholds: dict[str, Any], scope: str) -> list[str]:
    """Exit-1 alerts from an estimate: its whole 90 % interval below ``min_accuracy``, or the
    estimate more than ``max_relative_drop`` below the version's training-time test accuracy."""
    alerts = []
    value, (low, high) = estimated["accuracy"], estimated["accuracy_interval"]
    minimum = thresholds["min_accuracy"]
    if high < minimum:
        alerts.append(f"{scope}: estimated accuracy {value:.4f} (90% interval {low:.4f}-"
                      f"{high:.4f}, no labels) < {minimum:.4f}")
    drop = thresholds["max_relative_drop"]
    if reference_accuracy and value < reference_accuracy * (1 - drop):
        alerts.append(f"{scope}: estimated accuracy {value:.4f} (no labels) is "
                      f"{1 - value / reference_accuracy:.0%} below its training-time test "
                      f"accuracy {reference_accuracy:.4f} (max drop {drop:.0%})")
    return alerts


MOVE_MIN = 0.01  # one accuracy point: smaller moves are not called a move, however many rows


def moved(estimated: dict[str, Any] | None, at_training: float | None) -> str:
    """Whether the estimated accuracy moved from the same estimate on the version's test rows at
    training (the reference's mean confidence: the same estimator, so any calibration bias
    cancels) by more than its interval's half-width and at least MOVE_MIN: the words appended to
    each drift alert."""
    if not estimated or at_training is None:
        return "estimated accuracy unknown"
    low, high = estimated["accuracy_interval"]
    value = estimated["accuracy"]
    margin = max((high - low) / 2, MOVE_MIN)
    figures = f"{value:.4f} vs {at_training:.4f} on the test rows at training"
    if value < at_training - margin:
        return f"estimated accuracy fell with it ({figures})"
    if value > at_training + margin:
        return f"estimated accuracy rose ({figures})"
    return f"estimated accuracy did not move ({figures})"


def _classes(reference: dict[str, Any] | None, expected: Expected) -> list[str]:
    if reference and reference.get("classes"):
        return [str(c) for c in reference["classes"]]
    return expected.classes or sorted(expected.by_label)


def _calibrated(reference: dict[str, Any] | None) -> bool | None:
    """Whether train.py calibrated the version (recorded in its reference profile since then)."""
    if not reference:
        return None
    return reference.get("metrics", {}).get("calibrated", False)


def report_estimates(expected: dict[str, Expected], labelled: dict[str, Expected],
                     references: dict[str, Any], performance: dict[str, Any] | None,
                     thresholds: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The report's ``estimated`` object (overall and per version; beside the realized figures
    on the labelled rows when there are any) and the alerts it raises. Alerts come from the
    estimate only when no row has a label: realized performance, when known, is the judge."""
    per_version: dict[str, Any] = {}
    total = Expected()
    for version, sums in expected.items():
        reference = references.get(version)
        figures = estimate(sums, _classes(reference, sums))
        if figures is None:
            continue
        metrics = (reference or {}).get("metrics", {})
        figures.update(training_accuracy=metrics.get("accuracy"),
                       at_training=((reference or {}).get("confidence") or {}).get("mean"),
                       calibrated=_calibrated(reference))
        per_version[version] = figures
        total.merge(sums)
    if not per_version:
        return None, []
    first = references.get(next(iter(per_version)))
    overall = estimate(total, _classes(first, total))
    single = len(per_version) == 1
    only = next(iter(per_version.values()))
    if single:
        overall.update(training_accuracy=only["training_accuracy"], at_training=only["at_training"])
    uncalibrated = [v for v, f in per_version.items() if f["calibrated"] is False]
    result = {**overall, "per_version": per_version, "realized": None,
              "method": "confidence-based performance estimation (CBPE): mean top probability",
              "note": (f"{', '.join('v' + v for v in uncalibrated)} has uncalibrated "
                       f"probabilities (trained before textops calibrated them, or with "
                       f"catboost.calibrate off): its estimate may be off; retrain to calibrate"
                       if uncalibrated else "")}
    if performance:
        result["realized"] = _realized(labelled, references, performance)
        return result, []
    alerts = estimation_alerts(overall, only["training_accuracy"] if single else None,
                               thresholds, "overall")
    if not single:
        for version, figures in per_version.items():
            alerts += estimation_alerts(figures, figures["training_accuracy"], thresholds,
                                        f"model v{version}")
    return result, alerts


def _realized(labelled: dict[str, Expected], references: dict[str, Any],
              performance: dict[str, Any]) -> dict[str, Any]:
    """The estimate on the labelled rows beside the realized figures: how far off it was."""
    def row(sums: Expected, classes: list[str], realized: dict[str, Any]) -> dict[str, Any]:
        figures = estimate(sums, classes) or {}
        acc, f1 = figures.get("accuracy"), figures.get("macro_f1")
        return {"rows": realized["rows"], "accuracy": realized["accuracy"],
                "macro_f1": realized["macro_f1"], "estimated_accuracy": acc,
                "estimated_macro_f1": f1,
                "accuracy_error": None if acc is None else acc - realized["accuracy"],
                "macro_f1_error": None if f1 is None else f1 - realized["macro_f1"]}

    per_version = {}
    total = Expected()
    for version, realized in performance["per_version"].items():
        sums = labelled.get(version, Expected())
        per_version[version] = row(sums, _classes(references.get(version), sums), realized)
        total.merge(sums)
    first = references.get(next(iter(performance["per_version"]), ""), None)
    return {**row(total, _classes(first, total), performance["overall"]),
            "per_version": per_version}
