"""monitor.py --slice-by: figures per value of one column, from sums kept while the data streams
by, and an alert for the slice that dropped, guarded against the noise of many slices."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from textops.monitoring import slices
from textops.monitoring.profile import ReferenceProfile

REFERENCE = ReferenceProfile.from_dict({"classes": ["no", "yes"],
                                        "metrics": {"accuracy": 0.95, "macro_f1": 0.94}})


def _labelled(sums: slices.SliceSums, value: str, rows: int, accuracy: float, seed: int) -> None:
    """``rows`` labelled rows of slice ``value``, right with probability ``accuracy``."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["no", "yes"], rows)
    right = rng.random(rows) < accuracy
    predicted = np.where(right, truth, np.where(truth == "yes", "no", "yes"))
    values = sums.values_of(pd.Series([value] * rows))
    confidence = np.full(rows, 0.9)
    sums.add(values, np.full(rows, "1", dtype=object), predicted, confidence, None, (),
             lambda version: None)
    sums.add_labelled(values, truth, predicted)


def test_thirty_healthy_slices_make_no_noise_and_the_one_that_dropped_alerts():
    sums = slices.SliceSums()
    for i in range(30):
        _labelled(sums, f"shop{i:02d}", 150, 0.95, seed=i)
    _labelled(sums, "broken", 150, 0.60, seed=99)
    found = slices.report(sums, "shop", top=40, min_rows=100, reference=REFERENCE,
                          classes=["no", "yes"], max_relative_drop=0.10)
    assert found.line == pytest.approx(0.855) and found.level == pytest.approx(0.05 / 31)
    assert len(found.slices) == 31 and all(s.checked for s in found.slices)
    [alert] = found.alerts
    assert alert.startswith("slice shop=broken: accuracy 0.") and "binomial p=" in alert
    by_value = {s.value: s for s in found.slices}
    assert by_value["broken"].labelled_rows == 150 and by_value["broken"].accuracy < 0.7
    assert by_value["shop00"].estimated_accuracy == pytest.approx(0.9)  # label-free beside it


def test_a_small_slice_below_the_line_is_reported_but_never_alerts():
    sums = slices.SliceSums()
    _labelled(sums, "big", 500, 0.95, seed=1)
    _labelled(sums, "tiny", 20, 0.50, seed=2)
    found = slices.report(sums, "shop", top=10, min_rows=100, reference=REFERENCE,
                          classes=["no", "yes"], max_relative_drop=0.10)
    tiny = next(s for s in found.slices if s.value == "tiny")
    assert not tiny.checked and tiny.alert == "" and found.alerts == []
    assert found.level == pytest.approx(0.05)  # only one slice checked


def test_top_values_one_by_one_the_rest_and_missing_values_pooled():
    sums = slices.SliceSums()
    column = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 5 + ["d"] * 4 + [None] * 3 + [" "] * 2)
    values = sums.values_of(column)
    assert Counter(values)[slices.MISSING] == 5
    n = len(values)
    sums.add(values, np.full(n, "1", dtype=object), np.full(n, "yes"), np.full(n, 0.8), None, (),
             lambda version: None)
    found = slices.report(sums, "shop", top=2, min_rows=1, reference=REFERENCE,
                          classes=["no", "yes"], max_relative_drop=0.10)
    assert [(s.value, s.rows) for s in found.slices] == [("a", 50), ("b", 30),
                                                         (slices.OTHER, 14)]
    assert all(s.labelled_rows == 0 and s.accuracy is None for s in found.slices)


def test_an_identifier_column_stays_bounded_and_the_report_says_so():
    sums = slices.SliceSums()
    for start in range(0, 3000, 1000):  # three chunks of 1,000 new values each
        values = sums.values_of(pd.Series([f"id{i}" for i in range(start, start + 1000)]))
        sums.add(values, np.full(1000, "1", dtype=object), np.full(1000, "yes"),
                 np.full(1000, 0.9), None, (), lambda version: None)
    assert len(sums.rows) <= slices.MAX_TRACKED + 1
    assert sums.pooled_rows == 3000 - slices.MAX_TRACKED
    found = slices.report(sums, "user", top=10, min_rows=100, reference=REFERENCE,
                          classes=["no", "yes"], max_relative_drop=0.10)
    assert f"more than {slices.MAX_TRACKED} distinct values" in found.note
    assert found.slices[-1].value == slices.OTHER and found.slices[-1].rows == 2990


def test_without_labels_a_slice_alerts_only_when_its_widened_interval_is_below_the_line():
    sums = slices.SliceSums()
    for value, confidence in (("calm", 0.95), ("lost", 0.55)):
        values = sums.values_of(pd.Series([value] * 400))
        sums.add(values, np.full(400, "1", dtype=object), np.full(400, "yes"),
                 np.full(400, confidence), None, (), lambda version: None)
    found = slices.report(sums, "channel", top=10, min_rows=100, reference=REFERENCE,
                          classes=["no", "yes"], max_relative_drop=0.10)
    [alert] = found.alerts
    assert alert.startswith("slice channel=lost: estimated accuracy 0.5500 (no labels)")


def test_without_a_training_accuracy_slices_are_reported_not_judged():
    sums = slices.SliceSums()
    _labelled(sums, "x", 200, 0.2, seed=3)
    found = slices.report(sums, "shop", top=10, min_rows=100, reference=None,
                          classes=["no", "yes"], max_relative_drop=0.10)
    assert found.alerts == [] and found.line is None and "not judged" in found.note


def test_the_labelled_samples_estimate_of_one_slice_is_unbiased_and_covers():
    """The night's accuracy of one slice from the stratified sample drawn over all rows
    (domain estimation): over 300 seeded samples, mean error within 0.01 and the 90 % interval
    covering the truth at least 85 % of the time."""
    from textops.monitoring.labelling import domain_accuracy

    rng = np.random.default_rng(0)
    n = 20_000
    stratum = rng.integers(0, 4, n)
    in_slice = rng.random(n) < 0.2
    p_right = np.where(in_slice, 0.6, 0.95) - 0.05 * stratum
    right = (rng.random(n) < p_right).astype(float)
    truth = right[in_slice].mean()
    sizes = np.bincount(stratum)
    errors, covered = [], 0
    for seed in range(300):
        pick = np.concatenate([np.random.default_rng(seed).choice(np.flatnonzero(stratum == h),
                                                                  size, replace=False)
                               for h, size in enumerate((20, 40, 60, 80))])
        found = domain_accuracy(right[pick], stratum[pick], sizes[stratum[pick]], in_slice[pick])
        errors.append(found.accuracy - truth)
        low, high = found.accuracy_interval
        covered += low <= truth <= high
    assert abs(np.mean(errors)) < 0.01 and covered / 300 >= 0.85
    assert domain_accuracy(right[:10], stratum[:10], sizes[stratum[:10]], np.zeros(10)) is None
