"""Every chart textops draws, and the one way a figure is made and closed: the confusion
matrix and the reliability diagram logged with each training run, and the monitoring report's
class distribution, histograms and history (embedded in the HTML as data URIs). matplotlib is
imported only when a chart is drawn (scoring never needs it), always with the Agg backend."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from textops.calibration import ece, label_codes, reliability, uncalibrated
from textops.model import Evaluation
from textops.monitoring.runs import HISTORY_METRICS, HistoryPoint

REFERENCE_COLOUR, CURRENT_COLOUR = "#8c959f", "#0969da"


def figure(width: float = 6.4, height: float = 3.2) -> tuple[Any, Any]:
    """A new figure and its axes (matplotlib loaded here, headless)."""
    import matplotlib  # heavy: only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt  # heavy: only when a chart is drawn

    plt.close(fig)


def save(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write the figure as a PNG file and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _close(fig)
    return path


def data_uri(fig: Any, dpi: int = 96) -> str:
    """The figure as a PNG data URI (for the HTML report), closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def save_confusion_matrix(evaluation: Evaluation, path: Path, title: str) -> Path:
    """Render the confusion matrix as a PNG (row-normalised colours, raw counts when they fit)."""

    labels, cm = evaluation.labels, evaluation.confusion
    n = len(labels)
    size = min(4 + 0.28 * n, 30)
    fig, ax = figure(size, size * 0.85)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=8 if n > 20 else 10)
    ax.set_yticks(range(n), labels, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if normalised[i, j] > 0.5 else "black", fontsize=9)
    return save(fig, path)


def save_reliability_diagram(proba: np.ndarray, y_true: Any, classes: Any, temperature: float,
                             path: Path) -> Path:
    """Accuracy against confidence per bin, before and after calibration, with the diagonal."""

    codes = label_codes(y_true, classes)
    fig, ax = figure(5, 5)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for label, values in (("raw", uncalibrated(proba, temperature)), ("calibrated", proba)):
        table = reliability(values, codes)
        used = table["rows"] > 0
        ax.plot(table["confidence"][used], table["accuracy"][used], marker="o",
                label=f"{label} (ECE {ece(values, codes):.3f})")
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability on the test rows (T = {temperature:.2f})")
    ax.legend(loc="upper left")
    return save(fig, path)


def class_plot(reference: dict[str, float], current: dict[str, float], top: int = 20) -> str:
    classes = sorted(reference, key=lambda c: -max(reference[c], current.get(c, 0.0)))[:top]
    fig, ax = figure(6.4, max(2.4, 0.28 * len(classes) + 1))
    y = np.arange(len(classes))
    ax.barh(y - 0.2, [reference[c] for c in classes], 0.4, label="reference (test split)",
            color=REFERENCE_COLOUR)
    ax.barh(y + 0.2, [current.get(c, 0.0) for c in classes], 0.4, label="current",
            color=CURRENT_COLOUR)
    ax.set_yticks(y, classes)
    ax.invert_yaxis()
    ax.set_xlabel("share of predictions")
    ax.legend(loc="lower right")
    ax.set_title("Predicted class distribution" + (f" (top {top})" if len(reference) > top else ""))
    return data_uri(fig)


def histogram_plot(reference: Sequence[float], current: Sequence[float], title: str, xlabel: str,
                   bins: np.ndarray) -> str:
    fig, ax = figure()
    for values, label, colour in ((reference, "reference (test split)", REFERENCE_COLOUR),
                                  (current, "current", CURRENT_COLOUR)):
        values = np.clip(np.asarray(values, dtype=float), bins[0], bins[-1])
        weights = np.full(len(values), 1.0 / max(len(values), 1))
        ax.hist(values, bins=bins, weights=weights, alpha=0.55, label=label, color=colour)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of rows")
    ax.set_title(title)
    ax.legend()
    return data_uri(fig)


def history_plot(history: list[HistoryPoint]) -> str:
    fig, ax = figure()
    for key, label in HISTORY_METRICS.items():
        points = [(h.time, h.values[key]) for h in history if h.values.get(key) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_ylim(0, 1.02)
    ax.set_title("Monitoring history")
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    return data_uri(fig)
