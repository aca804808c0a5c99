"""Monitoring runs in MLflow: each check is logged as a run of the monitoring experiment (tags,
thresholds, metrics, reports), and earlier runs are read back for the HTML report's history."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textops.monitoring.result import EstimateReport, MonitorReport, SliceReport

log = logging.getLogger(__name__)

# the metrics charted in the HTML report's history, with their legend
HISTORY_METRICS = {"accuracy": "accuracy (labels)", "macro_f1": "macro-F1 (labels)",
                   "estimated.accuracy": "estimated accuracy (no labels)",
                   "drift.text_content": "text drift AUC"}


@dataclass(frozen=True)
class HistoryPoint:
    """One monitoring run on the history chart: when it ran and the HISTORY_METRICS it logged
    (None: not logged by that run)."""

    time: datetime
    values: dict[str, float | None]

    @property
    def charted(self) -> bool:
        """Whether the run logged any of the charted metrics."""
        return any(v is not None for v in self.values.values())


def history(client: Any, experiment_id: str, name: str, limit: int,
            report: MonitorReport) -> list[HistoryPoint]:
    """Earlier monitoring runs of this model (oldest first), plus this one."""
    points = []
    try:
        runs = [] if limit <= 0 else client.search_runs([experiment_id], f"tags.`textops.model_name` = '{name}'",
                                  order_by=["attributes.start_time DESC"], max_results=limit)
    except Exception as exc:  # noqa: BLE001 - the history is a nice-to-have
        log.info("monitoring history unavailable: %s", exc)
        runs = []
    for run in reversed(runs):
        metrics = run.data.metrics
        points.append(HistoryPoint(datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc),
                                   {key: metrics.get(key) for key in HISTORY_METRICS}))
    now = run_metrics(report)  # this run's point: the same metrics it is about to log
    points.append(HistoryPoint(datetime.now(timezone.utc),
                               {key: now.get(key) for key in HISTORY_METRICS}))
    return points


def run_metrics(report: MonitorReport) -> dict[str, float]:
    """The figures charted over time in the MLflow UI."""
    metrics = {"rows": report.data.rows, "alerts": len(report.alerts),
               "drift_alerts": len(report.drift.drifted)}
    if report.performance:
        overall = report.performance.overall
        metrics.update(accuracy=overall.accuracy, macro_f1=overall.macro_f1)
        for v, stats in report.performance.per_version.items():
            metrics[f"v{v}.accuracy"] = stats.accuracy
            metrics[f"v{v}.macro_f1"] = stats.macro_f1
    if report.estimated:
        metrics.update(_estimate_metrics(report.estimated))
    for check in report.drift.checks:
        if check.value is not None:
            metrics[f"drift.{check.name}"] = check.value
    if report.slices is not None:
        metrics.update(_slice_metrics(report.slices))
    return metrics


def _slice_metrics(found: SliceReport) -> dict[str, float]:
    """--slice-by: the slice alerts, and each slice's accuracy (labelled) and estimated accuracy
    under ``slice.<value>.``; a value's characters MLflow refuses in a name become ``_``."""
    metrics = {"slices.alerts": float(len(found.alerts))}
    for s in found.slices:
        name = "slice." + (re.sub(r"[^\w\-. /]", "_", s.value)[:200] or "_")
        if s.accuracy is not None:
            metrics[f"{name}.accuracy"] = s.accuracy
        if s.estimated_accuracy is not None:
            metrics[f"{name}.estimated.accuracy"] = s.estimated_accuracy
    return metrics


def log_run(experiment_id: str, report: MonitorReport, artifacts: list[Path]) -> None:
    """One run in the monitoring experiment, tagged with the model and its versions."""
    import mlflow  # heavy: imported when the run is logged

    with mlflow.start_run(experiment_id=experiment_id, run_name="monitor"):
        mlflow.set_tags({
            "textops.model_name": report.model.name,
            "textops.model_version": ",".join(report.model.versions),
            "textops.status": report.status,
            "textops.alerts": " | ".join(report.all_alerts)[:5000],
        })
        mlflow.log_params({
            "data.path": report.data.path,
            "data.sha256": report.data.sha256,
            **{f"threshold.{k}": v for k, v in report.thresholds.to_dict().items()},
        })
        mlflow.log_metrics(run_metrics(report))
        for path in artifacts:
            mlflow.log_artifact(str(path))


def _estimate_metrics(estimated: EstimateReport) -> dict[str, float]:
    """The label-free estimate's figures (and the labelled sample's) as run metrics."""
    overall = estimated.overall
    low, high = overall.accuracy_interval
    metrics = {"estimated.accuracy": overall.accuracy}
    if overall.macro_f1 is not None:
        metrics["estimated.macro_f1"] = overall.macro_f1
    for v, figures in estimated.per_version.items():
        metrics[f"v{v}.estimated.accuracy"] = figures.accuracy
    metrics.update({"estimated.accuracy_low": low, "estimated.accuracy_high": high})
    for name, figures in overall.methods.items():
        metrics[f"estimated.{name}.accuracy"] = figures.accuracy
    realized = estimated.realized
    if realized and realized.accuracy_error is not None:
        metrics["estimated.accuracy_error"] = realized.accuracy_error
    if estimated.sample:
        metrics["sample.accuracy"] = estimated.sample.accuracy
        metrics["sample.gap"] = estimated.sample.gap
    return metrics
