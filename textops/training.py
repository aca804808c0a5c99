"""What train.py does, step by step: read and split the data (every input problem fails here,
before anything is logged), then, holding the model's lock, fit, evaluate, log to MLflow,
register the version, describe it, and move the alias the promotion rule chooses."""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textops.errors import BadInputError, Interrupted, first_line
from textops.interrupts import raise_if_interrupted
from textops.redaction import redact
from textops.timing import Stopwatch
from textops import (data, diagnostics, features, inputs, model, plots, promotion, registry,
                     spark, sparktrain, streamsplit, tuning)
from textops.calibration import calibration_metrics
from textops.columns import Columns
from textops.locking import exclusive
from textops.monitoring import ledger
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.sideprofile import SideProfile, profile_side
from textops.monitoring.reference import (REFERENCE_PATH, build_reference, load_reference,
                                         write_reference)
from textops.settings import (DataSettings, ModelSpec, PromotionSettings, Settings, Tracking,
                              TrainSettings, columns as columns_of)

log = logging.getLogger(__name__)

TRAIN_PARAMS = ("refit", "baseline", "leakage_check", "max_fit_rows", "sample_rows")
SIDE_SETTINGS = ("feature_columns", "categorical_columns")  # data.* params of side-column runs


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """One train.py run: what it reads, how it splits, what it fits, where it logs."""

    columns: Columns  # the text and label columns
    data: DataSettings  # encoding, split sizes, seed
    model: ModelSpec
    train: TrainSettings  # train.data: the labelled file
    promotion: PromotionSettings
    tracking: Tracking
    reference_texts: int  # texts kept in the monitoring reference profile
    ledger: Path | None = None  # --with-ledger: the labels ledger to add rows from (None: off)

    location: str = ""  # the data as given: a resolved local path, or a Hadoop-FS URI

    @property
    def is_uri(self) -> bool:
        """Data only Spark reads (hdfs://, s3a://, ...): --engine spark."""
        return spark.is_uri(self.location)

    @property
    def data_path(self) -> Path:
        """The labelled file (for a URI: its last part names it)."""
        return Path(self.location)


def make_job(settings: Settings) -> TrainJob:
    """The run's job, from the resolved settings."""
    given = str(settings.train.data or "").strip()
    if not given:
        raise BadInputError("no training data given; pass --data PATH")
    if spark.is_uri(given) and settings.train.engine != "spark":
        raise BadInputError(f"--data {given} is a Hadoop-FS URI, which only Spark reads; add "
                            f"--engine spark")
    if settings.train.engine == "spark":
        spark.require_pyspark()
    location = given if spark.is_uri(given) else str(settings.path(given))
    ledger_path = None
    if settings.train.with_ledger:
        if not settings.monitor.ledger:
            raise BadInputError("--with-ledger needs the labels ledger's path: set "
                                "TEXTOPS_MONITOR_LEDGER or pass --ledger PATH")
        ledger_path = settings.monitor.ledger
    return TrainJob(columns=settings.columns(), data=settings.data, model=settings.model, train=settings.train,
                    promotion=settings.promotion, tracking=settings.tracking,
                    reference_texts=settings.monitor.reference_texts, ledger=ledger_path,
                    location=location)


@dataclass
class TrainingData:
    """The validated input of one training: the file, its census and the samples drawn."""

    path: Path
    sha256: str
    census: streamsplit.Census  # the rows read, kept, dropped, per class and partition
    split: data.Split  # the training + validation rows cut to max_fit_rows, the test rows to
    #                    max_test_rows (seeded, per class; all of them when fewer)
    stopwords: model.Stopwords
    probes: data.Split  # ``split`` cut to sample_rows (and its test rows too): drawn once for
    #                     the leakage probes and the token importance
    ledger: ledger.Selection | None = None  # --with-ledger: what the labels ledger added
    seconds: float = 0.0  # reading, checking and splitting it took
    side: features.SideSpec = field(default_factory=features.SideSpec)  # --feature-columns
    test_rows: Any = None  # streamsplit.TestRows or sparktrain.SparkSplit: all test rows
    location: str = ""  # the data as given (a URI stays a URI)

    @property
    def fit_split(self) -> data.Split:
        """The rows the model is fitted on (training + validation) and measured on (test)."""
        return self.split

    @property
    def test_sampled(self) -> bool:
        """Whether the test rows in memory are a sample (the test metrics then stream all)."""
        return self.split.sizes["test"] < self.census.sizes["test"]


@dataclass
class Fitted:
    """A fitted pipeline and what was measured on the test rows."""

    pipeline: Any
    info: dict[str, Any]
    evaluation: model.Evaluation
    y_pred: np.ndarray
    proba: np.ndarray
    seconds: float
    calibration: dict[str, float] = field(default_factory=dict)  # calibration.* on the test rows
    sample_metrics: dict[str, float] | None = None  # on the test rows in memory, when a sample


def load_training_data(job: TrainJob) -> TrainingData:
    """Stream, clean, validate and split the training data (raises BadInputError with the fix):
    a census, then the samples (see ``textops.streamsplit``; ``--engine spark``: the executors
    count and draw them, ``textops.sparktrain``); memory holds the samples only."""
    began, d = time.perf_counter(), job.data
    text_col, label_col = job.columns.text, job.columns.label
    if text_col == label_col:
        raise BadInputError(f"the text and the label column are both {text_col!r}; pass "
                            f"--text-column and --label-column with two different columns")
    features.check_roles(job.columns, columns_of(d.categorical_columns))
    source = None if job.is_uri else inputs.open_input(job.data_path, d.encoding, d.delimiter, {
        **dict.fromkeys((text_col, label_col), "--text-column/--label-column"),
        **dict.fromkeys(job.columns.features, "--feature-columns")})
    table = streamsplit.LabelledTable(source or job.location, text_col, label_col, d.random_seed,
                                      d.test_size, d.validation_size, job.columns.features,
                                      job.train.chunk_size)
    chosen = None
    if job.ledger is not None:
        table, chosen = with_ledger(table, job.ledger, job.tracking.model_name)
    test_rows = _engine(job, table, source)
    try:
        return _split_and_check(job, test_rows, source, chosen, began)
    except BaseException:
        test_rows.close()
        raise


def _engine(job: TrainJob, table: streamsplit.LabelledTable, source: inputs.Input | None
            ) -> streamsplit.TestRows | sparktrain.SparkSplit:
    """The census, counted by this process (streamed) or by Spark's executors."""
    if job.train.engine != "spark":
        assert source is not None
        return streamsplit.TestRows(table, streamsplit.take_census(table))
    log.info("engine spark, master %s: the executors count the census and draw the samples",
             job.train.spark_master)
    return sparktrain.start(job.location, None if source is None else source.format, table,
                            job.train.spark_master)


def _split_and_check(job: TrainJob, test_rows: streamsplit.TestRows | sparktrain.SparkSplit,
                     source: inputs.Input | None, chosen: ledger.Selection | None,
                     began: float) -> TrainingData:
    d, census = job.data, test_rows.census
    _log_census(census, chosen)
    data.validate_class_counts(census.frequencies(), job.columns.label, d.test_size,
                               d.validation_size)
    classes = len(census.class_counts)
    if classes > job.train.max_classes:
        raise BadInputError(
            f"label column {job.columns.label!r} has {classes} classes, more than "
            f"TEXTOPS_TRAIN_MAX_CLASSES={job.train.max_classes} (memory grows with classes "
            f"x features): check --label-column, merge rare classes, or raise the limit")
    split = test_rows.sample(data.sample_plan(census.counts, job.train.max_fit_rows,
                                              d.random_seed, job.train.max_test_rows))
    _log_split(job, census, split)
    side = _side_columns(job, split, job.location)
    stopwords = model.load_stopwords(job.model.preprocessing.stopwords)
    log.info("stop words: %s, %d words, from %s", stopwords.language, len(stopwords.words),
             stopwords.source)
    probes = split.bounded(job.train.sample_rows, d.random_seed, test_limit=job.train.sample_rows)
    sha256 = test_rows.digest if source is None else source.sha256()
    if source is not None:
        source.require_unchanged()  # what was read and hashed is the file as it is now
    return TrainingData(job.data_path, sha256, census, split, stopwords, probes, chosen,
                        time.perf_counter() - began, side, test_rows, job.location)


def _log_census(census: streamsplit.Census, chosen: ledger.Selection | None) -> None:
    if census.dropped_blank_text or census.dropped_missing_label:
        log.warning("dropped %d rows with empty text and %d rows with a missing label",
                    census.dropped_blank_text, census.dropped_missing_label)
    for canonical, others in census.label_merges.items():
        log.warning("label spellings %s merged into %r", others, canonical)
    if chosen is not None:
        log.info("labels ledger: %d row(s) of the data replaced by a ledger label",
                 census.left_out)


def _log_split(job: TrainJob, census: streamsplit.Census, split: data.Split) -> None:
    log.info("rows: %d usable of %d read, split %s, %d classes", census.usable,
             census.rows_read, census.sizes, len(census.class_counts))
    fit_rows, all_fit = _fit_rows(split), census.sizes["train"] + census.sizes["validation"]
    if fit_rows < all_fit:
        log.info("fitting on a seeded per-class sample of %d of the %d training + validation rows "
                 "(TEXTOPS_TRAIN_MAX_FIT_ROWS=%d)", fit_rows, all_fit, job.train.max_fit_rows)
    if split.sizes["test"] < census.sizes["test"]:
        log.info("keeping a seeded per-class sample of %d of the %d test rows for the champion "
                 "comparison and the reference profile (TEXTOPS_TRAIN_MAX_TEST_ROWS=%d); the "
                 "test metrics score all of them", split.sizes["test"], census.sizes["test"],
                 job.train.max_test_rows)


def _side_columns(job: TrainJob, split: data.Split, path: Path | str) -> features.SideSpec:
    """The side columns of --feature-columns, their kinds inferred and checked on the rows
    drawn (all rows when the table fits max_fit_rows and max_test_rows); an identifier
    look-alike is a LEAKAGE WARNING, refused with TEXTOPS_TRAIN_LEAKAGE=fail."""
    if not job.columns.features:
        return features.SideSpec()
    frames = [split.x_train, split.x_test] + ([] if split.x_val is None else [split.x_val])
    rows = pd.concat([x[list(job.columns.features)] for x in frames], ignore_index=True)
    side = features.side_spec(rows, job.columns.features,
                              columns_of(job.data.categorical_columns), job.train.max_categories,
                              path)
    log.info("side columns: %s", side.describe())
    for suspect in side.suspects:
        log.warning("LEAKAGE WARNING: %s", suspect)
    if side.suspects and job.train.leakage == "fail":
        raise BadInputError(f"TEXTOPS_TRAIN_LEAKAGE=fail: {side.suspects[0]}; remove it from "
                            f"--feature-columns")
    return side


def with_ledger(table: streamsplit.LabelledTable, path: Path, model_name: str
                ) -> tuple[streamsplit.LabelledTable, ledger.Selection | None]:
    """The table to stream with the labels ledger's rows of this model added after it, and
    the texts they label taken out of it, so a text the ledger labelled trains with the
    ledger's label and the audit rows stay unseen (see :func:`ledger_rows`). Without a ledger
    yet, the table as it is."""
    added, texts, chosen = ledger_rows(path, model_name, table.text, table.label, table.side)
    if chosen is None:
        return table, None
    return replace(table, extra=added, left_out=frozenset(texts)), chosen


def ledger_rows(path: Path, model_name: str, text_col: str, label_col: str,
                side_columns: tuple[str, ...] = ()
                ) -> tuple[pd.DataFrame | None, set[str], ledger.Selection | None]:
    """The labels ledger's rows of this model (their latest label; the audit part left out),
    and every text it labels (the audit's too: the training table must not hold them, so the
    audit stays unseen). ``side_columns`` come from each ledger row's ids (monitor.py
    --id-columns carried them into the rows to label); a row without one gets a missing value,
    counted in the log. (None, empty, None) without a ledger yet (no labels given back)."""
    if not path.exists():
        log.warning("--with-ledger: the labels ledger %s does not exist yet (no labels given back "
                    "with monitor.py --labels): training on the training file alone", path)
        return None, set(), None
    chosen = ledger.select(ledger.read(path), model_name)
    in_ledger = set(chosen.texts) | {row["text"] for row in chosen.audit}
    added = pd.DataFrame({text_col: chosen.texts, label_col: chosen.labels})
    for column in side_columns:
        added[column] = [ids.get(column) for ids in chosen.ids]
        if added[column].isna().any():
            log.warning("labels ledger: %d of %d row(s) have no %r (label samples written "
                        "without it: pass it to monitor.py --id-columns); trained as missing",
                        int(added[column].isna().sum()), len(added), column)
    log.info("labels ledger %s: %d row(s) of %s added from %d batch(es) (nights %s); %d audit "
             "row(s) kept aside, never trained on; %d older ledger label(s) superseded by a "
             "later one; %d text(s) relabelled differently over time", path, len(chosen.texts),
             model_name, len(chosen.batches), ", ".join(chosen.nights) or "-", len(chosen.audit),
             chosen.superseded, chosen.conflicts)
    if not chosen.texts and not chosen.audit:
        log.warning("--with-ledger: the labels ledger %s holds no row of model %s", path,
                    model_name)
    return added, in_ledger, chosen


def _fit_rows(split: data.Split) -> int:
    return split.sizes["train"] + split.sizes["validation"]


def train(job: TrainJob, td: TrainingData) -> str:
    """Hold the model's lock, then train in one MLflow run; returns the one-line decision.
    The run's ``total_seconds``: reading the data (``td.seconds``) and everything here. The
    engine (a Spark session) is released at the end, whatever happens."""
    try:
        return _train(job, td)
    finally:
        if td.test_rows is not None:
            td.test_rows.close()


def _train(job: TrainJob, td: TrainingData) -> str:
    began, name = time.perf_counter(), job.tracking.model_name
    lock = job.train.lock_dir / f"train-{name}.lock"
    with exclusive(lock, job.train.lock_wait, "train.py of this model"):
        client = registry.connect(job.tracking)  # fails fast (exit 4) when the store is unreachable
        same_task = check_same_task(client, name, td, job.columns.label,
                                    job.train.allow_new_classes)
        experiment_id = registry.ensure_experiment(client, job.tracking, job.tracking.experiment)
        import mlflow  # heavy: after the input checks and the lock

        run = mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{td.path.stem}")
        log.info("MLflow run %s in %s", run.info.run_id,
                 registry.shown_uri(job.tracking.uri))
        try:
            if same_task:
                mlflow.set_tag("textops.new_classes_reason", same_task)
            decision = train_in_run(job, client, td)
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, (KeyboardInterrupt, Interrupted)) else "FAILED"
            mlflow.set_tag("textops.error", redact(f"{type(exc).__name__}: {exc}")[:5000])
            mlflow.end_run(status=status)
            log.error("run %s ended %s", run.info.run_id, status)
            raise
        mlflow.log_metric("total_seconds", td.seconds + time.perf_counter() - began)
        mlflow.end_run(status="FINISHED")
        return decision


def check_same_task(client: Any, name: str, td: TrainingData, label_column: str,
                    allow_reason: str) -> str:
    """Refuse (exit 2) training data whose classes, label column or side columns differ from
    the current champion's: the new version would be compared with a model of another task
    (scoring 0), or ask every consumer's scoring data for other columns, and replace it for
    every consumer. ``allow_reason`` (--allow-new-classes) lets it through;
    returns the reason to record ("" when the task is the same or there is no champion)."""
    version = registry.aliases_of(client, name).get(registry.CHAMPION)
    if version is None:
        return ""
    differences = task_differences(version_task(client, name, version), str(version),
                                   Task(sorted(td.census.class_counts), label_column,
                                        td.side.names), "this data")
    return allowed_change(name, differences, allow_reason, "train under another --model-name")


def task_differences(old: Task, old_version: str, new: Task, new_name: str) -> list[str]:
    """How ``new`` classifies otherwise than champion ``old_version`` (empty: the same task, or
    not known)."""
    differences = []
    if old.classes is not None and new.classes is not None and \
            sorted(old.classes) != sorted(new.classes):
        gone = sorted(set(old.classes) - set(new.classes))
        added = sorted(set(new.classes) - set(old.classes))
        differences.append(f"classes differ (only in champion v{old_version}: "
                           f"{_few(gone)}; only in {new_name}: {_few(added)})")
    if old.label_column and new.label_column and old.label_column != new.label_column:
        differences.append(f"label column {new.label_column!r} is not champion v{old_version}'s "
                           f"{old.label_column!r}")
    if sorted(old.side) != sorted(new.side):
        shown = lambda side: ", ".join(side) or "none"  # noqa: E731
        differences.append(f"side columns differ (champion v{old_version}: {shown(old.side)}; "
                           f"{new_name}: {shown(new.side)}), and what scoring data must hold "
                           f"with them")
    return differences


def allowed_change(name: str, differences: list[str], allow_reason: str, other_way: str) -> str:
    """"" for no differences; the reason to record when --allow-new-classes gives one;
    otherwise BadInputError (exit 2) naming the differences and both ways out."""
    if not differences:
        return ""
    if allow_reason.strip():
        log.warning("%s: %s; allowed (--allow-new-classes): %s", name, "; ".join(differences),
                    allow_reason.strip())
        return f"{'; '.join(differences)}: {allow_reason.strip()}"[:1000]
    raise BadInputError(
        f"model {name!r} would change task: {'; '.join(differences)}; {other_way}, or pass "
        f"--allow-new-classes REASON to replace it on purpose")


@dataclass(frozen=True)
class Task:
    """What a version classifies: its classes and label column (None: not known), and the
    side columns it reads beside the text (none for every version before side columns)."""

    classes: list[str] | None
    label_column: str | None
    side: tuple[str, ...] = ()


def version_task(client: Any, name: str, version: str) -> Task:
    """A registered version's classes and label column: from its tags (this release on), else
    its reference profile, else the model itself (versions of earlier releases)."""
    tags = client.get_model_version(name, version).tags or {}
    label_column = tags.get("textops.label_column") or None
    side = tuple(json.loads(tags.get("textops.side_columns") or "{}"))
    try:
        return Task([str(c) for c in json.loads(tags["textops.classes"])], label_column, side)
    except (KeyError, ValueError, TypeError):
        pass
    reference = load_reference(client, name, version)
    if reference and reference.classes:
        return Task(list(reference.classes), label_column, side)
    try:
        return Task([str(c) for c in registry.load_pipeline(name, version).classes_],
                    label_column, side)
    except Exception as exc:  # noqa: BLE001 - a broken champion must not block training
        log.warning("classes of champion v%s unknown (%s): not compared", version, exc)
        return Task(None, label_column, side)


def _few(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return (shown + f", ... {len(values) - limit} more" if len(values) > limit else shown) or "none"


def flat_params(job: TrainJob) -> dict[str, Any]:
    """The run's settings as MLflow params (``section.key``), in CONFIG's order (the side-column
    settings, and the engine's, only when they are used: a text-only local run logs what it
    always logged)."""
    side = bool(job.columns.features)
    train_params = TRAIN_PARAMS + (("max_categories",) if side else ()) + \
        (("leakage",) if job.train.leakage != "warn" else ()) + \
        (("engine", "spark_master") if job.train.engine == "spark" else ())
    return {**{f"data.{k}": v for k, v in asdict(job.data).items()
               if side or k not in SIDE_SETTINGS}, **job.model.params(),
            **{f"promotion.{k}": v for k, v in asdict(job.promotion).items()},
            **{f"train.{k}": getattr(job.train, k) for k in train_params}}


def train_in_run(job: TrainJob, client: Any, td: TrainingData) -> str:
    """Inside the active run: fit, evaluate, log, register, describe, promote."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    name = job.tracking.model_name
    metric = job.promotion.metric
    _log_inputs(job, td)
    if job.train.tune:
        job, td = _tuned(job, td)
    fitted = fit_and_evaluate(job, td)
    quality_tags = baseline_and_leakage(job, fitted.pipeline, td,
                                        fitted.evaluation.metrics["macro_f1"])
    _log_artifacts(job, td, fitted)
    audit_x = _audit_rows(job, td)
    champion_version, champion_score, champion_pred, champion_audit = _champion_on_test_rows(
        client, name, metric, td.split, audit_x)
    raise_if_interrupted()  # nothing registered yet: a swallowed SIGTERM still stops here
    info = registry.log_and_register(
        fitted.pipeline, name, features.typed_example(td.split.x_test.head(5), td.side),
        registry.ModelInputs(job.columns.text, {c.name: c.kind for c in td.side.columns}))
    version = str(info.registered_model_version)
    score = fitted.evaluation.metrics[metric]
    p = job.promotion
    threshold = p.threshold
    test, audit = _comparisons(job, td, fitted, champion_pred, audit_x, champion_audit)
    compared = None if fitted.sample_metrics is None else fitted.sample_metrics[metric]
    decision = promotion.decide_promotion(metric, score, threshold, champion_version,
                                          champion_score, test, p.alpha, p.min_gain, audit,
                                          compared)
    with promotion.alias_lock(job.train.lock_dir, name):
        decision = promotion.still_valid(decision, champion_version,
                                         registry.aliases_of(client, name).get(registry.CHAMPION))
        raise_if_interrupted()
        promotion.move_alias(client, name, decision.alias, version, decision.reason,
                             promotion.actor("train.py"))
    tags = {
        "textops.decision": decision.alias,
        "textops.reason": decision.reason,
        "textops.metric": metric,
        "textops.score": f"{score:.6f}",
        "textops.threshold": str(threshold),
        "textops.previous_champion": champion_version or "",
        "textops.champion_score": "" if champion_score is None else f"{champion_score:.6f}",
        "textops.data_sha256": td.sha256,
        "textops.label_column": job.columns.label,
        "textops.classes": json.dumps(sorted(td.census.class_counts), ensure_ascii=False)[:5000],
        **({"textops.side_columns": td.side.as_json()[:5000]} if td.side else {}),
        **_test_tags(test),
        **_audit_tags(audit),
        "textops.reference": REFERENCE_PATH,
        **quality_tags,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    mlflow.set_tags({**tags, "textops.model_version": version})
    registry.describe(client, name, version, model_card(job, td, fitted, tags))
    log.info("v%s -> @%s: %s", version, decision.alias, decision.reason)
    return f"{name} v{version} -> @{decision.alias}: {decision.reason}"


def _tuned(job: TrainJob, td: TrainingData) -> tuple[TrainJob, TrainingData]:
    """--tune: the job with the best settings found (and their stop words), logged."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    tuned = tuning.tune(job.model, td.fit_split, job.train.tune_trials, job.train.tune_minutes,
                        td.side)
    mlflow.log_params({f"tuned.{k}": v for k, v in tuning.trial_params(tuned).items()})
    if tuned.preprocessing.stopwords != job.model.preprocessing.stopwords:
        td = replace(td, stopwords=model.load_stopwords(tuned.preprocessing.stopwords))
    return replace(job, model=tuned), td


def _comparisons(job: TrainJob, td: TrainingData, fitted: Fitted,
                 champion_pred: np.ndarray | None, audit_x: pd.DataFrame | None,
                 champion_audit: np.ndarray | None
                 ) -> tuple[promotion.PairedTest | None, promotion.AuditComparison | None]:
    """The paired test against the champion on the test rows and, with the ledger's audit
    rows, on those (both None without a champion's predictions or with --alpha 0)."""
    alpha = job.promotion.alpha
    if champion_pred is None or alpha <= 0:
        return None, None
    test = promotion.paired_test(job.promotion.metric, td.split.y_test, fitted.y_pred,
                                 champion_pred, alpha, seed=job.data.random_seed)
    audit = None
    if champion_audit is not None and audit_x is not None and td.ledger is not None:
        audit = _audit_comparison(td.ledger, fitted.pipeline, audit_x, champion_audit, alpha)
    return test, audit


def _test_tags(test: promotion.PairedTest | None) -> dict[str, str]:
    """The paired test against the champion, as tags (none without a champion to compare)."""
    if test is None:
        return {}
    return {"textops.promotion_test": test.method,
            "textops.promotion_pvalue": f"{test.pvalue:.6g}",
            "textops.promotion_difference": f"{test.difference:.6f}",
            "textops.promotion_interval": f"[{test.interval[0]:.6f}, {test.interval[1]:.6f}]"}


def _log_inputs(job: TrainJob, td: TrainingData) -> None:
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    mlflow.log_params(flat_params(job))
    mlflow.log_params({
        "data.path": td.location,
        "data.sha256": td.sha256,
        "data.rows_usable": td.census.usable,
        "data.rows_dropped_blank_text": td.census.dropped_blank_text,
        "data.rows_dropped_missing_label": td.census.dropped_missing_label,
        "data.n_classes": len(td.census.class_counts),
        **{f"data.rows_{k}": v for k, v in td.census.sizes.items()},
        "data.rows_fit_sample": _fit_rows(td.split),
        **({"data.rows_test_sample": td.split.sizes["test"]} if td.test_sampled else {}),
        "stopwords.source": td.stopwords.source,
        "stopwords.count": len(td.stopwords.words),
        **({"side.kinds": td.side.as_json()[:6000]} if td.side else {}),
        "model_name": job.tracking.model_name,
    })
    _log_datasets(job, td)


def _log_datasets(job: TrainJob, td: TrainingData) -> None:
    """The run's dataset inputs (the MLflow UI's lineage): the training file, and with
    --with-ledger each ledger batch it used, with its source, digest, night and row counts."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers
    from mlflow.data.meta_dataset import MetaDataset

    datasets = [(td.location, td.path.name, td.sha256, {"rows": str(td.census.usable)})]
    if td.ledger is not None:
        chosen = td.ledger
        mlflow.log_params({"ledger.path": str(job.ledger), "ledger.rows": len(chosen.texts),
                           "ledger.audit_rows": len(chosen.audit),
                           "ledger.batches": len(chosen.batches),
                           "ledger.superseded": chosen.superseded,
                           "ledger.conflicts": chosen.conflicts, "ledger.digest": chosen.digest})
        mlflow.set_tag("textops.ledger_nights", ",".join(chosen.nights)[:5000])
        for batch in chosen.batches:
            digest = hashlib.sha256(f"{batch.sample_id}\x1f{chosen.digest}".encode()).hexdigest()
            datasets.append((job.ledger, f"labels-ledger/{batch.sample_id}", digest,
                             {"night": batch.night, "rows": str(batch.rows),
                              "audit_rows": str(batch.audit), "data_sha256": batch.data_sha256}))
    for source, name, digest, tags in datasets:
        with warnings.catch_warnings():  # a local path matches two equal source kinds
            warnings.simplefilter("ignore", UserWarning)
            from mlflow.data.dataset_source_registry import resolve_dataset_source

            dataset = MetaDataset(resolve_dataset_source(str(source)), name=name[:500],
                                  digest=digest[:32])
        mlflow.log_input(dataset, context="training", tags=tags)


def fit_and_evaluate(job: TrainJob, td: TrainingData) -> Fitted:
    """Fit the pipeline as configured and measure it on the test rows (logged)."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    split = td.fit_split
    with Stopwatch() as fit_time:
        pipeline, info = model.train_model(
            model.build_pipeline(job.model, td.stopwords, td.side), split.x_train, split.y_train,
            split.x_val, split.y_val, refit=job.train.refit)
    clf = pipeline[-1]
    log.info("fitted in %.1f s (%d features, %d trees chosen by early stopping, %d kept, "
             "trained on %d rows)", fit_time.seconds, clf.n_features_in_, info["best_iteration"],
             info["kept_trees"], info["fit_rows"])
    with Stopwatch() as eval_time:
        y_pred, proba = model.predict_with_proba(pipeline, split.x_test)
    temperature = float(getattr(clf, "temperature_", 1.0))
    sample_metrics = None
    if td.test_sampled:
        evaluation, calibration = _all_test_rows(td, pipeline, temperature)
        sample_metrics = model.evaluate(split.y_test, y_pred).metrics
    else:
        evaluation = model.evaluate(split.y_test, y_pred, proba, pipeline.classes_)
        calibration = calibration_metrics(proba, split.y_test, pipeline.classes_, temperature)
    mlflow.log_metrics(evaluation.metrics)
    mlflow.log_metrics(calibration)
    log.info("calibration on the test rows: temperature %.3f, ECE %.4f -> %.4f, Brier %.4f -> %.4f",
             temperature, calibration["calibration.ece_raw"], calibration["calibration.ece"],
             calibration["calibration.brier_raw"], calibration["calibration.brier"])
    mlflow.log_metrics({
        "training_seconds": fit_time.seconds,
        "predict_rows_per_second": len(split.y_test) / max(eval_time.seconds, 1e-9),
        "best_iteration": info["best_iteration"],
        "kept_trees": info["kept_trees"],  # every stopping fold's trees when they are kept
        "fit_rows": info["fit_rows"],
        "n_features": clf.n_features_in_,
    })
    log.info("test: accuracy %.4f, macro-F1 %.4f", evaluation.metrics["accuracy"],
             evaluation.metrics["macro_f1"])
    return Fitted(pipeline, info, evaluation, y_pred, proba, fit_time.seconds, calibration,
                  sample_metrics)


def _all_test_rows(td: TrainingData, pipeline: Any, temperature: float
                   ) -> tuple[model.Evaluation, dict[str, float]]:
    """The test metrics over every test row, streamed once more from the input and scored in
    chunks (the rows in memory are a sample of them)."""
    with Stopwatch() as took:
        evaluation, calibration, rows = td.test_rows.score(pipeline, temperature)
    log.info("all %d test rows scored in chunks for the test metrics (%.1f s)", rows, took.seconds)
    return evaluation, calibration


def baseline_and_leakage(job: TrainJob, pipeline: Any, td: TrainingData,
                         macro_f1: float) -> dict[str, str]:
    """Log the linear baseline's test metrics and the leakage probes; returns tags to set.
    With TEXTOPS_TRAIN_LEAKAGE=fail a LEAKAGE WARNING is a refusal (BadInputError, exit 2)."""
    tags: dict[str, str] = {}
    text_col = job.columns.text
    if job.train.baseline:  # fitted on the model's own (bounded) rows
        tags.update(_baseline(text_col, td.fit_split, macro_f1))
    if job.train.leakage_check:
        try:
            tags.update(_leakage(pipeline, td.probes, macro_f1, text_col, job.data.random_seed,
                                 td.side.suspects))
        except ValueError as exc:  # e.g. no identifier or word at all: the model still stands
            log.warning("leakage check skipped: %s", first_line(exc))
            tags["textops.leakage_warning"] = f"not run: {first_line(exc)}"
    warning = tags.get("textops.leakage_warning", "none")
    if job.train.leakage == "fail" and warning != "none" and not warning.startswith("not run"):
        reasons = warning.split(" | ")
        more = f" (and {len(reasons) - 1} more LEAKAGE WARNING(s) in the log)" if len(reasons) > 1 else ""
        raise BadInputError(f"TEXTOPS_TRAIN_LEAKAGE=fail: {reasons[0]}{more}; nothing registered "
                            f"(TEXTOPS_TRAIN_LEAKAGE=warn registers it with the warning)")
    return tags


def _baseline(text_col: str, split: data.Split, macro_f1: float) -> dict[str, str]:
    """The linear yardstick's test metrics, logged; optional, so it fails soft (texts without
    a single word, e.g. emoji only, leave it with an empty vocabulary)."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    x_fit, y_fit = split.training_rows()
    try:
        with Stopwatch() as took:
            baseline = diagnostics.baseline_pipeline(text_col).fit(x_fit, y_fit)
        base = model.evaluate(split.y_test, baseline.predict(split.x_test)).metrics
    except ValueError as exc:
        log.warning("baseline TF-IDF + LogisticRegression could not be fitted (%s): skipped",
                    first_line(exc))
        return {}
    mlflow.log_metrics({"baseline.accuracy": base["accuracy"],
                        "baseline.macro_f1": base["macro_f1"],
                        "baseline.training_seconds": took.seconds,
                        "gap.macro_f1": macro_f1 - base["macro_f1"]})
    log.info("baseline TF-IDF + LogisticRegression: macro-F1 %.4f (model %+.4f)",
             base["macro_f1"], macro_f1 - base["macro_f1"])
    return {"textops.baseline_macro_f1": f"{base['macro_f1']:.6f}"}


def _leakage(pipeline: Any, probes: data.Split, macro_f1: float, text_col: str,
             seed: int, suspects: tuple[str, ...] = ()) -> dict[str, str]:
    """The leakage probes on the bounded samples, logged; returns the warning tag."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    with Stopwatch() as took:
        report = diagnostics.leakage_check(pipeline, probes, macro_f1, text_col, seed=seed)
    log.info("leakage probes on %d training and %d test rows (%.1f s)",
             _fit_rows(probes), probes.sizes["test"], took.seconds)
    mlflow.log_metrics({f"leakage.{k}": v for k, v in report.figures.items()})
    mlflow.log_params({"leakage.fit_rows": _fit_rows(probes),
                       "leakage.test_rows": probes.sizes["test"]})
    for reason in report.reasons:
        log.warning("LEAKAGE WARNING: %s", reason)
    reasons = list(suspects) + report.reasons
    return {"textops.leakage_warning": " | ".join(reasons) if reasons else "none"}


def reference_profile(job: TrainJob, fitted: Fitted, split: data.Split) -> ReferenceProfile:
    """What monitor.py compares new data with: the test split's profile."""
    text_col = job.columns.text
    report = fitted.evaluation.report
    metrics = {
        "accuracy": fitted.evaluation.metrics["accuracy"],
        "macro_f1": fitted.evaluation.metrics["macro_f1"],
        "recall_per_class": {str(c): float(report[str(c)]["recall"])
                             for c in fitted.pipeline.classes_ if str(c) in report},
        # monitor.py's label-free estimate is only as good as these (absent: older versions)
        "calibrated": bool(getattr(fitted.pipeline[-1], "calibrate", False)),
        "calibration_ece": fitted.calibration["calibration.ece"],
    }
    with Stopwatch() as took:
        reference = build_reference(
            fitted.pipeline, data.clean_text(split.x_test[text_col]).tolist(), fitted.y_pred,
            np.max(fitted.proba, axis=1), split.training_rows()[1], metrics,
            text_sample=job.reference_texts, seed=job.data.random_seed,
            oov_rows=job.train.sample_rows, test_labels=split.y_test.astype(str).tolist(),
            side=_side_profiles(fitted.pipeline, split, job.data.random_seed))
    log.info("reference profile for monitoring: %d test rows, %d texts kept (%.1f s)",
             reference.rows, len(reference.texts), took.seconds)
    return reference


def _side_profiles(pipeline: Any, split: data.Split, seed: int) -> dict[str, SideProfile] | None:
    """The side columns of the test rows, for monitor.py's drift checks (None: text only)."""
    encoder = model.side_columns(pipeline)
    return None if encoder is None else profile_side(split.x_test, encoder, seed)


def _log_artifacts(job: TrainJob, td: TrainingData, fitted: Fitted) -> None:
    """Token importance, confusion matrix, reports, data profile, stop words, reference."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    name, split, evaluation = job.tracking.model_name, td.split, fitted.evaluation
    with tempfile.TemporaryDirectory(prefix="textops-") as tmp:
        folder = Path(tmp)
        rows = td.probes.training_rows()[0]
        diagnostics.token_importance(fitted.pipeline, rows).to_csv(
            folder / "token_importance.csv", index=False)
        mlflow.log_param("token_importance.rows", len(rows))
        plots.save_confusion_matrix(evaluation, folder / "confusion_matrix.png",
                                    f"{name}: test split ({td.census.sizes['test']} rows)")
        plots.save_reliability_diagram(fitted.proba, split.y_test, fitted.pipeline.classes_,
                                 fitted.calibration["calibration.temperature"],
                                 folder / "reliability_diagram.png")
        (folder / "classification_report.txt").write_text(evaluation.report_text, encoding="utf-8")
        (folder / "classification_report.json").write_text(json.dumps(evaluation.report, indent=2))
        profile = {
            "path": td.location, "sha256": td.sha256, "class_counts": td.census.class_counts,
            "split_sizes": td.census.sizes, "label_merges": td.census.label_merges,
            "dropped_blank_text": td.census.dropped_blank_text,
            "dropped_missing_label": td.census.dropped_missing_label,
        }
        (folder / "data_profile.json").write_text(json.dumps(profile, indent=2, ensure_ascii=False))
        (folder / "stopwords.txt").write_text("\n".join(td.stopwords.words) + "\n", encoding="utf-8")
        write_reference(reference_profile(job, fitted, split), folder)
        mlflow.log_artifacts(str(folder))


def _champion_on_test_rows(client: Any, name: str, metric: str, split: data.Split,
                           audit_x: pd.DataFrame | None = None
                           ) -> tuple[str | None, float | None, np.ndarray | None,
                                      np.ndarray | None]:
    """The current champion, scored on the very same test rows: its version, score and
    predictions, and its predictions of the ledger's audit rows when given (all None without a
    champion; no score when it cannot be evaluated)."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    champion_version = registry.aliases_of(client, name).get(registry.CHAMPION)
    if champion_version is None:
        return None, None, None, None
    try:
        champion = registry.load_pipeline(name, champion_version)
        predicted, _ = model.predict_with_proba(champion, split.x_test)
        score = model.evaluate(split.y_test, predicted).metrics[metric]
        on_audit = None if audit_x is None else model.predict_with_proba(champion, audit_x)[0]
    except Exception as exc:  # noqa: BLE001 - a broken champion must not block training
        log.warning("current champion v%s could not be evaluated: %s", champion_version, exc)
        return champion_version, None, None, None
    mlflow.log_metric(f"champion_{metric}", score)
    log.info("champion v%s on the same test rows: %s %.4f", champion_version, metric, score)
    return champion_version, score, predicted, on_audit


def _audit_rows(job: TrainJob, td: TrainingData) -> pd.DataFrame | None:
    """The ledger's audit rows as model input (None: no ledger or no audit row)."""
    if td.ledger is None or not td.ledger.audit:
        return None
    rows = pd.DataFrame({job.columns.text: [row["text"] for row in td.ledger.audit]})
    for column in td.side.names:  # a model with side columns reads them here too
        rows[column] = [row.get("ids", {}).get(column) for row in td.ledger.audit]
    return rows


def _audit_comparison(chosen: ledger.Selection, pipeline: Any, audit_x: pd.DataFrame,
                      champion_pred: np.ndarray, alpha: float) -> promotion.AuditComparison:
    """The new model against the champion on the ledger's audit rows, logged."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    predicted, _ = model.predict_with_proba(pipeline, audit_x)
    spell = data.spelled_as(pipeline.classes_)  # a labeller's "true" is the class True
    truth = [spell(row["label"]) for row in chosen.audit]
    audit = promotion.audit_comparison(truth, predicted,
                                       champion_pred, [row["weight"] for row in chosen.audit],
                                       len({row["sample_id"] for row in chosen.audit}), alpha)
    mlflow.log_metrics({"audit.accuracy": audit.accuracy,
                        "audit.champion_accuracy": audit.champion_accuracy,
                        "audit.difference": audit.test.difference,
                        "audit.pvalue": audit.test.pvalue, "audit.rows": audit.rows})
    log.info("ledger audit rows: %s", audit.describe())
    return audit


def _audit_tags(audit: promotion.AuditComparison | None) -> dict[str, str]:
    """The comparison on the ledger's audit rows, as tags (none without one)."""
    if audit is None:
        return {}
    return {"textops.audit_rows": str(audit.rows),
            "textops.audit_accuracy": f"{audit.accuracy:.6f}",
            "textops.audit_champion_accuracy": f"{audit.champion_accuracy:.6f}",
            "textops.audit_pvalue": f"{audit.test.pvalue:.6g}"}


def model_card(job: TrainJob, td: TrainingData, fitted: Fitted,
               tags: dict[str, str]) -> registry.ModelCard:
    """What the MLflow UI shows on the registered model's and the version's pages."""
    c = job.columns
    counts = td.census.class_counts
    classes = ", ".join(f"{c} ({n})" for c, n in list(counts.items())[:20])
    if len(counts) > 20:
        classes += f", ... {len(counts) - 20} more"
    model_text = (
        f"Classifies the text column `{c.text}` into the label column "
        f"`{c.label}`: {len(counts)} classes. "
        + (f"It also reads the side columns {td.side.describe()}: scoring data needs them. "
           if td.side else "") +
        f"TF-IDF + CatBoost pipeline trained by "
        f"textops' train.py; score it with predict.py, `mlflow.pyfunc` or `mlflow models serve` "
        f"(columns: prediction, probability, proba_<class>).\n\n"
        f"Latest training data: {td.path.name} ({td.census.usable} usable rows; classes: "
        f"{classes}).")
    m = fitted.evaluation.metrics
    baseline = tags.get("textops.baseline_macro_f1")
    version_text = (
        f"Trained on {td.path.name} (sha256 {td.sha256[:12]}, {td.census.usable} rows; split "
        f"{td.census.sizes}).\n\n"
        f"Test rows ({td.census.sizes['test']}): accuracy {m['accuracy']:.4f}, macro-F1 "
        f"{m['macro_f1']:.4f}"
        + (f"; linear baseline macro-F1 {float(baseline):.4f}" if baseline else "") + ".\n\n"
        + _ledger_card(td.ledger) +
        f"Promotion: @{tags['textops.decision']}: {tags['textops.reason']}.\n\n"
        f"Leakage check: {tags.get('textops.leakage_warning', 'not run')}.")
    return registry.ModelCard(model_text, version_text)


def _ledger_card(chosen: ledger.Selection | None) -> str:
    """The model card's paragraph on the labels ledger (empty without --with-ledger)."""
    if chosen is None:
        return ""
    nights = ", ".join(chosen.nights) or "none"
    return (f"Labels ledger: {len(chosen.texts)} labelled rows added from {len(chosen.batches)} "
            f"batch(es), nights {nights}; {len(chosen.audit)} audit rows kept aside (never "
            f"trained on).\n\n")
