"""The typed form of each CONFIG section, generated from config.py by
``python config.py --write-docs``: edit CONFIG, not this file (a test fails when the
two are out of step). ``textops.settings`` builds them from a resolved configuration
(path settings resolved once, against the project folder) and re-exports them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    feature_columns: str
    categorical_columns: str


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
    linear_solver: str
    calibrate: bool
    calibration_folds: int
    fold_stopping: bool
    fold_trees: str
    iterations: int
    learning_rate: float
    depth: int
    border_count: int
    split_features: int
    early_stopping_rounds: int
    thread_count: int


@dataclass(frozen=True)
class MlflowSettings:
    """CONFIG['mlflow']: MLflow."""

    tracking_uri: str
    sqlite_path: Path | None
    artifact_root: Path | None
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
    engine: str
    spark_master: str
    refit: bool
    baseline: bool
    leakage_check: bool
    max_fit_rows: int
    max_test_rows: int
    chunk_size: int
    sample_rows: int
    tune: bool
    tune_trials: int
    tune_minutes: float
    max_categories: int
    leakage: str
    max_classes: int
    allow_new_classes: str
    lock_dir: Path | None
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
    engine: str
    spark_master: str
    model: str
    report: Path | None
    html: Path | None
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
    to_label: Path | None
    labels: Path | None
    ledger: Path | None
    labeller: str
    history_runs: int
    slice_by: str
    slice_top: int
    slice_min_rows: int


@dataclass(frozen=True)
class LoggingSettings:
    """CONFIG['logging']: logging."""

    dir: Path | None
    level: str
    max_bytes: int
    backup_count: int
    strict: bool


@dataclass(frozen=True)
class AlertRules:
    """The monitor settings that are alert rules (config.ALERT_RULES), in the report's order,
    with their CONFIG defaults."""

    min_accuracy: float = 0.8
    min_macro_f1: float = 0.7
    max_relative_drop: float = 0.1
    min_class_recall: float = 0.5
    min_class_support: int = 20
    psi_max: float = 0.2
    psi_pvalue: float = 0.01
    ks_max: float = 0.1
    ks_pvalue: float = 0.01
    oov_increase_max: float = 0.1
    domain_auc_max: float = 0.55
    domain_pvalue: float = 0.001
    domain_min_rows: int = 200
