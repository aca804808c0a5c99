"""A model version's reference profile, typed both ways: train.py builds one
(:func:`textops.monitoring.reference.build_reference`) and writes it with :meth:`to_dict` as the
``reference/reference.json`` logged with each version; monitor.py reads any release's back with
:meth:`from_dict`.

Versions trained by earlier releases saved fewer fields (no ATC threshold, no text sample, no
``calibrated`` flag): what a stored profile lacks reads as empty or None here, in one place, so
the drift checks, the estimators and the report need no defaults of their own.

Beside it, the version's ATC :class:`Threshold` (fitted by train.py on the same test rows and
stored in the profile): the estimators and the report both use it, so it lives here rather than
in either of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from textops.columns import PROBABILITY_DECIMALS
from textops.monitoring.sideprofile import SideProfile


FORMAT = 1  # reference.json's layout version


@dataclass(frozen=True)
class ReferenceProfile:
    """What a version looked like on its test split at training time."""

    classes: list[str]
    predicted_distribution: dict[str, float]  # share of each predicted class on the test split
    metrics: dict[str, Any]  # the test metrics at training (accuracy, macro_f1, calibrated, ...)
    confidence_mean: float | None = None
    confidence_sample: list[float] = field(default_factory=list)  # seeded sample, top probability
    length_sample: list[float] = field(default_factory=list)  # text lengths in characters
    oov_rate: float | None = None  # mean share of words the model did not know
    texts: list[str] = field(default_factory=list)  # seeded sample for the text-content check
    text_chars: int | None = None  # how the sampled texts were cut (current ones are cut alike)
    atc: dict[str, Any] | None = None  # the stored ATC threshold (Threshold.to_dict())
    class_priors: dict[str, float] = field(default_factory=dict)  # training rows' class shares
    test_confusion: dict[str, Any] | None = None  # test rows' [predicted, true] counts
    rows: int | None = None  # test rows it was computed on
    length_mean: float | None = None
    length_median: float | None = None
    oov_rows: int | None = None  # texts the out-of-vocabulary rate was measured on
    format: int | None = None  # the layout version it was written with (None: before there was one)
    side: dict[str, SideProfile] = field(default_factory=dict)  # side columns (--feature-columns)

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "ReferenceProfile":
        """The profile from its JSON (any release's): missing parts read as empty."""
        confidence = stored.get("confidence") or {}
        oov = (stored.get("oov_rate") or {}).get("mean")
        return cls(
            classes=[str(c) for c in stored.get("classes") or []],
            predicted_distribution=dict(stored.get("predicted_distribution") or {}),
            metrics=dict(stored.get("metrics") or {}),
            confidence_mean=confidence.get("mean"),
            confidence_sample=list(confidence.get("sample") or []),
            length_sample=list((stored.get("length") or {}).get("sample") or []),
            oov_rate=None if oov is None else float(oov),
            texts=list(stored.get("texts") or []),
            text_chars=int(stored.get("text_chars") or 0) or None,
            atc=stored.get("atc") or None,
            class_priors={str(k): float(v) for k, v in (stored.get("class_priors") or {}).items()},
            test_confusion=stored.get("test_confusion") or None,
            rows=stored.get("rows"), length_mean=(stored.get("length") or {}).get("mean"),
            length_median=(stored.get("length") or {}).get("median"),
            oov_rows=(stored.get("oov_rate") or {}).get("rows"), format=stored.get("format"),
            side={str(k): SideProfile.from_dict(v) for k, v in (stored.get("side") or {}).items()})

    def to_dict(self) -> dict[str, Any]:
        """The JSON train.py logs (``reference/reference.json``), in its key order."""
        return {
            "format": self.format, "rows": self.rows, "classes": self.classes,
            "class_priors": self.class_priors,
            "predicted_distribution": self.predicted_distribution, "metrics": self.metrics,
            "atc": self.atc,
            "confidence": {"mean": self.confidence_mean, "sample": self.confidence_sample},
            "length": {"mean": self.length_mean, "median": self.length_median,
                       "sample": self.length_sample},
            "oov_rate": {"mean": self.oov_rate, "rows": self.oov_rows},
            "texts": self.texts,
            "text_chars": self.text_chars,  # current texts are cut the same way before comparing
            **({"test_confusion": self.test_confusion} if self.test_confusion is not None
               else {}),
            **({"side": {k: v.to_dict() for k, v in self.side.items()}} if self.side else {}),
        }

    @property
    def accuracy(self) -> float | None:
        """The version's test accuracy at training."""
        return self.metrics.get("accuracy")

    @property
    def calibrated(self) -> bool:
        """Whether train.py calibrated the version's probabilities (not recorded before it did)."""
        return bool(self.metrics.get("calibrated", False))

    @property
    def test_metrics(self) -> dict[str, float]:
        """Accuracy and macro-F1 on the test split at training, those recorded."""
        return {k: self.metrics[k] for k in ("accuracy", "macro_f1") if k in self.metrics}


@dataclass(frozen=True)
class Threshold:
    """ATC's threshold for one model version, fitted on its test rows at training: rows with a
    confidence above ``value`` count as right, rows equal to it count ``tie_weight`` (so the
    share on the test rows is exactly their accuracy, however many confidences tie at 1.0)."""

    value: float
    tie_weight: float
    accuracy: float  # test accuracy at training
    confidence_mean: float  # mean confidence on the test rows (DoC's anchor)
    rows: int  # test rows it was fitted on (their number bounds its precision)
    source: str = "test rows at training"

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.value, "tie_weight": self.tie_weight, "accuracy": self.accuracy,
                "confidence_mean": self.confidence_mean, "rows": self.rows, "source": self.source}

    def right(self, confidence: np.ndarray) -> np.ndarray:
        """Each row's count as right: 1 above the threshold, ``tie_weight`` on it, 0 below."""
        c = np.round(np.asarray(confidence, dtype=float), PROBABILITY_DECIMALS)
        return (c > self.value) + self.tie_weight * (c == self.value)


def fit_threshold(confidence: Sequence[float], accuracy: float,
                  source: str = "test rows at training") -> Threshold:
    """The ATC threshold: the share of ``confidence`` values counted right equals ``accuracy``."""
    c = np.sort(np.round(np.asarray(confidence, dtype=float), PROBABILITY_DECIMALS))[::-1]
    n = len(c)
    target = float(np.clip(accuracy, 0.0, 1.0)) * n
    k = min(max(int(np.ceil(target)) - 1, 0), n - 1)  # the row where the target count is reached
    value = float(c[k])
    above, equal = int(np.sum(c > value)), int(np.sum(c == value))
    weight = float(np.clip((target - above) / equal, 0.0, 1.0)) if equal else 0.0
    return Threshold(value, weight, float(accuracy), float(np.mean(c)), n, source)
