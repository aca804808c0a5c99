"""The one macro-F1 (textops.metrics): scikit-learn's macro average over the classes present in
the truth, whoever computes it (training, promotion, monitoring, the label-free estimate)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textops import metrics
from textops.monitoring import alerts, estimation


@pytest.mark.parametrize("seed", range(5))
def test_it_is_scikit_learns_macro_f1_over_the_classes_in_the_truth(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(list("abcd"), 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.choice(list("abcde"), 300))  # e: predicted only
    expected = f1_score(y_true, y_pred, average="macro", labels=sorted(set(y_true)), zero_division=0)
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    pairs = Counter(zip(y_true, y_pred))
    assert alerts.performance(pairs).macro_f1 == pytest.approx(expected, abs=1e-12)
    classes, counts = metrics.confusion(y_true, y_pred)
    assert metrics.macro_f1_from_confusion(counts) == pytest.approx(expected, abs=1e-12)


def test_a_class_predicted_but_absent_from_the_truth_adds_no_zero_term():
    y_true = ["a"] * 10 + ["b"] * 10
    y_pred = ["a"] * 10 + ["b"] * 9 + ["c"]
    with_zero_term = f1_score(y_true, y_pred, average="macro", zero_division=0)  # over a, b, c
    assert metrics.macro_f1(y_true, y_pred) > with_zero_term + 0.3


def test_a_stack_of_matrices_gives_each_its_own_figure():
    _, first = metrics.confusion(list("aabb"), list("abbb"))
    _, second = metrics.confusion(list("aabb"), list("aabb"))
    stacked = metrics.macro_f1_from_confusion(np.stack([first, second]))
    np.testing.assert_allclose(stacked, [metrics.macro_f1_from_confusion(first), 1.0])
    assert metrics.macro_f1_from_confusion(np.zeros((2, 2))) == 0.0
