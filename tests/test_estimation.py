"""Performance estimated without labels (CBPE): the estimator against closed-form cases, its
running sums, the alert rules and the report object."""
import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from textops.columns import Columns

from textops.settings import Thresholds
from textops.monitoring import alerts
from textops.metrics import macro_f1_from_confusion
from textops.monitoring.estimation import (EstimateSums, combine, estimate, estimation_alerts,
                                           moved, report_estimates)
from textops.monitoring.labelling import stratified_accuracy
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.result import Figures, Performance, PerformanceReport
from textops.monitoring.stream import StreamSpec, accumulate, proba_classes

THRESHOLDS = Thresholds.defaults(min_accuracy=0.8, max_relative_drop=0.05)


def calibrated_sample(rng, rows, classes):
    """Perfectly calibrated probabilities: each row's true class is drawn from its own vector."""
    proba = rng.dirichlet(np.full(classes, 0.3), size=rows)
    truth = (rng.random(rows)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)
    return proba, np.minimum(truth, classes - 1)


@pytest.mark.parametrize("classes", [2, 5])
def test_the_interval_covers_the_realized_accuracy_of_calibrated_probabilities(classes):
    covered, widths = 0, []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        proba, truth = calibrated_sample(rng, 2000, classes)
        sums = EstimateSums()
        names = [f"c{k}" for k in range(classes)]
        sums.add(np.array(names)[proba.argmax(axis=1)], proba.max(axis=1), proba, names)
        found = estimate(sums, names)
        realized = np.mean(proba.argmax(axis=1) == truth)
        low, high = found.accuracy_interval
        covered += low <= realized <= high
        widths.append(high - low)
    assert 0.85 * 200 <= covered <= 0.97 * 200  # a 90 % interval: neither too narrow nor too wide
    assert 0.01 < np.mean(widths) < 0.05


def test_the_expected_macro_f1_tracks_the_realized_one_on_calibrated_probabilities():
    rng = np.random.default_rng(1)
    proba, truth = calibrated_sample(rng, 20_000, 4)
    names = ["a", "b", "c", "d"]
    predicted = np.array(names)[proba.argmax(axis=1)]
    sums = EstimateSums()
    sums.add(predicted, proba.max(axis=1), proba, names)
    realized = alerts.performance(Counter(zip(np.array(names)[truth], predicted)))
    found = estimate(sums, names)
    assert found.macro_f1 == pytest.approx(realized.macro_f1, abs=0.01)
    assert found.accuracy == pytest.approx(realized.accuracy, abs=0.01)


def test_macro_f1_of_a_counted_matrix_is_the_labelled_rule():
    pairs = Counter({("a", "a"): 50, ("a", "b"): 10, ("b", "b"): 30, ("c", "a"): 5})
    labels = ["a", "b", "c"]
    matrix = np.array([[pairs[(t, p)] for p in labels] for t in labels], dtype=float)
    assert macro_f1_from_confusion(matrix) == pytest.approx(alerts.performance(pairs).macro_f1)


def test_chunks_add_up_to_one_pass_and_a_binary_model_needs_only_the_top_probability():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([1, 1], size=1000)
    names = ["ham", "spam"]
    predicted = np.array(names)[proba.argmax(axis=1)]
    whole, chunked, top_only = EstimateSums(), EstimateSums(), EstimateSums()
    whole.add(predicted, proba.max(axis=1), proba, names)
    for part in np.array_split(np.arange(1000), 7):
        chunked.add(predicted[part], proba.max(axis=1)[part], proba[part][:, ::-1], names[::-1])
    top_only.add(predicted, proba.max(axis=1))
    a, b, c = (estimate(e, names) for e in (whole, chunked, top_only))
    assert a.accuracy == pytest.approx(b.accuracy) == pytest.approx(c.accuracy)
    assert a.macro_f1 == pytest.approx(b.macro_f1) == pytest.approx(c.macro_f1)
    assert a.accuracy_interval == pytest.approx(c.accuracy_interval)


def test_without_whole_vectors_a_multiclass_macro_f1_is_unknown_and_the_accuracy_is_not():
    sums = EstimateSums()
    sums.add(np.array(["a", "b", "c"]), np.array([0.9, 0.8, np.nan]))
    found = estimate(sums, ["a", "b", "c"])
    assert found.rows == 2 and found.accuracy == pytest.approx(0.85)
    assert found.macro_f1 is None
    assert estimate(EstimateSums(), ["a"]) is None


def test_estimate_alerts_on_the_interval_and_on_the_drop_from_training():
    def figures(accuracy, half):
        return combine({"atc": Figures(accuracy, (accuracy - half, accuracy + half), None, 500)})

    assert estimation_alerts(figures(0.95, 0.01), 0.96, THRESHOLDS, "overall") == []
    [low] = estimation_alerts(figures(0.75, 0.02), None, THRESHOLDS, "overall")
    assert low == ("overall: estimated accuracy (ATC 0.7500, 90% interval 0.7300-0.7700, no "
                   "labels) < 0.8000")
    assert estimation_alerts(figures(0.79, 0.02), None, THRESHOLDS, "overall") == []  # could be 0.81
    [drop] = estimation_alerts(figures(0.85, 0.01), 0.98, THRESHOLDS, "model v3")
    assert "13% below its training-time test accuracy 0.9800" in drop


def test_a_move_is_beyond_the_interval_and_at_least_one_point():
    def figures(accuracy, half=0.001):
        return combine({"atc": Figures(accuracy, (accuracy - half, accuracy + half), None, 500)})

    assert moved(figures(0.90), 0.95).startswith("estimated accuracy fell with it (0.9000 vs 0.9500")
    assert moved(figures(0.945), 0.95).startswith("estimated accuracy did not move")
    assert moved(figures(0.90, half=0.06), 0.95).startswith("estimated accuracy did not move")
    assert moved(figures(0.99), 0.95).startswith("estimated accuracy rose")
    assert moved(None, 0.95) == "estimated accuracy unknown"


def reference(accuracy, confidence_mean, calibrated=True):
    return ReferenceProfile.from_dict(
        {"classes": ["a", "b"], "confidence": {"mean": confidence_mean},
         "metrics": {"accuracy": accuracy, "macro_f1": accuracy, "calibrated": calibrated}})


def sums_of(confidences, labels):
    sums = EstimateSums()
    sums.add(np.array(labels), np.array(confidences))
    return sums


def test_the_report_object_alerts_only_without_labels_and_names_uncalibrated_versions():
    expected = {"1": sums_of([0.7] * 100, ["a"] * 100), "2": sums_of([0.99] * 50, ["b"] * 50)}
    references = {"1": reference(0.95, 0.95, calibrated=False), "2": reference(0.97, 0.97)}
    found, raised = report_estimates(expected, {}, references, None, THRESHOLDS)
    assert found.overall.rows == 150 and found.overall.accuracy == pytest.approx((70 + 49.5) / 150)
    assert set(found.per_version) == {"1", "2"} and found.realized is None
    assert found.per_version["1"].training_accuracy == 0.95
    assert found.per_version["1"].macro_f1 is not None  # two classes: from the top prob.
    assert "v1 has uncalibrated probabilities" in found.note
    # overall 0.797 could still be >= 0.8 (interval up to 0.848); v1 alone cannot, and fell
    assert [a.split(":")[0] for a in raised] == ["model v1", "model v1"]

    figures = Performance(rows=100, accuracy=0.72, macro_f1=0.5, recall_per_class={},
                          support_per_class={})
    performance = PerformanceReport(figures, {"1": figures}, [], 0)
    labelled = {"1": sums_of([0.7] * 100, ["a"] * 100)}
    found, raised = report_estimates(expected, labelled, references, performance, THRESHOLDS)
    assert raised == []  # labels known: realized performance is the judge
    assert found.realized.accuracy_error == pytest.approx(0.70 - 0.72)
    assert found.realized.per_version["1"].estimated_accuracy == pytest.approx(0.7)


def test_predictions_files_give_whole_vectors_through_their_proba_columns():
    header = ["id", "prediction", "probability", "model_version", "proba_x", "proba_y", "proba_z"]
    assert proba_classes(header) == ("x", "y", "z")
    frame = pd.DataFrame({"prediction": ["x", "y", "z", None], "probability": [0.6, 0.5, 0.9, None],
                          "model_version": "7", "proba_x": [0.6, 0.3, 0.05, None],
                          "proba_y": [0.3, 0.5, 0.05, None], "proba_z": [0.1, 0.2, 0.9, None]})
    spec = StreamSpec(Columns(text="text", label="label"), has_text=False, has_labels=False, recorded=True,
                      proba_classes=proba_classes(header))
    assert spec.columns(header)[-3:] == ["proba_x", "proba_y", "proba_z"]
    seen = accumulate([frame], spec, score=None)
    sums = seen.expected["7"]
    assert sums.rows == 3 and sums.confusion_rows == 3
    np.testing.assert_allclose(sums.confusion[:, 0], [0.6, 0.3, 0.1])  # the row predicted x
    found = estimate(sums, ["x", "y", "z"])
    assert found.accuracy == pytest.approx((0.6 + 0.5 + 0.9) / 3)
    assert found.macro_f1 is not None


def test_the_estimate_objects_write_the_json_of_earlier_releases_key_for_key():
    """monitor.py's ``estimated`` and ``performance`` objects keep their keys and order (the
    typed objects of issue 19 changed how they are built, not what is written)."""
    expected = {"1": sums_of([0.7] * 100, ["a"] * 100)}
    references = {"1": reference(0.95, 0.95)}
    figures = Performance(rows=100, accuracy=0.72, macro_f1=0.5, recall_per_class={"a": 0.72},
                          support_per_class={"a": 100})
    performance = PerformanceReport(figures, {"1": replace(figures, reference={})}, [], 3)
    found, _ = report_estimates(expected, expected, references, performance, THRESHOLDS)
    sample = stratified_accuracy(np.r_[np.ones(9), 0.0], np.zeros(10), np.full(10, 100))
    written = json.loads(json.dumps(replace(found, sample=replace(
        sample, label_free_accuracy=found.overall.accuracy)).to_dict()))
    head = ["accuracy", "accuracy_interval", "macro_f1", "rows", "method", "estimator",
            "training_accuracy", "at_training", "calibrated", "spread", "trust", "label_a_sample",
            "decision_accuracy", "methods", "threshold"]
    # earlier keys in their order; the class mix (issue 25) is appended
    assert list(written) == head + ["per_version", "realized", "note", "sample", "class_mix"]
    assert list(written["per_version"]["1"]) == head
    assert written["method"].startswith("confidence-based") and written["estimator"] == "CBPE"
    assert list(written["methods"]["cbpe"]) == ["accuracy", "accuracy_interval", "macro_f1", "rows"]
    realized = ["rows", "accuracy", "macro_f1", "estimated_accuracy", "estimated_macro_f1",
                "accuracy_error", "macro_f1_error"]
    assert list(written["realized"]) == realized + ["per_version"]
    assert list(written["realized"]["per_version"]["1"]) == realized
    assert list(written["sample"]) == ["accuracy", "accuracy_interval", "labelled_rows", "rows",
                                       "strata", "method", "estimator", "label_free_accuracy",
                                       "gap"]
    assert written["sample"]["gap"] == pytest.approx(0.7 - 0.9)
    assert list(performance.to_dict()) == ["overall", "per_version", "unknown_labels",
                                           "rows_without_label"]
    assert list(performance.to_dict()["per_version"]["1"]) == [
        "rows", "accuracy", "macro_f1", "recall_per_class", "support_per_class", "reference"]
    assert "reference" not in performance.to_dict()["overall"]
