"""Every test row of a training scored, chunk by chunk, into running sums: the test metrics of a
training that keeps only a sample of its test rows in memory (TEXTOPS_TRAIN_MAX_TEST_ROWS). The
sums are the confusion counts, the calibration bins and Brier sums, and for two classes one
score a test row for ROC-AUC; they give the same figures as the rows held at once would, and
sums of separate chunks (Spark partitions) merge."""
from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterable

import numpy as np
from sklearn.metrics import roc_auc_score

from textops import metrics, model
from textops.calibration import CalibrationSums
from textops.interrupts import raise_if_interrupted
from textops.workers import die_with_parent


class TestSums:
    """The running sums of one model's test rows (see the module's docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self, classes: Any, temperature: float) -> None:
        self.classes = np.asarray(classes)
        self.cells: dict[tuple[str, str], int] = {}
        self.calibration = CalibrationSums(self.classes, temperature)
        self.positive = str(self.classes[1]) if len(self.classes) == 2 else None
        self.truth: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    @property
    def rows(self) -> int:
        return self.calibration.rows

    def add(self, pipeline: Any, x: Any, y: np.ndarray) -> None:
        """Score the rows ``x`` (true labels ``y``) and add them."""
        predicted, proba = model.predict_with_proba(pipeline, x)
        names, counts = metrics.confusion(y, predicted)
        for i, j in zip(*np.nonzero(counts)):
            self.cells[names[i], names[j]] = self.cells.get((names[i], names[j]), 0) + int(counts[i, j])
        self.calibration.add(proba, y)
        if self.positive is not None:
            self.truth.append(np.asarray(y, dtype=object).astype(str) == self.positive)
            self.scores.append(proba[:, 1])

    def merge(self, other: "TestSums") -> "TestSums":
        """These sums with ``other``'s added (rows scored elsewhere)."""
        for cell, n in other.cells.items():
            self.cells[cell] = self.cells.get(cell, 0) + n
        self.calibration.merge(other.calibration)
        self.truth += other.truth
        self.scores += other.scores
        return self

    def result(self) -> tuple[model.Evaluation, dict[str, float], int]:
        """The evaluation, the calibration metrics and the rows scored."""
        roc_auc = None
        if self.positive is not None and self.truth:
            is_positive = np.concatenate(self.truth)
            if 0 < is_positive.sum() < len(is_positive):
                roc_auc = float(roc_auc_score(is_positive, np.concatenate(self.scores)))
        return (model.evaluate_counts(self.cells, self.classes, roc_auc),
                self.calibration.metrics(), self.rows)


def score_test_rows(pipeline: Any, chunks: Iterable[tuple[Any, np.ndarray]], temperature: float,
                    workers: int = 1) -> tuple[model.Evaluation, dict[str, float], int]:
    """The evaluation and the calibration metrics over every (rows, true labels) chunk, and
    the rows scored; with ``workers`` > 1 the chunks are scored in that many worker processes
    (at most two chunks each in flight) and their sums merged in order: the same figures, bit
    for bit, as one process adding them."""
    sums = TestSums(pipeline.classes_, temperature)
    if workers <= 1:
        for x, y in chunks:
            sums.add(pipeline, x, y)
            raise_if_interrupted()
        return sums.result()
    # spawned, not forked: this process has run CatBoost's and numba's threads, whose state a
    # forked child would inherit half-way
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(os.getpid(), pickle.dumps(pipeline), temperature))
    try:
        pending: collections.deque = collections.deque()
        for x, y in chunks:
            pending.append(pool.submit(_scored_in_worker, x, y))
            while len(pending) >= 2 * workers:
                sums.merge(pending.popleft().result())
                raise_if_interrupted()
        while pending:
            sums.merge(pending.popleft().result())
    finally:
        pool.shutdown(cancel_futures=True)
    return sums.result()


_WORKER: dict[str, Any] = {}  # a worker process's pipeline and temperature


def _start_worker(parent: int, pipeline: bytes, temperature: float) -> None:
    die_with_parent(parent)
    _WORKER.update(pipeline=pickle.loads(pipeline), temperature=temperature)


def _scored_in_worker(x: Any, y: np.ndarray) -> TestSums:
    sums = TestSums(_WORKER["pipeline"].classes_, _WORKER["temperature"])
    sums.add(_WORKER["pipeline"], x, y)
    return sums
