"""Central configuration for textops.

Precedence, lowest to highest:

1. ``CONFIG`` below (the defaults),
2. environment variables (a ``.env`` file in the project root is loaded first and never
   overrides variables that are already set), see ``ENV_VARS``,
3. command-line flags (applied by each script).

Importing this module has no side effects: it creates no folders, reads no files and sets no
tracking URI. Call :func:`load_config` to get a resolved, independent copy of the settings.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent

CONFIG: dict[str, dict[str, Any]] = {
    "data": {
        "text_column": "text",
        "label_column": "label",
        "encoding": "utf-8",  # a BOM (UTF-8 or UTF-16) in the file wins over this
        "delimiter": ",",
        "test_size": 0.2,  # share of rows held out for the test metrics and promotion
        "validation_size": 0.1,  # share of rows used for CatBoost early stopping
        "random_seed": 42,
    },
    "preprocessing": {
        "lowercase": True,
        "stopwords": "english",  # a language name, or "none"
        "mask_urls": False,  # replace URLs with a placeholder token
        "mask_handles": False,  # replace @user handles with a placeholder token
        "mask_numbers": False,  # replace digit runs with a placeholder token
        "max_chars": 100_000,  # longer texts are cut (a 10 MB cell is a broken row)
    },
    "tfidf": {
        "ngram_max": 2,  # word n-grams from 1 to this
        "min_df": 2,
        "max_df": 1.0,
        "max_features": 20000,
        "sublinear_tf": True,
        "char_ngram_max": 5,  # >= 2 adds character 2..N-grams (within words); 0 = words only
        "char_max_features": 50000,
    },
    "catboost": {
        # CatBoost starts from (and is fed) the out-of-fold logits of a logistic regression on
        # the TF-IDF matrix; false = CatBoost on the raw TF-IDF columns (slow with many classes).
        "linear_boost": True,
        "linear_c": 10.0,  # inverse regularisation of that logistic regression
        "cv_folds": 5,  # folds for its out-of-fold logits
        "iterations": 300,
        "learning_rate": 0.1,
        "depth": 4,
        "border_count": 32,
        "early_stopping_rounds": 30,
        "thread_count": -1,  # -1 = all cores
    },
    "mlflow": {
        # Empty = embedded default: SQLite database + artifact folder inside the project.
        "tracking_uri": "",
        "sqlite_path": "mlflow.db",
        "artifact_root": "mlartifacts",
        "experiment": "textops",
        "monitor_experiment": "textops-monitoring",
        "model_name": "textops-classifier",
        "connect_timeout": 10.0,  # seconds to wait for a tracking server before giving up
    },
    "promotion": {
        "metric": "macro_f1",  # accuracy | macro_f1
        "threshold": 0.7,  # a new version must reach this to become @champion
    },
    "train": {
        "data": "data/demo/train.csv",
        # After early stopping has chosen the number of trees, refit on training + validation
        # rows (the test rows are never trained on, so later champion comparisons stay fair).
        "refit": True,
        # Fit TF-IDF + LogisticRegression on the same rows and log its test metrics beside.
        "baseline": True,
        # Probe for a suspiciously easy score (few tokens carry it; identifiers leak the label).
        "leakage_check": True,
        # --tune: random search (seeded), bounded by trials and minutes.
        "tune": False,
        "tune_trials": 12,
        "tune_minutes": 15.0,
        "lock_dir": ".locks",  # train-<model>.lock files (one training per model at a time)
        "lock_wait": 0.0,  # seconds to wait for another train.py of the model, then exit 5
    },
    "predict": {
        "data": "data/demo/recent.csv",
        "output": "data/predictions.csv",
        "model": "champion",  # an alias, "latest", or a version number
        "chunk_size": 10000,  # rows per chunk: 10k keeps a worker near 400 MB (50k: ~620 MB)
        "workers": 0,  # scoring processes; 0 = one per core
        "id_columns": "",  # comma-separated columns copied to the output
        "proba": "best",  # best = probability of the predicted label; all = also proba_<class>
        "explain": 0,  # add a top_tokens column with this many tokens per row (0 = off)
        "engine": "local",  # local (worker processes) or spark (mlflow.pyfunc.spark_udf)
        "spark_master": "local[*]",  # any Spark master URL for engine=spark
    },
    "monitor": {
        "data": "data/demo/recent.csv",
        "model": "champion",
        "report": "reports/monitor.json",
        "min_accuracy": 0.8,
        "min_macro_f1": 0.7,
        "max_relative_drop": 0.10,  # alert when accuracy/macro-F1 fall >10% below the version's test
        "min_class_recall": 0.5,  # alert when a class's recall falls below this ...
        "min_class_support": 20,  # ... among classes with at least this many labelled rows
        "psi_max": 0.2,  # predicted-class distribution: drift when PSI exceeds this
        "ks_max": 0.1,  # confidence / text length: drift when KS D exceeds this ...
        "ks_pvalue": 0.01,  # ... and its p-value is below this
        "oov_increase_max": 0.10,  # drift when the out-of-vocabulary rate rises by more
        "domain_auc_max": 0.55,  # text content: drift when the domain classifier's AUC exceeds
        "domain_pvalue": 0.001,  # ... and chance would exceed it less often than this
        "domain_sample": 1000,  # current texts sampled for the domain classifier
        "domain_min_rows": 200,  # fewer texts on either side: the content check is skipped
        "reference_texts": 1000,  # test texts kept in each version's reference (0 = none)
        "html": "reports/monitor.html",  # the HTML report ("" = none)
        "history_runs": 30,  # earlier monitoring runs charted in the HTML report
    },
    "logging": {
        "dir": "logs",
        "level": "INFO",
        "max_bytes": 5_000_000,
        "backup_count": 5,
    },
}


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


# Environment variable -> (section, key, parser). Every variable is documented in .env.example.
ENV_VARS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "TEXTOPS_TEXT_COLUMN": ("data", "text_column", str),
    "TEXTOPS_LABEL_COLUMN": ("data", "label_column", str),
    "TEXTOPS_ENCODING": ("data", "encoding", str),
    "TEXTOPS_DELIMITER": ("data", "delimiter", str),
    "TEXTOPS_TEST_SIZE": ("data", "test_size", float),
    "TEXTOPS_VALIDATION_SIZE": ("data", "validation_size", float),
    "TEXTOPS_RANDOM_SEED": ("data", "random_seed", int),
    "TEXTOPS_LOWERCASE": ("preprocessing", "lowercase", _to_bool),
    "TEXTOPS_STOPWORDS": ("preprocessing", "stopwords", str),
    "TEXTOPS_MASK_URLS": ("preprocessing", "mask_urls", _to_bool),
    "TEXTOPS_MASK_HANDLES": ("preprocessing", "mask_handles", _to_bool),
    "TEXTOPS_MASK_NUMBERS": ("preprocessing", "mask_numbers", _to_bool),
    "TEXTOPS_MAX_TEXT_CHARS": ("preprocessing", "max_chars", int),
    "TEXTOPS_TFIDF_NGRAM_MAX": ("tfidf", "ngram_max", int),
    "TEXTOPS_TFIDF_MIN_DF": ("tfidf", "min_df", int),
    "TEXTOPS_TFIDF_MAX_DF": ("tfidf", "max_df", float),
    "TEXTOPS_TFIDF_MAX_FEATURES": ("tfidf", "max_features", int),
    "TEXTOPS_TFIDF_SUBLINEAR_TF": ("tfidf", "sublinear_tf", _to_bool),
    "TEXTOPS_TFIDF_CHAR_NGRAM_MAX": ("tfidf", "char_ngram_max", int),
    "TEXTOPS_TFIDF_CHAR_MAX_FEATURES": ("tfidf", "char_max_features", int),
    "TEXTOPS_CATBOOST_LINEAR_BOOST": ("catboost", "linear_boost", _to_bool),
    "TEXTOPS_CATBOOST_LINEAR_C": ("catboost", "linear_c", float),
    "TEXTOPS_CATBOOST_CV_FOLDS": ("catboost", "cv_folds", int),
    "TEXTOPS_CATBOOST_ITERATIONS": ("catboost", "iterations", int),
    "TEXTOPS_CATBOOST_LEARNING_RATE": ("catboost", "learning_rate", float),
    "TEXTOPS_CATBOOST_DEPTH": ("catboost", "depth", int),
    "TEXTOPS_CATBOOST_BORDER_COUNT": ("catboost", "border_count", int),
    "TEXTOPS_CATBOOST_EARLY_STOPPING_ROUNDS": ("catboost", "early_stopping_rounds", int),
    "TEXTOPS_CATBOOST_THREAD_COUNT": ("catboost", "thread_count", int),
    "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri", str),
    "TEXTOPS_MLFLOW_SQLITE_PATH": ("mlflow", "sqlite_path", str),
    "TEXTOPS_MLFLOW_ARTIFACT_ROOT": ("mlflow", "artifact_root", str),
    "TEXTOPS_EXPERIMENT": ("mlflow", "experiment", str),
    "TEXTOPS_MONITOR_EXPERIMENT": ("mlflow", "monitor_experiment", str),
    "TEXTOPS_MODEL_NAME": ("mlflow", "model_name", str),
    "TEXTOPS_CONNECT_TIMEOUT": ("mlflow", "connect_timeout", float),
    "TEXTOPS_PROMOTION_METRIC": ("promotion", "metric", str),
    "TEXTOPS_PROMOTION_THRESHOLD": ("promotion", "threshold", float),
    "TEXTOPS_TRAIN_DATA": ("train", "data", str),
    "TEXTOPS_REFIT": ("train", "refit", _to_bool),
    "TEXTOPS_BASELINE": ("train", "baseline", _to_bool),
    "TEXTOPS_LEAKAGE_CHECK": ("train", "leakage_check", _to_bool),
    "TEXTOPS_TUNE": ("train", "tune", _to_bool),
    "TEXTOPS_TUNE_TRIALS": ("train", "tune_trials", int),
    "TEXTOPS_TUNE_MINUTES": ("train", "tune_minutes", float),
    "TEXTOPS_TRAIN_LOCK_DIR": ("train", "lock_dir", str),
    "TEXTOPS_TRAIN_LOCK_WAIT": ("train", "lock_wait", float),
    "TEXTOPS_PREDICT_DATA": ("predict", "data", str),
    "TEXTOPS_PREDICT_OUTPUT": ("predict", "output", str),
    "TEXTOPS_PREDICT_MODEL": ("predict", "model", str),
    "TEXTOPS_PREDICT_CHUNK_SIZE": ("predict", "chunk_size", int),
    "TEXTOPS_PREDICT_WORKERS": ("predict", "workers", int),
    "TEXTOPS_PREDICT_ID_COLUMNS": ("predict", "id_columns", str),
    "TEXTOPS_PREDICT_PROBA": ("predict", "proba", str),
    "TEXTOPS_PREDICT_EXPLAIN": ("predict", "explain", int),
    "TEXTOPS_PREDICT_ENGINE": ("predict", "engine", str),
    "TEXTOPS_SPARK_MASTER": ("predict", "spark_master", str),
    "TEXTOPS_MONITOR_DATA": ("monitor", "data", str),
    "TEXTOPS_MONITOR_MODEL": ("monitor", "model", str),
    "TEXTOPS_MONITOR_REPORT": ("monitor", "report", str),
    "TEXTOPS_MONITOR_MIN_ACCURACY": ("monitor", "min_accuracy", float),
    "TEXTOPS_MONITOR_MIN_MACRO_F1": ("monitor", "min_macro_f1", float),
    "TEXTOPS_MONITOR_MAX_RELATIVE_DROP": ("monitor", "max_relative_drop", float),
    "TEXTOPS_MONITOR_MIN_CLASS_RECALL": ("monitor", "min_class_recall", float),
    "TEXTOPS_MONITOR_MIN_CLASS_SUPPORT": ("monitor", "min_class_support", int),
    "TEXTOPS_MONITOR_PSI_MAX": ("monitor", "psi_max", float),
    "TEXTOPS_MONITOR_KS_MAX": ("monitor", "ks_max", float),
    "TEXTOPS_MONITOR_KS_PVALUE": ("monitor", "ks_pvalue", float),
    "TEXTOPS_MONITOR_OOV_INCREASE_MAX": ("monitor", "oov_increase_max", float),
    "TEXTOPS_MONITOR_DOMAIN_AUC_MAX": ("monitor", "domain_auc_max", float),
    "TEXTOPS_MONITOR_DOMAIN_PVALUE": ("monitor", "domain_pvalue", float),
    "TEXTOPS_MONITOR_DOMAIN_SAMPLE": ("monitor", "domain_sample", int),
    "TEXTOPS_MONITOR_DOMAIN_MIN_ROWS": ("monitor", "domain_min_rows", int),
    "TEXTOPS_MONITOR_REFERENCE_TEXTS": ("monitor", "reference_texts", int),
    "TEXTOPS_MONITOR_HTML": ("monitor", "html", str),
    "TEXTOPS_MONITOR_HISTORY_RUNS": ("monitor", "history_runs", int),
    "TEXTOPS_LOG_DIR": ("logging", "dir", str),
    "TEXTOPS_LOG_LEVEL": ("logging", "level", str),
}


class ConfigError(ValueError):
    """An environment variable holds a value of the wrong type."""


def load_dotenv_file(path: Path | None = None) -> None:
    """Load ``.env`` from the project root into ``os.environ`` (set variables win)."""
    from dotenv import load_dotenv

    load_dotenv(path or PROJECT_ROOT / ".env", override=False)


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Return a deep copy of CONFIG with environment overrides applied.

    ``environ`` defaults to ``os.environ``; pass a dict in tests. Empty variables are ignored.
    """
    env = os.environ if environ is None else environ
    config = copy.deepcopy(CONFIG)
    for name, (section, key, parse) in ENV_VARS.items():
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            config[section][key] = parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"environment variable {name}={raw!r} is invalid: {exc}") from None
    return config


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a configured path: absolute paths stay, relative ones hang off the project root.

    This keeps ``cd / && python /path/to/train.py`` identical to running it from the project.
    """
    candidate = Path(os.path.expanduser(str(path)))
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate
