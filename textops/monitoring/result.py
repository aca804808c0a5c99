"""The monitor report as typed objects: what check.run returns, what the summary line, the HTML
page and the MLflow run are made from, and (``to_dict``) the JSON written to --report, key for
key and in the same order as earlier releases wrote it. The performance and estimate figures
stay dictionaries of figures (``alerts.performance``, ``estimation.report_estimates``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from textops.monitoring.drift import Check
from textops.settings import Thresholds


@dataclass(frozen=True)
class DataSummary:
    """The input as read: where, its SHA-256, how many rows were checked or skipped."""

    path: str
    sha256: str
    rows: int
    rows_checked: int
    rows_skipped: int


@dataclass(frozen=True)
class ModelSummary:
    """The registered model and the versions that scored the rows."""

    name: str
    versions: list[str]
    source: str  # "recorded predictions" or "@<alias or version>"


@dataclass(frozen=True)
class DriftSummary:
    """The drift checks against the main version's reference profile."""

    reference_version: str | None
    rows_of_reference_version: int
    checks: list[Check]
    drifted: list[str]  # one alert line per drifted check
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"reference_version": self.reference_version,
                "rows_of_reference_version": self.rows_of_reference_version,
                "checks": [c.to_dict() for c in self.checks],
                "drifted": list(self.drifted), "note": self.note}


@dataclass(frozen=True)
class MonitorReport:
    """One monitor.py run's verdict and everything behind it."""

    status: str  # healthy, drift or alert
    exit_code: int
    alerts: list[str]  # performance alerts (labelled rows, labelled sample or estimate)
    checked_at: str
    data: DataSummary
    model: ModelSummary
    thresholds: Thresholds
    performance: dict[str, Any] | None  # figures on labelled rows: overall, per_version, ...
    estimated: dict[str, Any] | None  # the label-free estimate (and the labelled sample's)
    drift: DriftSummary
    to_label: dict[str, Any] | None = field(default=None)  # the rows written to label

    @property
    def all_alerts(self) -> list[str]:
        """Performance alerts, then drift alerts."""
        return self.alerts + self.drift.drifted

    def with_to_label(self, to_label: dict[str, Any] | None) -> "MonitorReport":
        return replace(self, to_label=to_label)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {"status": self.status, "exit_code": self.exit_code, "alerts": list(self.alerts),
                "checked_at": self.checked_at, "data": asdict(self.data),
                "model": asdict(self.model), "thresholds": self.thresholds.to_dict(),
                "performance": self.performance, "estimated": self.estimated,
                "drift": self.drift.to_dict(), "to_label": self.to_label}
