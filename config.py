"""Central configuration for textops: every setting declared once, here.

Each entry of ``CONFIG`` is a :class:`Setting`: its default, its type (the default's), its help,
and optionally the command-line flag that overrides it. Everything else is derived from that one
declaration:

* the environment variable ``TEXTOPS_<SECTION>_<KEY>`` (a ``.env`` file in the project root is
  loaded first and never overrides variables already set); older names still work through
  ``ENV_ALIASES``;
* the flags of each script and their ``--help`` text (``common.add_setting_flags``);
* ``.env.example`` and ``docs/configuration.md`` (``python config.py --write-docs``; a test
  fails when they are out of step).

Precedence, lowest to highest: the defaults below, the environment, command-line flags.

Importing this module has no side effects: it creates no folders, reads no files and sets no
tracking URI. :func:`load_config` returns a resolved, independent ``{section: {key: value}}``.
"""
from __future__ import annotations

import argparse
import difflib
import os
import posixpath
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from dotenv import load_dotenv

from textops import paths

PROJECT_ROOT = Path(__file__).resolve().parent
SCRIPTS = ("train", "predict", "monitor", "champion")  # a setting given these: a flag of every script
CLI = ("train", "predict", "monitor")  # the three jobs (champion.py gets the common flags too)


@dataclass(frozen=True)
class Setting:
    """One setting. ``flag``: its command-line flag, in ``scripts`` (default: the script named
    like the section). ``path``: a file or folder (relative to the project root in the
    configuration, to the current directory on the command line)."""

    default: Any
    help: str = ""
    flag: str | None = None
    scripts: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    path: bool = False
    uri: bool = False  # a URI whose relative sqlite:/// path resolves like a path setting's
    remote: bool = False  # a path setting that may also be a Hadoop-FS URI (stays text)
    env: str | None = None  # a variable name not derived from section and key
    metavar: str | None = None
    low: float | None = None  # the smallest value allowed (inclusive)
    high: float | None = None  # the largest value allowed (inclusive)
    rule: Callable[[Any], str | None] | None = None  # what is wrong with a value, or None

    @property
    def type(self) -> type:
        return type(self.default)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting (None: nothing)."""
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(self.choices)}, got {value!r}"
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}, got {value!r}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}, got {value!r}"
        return self.rule(value) if self.rule else None


def folds_or_off(value: int) -> str | None:
    """A number of folds: 0 (off) or at least 2."""
    return "must be 0 (off) or at least 2 folds" if value == 1 else None


def model_name_problem(name: str) -> str | None:
    """MLflow's rules for a registered model name (checked before the name is used anywhere,
    e.g. in a lock file's name), plus no control characters and at most 200 characters."""
    if not str(name).strip():
        return "must not be empty"
    if any(c in name for c in "/:\\") or any(ord(c) < 32 for c in name):
        return f"{name!r} may not contain '/', ':', '\\' or control characters (MLflow's rule)"
    if posixpath.normpath(name) != name or name.startswith("."):
        return f"{name!r} would resolve to another name as a path (MLflow's rule); use letters, " \
               f"digits, '-', '_' and '.'"
    if len(name) > 200:
        return f"is {len(name)} characters long; at most 200"
    return None


def not_blank(value: str) -> str | None:
    return "must not be empty" if not str(value).strip() else None



# The monitor settings that are alert rules, in the report's order: textops.settings.Thresholds
# (generated, with these settings' types and defaults) and the report's ``thresholds`` object.
ALERT_RULES = ("min_accuracy", "min_macro_f1", "max_relative_drop", "min_class_recall",
               "min_class_support", "psi_max", "psi_pvalue", "ks_max", "ks_pvalue",
               "oov_increase_max", "domain_auc_max", "domain_pvalue", "domain_min_rows")

SECTION_HELP = {
    "data": "data",
    "preprocessing": "text preprocessing (part of the model)",
    "tfidf": "TF-IDF features (part of the model)",
    "catboost": "CatBoost (part of the model)",
    "mlflow": "MLflow",
    "promotion": "promotion (train.py)",
    "train": "train.py",
    "predict": "predict.py",
    "monitor": "monitor.py",
    "logging": "logging",
}

CONFIG: dict[str, dict[str, Setting]] = {
    "data": {
        "text_column": Setting("text", "column holding the text", "--text-column", SCRIPTS),
        "label_column": Setting("label", "column holding the class label (twcs: inbound)",
                                "--label-column", ("train",)),
        "encoding": Setting("utf-8", "input file encoding; a UTF-8/UTF-16 byte-order mark wins",
                            "--encoding", SCRIPTS),
        "delimiter": Setting(",", "input field delimiter, e.g. ',' or '\\t' (tab)", "--delimiter",
                             SCRIPTS),
        "test_size": Setting(0.2, "share of rows held out for test metrics and promotion",
                             "--test-size", ("train",), low=0.01, high=0.9),
        "validation_size": Setting(0.1, "share of rows held out for early stopping; 0 disables it "
                                        "(with train.refit and catboost.fold_stopping, the "
                                        "defaults, the trees stop on cross-fitting folds of every "
                                        "row instead, and this only switches early stopping on)",
                                   "--validation-size", ("train",), low=0.0, high=0.9),
        "random_seed": Setting(42, "random seed for the split and the model", "--seed", ("train",), low=0, high=2**31 - 1),
        "feature_columns": Setting("", "comma-separated side columns the model reads beside the text "
                                       "(e.g. a channel, a reply flag, an hour): categorical ones go to "
                                       "CatBoost as categories, numeric ones as numbers; predict.py then "
                                       "needs them too; empty = text only", "--feature-columns",
                                   ("train",), metavar="COLUMNS"),
        "categorical_columns": Setting("", "comma-separated feature columns taken as categorical even "
                                           "when every value is a number (e.g. a store number); the "
                                           "others are numeric when every present value parses as a "
                                           "number", "--categorical-columns", ("train",),
                                       metavar="COLUMNS"),
    },
    "preprocessing": {
        "lowercase": Setting(True, "lowercase the text before TF-IDF"),
        "stopwords": Setting("english", "stop word language (NLTK corpus if installed, else the list "
                                        "in nltk_data/), or 'none'", "--stopwords", ("train",)),
        "mask_urls": Setting(False, "replace URLs with a placeholder token"),
        "mask_handles": Setting(False, "replace @user handles with a placeholder token"),
        "mask_numbers": Setting(False, "replace digit runs with a placeholder token"),
        "max_chars": Setting(100_000, "longer texts are cut there, in training and scoring (a 10 MB "
                                      "cell is a broken row)", low=1),
    },
    "tfidf": {
        "vectorizer": Setting("hashed", "hashed: word and character n-grams counted by a compiled loop "
                                        "and hashed into columns (fast, memory bounded); sklearn: "
                                        "scikit-learn TfidfVectorizer vocabularies (earlier releases)",
                              choices=("hashed", "sklearn")),
        "ngram_max": Setting(2, "word n-grams from 1 to this", low=1, high=5),
        "min_df": Setting(2, "minimum number of texts an n-gram appears in", low=1),
        "max_df": Setting(1.0, "maximum share of texts an n-gram appears in", low=0.01, high=1.0),
        "max_features": Setting(50000, "word n-gram columns (the most frequent are kept)",
                                "--max-features", ("train",), low=1),
        "sublinear_tf": Setting(True, "1 + log(term frequency)"),
        "char_ngram_max": Setting(5, ">= 2 adds character 2..N-grams (within words) beside the word "
                                     "n-grams; 0 = words only", low=0, high=8),
        "char_max_features": Setting(100000, "character n-gram columns (the most frequent are kept)", low=1),
    },
    "catboost": {
        "linear_boost": Setting(True, "boost from a logistic regression's out-of-fold logits (false = "
                                      "CatBoost on the raw TF-IDF columns, slow with many classes)"),
        "linear_c": Setting(10.0, "inverse regularisation of that logistic regression", low=1e-6),
        "cv_folds": Setting(5, "folds for its out-of-fold logits", low=2, high=20),
        "linear_solver": Setting("auto", "its solver: auto = lbfgs for two classes, sag for more; "
                                         "with sag the model kept is the mean of its fold models "
                                         "(no fit on all rows; see README); lbfgs = as releases "
                                         "before 2026-12-06 fitted every model",
                                 choices=("auto", "lbfgs", "sag")),
        "calibrate": Setting(True, "temperature-scale the probabilities (the labels predicted do not "
                                   "change); needs validation_size > 0"),
        "calibration_folds": Setting(2, "after the refit, fit the temperature on these many cross-fitted "
                                        "folds of trees, each scoring the rows it did not see (3 before "
                                        "2026-12-06; with fold_stopping the same folds' trees also "
                                        "choose the number of trees); 0 = on the early-stopping rows, "
                                        "as releases before 2026-11-30 did",
                                     low=0, high=10, rule=folds_or_off),
        "fold_stopping": Setting(True, "with refit, the calibration folds' trees also choose the "
                                       "number of trees, each stopping early on its own fold (one "
                                       "set of out-of-fold trees instead of a probe on the "
                                       "validation rows plus cross-fitted copies); false = the "
                                       "probe, as earlier releases"),
        "fold_trees": Setting("auto", "with fold_stopping, the trees kept: refit = grown again on "
                                      "every row with the stopping folds' mean number of trees; "
                                      "mean = the stopping folds' own trees averaged into one "
                                      "model (no refit: about half the trees' training time; "
                                      "every fold's trees are scored); auto = refit for two "
                                      "classes, mean for more (see README)",
                              choices=("auto", "refit", "mean")),
        "iterations": Setting(450, "maximum CatBoost iterations (trees) of one fit (300 before "
                                   "2026-12-06)", "--iterations", ("train",), low=1),
        "learning_rate": Setting(0.2, "CatBoost learning rate (0.1 before 2026-12-06)", low=1e-6,
                                 high=1.0),
        "depth": Setting(4, "tree depth", low=1, high=16),
        "border_count": Setting(32, "feature quantisation borders", low=1, high=65535),
        "split_features": Setting(8, "when the trees have more features than this (the linear "
                                     "logits of many classes), each split considers a random "
                                     "share of them (CatBoost's rsm) so that about this many are "
                                     "scored: 77 classes train 4x faster at the same macro-F1; a "
                                     "binary model is unchanged; 0 = all", low=0),
        "early_stopping_rounds": Setting(30, "stop after this many rounds without improvement", low=1),
        "thread_count": Setting(-1, "CatBoost threads; -1 = all cores", low=-1),
    },
    "mlflow": {
        "tracking_uri": Setting("", "MLflow tracking URI; empty = embedded SQLite store in the project "
                                    "(a relative sqlite:/// path is relative to the project folder, "
                                    "or to the current directory when given as a flag)",
                                "--tracking-uri", SCRIPTS, env="MLFLOW_TRACKING_URI", uri=True),
        "sqlite_path": Setting("mlflow.db", "database of the embedded store", path=True),
        "artifact_root": Setting("mlartifacts", "artifact folder of local stores (the embedded one, or a "
                                                "sqlite:/// tracking URI); a server keeps its own",
                                 path=True),
        "experiment": Setting("textops", "MLflow experiment for training runs", "--experiment",
                              ("train",), rule=not_blank),
        "monitor_experiment": Setting("textops-monitoring", "MLflow experiment for monitoring runs",
                                      "--experiment", ("monitor",), rule=not_blank),
        "model_name": Setting("textops-classifier", "registered model name in the MLflow registry",
                              "--model-name", SCRIPTS, rule=model_name_problem),
        "connect_timeout": Setting(10.0, "seconds to wait for a tracking server before giving up "
                                         "(exit 4)", low=0.1),
    },
    "promotion": {
        "metric": Setting("macro_f1", "test metric used for promotion", "--metric", ("train",),
                          choices=("accuracy", "macro_f1")),
        "threshold": Setting(0.7, "minimum test metric for @champion", "--threshold", ("train",), low=0.0, high=1.0),
        "alpha": Setting(0.05, "a new model replaces the champion only if it is better on the same "
                               "test rows at this significance level (exact McNemar for accuracy, "
                               "paired bootstrap for macro-F1); 0 = any margin, as before",
                         "--alpha", ("train",), low=0.0, high=0.5),
        "min_gain": Setting(0.0, "and only if it is better by at least this much", "--min-gain",
                            ("train",), low=0.0, high=1.0),
    },
    "train": {
        "data": Setting("data/demo/train.csv", "labelled training data: CSV (plain or gzip/bzip2/xz/zstd), "
                                                "Parquet file or folder of Parquet parts (with --engine "
                                                "spark also a Hadoop-FS URI: hdfs://, s3a://, ...)",
                        "--data", path=True, remote=True),
        "engine": Setting("local", "local: this process streams the data; spark: Spark executors count "
                                   "the data, draw the samples and score the test rows (pip install -r "
                                   "requirements-spark.txt); the driver fits and registers as the local "
                                   "engine does", "--engine", choices=("local", "spark")),
        "spark_master": Setting("local[*]", "Spark master URL for train.py --engine spark",
                                "--spark-master"),
        "refit": Setting(True, "refit on training + validation rows once early stopping has chosen the "
                               "number of trees (test rows are never trained on)"),
        "baseline": Setting(True, "also fit TF-IDF + LogisticRegression and log its test metrics",
                            "--baseline"),
        "leakage_check": Setting(True, "warn when a few tokens or identifiers carry the score",
                                 "--leakage-check"),
        "max_fit_rows": Setting(300_000, "the model is fitted on at most this many training + "
                                         "validation rows, a seeded per-class sample (test rows are "
                                         "always all scored); bounds memory and time; 0 = all rows",
                                "--max-fit-rows", metavar="ROWS", low=0),
        "max_test_rows": Setting(200_000, "test rows kept in memory (a seeded per-class sample) for the "
                                          "comparison with the champion, the paired test and the "
                                          "reference profile; the test metrics always come from all "
                                          "test rows, scored in chunks; 0 = keep all",
                                 "--max-test-rows", metavar="ROWS", low=0),
        "chunk_size": Setting(50_000, "rows read at a time: train.py streams its data (a census, then "
                                      "the samples, then the test rows), so memory does not grow with "
                                      "the file", low=100),
        "sample_rows": Setting(50_000, "rows sampled (seeded) for the leakage probes, token importance "
                                       "and the monitoring reference profile", metavar="ROWS", low=100),
        "tune": Setting(False, "random search over TF-IDF/CatBoost settings first (nested MLflow runs, "
                               "chosen on the validation rows); the best is registered", "--tune"),
        "tune_trials": Setting(12, "maximum configurations tried by --tune", "--tune-trials", low=1),
        "tune_minutes": Setting(15.0, "time budget of --tune; no new trial starts after it",
                                "--tune-minutes", low=0.0),
        "max_categories": Setting(1000, "refuse a categorical feature column with more distinct "
                                        "values than this (an identifier, not a feature)", low=2),
        "leakage": Setting("warn", "what a LEAKAGE WARNING does: warn (logged, tagged on the run and "
                                   "the version) or fail (refused before anything is registered, exit "
                                   "2: for CI)", "--leakage", choices=("warn", "fail")),
        "max_classes": Setting(500, "refuse training data with more classes than this, before any "
                                    "work (the linear step's memory grows with classes x features)",
                               low=2),
        "allow_new_classes": Setting("", "replace a champion trained on other classes, another label "
                                         "column or other side columns (--feature-columns), and "
                                         "record this reason (otherwise refused, exit 2)",
                                     "--allow-new-classes", ("train", "champion"), metavar="REASON"),
        "lock_dir": Setting(".locks", "folder of the train-<model>.lock files (one training per model "
                                      "at a time) and alias-<model>.lock (one alias change at a time)",
                            path=True),
        "with_ledger": Setting(False, "also train on the labels ledger's rows of this model (see "
                                      "monitor.ledger; its audit part never): a text's latest label "
                                      "wins, each row lands in train/validation/test by the same "
                                      "text hash, the batches used are logged as the run's dataset "
                                      "inputs", "--with-ledger"),
        "lock_wait": Setting(0.0, "when another train.py of the same model is running, wait this long "
                                  "for it, then skip with exit 5", "--lock-wait", metavar="SECONDS", low=0.0),
    },
    "predict": {
        "data": Setting("data/demo/recent.csv", "data to score: CSV (plain or compressed), Parquet file or "
                                                 "folder of Parquet parts", "--data", path=True, remote=True),
        "output": Setting("data/predictions.csv", "output file, written atomically; its extension picks "
                                                  "the format: .csv, .csv.gz or .parquet (--engine spark: "
                                                  "a folder or Hadoop-FS URI written by the executors, "
                                                  "unless .csv or .csv.gz)", "--output", path=True, remote=True),
        "model": Setting("champion", "model to use: an alias (champion, challenger), 'latest' (newest "
                                     "version) or a version number", "--model"),
        "chunk_size": Setting(10000, "rows read and scored at a time (10k keeps a worker near 400 MB)",
                              "--chunk-size", low=1),
        "workers": Setting(0, "worker processes scoring chunks in parallel; 0 = one per core",
                           "--workers", low=0),
        "id_columns": Setting("", "comma-separated input columns copied to the output", "--id-columns"),
        "proba": Setting("best", "best: the probability of the predicted label; all: also one "
                                 "proba_<class> column per class", "--proba", choices=("best", "all")),
        "explain": Setting(0, "add a top_tokens column: the N tokens pushing most towards each row's "
                              "prediction; 0 = off", "--explain", metavar="N", low=0),
        "engine": Setting("local", "local: worker processes on this machine; spark: "
                                   "mlflow.pyfunc.spark_udf on a Spark session (pip install -r "
                                   "requirements-spark.txt; no --resume or --explain)", "--engine",
                          choices=("local", "spark")),
        "spark_master": Setting("local[*]", "Spark master URL for --engine spark", "--spark-master"),
        "spark_format": Setting("parquet", "--engine spark writing a folder or URI: the parts' format "
                                           "(written by the executors, committed with _SUCCESS)",
                                "--spark-format", choices=("parquet", "csv")),
        "partition_by": Setting("", "--engine spark writing a folder or URI: comma-separated output "
                                    "columns (id columns, prediction, model_version) to partition the "
                                    "folder by (COL=value/ subfolders)", "--partition-by"),
        "excel_safe": Setting(False, "CSV output: prefix text cells starting with =, +, -, @, tab or CR "
                                     "with a ' so a spreadsheet shows them instead of running them as "
                                     "formulas (off: the data stays byte-true)", "--excel-safe"),
        "lock_wait": Setting(0.0, "when another predict.py is writing the same output, wait this long "
                                  "for it, then skip with exit 5", "--lock-wait", metavar="SECONDS", low=0.0),
    },
    "monitor": {
        "data": Setting("data/demo/recent.csv", "texts, or predict.py output (CSV, compressed CSV or "
                                                "Parquet, a folder of Parquet parts; with --engine spark "
                                                "also a Hadoop-FS URI: hdfs://, s3a://, ...); with labels "
                                                "or without", "--data", path=True, remote=True),
        "engine": Setting("local", "local: this process (and worker processes) read the data; spark: "
                                   "Spark executors read it and fold it into the running sums the "
                                   "driver merges (pip install -r requirements-spark.txt; --id-columns "
                                   "identify the rows to label)", "--engine", choices=("local", "spark")),
        "spark_master": Setting("local[*]", "Spark master URL for monitor.py --engine spark",
                                "--spark-master"),
        "model": Setting("champion", "model to score raw texts with: alias, 'latest' or version; "
                                     "ignored for predictions files", "--model"),
        "report": Setting("reports/monitor.json", "JSON report path, replaced atomically", "--report",
                          path=True),
        "html": Setting("reports/monitor.html", "HTML report path, replaced atomically; empty = none",
                        "--html", path=True),
        "chunk_size": Setting(10000, "rows read and scored at a time", "--chunk-size", low=1),
        "workers": Setting(0, "worker processes scoring raw texts, as predict.py's; 0 = one per core "
                              "(but inputs under 2 MB are scored in this process)", "--workers", low=0),
        "min_accuracy": Setting(0.8, "performance alert below this accuracy (without labels: when the "
                                      "whole 90-percent interval of the estimated accuracy is below it)",
                                "--min-accuracy", low=0.0, high=1.0),
        "min_macro_f1": Setting(0.7, "performance alert below this macro-F1", "--min-macro-f1", low=0.0, high=1.0),
        "max_relative_drop": Setting(0.10, "performance alert when accuracy or macro-F1 (without labels: "
                                           "the estimated accuracy) is this fraction below the "
                                           "version's test metrics at training time",
                                     "--max-relative-drop", low=0.0, high=1.0),
        "min_class_recall": Setting(0.5, "performance alert when a class with enough labelled rows has "
                                         "a lower recall", "--min-class-recall", low=0.0, high=1.0),
        "min_class_support": Setting(20, "labelled rows a class needs for its recall to be checked", low=1),
        "psi_max": Setting(0.2, "drift: predicted-class distribution PSI above this", "--psi-max", low=0.0),
        "psi_pvalue": Setting(0.01, "... and only when rows drawn from the reference distribution reach "
                                    "that PSI by chance less often than this (2 rows never drift)",
                              low=0.0, high=1.0),
        "ks_max": Setting(0.1, "drift: confidence / text length Kolmogorov-Smirnov D above this (and p "
                               "below monitor.ks_pvalue)", "--ks-max", low=0.0, high=1.0),
        "ks_pvalue": Setting(0.01, "... and its p-value below this", low=0.0, high=1.0),
        "oov_increase_max": Setting(0.10, "drift: out-of-vocabulary rate rising by more than this "
                                          "(absolute)", "--oov-increase-max", low=0.0, high=1.0),
        "domain_auc_max": Setting(0.55, "drift: text-content domain classifier ROC-AUC above this",
                                  "--domain-auc-max", low=0.5, high=1.0),
        "domain_pvalue": Setting(0.001, "... and only when chance would exceed that AUC less often than "
                                        "this, for the sample sizes at hand", low=0.0, high=1.0),
        "domain_sample": Setting(1000, "current texts sampled for the domain classifier", low=10),
        "domain_min_rows": Setting(200, "fewer texts on either side: the text-content check is skipped", low=10),
        "reference_texts": Setting(1000, "test texts kept in each version's reference profile (0 = "
                                         "none: no text-content check)", low=0),
        "id_columns": Setting("", "comma-separated columns that identify a row in to_label.csv and in "
                                  "--labels (empty: the row's number in --data)", "--id-columns"),
        "label_sample": Setting(200, "rows to label written to --to-label when drift fires or the "
                                     "estimators disagree (0 = never; --label-sample N: every run)",
                                low=0, high=100_000),
        "label_uniform_share": Setting(0.5, "share of the --label-sample budget spread over the rows "
                                            "uniformly; the rest goes to uncertain rows (Neyman "
                                            "allocation over confidence strata); every stratum keeps "
                                            "at least 2 rows and the estimate stays unbiased either "
                                            "way", low=0.0, high=1.0),
        "to_label": Setting("reports/to_label", "where the rows to label are written (a stratified "
                                                "sample with inclusion weights and an empty column "
                                                "named like the model's label column): a folder, one "
                                                "file per sample named <date>-<model>-v<version>-<data "
                                                "hash>.csv, never written over once labels are filled "
                                                "in; a .csv name: that one file", "--to-label",
                            path=True),
        "labels": Setting("", "the rows to label, labelled: the night's accuracy is estimated from them "
                              "(stratified, unbiased, with a 90-percent interval) and alerts use it",
                          "--labels", path=True),
        "ledger": Setting("data/labels_ledger.db", "the labels ledger: every row accepted from --labels "
                                                   "is appended once (SQLite), with its text, label, ids, "
                                                   "model version, prediction, stratum, weight, batch, "
                                                   "labeller and time; empty = off (train.py "
                                                   "--with-ledger reads it)", "--ledger",
                          ("monitor", "train"), path=True),
        "labeller": Setting("", "who labelled the --labels file, recorded in the ledger (empty: "
                                "user@host)", "--labeller"),
        "history_runs": Setting(30, "earlier monitoring runs charted in the HTML report", low=0),
        "slice_by": Setting("", "a column of the data to check slice by slice (e.g. a product or "
                                "channel): each of its top values gets its own figures, and a "
                                "slice more than --max-relative-drop below the test accuracy at "
                                "training alerts (exit 1) when chance cannot explain it; empty = "
                                "off", "--slice-by", metavar="COLUMN"),
        "slice_top": Setting(10, "--slice-by: the values with most rows reported one by one (the "
                                 "rest pooled as '(other)')", "--slice-top", low=1, high=100),
        "slice_min_rows": Setting(100, "--slice-by: a slice with fewer rows is reported but "
                                       "never alerts", "--slice-min-rows", low=1),
    },
    "logging": {
        "dir": Setting("logs", "folder of the rotating log files", path=True),
        "level": Setting("INFO", "log level: DEBUG, INFO, WARNING, ERROR"),
        "max_bytes": Setting(5_000_000, "size at which a log file is rotated", low=0),
        "backup_count": Setting(5, "rotated log files kept", low=0),
        "strict": Setting(False, "a TEXTOPS_* variable (environment or .env) that is no setting stops "
                                 "the run (exit 2) instead of a warning naming the closest setting",
                          env="TEXTOPS_STRICT"),
    },
}
# TEXTOPS_* variables that are not settings: read by the tests and benchmarks only.
OTHER_VARIABLES = ("TEXTOPS_SHARED_DATA",)

# Variable names of earlier releases, still read (the derived name wins when both are set).
ENV_ALIASES: dict[str, str] = {
    "TEXTOPS_TEXT_COLUMN": "data.text_column",
    "TEXTOPS_LABEL_COLUMN": "data.label_column",
    "TEXTOPS_ENCODING": "data.encoding",
    "TEXTOPS_DELIMITER": "data.delimiter",
    "TEXTOPS_TEST_SIZE": "data.test_size",
    "TEXTOPS_VALIDATION_SIZE": "data.validation_size",
    "TEXTOPS_RANDOM_SEED": "data.random_seed",
    "TEXTOPS_LOWERCASE": "preprocessing.lowercase",
    "TEXTOPS_STOPWORDS": "preprocessing.stopwords",
    "TEXTOPS_MASK_URLS": "preprocessing.mask_urls",
    "TEXTOPS_MASK_HANDLES": "preprocessing.mask_handles",
    "TEXTOPS_MASK_NUMBERS": "preprocessing.mask_numbers",
    "TEXTOPS_MAX_TEXT_CHARS": "preprocessing.max_chars",
    "TEXTOPS_EXPERIMENT": "mlflow.experiment",
    "TEXTOPS_MONITOR_EXPERIMENT": "mlflow.monitor_experiment",
    "TEXTOPS_MODEL_NAME": "mlflow.model_name",
    "TEXTOPS_CONNECT_TIMEOUT": "mlflow.connect_timeout",
    "TEXTOPS_REFIT": "train.refit",
    "TEXTOPS_BASELINE": "train.baseline",
    "TEXTOPS_LEAKAGE_CHECK": "train.leakage_check",
    "TEXTOPS_TUNE": "train.tune",
    "TEXTOPS_TUNE_TRIALS": "train.tune_trials",
    "TEXTOPS_TUNE_MINUTES": "train.tune_minutes",
    "TEXTOPS_SPARK_MASTER": "predict.spark_master",
    "TEXTOPS_LOG_DIR": "logging.dir",
    "TEXTOPS_LOG_LEVEL": "logging.level",
}

# Read by MLflow itself, documented beside ours.
MLFLOW_VARIABLES = {
    "MLFLOW_TRACKING_USERNAME": "user for a tracking server with authentication",
    "MLFLOW_TRACKING_PASSWORD": "its password (keep it in .env, never committed)",
    "MLFLOW_TRACKING_TOKEN": "or a bearer token",
}


class OutOfRange(ValueError):
    """A value of the right type that its setting's declared range or rule refuses."""


class ConfigError(ValueError):
    """An environment variable holds a value of the wrong type."""


def settings() -> Iterator[tuple[str, str, Setting]]:
    """Every (section, key, setting), in declaration order."""
    for section, entries in CONFIG.items():
        for key, setting in entries.items():
            yield section, key, setting


def env_name(section: str, key: str) -> str:
    """The environment variable of a setting: ``TEXTOPS_<SECTION>_<KEY>`` unless declared."""
    return CONFIG[section][key].env or f"TEXTOPS_{section}_{key}".upper()


def aliases_of(section: str, key: str) -> list[str]:
    return [old for old, target in ENV_ALIASES.items() if target == f"{section}.{key}"]


def flag_scripts(section: str, setting: Setting) -> tuple[str, ...]:
    """The scripts whose command line has the setting's flag."""
    if setting.flag is None:
        return ()
    return setting.scripts or ((section,) if section in SCRIPTS else ())


def to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def parse_value(setting: Setting, raw: str) -> Any:
    """A text value (environment or flag) as the setting's type."""
    if setting.type is bool:
        return to_bool(raw)
    value = setting.type(raw)
    if setting is CONFIG["data"]["delimiter"] and value in ("\\t", "tab"):
        return "\t"
    problem = setting.problem(value)
    if problem:
        raise OutOfRange(problem)
    return value


def defaults() -> dict[str, dict[str, Any]]:
    """The declared defaults as ``{section: {key: value}}`` (a fresh copy)."""
    return {section: {key: s.default for key, s in entries.items()}
            for section, entries in CONFIG.items()}


def load_dotenv_file(path: Path | None = None) -> None:
    """Load ``.env`` from the project root into ``os.environ`` (set variables win)."""
    load_dotenv(path or PROJECT_ROOT / ".env", override=False)


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The defaults with environment overrides applied, as a fresh ``{section: {key: value}}``.

    ``environ`` defaults to ``os.environ``; pass a dict in tests. Empty variables are ignored.
    """
    env = os.environ if environ is None else environ
    config = defaults()
    for section, key, setting in settings():
        for name in aliases_of(section, key) + [env_name(section, key)]:  # derived name last: wins
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                config[section][key] = parse_value(setting, raw.strip())
            except ValueError as exc:
                raise ConfigError(f"environment variable {name}={raw!r} is invalid: {exc}") from None
    return config


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(name, closest setting's variable or None) for each ``TEXTOPS_*`` variable in
    ``environ`` that no setting reads (a typo like TEXTOPS_MONITOR_MIN_ACURACY would otherwise
    be ignored without a word)."""
    known = {env_name(s, k) for s, k, _ in settings()} | set(ENV_ALIASES) | set(OTHER_VARIABLES)
    found = []
    for name in sorted(environ):
        if name.upper().startswith("TEXTOPS_") and name not in known:
            near = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.8)
            found.append((name, near[0] if near else None))
    return found


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A configured path: absolute paths stay, relative ones hang off the project root."""
    return paths.resolve_path(path, PROJECT_ROOT)


def absolute_sqlite_uri(uri: str, base: Path) -> str:
    """``uri`` with a relative SQLite path made absolute against ``base`` (textops.paths)."""
    return paths.absolute_sqlite_uri(uri, base)


# --------------------------------------------------------------------------------------------
# Generated documentation: .env.example and docs/configuration.md
# --------------------------------------------------------------------------------------------
def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _flags_note(section: str, setting: Setting, code: str = "") -> str:
    """E.g. ``--data (train)`` or ``--text-column (all scripts)``; empty when there is no flag."""
    scripts = flag_scripts(section, setting)
    if not scripts:
        return ""
    flag = setting.flag + (f"/--no-{setting.flag[2:]}" if setting.type is bool else "")
    where = "all scripts" if set(scripts) >= set(CLI) else "/".join(f"{s}.py" for s in scripts)
    return f"{code}{flag}{code} ({where})"


def env_example() -> str:
    """The text of ``.env.example``."""
    lines = [
        "# textops settings. Copy to .env (never commit .env) and uncomment what you change.",
        "# Generated from config.py's CONFIG by `python config.py --write-docs`: edit CONFIG, not",
        "# this file. Precedence: CONFIG defaults < environment / this file < command-line flags.",
        "# Variables already set in the environment win over this file. Relative paths here are",
        "# relative to the project folder; paths given as flags, to the current directory.",
        "# Names of earlier releases still work: see docs/configuration.md.",
    ]
    for section, entries in CONFIG.items():
        lines += ["", f"# --- {SECTION_HELP[section]} " + "-" * max(3, 84 - len(SECTION_HELP[section]))]
        for key, setting in entries.items():
            note = _flags_note(section, setting)
            text = setting.help + (f" [{note}]" if note else "")
            lines.append(f"# {env_name(section, key)}={_shown(setting.default)}")
            lines.append(f"#     {text}")
        if section == "mlflow":
            for name, text in MLFLOW_VARIABLES.items():
                lines.append(f"# {name}=")
                lines.append(f"#     {text} (read by MLflow itself)")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The settings table of ``docs/configuration.md``."""
    rows = ["| variable | CONFIG key | default | meaning | flag |", "|---|---|---|---|---|"]
    for section, key, setting in settings():
        old = ", ".join(f"`{a}`" for a in aliases_of(section, key))
        default = _shown(setting.default) if setting.default != "" else "(empty)"
        meaning = setting.help.replace("|", "\\|") + (f" (earlier name: {old})" if old else "")
        rows.append(f"| `{env_name(section, key)}` | `{section}.{key}` | `{default}` | {meaning} | "
                    f"{_flags_note(section, setting, code='`')} |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------------
# Generated code: textops/sections.py, the typed form of each CONFIG section
# --------------------------------------------------------------------------------------------
SECTIONS_MODULE = PROJECT_ROOT / "textops" / "sections.py"
SECTION_CLASSES = {"data": "DataSettings", "preprocessing": "Preprocessing", "tfidf": "Tfidf",
                   "catboost": "CatBoostSettings", "mlflow": "MlflowSettings",
                   "promotion": "PromotionSettings", "train": "TrainSettings",
                   "predict": "PredictSettings", "monitor": "MonitorSettings",
                   "logging": "LoggingSettings"}


def annotation(setting: Setting) -> str:
    """A setting's type in its typed section: a path setting is an absolute ``Path`` (None when
    empty) unless it may be a URI too; every other setting has its default's type."""
    return "Path | None" if setting.path and not setting.remote else setting.type.__name__


def sections_module() -> str:
    """The text of ``textops/sections.py``: one frozen dataclass per CONFIG section, its fields
    named, typed and ordered as CONFIG declares them, and the alert rules' fields with their
    defaults. Generated, so the two cannot drift apart, and visible to type checkers."""
    lines = ['"""The typed form of each CONFIG section, generated from config.py by',
             "``python config.py --write-docs``: edit CONFIG, not this file (a test fails when the",
             "two are out of step). ``textops.settings`` builds them from a resolved configuration",
             '(path settings resolved once, against the project folder) and re-exports them."""',
             "from __future__ import annotations", "", "from dataclasses import dataclass",
             "from pathlib import Path"]
    for section, entries in CONFIG.items():
        lines += ["", "", "@dataclass(frozen=True)", f"class {SECTION_CLASSES[section]}:",
                  f'    """CONFIG[{section!r}]: {SECTION_HELP[section]}."""', ""]
        lines += [f"    {key}: {annotation(setting)}" for key, setting in entries.items()]
    lines += ["", "", "@dataclass(frozen=True)", "class AlertRules:",
              '    """The monitor settings that are alert rules (config.ALERT_RULES), in the '
              "report's order,", '    with their CONFIG defaults."""', ""]
    lines += [f"    {key}: {annotation(CONFIG['monitor'][key])} = "
              f"{CONFIG['monitor'][key].default!r}" for key in ALERT_RULES]
    return "\n".join(lines) + "\n"


DOCS = PROJECT_ROOT / "docs" / "configuration.md"
TABLE_START, TABLE_END = "<!-- settings:start -->", "<!-- settings:end -->"


def configuration_doc(current: str) -> str:
    """``docs/configuration.md`` with its generated table replaced."""
    head, _, rest = current.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    return f"{head}{TABLE_START}\n{markdown_table()}{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate .env.example, the settings "
                                                 "table of docs/configuration.md and "
                                                 "textops/sections.py from CONFIG.")
    parser.add_argument("--write-docs", action="store_true", help="write the files")
    args = parser.parse_args(argv)
    if not args.write_docs:
        sys.stdout.write(env_example())
        return 0
    (PROJECT_ROOT / ".env.example").write_text(env_example(), encoding="utf-8")
    DOCS.write_text(configuration_doc(DOCS.read_text(encoding="utf-8")), encoding="utf-8")
    SECTIONS_MODULE.write_text(sections_module(), encoding="utf-8")
    print(f"wrote {PROJECT_ROOT / '.env.example'}, {DOCS} and {SECTIONS_MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
