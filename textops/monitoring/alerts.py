"""Performance on labelled rows and the alert rules: metrics from confusion counts, per model
version beside its training-time test metrics, and the graded verdict (exit codes: the one table
in ``common.EXIT_CODES``)."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from textops.data import spelled_as
from textops.errors import ExitCode
from textops.metrics import macro_f1_from_confusion
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.result import Performance, PerformanceReport
from textops.settings import Thresholds

VERDICTS = {"healthy": ExitCode.OK, "alert": ExitCode.ALERT, "drift": ExitCode.DRIFT}


def performance(pairs: Counter) -> Performance:
    """Accuracy, macro-F1 and per-class recall and support, from confusion counts.

    Macro-F1 averages over the classes present in the truth, as train.py's test metrics and the
    promotion test do (scikit-learn's ``labels=sorted(set(y_true))``): a class the model
    predicted but that no labelled row holds adds no zero term, so a small labelled batch is
    compared with the training-time figure on the same footing (no false alert)."""
    labels = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    total = sum(pairs.values())
    correct = sum(n for (t, p), n in pairs.items() if t == p)
    truth = Counter()
    for (t, _), n in pairs.items():
        truth[t] += n
    matrix = np.array([[pairs.get((t, p), 0) for p in labels] for t in labels], dtype=float)
    recall = {label: pairs.get((label, label), 0) / truth[label] for label in labels if truth[label]}
    return Performance(
        rows=int(total), accuracy=correct / total if total else 0.0,
        macro_f1=macro_f1_from_confusion(matrix) if labels else 0.0, recall_per_class=recall,
        support_per_class={label: int(truth[label]) for label in labels if truth[label]})


def performance_alerts(metrics: Performance, reference: dict[str, Any] | None,
                       thresholds: Thresholds, scope: str) -> list[str]:
    """Alert messages: absolute thresholds, relative drop from the version's own test metrics,
    and per-class recall (classes with enough labelled rows)."""
    alerts = []
    for key, label, minimum in (("accuracy", "accuracy", thresholds.min_accuracy),
                                ("macro_f1", "macro-F1", thresholds.min_macro_f1)):
        value = getattr(metrics, key)
        if value < minimum:
            alerts.append(f"{scope}: {label} {value:.4f} < {minimum:.4f}")
        before = (reference or {}).get(key)
        if before and value < before * (1 - thresholds.max_relative_drop):
            alerts.append(f"{scope}: {label} {value:.4f} is {1 - value / before:.0%} below its "
                          f"training-time test {label} {before:.4f} (max drop "
                          f"{thresholds.max_relative_drop:.0%})")
    weak = [(label, rec) for label, rec in metrics.recall_per_class.items()
            if metrics.support_per_class.get(label, 0) >= thresholds.min_class_support
            and rec < thresholds.min_class_recall]
    if weak:
        shown = ", ".join(f"{label} {rec:.2f}" for label, rec in sorted(weak, key=lambda x: x[1])[:5])
        alerts.append(f"{scope}: recall below {thresholds.min_class_recall:.2f} for "
                      f"{len(weak)} class(es): {shown}")
    return alerts


def verdict(performance_alerts_found: list[str], drifted: list[str]) -> str:
    """healthy, alert (performance) or drift; performance wins when both fire."""
    if performance_alerts_found:
        return "alert"
    return "drift" if drifted else "healthy"


def align_labels(pairs: Counter, classes: list[str]) -> Counter:
    """Label spellings mapped onto the model's (``TRUE`` -> ``True``, :func:`data.spelled_as`)."""
    spell = spelled_as(classes)
    aligned = Counter()
    for (truth, predicted), n in pairs.items():
        aligned[(spell(truth), predicted)] += n
    return aligned


def evaluate_versions(tallies: dict[str, Counter], references: dict[str, ReferenceProfile | None],
                      classes: list[str], thresholds: Thresholds,
                      rows_without_label: int) -> tuple[list[str], PerformanceReport | None]:
    """Performance overall and per model version (``tallies``: version -> confusion counts),
    and the alerts it raises; (alerts, None) when no row had a label.

    With one version, the overall figures are compared with that version's training-time
    metrics; with several, each version is also checked on its own rows.
    """
    overall_pairs: Counter = Counter()
    per_version: dict[str, Performance] = {}
    for version, pairs in tallies.items():
        if not pairs:
            continue
        aligned = align_labels(pairs, classes)
        overall_pairs.update(aligned)
        per_version[version] = replace(performance(aligned),
                                       reference=_test_metrics(references.get(version)))
    if not overall_pairs:
        return [], None
    found = PerformanceReport(performance(overall_pairs), per_version,
                              sorted({t for t, _ in overall_pairs} - set(classes)),
                              rows_without_label)
    single = len(per_version) == 1
    alerts = performance_alerts(found.overall, found.overall_reference if single else None,
                                thresholds, "overall")
    if not single:
        for version, stats in per_version.items():
            alerts += performance_alerts(stats, stats.reference, thresholds, f"model v{version}")
    return alerts, found


def _test_metrics(reference: ReferenceProfile | None) -> dict[str, float]:
    """A version's test metrics at training time (none without a reference profile)."""
    return reference.test_metrics if reference else {}
