"""Every test row of a training scored, chunk by chunk, into running sums: the test metrics of a
training that keeps only a sample of its test rows in memory (TEXTOPS_TRAIN_MAX_TEST_ROWS). The
sums are the confusion counts, the calibration bins and Brier sums, and for two classes one
score a test row for ROC-AUC; they give the same figures as the rows held at once would."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from sklearn.metrics import roc_auc_score

from textops import metrics, model
from textops.calibration import CalibrationSums
from textops.interrupts import raise_if_interrupted


def score_test_rows(pipeline: Any, chunks: Iterable[tuple[Any, np.ndarray]], temperature: float
                    ) -> tuple[model.Evaluation, dict[str, float], int]:
    """The evaluation and the calibration metrics over every (rows, true labels) chunk, and
    the rows scored."""
    classes = np.asarray(pipeline.classes_)
    cells: dict[tuple[str, str], int] = {}
    sums = CalibrationSums(classes, temperature)
    positive = str(classes[1]) if len(classes) == 2 else None
    truth: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for x, y in chunks:
        predicted, proba = model.predict_with_proba(pipeline, x)
        names, counts = metrics.confusion(y, predicted)
        for i, j in zip(*np.nonzero(counts)):
            cells[names[i], names[j]] = cells.get((names[i], names[j]), 0) + int(counts[i, j])
        sums.add(proba, y)
        if positive is not None:
            truth.append(np.asarray(y, dtype=object).astype(str) == positive)
            scores.append(proba[:, 1])
        raise_if_interrupted()
    roc_auc = None
    if positive is not None and truth:
        is_positive = np.concatenate(truth)
        if 0 < is_positive.sum() < len(is_positive):
            roc_auc = float(roc_auc_score(is_positive, np.concatenate(scores)))
    return model.evaluate_counts(cells, classes, roc_auc), sums.metrics(), sums.rows
