"""The class mix tonight: EM and BBSE label-shift estimates, and their disagreement."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from textops.monitoring import classmix


def _calibrated(priors, n, seed, sharpness=2.0):
    """Rows of a two-Gaussian world with exactly calibrated probabilities under training priors
    (0.5, 0.5); tonight's classes drawn with ``priors``. Returns (proba, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(2, n, p=priors)
    x = rng.normal(np.where(truth == 1, 1.0, -1.0), 1.0)
    p1 = 1 / (1 + np.exp(-sharpness * x))  # P(y=1 | x) under equal priors
    return np.column_stack([1 - p1, p1]), truth


@pytest.mark.parametrize("tonight", [(0.5, 0.5), (0.8, 0.2), (0.2, 0.8)])
def test_em_recovers_tonights_priors_under_label_shift(tonight):
    proba, truth = _calibrated(tonight, 20_000, seed=1)
    priors, adjusted = classmix.em_priors(proba, np.array([0.5, 0.5]))
    assert priors == pytest.approx(tonight, abs=0.02)
    # the adjusted probabilities' confidence is the accuracy of their arg-max
    accuracy = float(np.mean(adjusted.argmax(axis=1) == truth))
    assert adjusted.max(axis=1).mean() == pytest.approx(accuracy, abs=0.02)


def test_bbse_recovers_the_priors_from_predicted_counts_alone():
    test_proba, test_truth = _calibrated((0.5, 0.5), 10_000, seed=2)
    night_proba, _ = _calibrated((0.8, 0.2), 20_000, seed=3)
    confusion = classmix.test_confusion(test_proba.argmax(axis=1).astype(str),
                                        test_truth.astype(str), ["0", "1"])
    share = np.bincount(night_proba.argmax(axis=1), minlength=2) / 20_000
    assert classmix.bbse_priors(np.array(confusion["counts"]), share) == pytest.approx(
        (0.8, 0.2), abs=0.03)
    assert classmix.bbse_priors(np.zeros((2, 2)), share) is None  # no test rows: unknown


def _sample(proba, classes=("0", "1")):
    sample = classmix.ProbaSample(seed=0)
    sample.add(proba, list(classes))
    return sample


def test_the_class_mix_report_moves_agrees_and_flags_disagreement():
    test_proba, test_truth = _calibrated((0.5, 0.5), 10_000, seed=4)
    confusion = classmix.test_confusion(test_proba.argmax(axis=1).astype(str),
                                        test_truth.astype(str), ["0", "1"])
    night, _ = _calibrated((0.8, 0.2), 20_000, seed=5)
    predicted = Counter(np.asarray(["0", "1"])[night.argmax(axis=1)])
    mix = classmix.class_mix(_sample(night), predicted, {"0": 0.5, "1": 0.5}, confusion)
    assert mix.moved == pytest.approx(0.3, abs=0.03) and not mix.flagged
    assert "class mix moved by 0.3" in mix.describe("2") and "BBSE agrees" in mix.describe("2")
    assert set(mix.to_dict()) == {"training", "em", "bbse", "moved", "disagreement", "flagged",
                                  "em_accuracy", "rows"}
    # concept shift: the probabilities say one mix, the predicted counts another (the predicted
    # column came from a different model than the probabilities, as when meanings change)
    flipped = Counter({"0": predicted["1"], "1": predicted["0"]})
    odd = classmix.class_mix(_sample(night), flipped, {"0": 0.5, "1": 0.5}, confusion)
    assert odd.flagged and "concept shift" in odd.describe("2")


def test_versions_without_priors_or_confusion_get_what_they_can():
    night, _ = _calibrated((0.5, 0.5), 1000, seed=6)
    assert classmix.class_mix(_sample(night), Counter(), {}, None) is None  # older reference
    assert classmix.class_mix(None, Counter(), {"0": 0.5, "1": 0.5}, None) is None  # no proba
    em_only = classmix.class_mix(_sample(night), Counter({"0": 500}), {"0": 0.5, "1": 0.5}, None)
    assert em_only.bbse is None and em_only.disagreement is None and not em_only.flagged


def test_the_probability_sample_is_bounded_and_seeded():
    rng = np.random.default_rng(0)
    a, b = classmix.ProbaSample(size=100, seed=3), classmix.ProbaSample(size=100, seed=3)
    for _ in range(5):
        chunk = rng.dirichlet(np.ones(3), 70)
        a.add(chunk, ["x", "y", "z"])
        b.add(chunk[:, [2, 0, 1]], ["z", "x", "y"])  # other column order, same rows
    assert a.rows.shape == (100, 3) and a.seen == 350
    assert b.classes == ["z", "x", "y"] and np.allclose(a.rows[:, [2, 0, 1]], b.rows)
    many = classmix.ProbaSample(seed=0)
    many.add(rng.dirichlet(np.ones(500), 10), [f"c{i}" for i in range(500)])
    assert many.size == classmix.SAMPLE_CELLS // 500  # many classes: fewer rows, same memory
