"""The class mix tonight: how the shares of the classes moved since training, estimated
without labels, beside the accuracy estimators (ATC, DoC, CBPE).

Two estimators of tonight's class priors, both assuming *label shift* (the classes' shares
moved, what each class looks like did not):

- **EM** (Saerens, Latinne and Decaestecker, 2002): re-weight each row's calibrated
  probabilities by the ratio of tonight's priors to the training priors, re-estimate the
  priors as the mean of the re-weighted probabilities, repeat until they settle. Run on a
  seeded, bounded sample of the night's probability vectors. The re-weighted probabilities'
  mean top probability is the accuracy the model would have if the shift were label shift only
  (``em_accuracy``).
- **BBSE** (Lipton, Wang and Smola, 2018): solve ``C w = mu`` where ``C[i, j]`` is the share of
  the version's test rows predicted ``i`` whose class is ``j`` (stored in its reference profile
  by train.py) and ``mu`` tonight's share of rows predicted ``i``; tonight's priors are
  ``w * test priors``. It needs only the predicted counts, but versions trained before the
  confusion was stored have none.

The two disagreeing (total variation distance above :data:`DISAGREE`) is a hint that the shift
is not label shift alone (concept or covariate shift): label a sample.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from textops.monitoring.sampling import KeyedSample

SAMPLE_ROWS = 20_000  # probability vectors kept per version for EM (seeded reservoir)
SAMPLE_CELLS = 2_000_000  # ... and at most this many values (16 MB), for many classes
MOVED = 0.10  # total variation distance from the training mix the console and HTML point out
DISAGREE = 0.10  # EM and BBSE this far apart: flagged
EM_ITERATIONS = 500
EM_TOLERANCE = 1e-7


class ProbaSample:
    """A seeded uniform reservoir of whole probability vectors (columns: ``classes``)."""

    def __init__(self, size: int = SAMPLE_ROWS, seed: int = 0):
        self.size = int(size)
        self.rows: np.ndarray | None = None
        self.classes: list[str] | None = None
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def add(self, proba: np.ndarray, classes: Sequence[str]) -> None:
        proba = np.asarray(proba, dtype=float)
        proba = proba[np.isfinite(proba).all(axis=1)]
        classes = [str(c) for c in classes]
        if self.classes is None:
            self.classes, self.rows = classes, np.empty((0, len(classes)))
            self.size = max(min(self.size, SAMPLE_CELLS // max(len(classes), 1)), 1)
        elif classes != self.classes:
            proba = proba[:, [classes.index(c) for c in self.classes]]
        room = max(self.size - len(self.rows), 0)
        self.rows = np.vstack([self.rows, proba[:room]])
        rest = proba[room:]
        positions = self.seen + room + np.arange(1, len(rest) + 1)
        slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
        keep = slots < self.size
        self.rows[slots[keep]] = rest[keep]  # later rows win a slot drawn twice, as in algorithm R
        self.seen += len(proba)


class KeyedProbaSample:
    """:class:`ProbaSample`'s mergeable form (a Spark executor's part): the same cap, kept by
    bottom-k sampling (``sampling.KeyedSample``), merged part by part on the driver."""

    def __init__(self, size: int = SAMPLE_ROWS, seed: Any = 0):
        self.size, self.seed = int(size), seed
        self.classes: list[str] | None = None
        self._sample: KeyedSample | None = None

    @property
    def seen(self) -> int:
        return self._sample.seen if self._sample is not None else 0

    @property
    def rows(self) -> np.ndarray | None:
        if self._sample is None:
            return None
        return np.array(self._sample.items).reshape(-1, len(self.classes))

    def add(self, proba: np.ndarray, classes: Sequence[str]) -> None:
        proba = np.asarray(proba, dtype=float)
        proba = proba[np.isfinite(proba).all(axis=1)]
        classes = [str(c) for c in classes]
        if self.classes is None:
            self.classes = classes
            size = max(min(self.size, SAMPLE_CELLS // max(len(classes), 1)), 1)
            self._sample = KeyedSample(size, self.seed)
        elif classes != self.classes:
            proba = proba[:, [classes.index(c) for c in self.classes]]
        self._sample.offer(len(proba), lambda positions: list(proba[positions]))

    def merge(self, other: "KeyedProbaSample") -> None:
        if other._sample is None:
            return
        if self._sample is None:
            self.classes, self._sample = other.classes, other._sample
            return
        theirs = other._sample
        if other.classes != self.classes:  # a reordered copy: the other part is left as it is
            order = [other.classes.index(c) for c in self.classes]
            theirs = KeyedSample(theirs.size)
            theirs.seen, theirs.keys = other._sample.seen, other._sample.keys
            theirs.items = [row[order] for row in other._sample.items]
        self._sample.merge(theirs)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance between two distributions (0: the same, 1: disjoint)."""
    return float(0.5 * np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).sum())


def em_priors(proba: np.ndarray, train_priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tonight's class priors by EM, and the probabilities re-weighted to them."""
    proba = np.asarray(proba, dtype=float)
    base = np.clip(np.asarray(train_priors, dtype=float), 1e-12, None)
    base = base / base.sum()
    priors = base.copy()
    adjusted = proba
    for _ in range(EM_ITERATIONS):
        weighted = proba * (priors / base)
        adjusted = weighted / np.clip(weighted.sum(axis=1, keepdims=True), 1e-300, None)
        updated = adjusted.mean(axis=0)
        if np.abs(updated - priors).max() < EM_TOLERANCE:
            priors = updated
            break
        priors = updated
    return priors, adjusted


def bbse_priors(test_confusion: np.ndarray, predicted_share: np.ndarray) -> np.ndarray | None:
    """Tonight's class priors by BBSE from the test rows' ``[predicted, true]`` counts and
    tonight's predicted shares (None when the test rows cannot tell the classes apart)."""
    joint = np.asarray(test_confusion, dtype=float)
    if joint.sum() <= 0:
        return None
    joint = joint / joint.sum()
    test_priors = joint.sum(axis=0)
    if np.linalg.matrix_rank(joint) < len(test_priors):
        return None
    w, *_ = np.linalg.lstsq(joint, np.asarray(predicted_share, dtype=float), rcond=None)
    priors = np.clip(w, 0.0, None) * test_priors
    return priors / priors.sum() if priors.sum() > 0 else None


@dataclass(frozen=True)
class ClassMix:
    """One version's class mix: at training, tonight by EM and by BBSE (None: not known), how
    far tonight's moved from training (EM's, total variation), how far EM and BBSE are apart,
    and the accuracy the label-shift-adjusted probabilities imply."""

    classes: list[str]
    training: list[float]
    em: list[float]
    bbse: list[float] | None
    moved: float
    disagreement: float | None
    em_accuracy: float
    rows: int  # probability vectors EM was run on

    @property
    def flagged(self) -> bool:
        """EM and BBSE disagree: the shift is likely more than the class mix (concept shift)."""
        return self.disagreement is not None and self.disagreement > DISAGREE

    def describe(self, version: str) -> str:
        """One line for the console and the HTML."""
        shown = ", ".join(f"{c} {t:.2f}->{e:.2f}" for c, t, e in
                          sorted(zip(self.classes, self.training, self.em),
                                 key=lambda x: -abs(x[2] - x[1]))[:5])
        line = f"v{version} class mix moved by {self.moved:.2f} (EM: {shown})"
        if self.bbse is not None:
            line += f"; BBSE {'disagrees' if self.flagged else 'agrees'} " \
                    f"({self.disagreement:.2f} apart)"
        if self.flagged:
            line += (": more than the class mix changed (covariate or concept shift); label a "
                     "sample")
        return line

    def to_dict(self) -> dict[str, Any]:
        def shares(values: list[float] | None) -> dict[str, float] | None:
            return None if values is None else {c: round(float(v), 6)
                                                for c, v in zip(self.classes, values)}

        return {"training": shares(self.training), "em": shares(self.em),
                "bbse": shares(self.bbse), "moved": round(self.moved, 6),
                "disagreement": None if self.disagreement is None else round(self.disagreement, 6),
                "flagged": self.flagged, "em_accuracy": round(self.em_accuracy, 6),
                "rows": self.rows}


def class_mix(sample: ProbaSample | None, predicted: Counter | None,
              class_priors: dict[str, float], test_confusion: dict[str, Any] | None
              ) -> ClassMix | None:
    """The version's class mix from its night (``sample`` of probability vectors, ``predicted``
    counts) and its reference (training priors, test confusion); None without probabilities
    or training priors (versions whose reference profile lacks them)."""
    if sample is None or sample.rows is None or not len(sample.rows) or not class_priors:
        return None
    classes = sample.classes
    if set(classes) != set(class_priors):
        return None
    train = np.array([float(class_priors[c]) for c in classes])
    em, adjusted = em_priors(sample.rows, train)
    bbse = None
    if test_confusion and predicted and [str(c) for c in test_confusion.get("classes", [])] \
            == classes:
        total = sum(predicted.values())
        share = np.array([predicted.get(c, 0) / total for c in classes])
        bbse = bbse_priors(np.asarray(test_confusion["counts"], dtype=float), share)
    return ClassMix(classes, train.tolist(), em.tolist(), None if bbse is None else bbse.tolist(),
                    total_variation(train, em),
                    None if bbse is None else total_variation(em, bbse),
                    float(adjusted.max(axis=1).mean()), len(sample.rows))


def test_confusion(predicted: Sequence[str], truth: Sequence[str],
                   classes: Sequence[str]) -> dict[str, Any]:
    """The version's ``[predicted, true]`` counts on its test rows, for its reference profile."""
    index = {str(c): i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for p, t in zip(predicted, truth):
        if str(p) in index and str(t) in index:
            counts[index[str(p)], index[str(t)]] += 1
    return {"classes": [str(c) for c in classes], "counts": counts.tolist()}
