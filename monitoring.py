"""The logic behind monitor.py: streamed accumulation of what a model saw (bounded memory),
performance from confusion counts, alert rules and the graded verdict.

Verdict and exit codes (one table, also in ``monitor.py --help`` and the README):

==== ============ =============================================================================
code status       meaning
==== ============ =============================================================================
0    healthy      every check passed
1    alert        performance alert on labelled data (takes precedence over drift)
3    drift        no performance alert, but at least one drift check fired
2    -            bad input or usage (missing file/column, unreadable CSV, bad flag value)
4    -            infrastructure: no such model / alias, tracking server unreachable
==== ============ =============================================================================
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from common import ExitCode

VERDICTS = {"healthy": ExitCode.OK, "alert": ExitCode.ALERT, "drift": ExitCode.DRIFT}


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream of chunks (algorithm R, seeded):
    memory stays at ``size`` items whatever the stream's length."""

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.seen = 0
        self.items: list[Any] = []
        self._rng = np.random.default_rng(seed)

    def add(self, values: Iterable[Any]) -> None:
        values = list(values)
        room = max(self.size - len(self.items), 0)
        self.items.extend(values[:room])
        self.seen += min(room, len(values))
        rest = values[room:]
        if not rest or self.size == 0:
            self.seen += len(rest)
            return
        positions = self.seen + np.arange(1, len(rest) + 1)  # 1-based stream positions
        slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
        for value, slot in zip(rest, slots):
            if slot < self.size:
                self.items[slot] = value
        self.seen += len(rest)


@dataclass
class VersionTally:
    """Confusion counts of one model version's labelled rows."""

    pairs: Counter = field(default_factory=Counter)  # (true, predicted) -> rows

    def add(self, y_true: Iterable[str], y_pred: Iterable[str]) -> None:
        self.pairs.update(zip(y_true, y_pred))

    @property
    def rows(self) -> int:
        return sum(self.pairs.values())


def performance(pairs: Counter) -> dict[str, Any]:
    """Accuracy, macro-F1 (over every label seen as truth or prediction, zero when undefined,
    as scikit-learn computes it) and per-class recall and support, from confusion counts."""
    labels = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    total = sum(pairs.values())
    correct = sum(n for (t, p), n in pairs.items() if t == p)
    truth = Counter()
    predicted = Counter()
    for (t, p), n in pairs.items():
        truth[t] += n
        predicted[p] += n
    f1s, recall = [], {}
    for label in labels:
        hit = pairs.get((label, label), 0)
        prec = hit / predicted[label] if predicted[label] else 0.0
        rec = hit / truth[label] if truth[label] else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        if truth[label]:
            recall[label] = rec
    return {
        "rows": int(total),
        "accuracy": correct / total if total else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "recall_per_class": recall,
        "support_per_class": {label: int(truth[label]) for label in labels if truth[label]},
    }


def performance_alerts(metrics: dict[str, Any], reference: dict[str, Any] | None,
                       thresholds: dict[str, Any], scope: str) -> list[str]:
    """Alert messages: absolute thresholds, relative drop from the version's own test metrics,
    and per-class recall (classes with enough labelled rows)."""
    alerts = []
    for key, label, minimum in (("accuracy", "accuracy", thresholds["min_accuracy"]),
                                ("macro_f1", "macro-F1", thresholds["min_macro_f1"])):
        value = metrics[key]
        if value < minimum:
            alerts.append(f"{scope}: {label} {value:.4f} < {minimum:.4f}")
        before = (reference or {}).get(key)
        if before and value < before * (1 - thresholds["max_relative_drop"]):
            alerts.append(f"{scope}: {label} {value:.4f} is {1 - value / before:.0%} below its "
                          f"training-time test {label} {before:.4f} (max drop "
                          f"{thresholds['max_relative_drop']:.0%})")
    weak = [(label, rec) for label, rec in metrics["recall_per_class"].items()
            if metrics["support_per_class"].get(label, 0) >= thresholds["min_class_support"]
            and rec < thresholds["min_class_recall"]]
    if weak:
        shown = ", ".join(f"{label} {rec:.2f}" for label, rec in sorted(weak, key=lambda x: x[1])[:5])
        alerts.append(f"{scope}: recall below {thresholds['min_class_recall']:.2f} for "
                      f"{len(weak)} class(es): {shown}")
    return alerts


def verdict(performance_alerts_found: list[str], drifted: list[str]) -> str:
    """healthy, alert (performance) or drift; performance wins when both fire."""
    if performance_alerts_found:
        return "alert"
    return "drift" if drifted else "healthy"
