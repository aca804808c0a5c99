"""Settings resolved once, typed and frozen: CONFIG, then the environment / .env, then the flags
(``common.start``), turned by :func:`resolve` into a :class:`Settings` at the entry point. This
is the only module below the entry points that reads the configuration dict; every library
function takes these objects (or the job objects the stage modules build from them) instead.

One dataclass per CONFIG section, its fields named and typed as CONFIG declares them (a test
keeps the two in step); defaults live only in CONFIG."""
from __future__ import annotations

from dataclasses import dataclass, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

import config as cfg


@dataclass(frozen=True)
class DataSettings:
    """CONFIG['data']: data."""

    text_column: str
    label_column: str
    encoding: str
    delimiter: str
    test_size: float
    validation_size: float
    random_seed: int


@dataclass(frozen=True)
class Preprocessing:
    """CONFIG['preprocessing']: text preprocessing (part of the model)."""

    lowercase: bool
    stopwords: str
    mask_urls: bool
    mask_handles: bool
    mask_numbers: bool
    max_chars: int


@dataclass(frozen=True)
class Tfidf:
    """CONFIG['tfidf']: TF-IDF features (part of the model)."""

    vectorizer: str
    ngram_max: int
    min_df: int
    max_df: float
    max_features: int
    sublinear_tf: bool
    char_ngram_max: int
    char_max_features: int


@dataclass(frozen=True)
class CatBoostSettings:
    """CONFIG['catboost']: CatBoost (part of the model)."""

    linear_boost: bool
    linear_c: float
    cv_folds: int
    calibrate: bool
    calibration_folds: int
    iterations: int
    learning_rate: float
    depth: int
    border_count: int
    early_stopping_rounds: int
    thread_count: int


@dataclass(frozen=True)
class MlflowSettings:
    """CONFIG['mlflow']: MLflow."""

    tracking_uri: str
    sqlite_path: str
    artifact_root: str
    experiment: str
    monitor_experiment: str
    model_name: str
    connect_timeout: float


@dataclass(frozen=True)
class PromotionSettings:
    """CONFIG['promotion']: promotion (train.py)."""

    metric: str
    threshold: float
    alpha: float
    min_gain: float


@dataclass(frozen=True)
class TrainSettings:
    """CONFIG['train']: train.py."""

    data: str
    refit: bool
    baseline: bool
    leakage_check: bool
    max_fit_rows: int
    sample_rows: int
    tune: bool
    tune_trials: int
    tune_minutes: float
    max_classes: int
    allow_new_classes: str
    lock_dir: str
    with_ledger: bool
    lock_wait: float


@dataclass(frozen=True)
class PredictSettings:
    """CONFIG['predict']: predict.py."""

    data: str
    output: str
    model: str
    chunk_size: int
    workers: int
    id_columns: str
    proba: str
    explain: int
    engine: str
    spark_master: str
    spark_format: str
    partition_by: str
    excel_safe: bool
    lock_wait: float


@dataclass(frozen=True)
class MonitorSettings:
    """CONFIG['monitor']: monitor.py."""

    data: str
    model: str
    report: str
    html: str
    chunk_size: int
    workers: int
    min_accuracy: float
    min_macro_f1: float
    max_relative_drop: float
    min_class_recall: float
    min_class_support: int
    psi_max: float
    psi_pvalue: float
    ks_max: float
    ks_pvalue: float
    oov_increase_max: float
    domain_auc_max: float
    domain_pvalue: float
    domain_sample: int
    domain_min_rows: int
    reference_texts: int
    id_columns: str
    label_sample: int
    label_uniform_share: float
    to_label: str
    labels: str
    ledger: str
    labeller: str
    history_runs: int


@dataclass(frozen=True)
class LoggingSettings:
    """CONFIG['logging']: logging."""

    dir: str
    level: str
    max_bytes: int
    backup_count: int
    strict: bool


# The monitor settings that are alert rules, in the report's order (their types: MonitorSettings').
THRESHOLD_SETTINGS = ("min_accuracy", "min_macro_f1", "max_relative_drop", "min_class_recall",
                      "min_class_support", "psi_max", "psi_pvalue", "ks_max", "ks_pvalue",
                      "oov_increase_max", "domain_auc_max", "domain_pvalue", "domain_min_rows")


class _ThresholdRules:
    @classmethod
    def of(cls, monitor: MonitorSettings) -> Any:
        return cls(**{name: getattr(monitor, name) for name in THRESHOLD_SETTINGS})

    @classmethod
    def defaults(cls, **changes: Any) -> Any:
        """CONFIG's defaults, with ``changes`` (for benchmarks and tests)."""
        return cls(**{name: changes.get(name, cfg.CONFIG["monitor"][name].default)
                      for name in THRESHOLD_SETTINGS})

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in THRESHOLD_SETTINGS}


Thresholds = make_dataclass(
    "Thresholds", [(name, MonitorSettings.__annotations__[name]) for name in THRESHOLD_SETTINGS],
    bases=(_ThresholdRules,), frozen=True)
Thresholds.__module__ = __name__
Thresholds.__doc__ = ("monitor.py's alert rules: the THRESHOLD_SETTINGS of MonitorSettings, with "
                      "their types (and the report's ``thresholds`` object).")


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

    @property
    def tracking(self) -> Tracking:
        m = self.mlflow
        uri = cfg.absolute_sqlite_uri(m.tracking_uri.strip(), cfg.PROJECT_ROOT)
        return Tracking(
            uri=uri or "sqlite:///" + str(cfg.resolve_path(m.sqlite_path)), embedded=not uri,
            artifact_root=cfg.resolve_path(m.artifact_root), connect_timeout=m.connect_timeout,
            model_name=m.model_name, experiment=m.experiment,
            monitor_experiment=m.monitor_experiment)

    @property
    def model(self) -> ModelSpec:
        return ModelSpec(self.data.text_column, self.data.random_seed, self.preprocessing,
                         self.tfidf, self.catboost)


def resolve(config: dict[str, dict[str, Any]]) -> Settings:
    """The typed, frozen settings of a resolved configuration (``common.start``'s): each value
    of the type CONFIG declares for it (an int given for a float setting becomes a float)."""
    return Settings(**{name: kind(**{f.name: _typed(config[name][f.name], f.type)
                                     for f in fields(kind)})
                       for name, kind in SECTIONS.items()})


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _typed(value: Any, declared: Any) -> Any:
    kind = _TYPES.get(declared if isinstance(declared, str) else getattr(declared, "__name__", ""))
    return value if value is None or kind is None or isinstance(value, kind) and \
        not (kind is int and isinstance(value, bool)) else kind(value)


def columns(value: str) -> tuple[str, ...]:
    """A comma-separated list of column names, as the ``*_columns`` settings hold them."""
    return tuple(c.strip() for c in str(value or "").split(",") if c.strip())
