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

Beside it, two estimators that hold up better when the data shifts (measured in
bench/estimation_bench.py):

- **ATC** (average thresholded confidence, Garg et al., ICLR 2022): on the version's test rows
  at training, the confidence threshold ``t`` above which the share of rows equals the test
  accuracy; tonight's estimate is the share of rows above ``t``. Rank-based, so it does not
  rest on the calibration of the probabilities, and one counter per version.
- **DoC** (difference of confidences): the test accuracy at training minus how far the mean
  confidence fell since.

Everything here is a bounded running sum (counters and a k x k matrix per model version),
folded chunk by chunk like the rest of monitor.py's summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence, Union

import numpy as np

from textops.metrics import macro_f1_from_confusion
from textops.monitoring.profile import (ReferenceProfile, Threshold,  # noqa: F401 - re-exported
                                       fit_threshold)
from textops.monitoring.result import (EstimateReport, Figures, Interval, PerformanceReport,
                                       Realized, SampleEstimate, VersionEstimate)
from textops.settings import Thresholds

Z90 = 1.6448536269514722  # two-sided 90 % normal quantile


def threshold_from_reference(reference: ReferenceProfile | None) -> Threshold | None:
    """A version's stored threshold; for versions trained before it was stored, one fitted on
    the reference profile's sample of test confidences and its test accuracy; None without a
    reference profile (then ATC and DoC cannot be computed for it)."""
    if not reference:
        return None
    stored = reference.atc
    if stored:
        return Threshold(float(stored["threshold"]), float(stored["tie_weight"]),
                         float(stored["accuracy"]), float(stored["confidence_mean"]),
                         int(stored["rows"]), str(stored.get("source", "test rows at training")))
    sample, accuracy = reference.confidence_sample, reference.accuracy
    if not sample or accuracy is None:
        return None
    return fit_threshold(sample, accuracy, f"the reference profile's {len(sample)} sampled test "
                                           f"confidences (version trained before thresholds were "
                                           f"stored)")


@dataclass
class EstimateSums:
    """Running sums for one model version's estimate: per predicted label, the rows, the sum of
    their top probabilities and of p (1 - p) (the variance of the number right); and, for rows
    whose whole probability vector is known, the expected confusion matrix."""

    by_label: dict[str, np.ndarray] = field(default_factory=dict)  # [rows, sum p, sum p(1-p)]
    classes: list[str] | None = None
    confusion: np.ndarray | None = None  # expected counts [true class, predicted class]
    confusion_rows: int = 0
    threshold: Threshold | None = None  # ATC's, for this version (None: ATC unknown)
    atc_by_label: dict[str, float] = field(default_factory=dict)  # rows counted right by ATC
    atc_confusion: np.ndarray | None = None  # ATC's counts [true class, predicted class]
    doc_shift: float = 0.0  # sum over rows of (test accuracy - test mean confidence): DoC's anchor
    anchored_rows: int = 0  # rows whose version has a threshold (ATC and DoC known)
    anchor_variance: float | None = None  # merged totals: sum of rows^2 A (1 - A) / test rows

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
        right = self.threshold.right(p) if self.threshold is not None else None
        for label in np.unique(predicted):
            mine = predicted == label
            q = p[mine]
            sums = np.array([len(q), q.sum(), np.sum(q * (1.0 - q))])
            self.by_label[str(label)] = self.by_label.get(str(label), np.zeros(3)) + sums
            if right is not None:
                self.atc_by_label[str(label)] = self.atc_by_label.get(str(label), 0.0) + \
                    float(right[mine].sum())
        if self.threshold is not None:
            self.anchored_rows += len(p)
            self.doc_shift += len(p) * (self.threshold.accuracy - self.threshold.confidence_mean)
        if proba is None or classes is None:
            return
        proba = np.asarray(proba, dtype=float)[ok]
        whole = np.isfinite(proba).all(axis=1)
        proba = proba[whole]
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
        if right is not None:
            self.atc_confusion = (0.0 if self.atc_confusion is None else self.atc_confusion) + \
                atc_matrix(proba, right[whole])

    def merge(self, other: "EstimateSums") -> None:
        """Add another version's sums (the overall figure; each version's rows were counted
        against its own threshold, so the counts add up)."""
        mine = self.rows
        for label, sums in other.by_label.items():
            self.by_label[label] = self.by_label.get(label, np.zeros(3)) + sums
        for label, right in other.atc_by_label.items():
            self.atc_by_label[label] = self.atc_by_label.get(label, 0.0) + right
        self.anchor_variance = (self.anchor_variance or 0.0) + other.anchor_rows_variance()
        self.anchored_rows += other.anchored_rows
        self.doc_shift += other.doc_shift
        if other.confusion is None:
            return
        if mine == 0:
            self.classes, self.confusion = other.classes, other.confusion.copy()
            self.atc_confusion = None if other.atc_confusion is None else other.atc_confusion.copy()
        elif self.confusion is not None and self.classes == other.classes:
            self.confusion = self.confusion + other.confusion
            self.atc_confusion = (None if self.atc_confusion is None or other.atc_confusion is None
                                  else self.atc_confusion + other.atc_confusion)
        else:  # versions with different classes: no common matrix
            self.confusion = self.atc_confusion = None
            return
        self.confusion_rows += other.confusion_rows

    def combine(self, other: "EstimateSums") -> None:
        """Add another part of the same version's rows (a Spark executor's sums): every sum
        adds up, as if one stream had folded both parts."""
        for label, sums in other.by_label.items():
            self.by_label[label] = self.by_label.get(label, np.zeros(3)) + sums
        for label, right in other.atc_by_label.items():
            self.atc_by_label[label] = self.atc_by_label.get(label, 0.0) + right
        self.anchored_rows += other.anchored_rows
        self.doc_shift += other.doc_shift
        if self.threshold is None:
            self.threshold = other.threshold
        if other.confusion is None:
            return
        if self.confusion is None:
            self.classes, self.confusion = other.classes, other.confusion.copy()
            self.atc_confusion = None if other.atc_confusion is None else other.atc_confusion.copy()
        else:
            order = [other.classes.index(c) for c in self.classes]
            self.confusion = self.confusion + other.confusion[np.ix_(order, order)]
            if other.atc_confusion is not None:
                self.atc_confusion = (0.0 if self.atc_confusion is None else self.atc_confusion) \
                    + other.atc_confusion[np.ix_(order, order)]
        self.confusion_rows += other.confusion_rows

    def anchor_rows_variance(self) -> float:
        """rows^2 x the variance of the test accuracy the threshold was fitted to (the part of
        ATC's and DoC's error that more monitored rows cannot shrink)."""
        if self.anchor_variance is not None:
            return self.anchor_variance
        t = self.threshold
        if t is None or not t.rows:
            return 0.0
        return self.anchored_rows ** 2 * t.accuracy * (1 - t.accuracy) / t.rows

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


def atc_matrix(proba: np.ndarray, right: np.ndarray) -> np.ndarray:
    """ATC's confusion counts [true, predicted]: a row predicted k counts ``right`` on the
    diagonal, and the rest spread over the other classes by its own probabilities."""
    n, k = proba.shape
    predicted = proba.argmax(axis=1)
    rows = np.arange(n)
    others = proba.copy()
    others[rows, predicted] = 0.0
    total = others.sum(axis=1, keepdims=True)
    spread = np.divide(others, total, out=np.full_like(others, 1.0 / max(k - 1, 1)),
                       where=total > 0)
    spread[rows, predicted] = 0.0
    truth = spread * (1.0 - right)[:, None]
    truth[rows, predicted] = right
    onehot = np.zeros_like(proba)
    onehot[rows, predicted] = 1.0
    return truth.T @ onehot


def _two_class_matrix(by_label: dict[str, np.ndarray], right: dict[str, float],
                      classes: list[str]) -> np.ndarray:
    matrix = np.zeros((2, 2))
    for k, label in enumerate(classes):
        rows = by_label.get(label, np.zeros(3))[0]
        matrix[k, k] += right.get(label, 0.0)
        matrix[1 - k, k] += rows - right.get(label, 0.0)
    return matrix


def estimate(expected: EstimateSums, classes: Sequence[str]) -> Figures | None:
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
    return Figures(accuracy, (max(accuracy - half, 0.0), min(accuracy + half, 1.0)),
                   float(macro_f1_from_confusion(matrix)) if matrix is not None else None, n)


def _interval(value: float, se: float) -> Interval:
    half = Z90 * float(se)
    return (max(float(value) - half, 0.0), min(float(value) + half, 1.0))


def methods(expected: EstimateSums, classes: Sequence[str]) -> dict[str, Figures]:
    """Every estimator the sums allow, side by side: ``cbpe`` always; ``atc`` and ``doc`` when
    every row's version has a threshold. Each: accuracy, its 90 % sampling interval (rows, and
    for ATC/DoC the finite test rows their anchor was fitted on), macro-F1 (or None)."""
    n = expected.rows
    if n == 0:
        return {}
    classes = [str(c) for c in classes]
    found = {"cbpe": estimate(expected, classes)}
    if expected.anchored_rows != n:
        return found
    anchor = expected.anchor_rows_variance() / n ** 2
    right = float(sum(expected.atc_by_label.values()))
    atc = right / n
    matrix = None
    if expected.atc_confusion is not None and expected.confusion_rows == n:
        matrix = expected.atc_confusion
    elif len(classes) == 2 and set(expected.by_label) <= set(classes):
        matrix = _two_class_matrix(expected.by_label, expected.atc_by_label, classes)
    found["atc"] = Figures(atc, _interval(atc, np.sqrt(atc * (1 - atc) / n + anchor)),
                           float(macro_f1_from_confusion(matrix)) if matrix is not None else None, n)
    total = sum(v[1] for v in expected.by_label.values())
    squares = total - sum(v[2] for v in expected.by_label.values())  # sum of p^2
    mean = total / n
    variance = max(squares / n - mean ** 2, 0.0)
    doc = float(np.clip(mean + expected.doc_shift / n, 0.0, 1.0))
    found["doc"] = Figures(doc, _interval(doc, np.sqrt(variance / n + anchor)), None, n)
    return found


HEADLINE_ORDER = ("atc", "doc", "cbpe")  # the first one known is the headline (measured best)
DISAGREE = 0.02  # estimators further apart than this: the estimate is not to be trusted alone
# After a drift alert. Measured on six real covariate shifts (bench/estimation_bench.py): every
# label-free estimator was optimistic, and ATC recovered about half to all of the accuracy
# actually lost (its fall from the test accuracy times 1.0-1.8), or missed a loss it did not
# see at all (twcs, later tweets: +0.045). So the interval reaches SHIFT_FALLS times ATC's fall,
# plus DRIFT_MARGIN, below ATC; and the alert decision uses the interval's centre.
SHIFT_FALLS = 1.5
DRIFT_MARGIN = 0.05


def combine(found: dict[str, Figures], drifted: Sequence[str] = (),
            anchor: float | None = None) -> VersionEstimate:
    """The headline estimate and an interval honest about shift, every estimator beside it
    (what the version was at training is :func:`version_estimate`'s to add).

    The headline is ATC (CBPE for versions without a threshold). The interval covers every
    estimator's own sampling interval, so it widens with their disagreement; after a drift
    alert it also reaches below ATC by SHIFT_FALLS times ATC's fall from the test accuracy at
    training (``anchor``) plus DRIFT_MARGIN. ``decision`` is what alerts compare: the headline,
    or after a drift alert the interval's centre. ``trust`` says in words how far to trust it.
    """
    name = next(m for m in HEADLINE_ORDER if m in found)
    head = found[name]
    values = [f.accuracy for f in found.values()]
    spread = max(values) - min(values)
    low = min(f.accuracy_interval[0] for f in found.values())
    high = max(f.accuracy_interval[1] for f in found.values())
    decision = head.accuracy
    if drifted:
        fall = max((anchor or 0.0) - head.accuracy, 0.0) if anchor is not None else 0.0
        low = min(low, head.accuracy - SHIFT_FALLS * fall - DRIFT_MARGIN)
        decision = (max(low, 0.0) + high) / 2
    low = max(low, 0.0)
    where = f" after {', '.join(drifted)} drift" if drifted else ""
    if spread > DISAGREE or drifted:
        trust = (f"estimators disagree by {spread:.2f}{where}" if spread > DISAGREE else
                 f"estimators agree (within {spread:.2f}) but inputs drifted ({', '.join(drifted)})"
                 f", where every label-free estimate tends to be optimistic")
        trust += f": accuracy could be anywhere in {low:.2f}-{high:.2f}; label a sample"
    else:
        trust = f"estimators agree (within {spread:.2f}) and nothing drifted: trust it"
    return VersionEstimate(
        accuracy=head.accuracy, accuracy_interval=(low, high), macro_f1=head.macro_f1,
        rows=head.rows, method=name, training_accuracy=None, at_training=None, calibrated=None,
        spread=spread, trust=trust, label_a_sample=bool(spread > DISAGREE or drifted),
        decision_accuracy=decision, methods=found, threshold=None)


Judged = Union[VersionEstimate, SampleEstimate]  # what estimation_alerts can judge


def estimation_alerts(estimated: Judged, reference_accuracy: float | None,
                      thresholds: Thresholds, scope: str, basis: str = "no labels"
                      ) -> list[str]:
    """Exit-1 alerts from an estimate: its whole 90 % interval below ``min_accuracy``, or the
    estimate more than ``max_relative_drop`` below the version's training-time test accuracy.
    The line names the estimator and its interval (``basis``: what it rests on)."""
    alerts = []
    value, (low, high) = estimated.accuracy, estimated.accuracy_interval
    shown = f"{estimated.estimator} {value:.4f}, 90% interval {low:.4f}-{high:.4f}, {basis}"
    decision = estimated.decision_accuracy
    if decision != value:  # after drift: the honest interval's centre decides
        shown += f"; drift-adjusted {decision:.4f}"
        value = decision
    minimum = thresholds.min_accuracy
    if high < minimum:
        alerts.append(f"{scope}: estimated accuracy ({shown}) < {minimum:.4f}")
    drop = thresholds.max_relative_drop
    if reference_accuracy and value < reference_accuracy * (1 - drop):
        alerts.append(f"{scope}: estimated accuracy ({shown}) is "
                      f"{1 - value / reference_accuracy:.0%} below its training-time test "
                      f"accuracy {reference_accuracy:.4f} (max drop {drop:.0%})")
    return alerts


MOVE_MIN = 0.01  # one accuracy point: smaller moves are not called a move, however many rows


def moved(estimated: VersionEstimate | None, at_training: float | None) -> str:
    """Whether the estimated accuracy moved from the same estimate on the version's test rows at
    training (the reference's mean confidence: the same estimator, so any calibration bias
    cancels) by more than its interval's half-width and at least MOVE_MIN: the words appended to
    each drift alert."""
    if not estimated or at_training is None:
        return "estimated accuracy unknown"
    low, high = estimated.accuracy_interval
    value = estimated.accuracy
    margin = max((high - low) / 2, MOVE_MIN)
    figures = f"{value:.4f} vs {at_training:.4f} on the test rows at training"
    if value < at_training - margin:
        return f"estimated accuracy fell with it ({figures})"
    if value > at_training + margin:
        return f"estimated accuracy rose ({figures})"
    return f"estimated accuracy did not move ({figures})"


def _classes(reference: ReferenceProfile | None, expected: EstimateSums) -> list[str]:
    if reference and reference.classes:
        return list(reference.classes)
    return expected.classes or sorted(expected.by_label)


def _calibrated(reference: ReferenceProfile | None) -> bool | None:
    """Whether train.py calibrated the version (recorded in its reference profile since then)."""
    return reference.calibrated if reference else None


def version_estimate(sums: EstimateSums, reference: ReferenceProfile | None,
                     drifted: Sequence[str] = ()) -> VersionEstimate | None:
    """One version's (or the overall) estimate: the headline and its honest interval, every
    estimator under ``methods``, the threshold used, and what the same headline estimator gave on
    the test rows at training (``at_training``: ATC's is the test accuracy by construction)."""
    classes = _classes(reference, sums)
    found = methods(sums, classes)
    if not found:
        return None
    combined = combine(found, drifted, sums.threshold.accuracy if sums.threshold else None)
    test_confidence = reference.confidence_mean if reference else None
    at_training = (sums.threshold.accuracy if combined.method == "atc" and sums.threshold
                   else test_confidence)
    return replace(combined, rows=sums.rows,
                   training_accuracy=reference.accuracy if reference else None,
                   at_training=at_training, calibrated=_calibrated(reference),
                   threshold=sums.threshold)


def report_estimates(expected: dict[str, EstimateSums], labelled: dict[str, EstimateSums],
                     references: dict[str, ReferenceProfile | None],
                     performance: PerformanceReport | None,
                     thresholds: Thresholds, drifted: Sequence[str] = ()
                     ) -> tuple[EstimateReport | None, list[str]]:
    """The report's ``estimated`` (overall and per version; beside the realized figures on the
    labelled rows when there are any) and the alerts it raises. Alerts come from the estimate
    only when no row has a label: realized performance, when known, is the judge."""
    per_version: dict[str, VersionEstimate] = {}
    total = EstimateSums()
    for version, sums in expected.items():
        figures = version_estimate(sums, references.get(version), drifted)
        if figures is None:
            continue
        per_version[version] = figures
        total.merge(sums)
    if not per_version:
        return None, []
    single = len(per_version) == 1
    only = next(iter(per_version.values()))
    overall = version_estimate(total, references.get(next(iter(per_version))), drifted)
    if single:
        overall = replace(overall, training_accuracy=only.training_accuracy,
                          at_training=only.at_training)
    else:
        overall = replace(overall, training_accuracy=None, at_training=None, calibrated=None)
    realized = _realized(labelled, references, performance) if performance else None
    result = EstimateReport(overall, per_version, realized, _notes(per_version))
    if performance:
        return result, []
    alerts = estimation_alerts(overall, overall.training_accuracy, thresholds, "overall")
    if not single:
        for version, figures in per_version.items():
            alerts += estimation_alerts(figures, figures.training_accuracy, thresholds,
                                        f"model v{version}")
    return result, alerts


def _notes(per_version: dict[str, VersionEstimate]) -> str:
    """What the reader should know about how the versions' estimates were made."""
    notes = []
    uncalibrated = [v for v, f in per_version.items() if f.calibrated is False]
    if uncalibrated:
        notes.append(f"{', '.join('v' + v for v in uncalibrated)} has uncalibrated probabilities "
                     f"(trained before textops calibrated them, or with catboost.calibrate off): "
                     f"its CBPE estimate may be off; retrain to calibrate")
    anchorless = [v for v, f in per_version.items() if f.threshold is None]
    if anchorless:
        notes.append(f"{', '.join('v' + v for v in anchorless)} has no reference profile, so no "
                     f"ATC threshold: its estimate is CBPE only")
    older = [v for v, f in per_version.items()
             if f.threshold and f.threshold.source != "test rows at training"]
    if older:
        notes.append(f"{', '.join('v' + v for v in older)}: ATC threshold fitted on the reference "
                     f"profile's sampled test confidences (trained before thresholds were stored)")
    return "; ".join(notes)


def _realized(labelled: dict[str, EstimateSums], references: dict[str, ReferenceProfile | None],
              performance: PerformanceReport) -> Realized:
    """The estimate on the labelled rows beside the realized figures: how far off it was."""
    def row(sums: EstimateSums, classes: list[str], realized: Any,
            per_version: dict[str, Realized] | None = None) -> Realized:
        found = methods(sums, classes)
        figures = combine(found) if found else None
        return Realized(realized.rows, realized.accuracy, realized.macro_f1,
                        figures.accuracy if figures else None,
                        figures.macro_f1 if figures else None, per_version)

    per_version = {}
    total = EstimateSums()
    for version, realized in performance.per_version.items():
        sums = labelled.get(version, EstimateSums())
        per_version[version] = row(sums, _classes(references.get(version), sums), realized)
        total.merge(sums)
    first = references.get(next(iter(performance.per_version), ""), None)
    return row(total, _classes(first, total), performance.overall, per_version)
