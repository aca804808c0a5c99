"""The monitor report as typed objects: what check.run returns, what the summary line, the HTML
page and the MLflow run are made from, and (``to_dict``) the JSON written to --report, key for
key and in the same order as earlier releases wrote it.

Made by: :mod:`alerts` (Performance, PerformanceReport), :mod:`estimation` (Figures,
VersionEstimate, Realized, EstimateReport), :mod:`labelling` (SampleEstimate), :mod:`drift`
(Check) and :mod:`check` (the rest)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from textops.monitoring.drift import Check
from textops.monitoring.profile import Threshold
from textops.settings import Thresholds

Interval = tuple[float, float]  # a 90 % interval (low, high); a list in the JSON


@dataclass(frozen=True)
class Performance:
    """Figures on labelled rows, for one scope (all rows, or one model version's)."""

    rows: int
    accuracy: float
    macro_f1: float
    recall_per_class: dict[str, float]
    support_per_class: dict[str, int]
    reference: dict[str, float] | None = None  # per version: its test metrics at training time

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": self.rows, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
               "recall_per_class": dict(self.recall_per_class),
               "support_per_class": dict(self.support_per_class)}
        if self.reference is not None:
            out["reference"] = dict(self.reference)
        return out


@dataclass(frozen=True)
class PerformanceReport:
    """The report's ``performance``: overall, per model version, labels the model does not know,
    and how many rows had no label."""

    overall: Performance
    per_version: dict[str, Performance]
    unknown_labels: list[str]
    rows_without_label: int

    @property
    def overall_reference(self) -> dict[str, float]:
        """The training-time metrics the overall figures are compared with: the only version's
        (none when several versions scored the rows)."""
        if len(self.per_version) != 1:
            return {}
        return next(iter(self.per_version.values())).reference or {}

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(),
                "per_version": {v: p.to_dict() for v, p in self.per_version.items()},
                "unknown_labels": list(self.unknown_labels),
                "rows_without_label": self.rows_without_label}


@dataclass(frozen=True)
class Figures:
    """One label-free estimator's figures (``methods`` in the report): accuracy, its 90 %
    sampling interval, macro-F1 (None when the expected confusion is unknown) and rows."""

    accuracy: float
    accuracy_interval: Interval
    macro_f1: float | None
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "accuracy_interval": list(self.accuracy_interval),
                "macro_f1": self.macro_f1, "rows": self.rows}


@dataclass(frozen=True)
class VersionEstimate:
    """One model version's (or all rows') label-free estimate: the headline estimator's figures,
    an interval honest about shift, and every estimator side by side."""

    accuracy: float
    accuracy_interval: Interval
    macro_f1: float | None
    rows: int
    method: str  # the headline estimator: atc, doc or cbpe
    training_accuracy: float | None  # the version's test accuracy at training
    at_training: float | None  # the headline estimator on the test rows at training
    calibrated: bool | None  # whether train.py calibrated the version (None: unknown)
    spread: float  # how far apart the estimators are
    trust: str  # how far to trust it, in words
    label_a_sample: bool
    decision_accuracy: float  # what the alerts compare: the headline, after drift the centre
    methods: dict[str, Figures]
    threshold: Threshold | None  # ATC's, when the version has one

    @property
    def estimator(self) -> str:
        return self.method.upper()

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "accuracy_interval": list(self.accuracy_interval),
                "macro_f1": self.macro_f1, "rows": self.rows, "method": self.method,
                "estimator": self.estimator, "training_accuracy": self.training_accuracy,
                "at_training": self.at_training, "calibrated": self.calibrated,
                "spread": self.spread, "trust": self.trust,
                "label_a_sample": self.label_a_sample,
                "decision_accuracy": self.decision_accuracy,
                "methods": {name: f.to_dict() for name, f in self.methods.items()},
                "threshold": self.threshold.to_dict() if self.threshold else None}


@dataclass(frozen=True)
class Realized:
    """The label-free estimate on the labelled rows beside what the labels say: how far off it
    was (overall, with ``per_version``; per version without)."""

    rows: int
    accuracy: float
    macro_f1: float
    estimated_accuracy: float | None
    estimated_macro_f1: float | None
    per_version: dict[str, Realized] | None = None

    @property
    def accuracy_error(self) -> float | None:
        return None if self.estimated_accuracy is None else self.estimated_accuracy - self.accuracy

    @property
    def macro_f1_error(self) -> float | None:
        if self.estimated_macro_f1 is None:
            return None
        return self.estimated_macro_f1 - self.macro_f1

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": self.rows, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
               "estimated_accuracy": self.estimated_accuracy,
               "estimated_macro_f1": self.estimated_macro_f1,
               "accuracy_error": self.accuracy_error, "macro_f1_error": self.macro_f1_error}
        if self.per_version is not None:
            out["per_version"] = {v: r.to_dict() for v, r in self.per_version.items()}
        return out


@dataclass(frozen=True)
class SampleEstimate:
    """The night's accuracy from a labelled stratified sample (``--labels``), beside the
    label-free estimate it checks (``gap``: label-free minus sampled)."""

    accuracy: float
    accuracy_interval: Interval
    labelled_rows: int
    rows: int  # rows the sample was drawn from
    strata: int
    label_free_accuracy: float | None = None
    method: ClassVar[str] = "stratified sample (Horvitz-Thompson), 90 % interval"
    estimator: ClassVar[str] = "labelled sample"

    @property
    def decision_accuracy(self) -> float:
        return self.accuracy

    @property
    def gap(self) -> float | None:
        return None if self.label_free_accuracy is None else self.label_free_accuracy - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        out = {"accuracy": self.accuracy, "accuracy_interval": list(self.accuracy_interval),
               "labelled_rows": self.labelled_rows, "rows": self.rows, "strata": self.strata,
               "method": self.method, "estimator": self.estimator}
        if self.label_free_accuracy is not None:
            out.update(label_free_accuracy=self.label_free_accuracy, gap=self.gap)
        return out


METHOD_NAMES = {"atc": "average thresholded confidence (ATC)",
                "doc": "difference of confidences (DoC)",
                "cbpe": "confidence-based performance estimation (CBPE): mean top probability"}
METHOD_ABBREVIATIONS = {"atc": "ATC", "doc": "DoC", "cbpe": "CBPE"}  # the summary line's


@dataclass(frozen=True)
class EstimateReport:
    """The report's ``estimated``: the overall estimate (its fields at the top level of the JSON,
    ``method`` spelled out), per version, the realized figures when rows had labels, notes, and
    the labelled sample's estimate when a labels file came back."""

    overall: VersionEstimate
    per_version: dict[str, VersionEstimate]
    realized: Realized | None
    note: str
    sample: SampleEstimate | None = None
    class_mix: dict[str, Any] = field(default_factory=dict)  # per version: classmix.ClassMix

    @property
    def method_name(self) -> str:
        return METHOD_NAMES[self.overall.method]

    @property
    def method_abbreviation(self) -> str:
        return METHOD_ABBREVIATIONS[self.overall.method]

    def to_dict(self) -> dict[str, Any]:
        out = {**self.overall.to_dict(), "method": self.method_name,
               "per_version": {v: e.to_dict() for v, e in self.per_version.items()},
               "realized": self.realized.to_dict() if self.realized else None, "note": self.note}
        if self.sample is not None:
            out["sample"] = self.sample.to_dict()
        out["class_mix"] = {v: m.to_dict() for v, m in self.class_mix.items()}
        return out


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
class SliceFigures:
    """One slice's night: its rows, performance on its labelled rows, the label-free estimate,
    and the verdict."""

    value: str
    rows: int
    labelled_rows: int
    accuracy: float | None  # on the labelled rows (None: none)
    macro_f1: float | None
    estimated_accuracy: float | None  # label-free (None: no estimate)
    estimated_interval: tuple[float, float] | None  # its 90 % interval
    checked: bool  # enough rows to be judged
    alert: str  # the alert line ("" when none)
    sample: SampleEstimate | None = None  # --labels: the labelled sample's rows of the slice

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "estimated_accuracy": self.estimated_accuracy,
                "estimated_interval": (list(self.estimated_interval)
                                       if self.estimated_interval else None),
                "sample": ({"accuracy": self.sample.accuracy,
                            "accuracy_interval": list(self.sample.accuracy_interval),
                            "labelled_rows": self.sample.labelled_rows}
                           if self.sample else None),
                "checked": self.checked, "alert": self.alert}


@dataclass(frozen=True)
class SliceReport:
    """The report's ``slices``: the column, the rule's figures and each slice."""

    column: str
    top: int
    min_rows: int
    line: float | None  # the accuracy below which a slice alerts, if chance cannot explain it
    level: float | None  # the one-sided level each slice is tested at (Bonferroni)
    slices: list[SliceFigures]
    note: str = ""

    @property
    def alerts(self) -> list[str]:
        return [s.alert for s in self.slices if s.alert]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "top": self.top, "min_rows": self.min_rows,
                "line": self.line, "level": self.level,
                "slices": [s.to_dict() for s in self.slices], "note": self.note}


@dataclass(frozen=True)
class LabelSampleFile:
    """The rows to label of this run: where they went, how many, why, from how many strata; or
    why an existing file there was kept as it is (``kept``: then nothing was written)."""

    path: str
    rows: int | None
    why: str
    strata: int | None
    kept: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "why": self.why, "strata": self.strata,
                **({"kept": self.kept} if self.kept else {})}


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
    performance: PerformanceReport | None  # figures on labelled rows
    estimated: EstimateReport | None  # the label-free estimate (and the labelled sample's)
    drift: DriftSummary
    to_label: LabelSampleFile | None = field(default=None)  # the rows written to label
    slices: SliceReport | None = None  # --slice-by (absent from the JSON without it)

    @property
    def all_alerts(self) -> list[str]:
        """Performance alerts, then drift alerts."""
        return self.alerts + self.drift.drifted

    def with_to_label(self, to_label: LabelSampleFile | None) -> "MonitorReport":
        return replace(self, to_label=to_label)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {"status": self.status, "exit_code": self.exit_code, "alerts": list(self.alerts),
                "checked_at": self.checked_at, "data": asdict(self.data),
                "model": asdict(self.model), "thresholds": self.thresholds.to_dict(),
                "performance": self.performance.to_dict() if self.performance else None,
                "estimated": self.estimated.to_dict() if self.estimated else None,
                "drift": self.drift.to_dict(),
                "to_label": self.to_label.to_dict() if self.to_label else None,
                **({"slices": self.slices.to_dict()} if self.slices is not None else {})}
