"""Settings resolved once, typed and frozen: CONFIG, then the environment / .env, then the flags
(``common.start``), turned by :func:`resolve` into a :class:`Settings` at the entry point, which
also names the project folder that relative paths hang off. This is the only module below the
entry points that reads the configuration dict, which the entry point hands it; every library
function takes these objects (or the job objects the stage modules build from them) instead.

One dataclass per CONFIG section (``textops.sections``), generated from CONFIG's declarations:
fields named and typed as CONFIG declares them, path settings as absolute ``Path`` objects
resolved here, once (None when empty)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from textops.columns import Columns
from textops.paths import absolute_sqlite_uri, resolve_path
from textops.sections import (AlertRules, CatBoostSettings, DataSettings, LoggingSettings,
                              MlflowSettings, MonitorSettings, PredictSettings, Preprocessing,
                              PromotionSettings, Tfidf, TrainSettings)

__all__ = ["AlertRules", "CatBoostSettings", "DataSettings", "LoggingSettings", "MlflowSettings",
           "ModelSpec", "MonitorSettings", "PredictSettings", "Preprocessing",
           "PromotionSettings", "Settings", "Tfidf", "Thresholds", "Tracking", "TrainSettings",
           "columns", "resolve"]


# The monitor settings that are alert rules, in the report's order (config.ALERT_RULES).
THRESHOLD_SETTINGS = tuple(f.name for f in fields(AlertRules))


@dataclass(frozen=True)
class Thresholds(AlertRules):
    """monitor.py's alert rules: the alert-rule fields of MonitorSettings, with their types and
    CONFIG defaults (and the report's ``thresholds`` object)."""

    @classmethod
    def of(cls, monitor: MonitorSettings) -> "Thresholds":
        return cls(**{name: getattr(monitor, name) for name in THRESHOLD_SETTINGS})

    @classmethod
    def defaults(cls, **changes: Any) -> "Thresholds":
        """CONFIG's defaults, with ``changes`` (for benchmarks and tests)."""
        return cls(**changes)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in THRESHOLD_SETTINGS}


@dataclass(frozen=True)
class Tracking:
    """Where runs and models go: the tracking/registry URI (the embedded SQLite store inside
    the project when none is configured), the artifact folder of local stores, the names."""

    uri: str
    embedded: bool
    artifact_root: Path
    connect_timeout: float
    model_name: str
    experiment: str
    monitor_experiment: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything that shapes the pipeline train.py fits (and so travels inside the model)."""

    text_column: str
    seed: int
    preprocessing: Preprocessing
    tfidf: Tfidf
    catboost: CatBoostSettings

    def with_setting(self, section: str, name: str, value: Any) -> "ModelSpec":
        """A copy with one setting changed (``section``: preprocessing, tfidf or catboost)."""
        return replace(self, **{section: replace(getattr(self, section), **{name: value})})

    def params(self) -> dict[str, Any]:
        """The settings as MLflow params: ``section.key`` -> value."""
        return {f"{section}.{f.name}": getattr(getattr(self, section), f.name)
                for section in ("preprocessing", "tfidf", "catboost")
                for f in fields(getattr(self, section))}


SECTIONS: dict[str, type] = {
    "data": DataSettings, "preprocessing": Preprocessing, "tfidf": Tfidf,
    "catboost": CatBoostSettings, "mlflow": MlflowSettings, "promotion": PromotionSettings,
    "train": TrainSettings, "predict": PredictSettings, "monitor": MonitorSettings,
    "logging": LoggingSettings,
}


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one run, resolved."""

    data: DataSettings
    preprocessing: Preprocessing
    tfidf: Tfidf
    catboost: CatBoostSettings
    mlflow: MlflowSettings
    promotion: PromotionSettings
    train: TrainSettings
    predict: PredictSettings
    monitor: MonitorSettings
    logging: LoggingSettings
    root: Path  # the project folder: relative paths of the configuration hang off it

    def columns(self, ids: str = "") -> Columns:
        """The input's column roles: the text and label columns, ``ids`` (a ``*_columns``
        setting: comma-separated) identifying rows; the side columns of --feature-columns."""
        return Columns(text=self.data.text_column, label=self.data.label_column, ids=columns(ids),
                       features=columns(self.data.feature_columns))

    def path(self, value: str) -> Path:
        """A path setting that may also be a URI (predict.py's), resolved like the others."""
        return resolve_path(value, self.root)

    @property
    def tracking(self) -> Tracking:
        m = self.mlflow
        uri = absolute_sqlite_uri(m.tracking_uri.strip(), self.root)
        return Tracking(
            uri=uri or "sqlite:///" + str(m.sqlite_path), embedded=not uri,
            artifact_root=m.artifact_root, connect_timeout=m.connect_timeout,
            model_name=m.model_name, experiment=m.experiment,
            monitor_experiment=m.monitor_experiment)

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(self.data.text_column, self.data.random_seed, self.preprocessing,
                         self.tfidf, self.catboost)


def resolve(config: dict[str, dict[str, Any]], root: Path) -> Settings:
    """The typed, frozen settings of a resolved configuration (``common.start``'s), ``root``
    being the project folder: each value of the type CONFIG declares for it (an int given for a
    float setting becomes a float), each path setting resolved against ``root``."""
    return Settings(**{name: kind(**{f.name: _typed(config[name][f.name], f.type, root)
                                     for f in fields(kind)})
                       for name, kind in SECTIONS.items()}, root=Path(root))


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _typed(value: Any, declared: Any, root: Path) -> Any:
    if declared == "Path | None":
        return resolve_path(value, root) if value not in (None, "") else None
    kind = _TYPES.get(declared if isinstance(declared, str) else getattr(declared, "__name__", ""))
    return value if value is None or kind is None or isinstance(value, kind) and \
        not (kind is int and isinstance(value, bool)) else kind(value)


def columns(value: str) -> tuple[str, ...]:
    """A comma-separated list of column names, as the ``*_columns`` settings hold them."""
    return tuple(c.strip() for c in str(value or "").split(",") if c.strip())
