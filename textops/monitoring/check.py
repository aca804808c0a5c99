"""What monitor.py does, step by step: inspect the input, read it once into a bounded summary,
check performance (labelled rows) and drift (every row) against each version's reference
profile, then write the reports and log the monitoring run."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textops.errors import BadInputError
from textops.paths import is_uri
from textops.files import atomic_output, refuse_overwriting
from textops import batch, data, inputs, promotion, registry, spark
from textops.columns import FALLBACK_LABEL, MODEL_VERSION, PREDICTION, PROBABILITY, Columns
from textops.settings import Settings, Thresholds, Tracking, columns
from textops.monitoring import (alerts, classmix, drift, estimation, labelling, ledger, report,
                                runs)
from textops.monitoring import slices as slicing, sparkstream
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.reference import load_reference
from textops.monitoring.result import (DataSummary, DriftSummary, EstimateReport,
                                       LabelSampleFile, ModelSummary, MonitorReport,
                                       PerformanceReport)
from textops.monitoring.sidedrift import SideSums, side_checks
from textops.monitoring.stream import (StreamTotals, StreamSpec, accumulate, accumulate_scored,
                                       proba_classes)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MonitorJob:
    """One monitor.py run, resolved from the configuration and flags."""

    data: Path
    report: Path
    html: Path | None
    model: str  # alias, 'latest' or version, for raw texts
    columns: Columns  # text, label (when present) and the ids that identify a row
    label_required: bool  # --label-column given (without --labels): the column must exist
    chunk_size: int
    encoding: str
    delimiter: str
    thresholds: Thresholds  # the alert rules, also written into the report
    seed: int
    domain_sample: int
    history_runs: int
    workers: int  # processes scoring raw texts; 0 = automatic
    label_sample: int  # rows to label written when drift fires or estimators disagree
    label_sample_forced: int | None  # --label-sample N: written every run
    to_label: Path | None  # a folder (one file per sample, named by night and data) or a file
    labels: Path | None  # the rows to label, labelled
    label_column_explicit: bool  # --label-column given: with --labels, the labels file's column
    tracking: Tracking
    ledger: Path | None = None  # where --labels rows are kept (None: off)
    labeller: str = ""  # who labelled them
    label_uniform_share: float = labelling.UNIFORM_SHARE  # of the budget drawn uniformly
    slice_top: int = 10  # --slice-by: values reported one by one
    slice_min_rows: int = 100  # --slice-by: fewer rows: reported, never alerting
    engine: str = "local"  # spark: executors fold the rows (textops.monitoring.sparkstream)
    spark_master: str = "local[*]"
    location: str = ""  # the data as given: a resolved local path, or a Hadoop-FS URI

    @property
    def is_uri(self) -> bool:
        """Data only Spark reads (hdfs://, s3a://, ...)."""
        return is_uri(self.location)

    @property
    def shown(self) -> str:
        """The data as reports and messages name it."""
        return self.location or str(self.data)

    @property
    def model_name(self) -> str:
        return self.tracking.model_name

    @property
    def to_label_folder(self) -> bool:
        """--to-label names a folder (no extension): each sample gets a file of its own."""
        return self.to_label is not None and not self.to_label.suffix

    @property
    def experiment(self) -> str:
        """The MLflow experiment monitoring runs go to."""
        return self.tracking.monitor_experiment


# workers = 0 (automatic): inputs smaller than this are scored in this process
POOL_MIN_BYTES = 2_000_000


def make_job(settings: Settings, label_required: bool,
             label_sample: int | None = None) -> MonitorJob:
    """The run's options, validated (BadInputError names the flag to fix)."""
    m, d = settings.monitor, settings.data
    given = str(m.data or "").strip()
    if not given:
        raise BadInputError("no input given; pass --data PATH")
    if is_uri(given) and m.engine != "spark":
        raise BadInputError(f"--data {given} is a Hadoop-FS URI, which only Spark reads; add "
                            f"--engine spark")
    location = given if is_uri(given) else str(settings.path(given))
    data_path, report_path, html, to_label, labels = (Path(location), m.report, m.html,
                                                      m.to_label, m.labels)
    if label_sample is not None and label_sample < 1:
        raise BadInputError(f"--label-sample must be at least 1, got {label_sample}")
    if label_sample is not None and to_label is None:
        raise BadInputError("--label-sample needs a --to-label path")
    refuse_overwriting({"--data": None if is_uri(given) else data_path, "--labels": labels},
                       {"--report": report_path, "--html": html,
                        "--to-label": to_label if to_label is not None and to_label.suffix else None})
    cols = replace(settings.columns(m.id_columns), slices=_slice_columns(m.slice_by, d))
    refuse_design_clash(cols.ids, cols.label)
    if m.engine == "spark":
        spark.require_pyspark()
        if not cols.ids and (label_sample is not None or labels is not None):
            raise BadInputError(f"--engine spark knows the rows to label by their ids (Spark's "
                                f"parts have no row numbers): {'--labels' if labels else '--label-sample'} "
                                f"needs --id-columns (predict.py's Spark output carries them), "
                                f"or use --engine local")
    return MonitorJob(
        data=data_path, report=report_path, html=html, model=m.model,
        columns=cols,
        label_required=label_required and labels is None, label_column_explicit=label_required,
        chunk_size=m.chunk_size, encoding=d.encoding, delimiter=d.delimiter,
        thresholds=Thresholds.of(m), seed=d.random_seed,
        domain_sample=m.domain_sample, history_runs=m.history_runs, workers=max(m.workers, 0),
        label_sample=m.label_sample,
        label_sample_forced=label_sample, to_label=to_label, labels=labels,
        tracking=settings.tracking, ledger=m.ledger,
        labeller=m.labeller.strip() or promotion.actor("monitor.py").split(" ")[0],
        label_uniform_share=m.label_uniform_share, slice_top=m.slice_top,
        slice_min_rows=m.slice_min_rows, engine=m.engine, spark_master=m.spark_master,
        location=location)


def _slice_columns(value: str, d: Any) -> tuple[str, ...]:
    """--slice-by: one column of the data, not the text (each text is its own value)."""
    found = columns(value)
    if len(found) > 1:
        raise BadInputError(f"--slice-by takes one column, got {', '.join(found)}; run monitor.py "
                            f"once per column")
    if found and found[0] == d.text_column:
        raise BadInputError(f"--slice-by {found[0]!r} is the text column (every text would be a "
                            f"slice of its own); give a categorical column, e.g. a product or "
                            f"channel")
    return found


def refuse_design_clash(id_columns: tuple[str, ...], label_column: str) -> None:
    """An id column that the to_label file's own columns would overwrite: exit 2."""
    taken = {*labelling.DESIGN_COLUMNS, PREDICTION, PROBABILITY, MODEL_VERSION, label_column,
             FALLBACK_LABEL}
    clash = [c for c in id_columns if c in taken]
    if clash:
        raise BadInputError(f"--id-columns {clash} would be overwritten by the to_label file's own "
                            f"columns ({', '.join(sorted(taken))}); rename them in the input")


def inspect_input(job: MonitorJob) -> tuple[inputs.Input, StreamSpec]:
    """Everything wrong with the input fails here, before the tracking store is touched."""
    source = inputs.open_input(job.data, job.encoding, job.delimiter)
    return source, stream_spec(job, source.header)


def stream_spec(job: MonitorJob, header: list[str] | tuple[str, ...]) -> StreamSpec:
    """What the input's columns say it is (BadInputError for a column the flags name that it
    lacks)."""
    recorded = {PREDICTION, MODEL_VERSION} <= set(header)
    inputs.require_columns(header, {
        **({job.columns.label: "--label-column"} if job.label_required else {}),
        **({} if recorded else {job.columns.text: "--text-column"}),
        **{c: "--id-columns" for c in job.columns.ids},
        **{c: "--slice-by" for c in job.columns.slices}}, job.shown)
    return StreamSpec(job.columns, has_text=job.columns.text in header,
                      has_labels=job.columns.label in header, recorded=recorded, seed=job.seed,
                      proba_classes=proba_classes(header) if recorded else ())


def read_labels_file(job: MonitorJob) -> labelling.Labels | None:
    """The labels file (--labels), checked before anything else is done (exit 2). Its encoding
    and delimiter are its own (a spreadsheet may have re-saved it with ';' or cp1252); its label
    column is --label-column when given, else the configured label column or 'label', else
    the one column the sample did not write."""
    if job.labels is None:
        return None
    frame = read_spreadsheet_csv(job.labels)
    candidates = [job.columns.label] if job.label_column_explicit else \
        list(job.columns.label_candidates)
    try:
        return labelling.read_labels(frame, job.columns.ids, candidates, job.label_column_explicit,
                                     job.columns.text)
    except ValueError as exc:
        raise BadInputError(f"--labels {job.labels}: {exc}") from None


def read_spreadsheet_csv(path: Path) -> pd.DataFrame:
    """A small CSV a person may have re-saved (a labels file: a few hundred rows): UTF-8, with
    or without a byte-order mark, or else cp1252; delimiter ',', ';' or tab, whichever its
    header line uses most."""
    inputs.check_readable_file(path, "--labels file")  # before its bytes are read to guess
    raw = path.read_bytes()
    first = raw.split(b"\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=lambda d: first.count(d.encode()))
    try:
        raw.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    return inputs.open_input(path, encoding, delimiter, what="--labels file").read()


class References:
    """Each model version's reference profile, read from the registry once, and what the
    estimator (ATC's threshold) and the label sampler (its strata) take from it."""

    def __init__(self, client: Any, model_name: str):
        self.client, self.model_name = client, model_name
        self.profiles: dict[str, ReferenceProfile | None] = {}

    def of(self, version: str) -> ReferenceProfile | None:
        if version not in self.profiles:
            self.profiles[version] = load_reference(self.client, self.model_name, version)
        return self.profiles[version]

    def threshold(self, version: str) -> estimation.Threshold | None:
        return estimation.threshold_from_reference(self.of(version))

    def label_column(self, version: str, default: str) -> str:
        """The label column the version was trained on (its tag), else ``default``."""
        with contextlib.suppress(Exception):  # noqa: BLE001 - an old version: no tag
            tags = self.client.get_model_version(self.model_name, version).tags or {}
            return tags.get("textops.label_column") or default
        return default

    def strata_edges(self, version: str) -> list[float]:
        reference = self.of(version)
        return labelling.strata_edges(reference.confidence_sample if reference else [],
                                      self.threshold(version))


@dataclass
class _Read:
    """What reading the data gave: its description, summary and identity, and what scored it."""

    spec: StreamSpec
    seen: StreamTotals
    sha256: str
    client: Any
    references: "References"
    collector: labelling.Collector
    pipeline: Any = None  # the model, when it was loaded in this process


def run(job: MonitorJob) -> MonitorReport:
    """Check the data; write the JSON and HTML reports and log the run; returns the report."""
    read = _read_spark(job) if job.engine == "spark" else _read_local(job)
    seen, sha256 = read.seen, read.sha256
    versions = _versions_seen(job, read.client, read.spec, seen)
    profiles = {v: read.references.of(v) for v in versions}
    found = _findings(job, read.spec, seen, versions, profiles, read.pipeline)
    _sample_estimate(found, read.collector, profiles[seen.main_version], job, sha256)
    _slice_findings(found, job, seen, profiles[seen.main_version], read.collector)
    _keep_labels(job, read.collector)
    result = _report(job, read.spec, seen, versions, found, sha256)
    result = result.with_to_label(_write_to_label(job, read.collector, result, read.references))
    with atomic_output(job.report, "w", encoding="utf-8") as handle:  # first: whatever the store
        json.dump(result.to_dict(), handle, indent=2, ensure_ascii=False)  # does next, it is kept
    experiment_id = registry.ensure_experiment(read.client, job.tracking, job.experiment)
    if job.html is not None:
        points = runs.history(read.client, experiment_id, job.model_name, job.history_runs, result)
        report.write_html(job.html, result,
                          report.plots(result, profiles[seen.main_version], seen, points))
    runs.log_run(experiment_id, result, [job.report] + ([job.html] if job.html else []))
    return result


def _opening(job: MonitorJob, spec: StreamSpec, sha256: str, labels: labelling.Labels | None
             ) -> tuple[Any, "References", labelling.Collector]:
    """Once the data is known by its SHA-256: the labels checked against it, the registry
    connected, the collector of rows to label made (seeded by the data)."""
    if labels is not None and labels.other_data(sha256):  # refused before anything is scored
        raise BadInputError(f"--labels {job.labels}: {labels.other_data(sha256)}; label the "
                            f"to_label file written for this --data")
    log.info("monitor: data=%s mode=%s, %s%s", job.shown,
             "recorded predictions" if spec.recorded else f"score with {job.model_name}@{job.model}",
             f"labels in {job.columns.label!r}" if spec.has_labels else "no labels (drift only)",
             f"; engine spark, master {job.spark_master}" if job.engine == "spark" else "")
    client = registry.connect(job.tracking)
    references = References(client, job.model_name)
    budget = job.label_sample_forced or (job.label_sample if job.to_label else 0)
    if job.engine == "spark" and not job.columns.ids and budget:
        log.info("no rows to label will be drawn: --engine spark knows rows by their "
                 "--id-columns only (none given)")
        budget = 0
    collector = labelling.Collector(budget, job.seed + int(sha256[:8], 16), job.columns.ids,
                                    job.columns.text if spec.has_text else None,
                                    references.strata_edges, labels, job.label_uniform_share)
    return client, references, collector


def _read_local(job: MonitorJob) -> _Read:
    """The local engine: this process reads the chunks (worker processes score raw texts)."""
    if sparkstream.csv_parts(job.data):
        raise BadInputError(f"{job.data} is a folder of CSV parts (predict.py --spark-format csv), "
                            f"which the local engine does not read; add --engine spark")
    source, spec = inspect_input(job)
    labels = read_labels_file(job)
    sha256 = source.sha256()  # the report's, and the label sample's seed
    client, references, collector = _opening(job, spec, sha256, labels)
    pipeline = None
    if spec.recorded:
        side = _recorded_side(job, client, references, source.header)
        if side is not None:
            spec = replace(spec, roles=replace(spec.roles, features=tuple(side.profiles)))
        chunks = source.chunks(job.chunk_size, spec.columns(source.header))
        seen = accumulate(chunks, spec, None, references.threshold, collector, side)
    else:
        resolved = registry.resolve_version(client, job.model_name, job.model)
        spec = replace(spec, version=resolved.version)
        seen, pipeline = _score_texts(job, source, spec, resolved.version, references,
                                      collector)
    source.require_unchanged()  # a torn input gives no report
    return _Read(spec, seen, sha256, client, references, collector, pipeline)


def _read_spark(job: MonitorJob) -> _Read:
    """The Spark engine: the executors fold the rows, the driver merges their totals (see
    ``sparkstream``); a local file or folder is checked as the local engine checks it first."""
    csv_parts = not job.is_uri and sparkstream.csv_parts(job.data)
    source = None if job.is_uri or csv_parts else inputs.open_input(job.data, job.encoding,
                                                                    job.delimiter)
    spec = stream_spec(job, source.header) if source is not None else None
    labels = read_labels_file(job)
    fmt = source.format if source is not None else (
        inputs.CsvFormat(job.encoding, job.delimiter, None, "csv") if csv_parts else None)
    opened = sparkstream.open_data(job.location, fmt, job.spark_master)
    try:
        spec = spec or stream_spec(job, opened.header)
        files = None if source is not None else sparkstream.fingerprint(opened)
        sha256 = source.sha256() if source is not None else sparkstream.digest(files, job.location)
        client, references, collector = _opening(job, spec, sha256, labels)
        spec, fold, pipeline = _fold_plan(job, opened, spec, client, references, collector)
        seen = sparkstream.accumulate_spark(opened, fold, pipeline if not spec.recorded else None)
        if source is not None:
            source.require_unchanged()  # a torn input gives no report
        elif sparkstream.fingerprint(opened) != files:
            raise BadInputError(f"{job.location} changed while it was read (files added, replaced "
                                f"or grown); run monitor.py again once it is complete")
    finally:
        opened.close()
    if seen.collector is not None:  # None: no partition at all (nothing read)
        collector.merge(seen.collector)
    seen.collector, seen.threshold_of = collector, references.threshold
    return _Read(spec, seen, sha256, client, references, collector, pipeline)


def _fold_plan(job: MonitorJob, opened: Any, spec: StreamSpec, client: Any,
               references: "References", collector: labelling.Collector
               ) -> tuple[StreamSpec, sparkstream.Fold, Any]:
    """What the executors need, resolved on the driver: the versions' thresholds, the label
    sampler's strata, the slice values kept apart, the side columns' profiles, the model."""
    pipeline = scoring = None
    if spec.recorded:
        side = _recorded_side(job, client, references, opened.header)
        if side is not None:
            spec = replace(spec, roles=replace(spec.roles, features=tuple(side.profiles)))
        rows = sparkstream.versions(opened)
        profiles = side.profiles if side is not None else None
    else:
        version = registry.resolve_version(client, job.model_name, job.model).version
        spec = replace(spec, version=version)
        with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
            scoring, spec, profiles = _scoring(job, spec, version, references, tmp)
            inputs.require_columns(opened.header, batch.side_columns_needed(scoring), job.shown)
            pipeline = batch.load_job_model(scoring)
        rows = {version: 1}
    main = max(sorted(rows), key=lambda v: rows[v]) if rows else None
    admitted = (sparkstream.top_slice_values(opened, spec.roles.slices[0])
                if spec.roles.slices else None)
    fold = sparkstream.Fold(spec, {v: references.threshold(v) for v in rows}, collector,
                            references.strata_edges(main) if main else [], profiles, admitted,
                            scoring)
    return spec, fold, pipeline


def _versions_seen(job: MonitorJob, client: Any, spec: StreamSpec, seen: StreamTotals
                   ) -> list[str]:
    """The model versions that scored the rows (refused when none did, or when a recorded
    version is not in the registry)."""
    if seen.scored == 0:
        raise BadInputError(f"{job.data} has no rows with a text or prediction to check; check "
                            f"--text-column (and the file's content)")
    if seen.skipped:
        log.warning("skipped %d rows with an empty text/prediction", seen.skipped)
    versions = sorted(seen.versions, key=lambda v: (len(v), v))
    if spec.recorded:
        registry.require_versions(client, job.model_name, versions, "the model_version column")
    return versions


def _recorded_side(job: MonitorJob, client: Any, references: "References",
                   header: list[str]) -> SideSums | None:
    """A predictions file that carries the side columns of the monitored version (--model, the
    champion by default; predict.py copies them with --id-columns) gets their drift checked
    against that version's profile; None otherwise."""
    try:
        version = registry.resolve_version(client, job.model_name, job.model).version
    except Exception:  # noqa: BLE001 - no such version: the file's own versions are checked
        return None
    reference = references.of(version)
    profiles = {c: p for c, p in (reference.side if reference else {}).items() if c in header}
    return SideSums(profiles, job.seed) if profiles else None


def _score_texts(job: MonitorJob, source: inputs.Input, spec: StreamSpec, version: str,
                 references: "References", collector: Any = None) -> tuple[StreamTotals, Any]:
    """Score raw texts as predict.py does: worker processes that each load the model (one per
    core by default), or this process for small inputs; returns the summary and the model when
    it was loaded here. A model reading side columns needs them in the input (exit 2 before
    anything is scored) and gets their drift checked against its reference profile."""
    workers = job.workers
    if workers == 0:  # automatic: one per core, unless the input is small
        small = job.data.stat().st_size < POOL_MIN_BYTES
        workers = 1 if small else (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        scoring_spec, spec, profiles = _scoring(job, spec, version, references, tmp)
        source.require(batch.side_columns_needed(scoring_spec))
        side = SideSums(profiles, job.seed) if profiles else None
        chunks = source.chunks(job.chunk_size, spec.columns(source.header))
        pipeline = batch.load_job_model(scoring_spec) if workers <= 1 else None
        log.info("scoring with %s v%s (requested %r), %d worker(s)", job.model_name, version,
                 job.model, workers)
        pairs = batch.scored_chunks(chunks, scoring_spec, batch.Execution(workers=workers, model=pipeline))
        return accumulate_scored(pairs, spec, references.threshold, collector, side), pipeline


def _scoring(job: MonitorJob, spec: StreamSpec, version: str, references: "References",
             folder: str) -> tuple[batch.ScoringSpec, StreamSpec, dict[str, Any] | None]:
    """How raw texts are scored with ``version`` (downloaded into ``folder``): the scoring
    spec, the stream spec with the side columns the model reads, and their reference
    profiles (None: no side columns, or a version without their profile)."""
    scoring_spec = batch.with_side_columns(batch.ScoringSpec(
        model_path=registry.download_model(job.model_name, version, folder),
        columns=replace(job.columns, ids=()), model_version=version,
        proba_columns=False, explain=0, model_name=job.model_name))
    profiles = None
    if scoring_spec.side_columns:
        spec = replace(spec, roles=replace(spec.roles, features=scoring_spec.side_columns))
        reference = references.of(version)
        if reference is not None and reference.side:
            profiles = reference.side
    return scoring_spec, spec, profiles


@dataclass
class _CheckFindings:
    alerts: list[str]
    performance: PerformanceReport | None
    checks: list[drift.Check]
    note: str
    reference_version: str | None = None
    estimated: EstimateReport | None = None  # performance estimated from the probabilities
    estimate_alerts: list[str] = field(default_factory=list)  # from the label-free estimate
    slices: slicing.SliceReport | None = None  # --slice-by


def _findings(job: MonitorJob, spec: StreamSpec, seen: StreamTotals, versions: list[str],
              references: dict[str, ReferenceProfile | None], pipeline: Any) -> _CheckFindings:
    main = seen.main_version
    reference = references[main]
    found = _CheckFindings([], None, [], "", main if reference else None)
    if spec.has_labels:
        classes = reference.classes if reference else sorted(
            {p for pairs in seen.tallies.values() for _, p in pairs})
        found.alerts, found.performance = alerts.evaluate_versions(
            {v: seen.tallies.get(v) for v in versions}, references, classes, job.thresholds,
            seen.unlabelled)
        _refuse_foreign_labels(found.performance, classes, job.columns.label)
        if found.performance is None:
            log.warning("no row has a label in %r: drift only", job.columns.label)
        elif found.performance.unknown_labels:
            log.warning("labels the model does not know (always errors): %s",
                        found.performance.unknown_labels[:20])
    if reference is None:
        found.note = (f"v{main} has no reference profile (trained before textops saved one): "
                      f"drift not checked; retrain to get one")
        log.warning(found.note)
    else:
        if seen.texts.items and pipeline is None:
            pipeline = _try_load(job.model_name, main)
        found.checks = drift.compare(reference, _current(job, spec, seen, pipeline),
                                     job.thresholds, job.seed)
        if seen.side is not None:
            found.checks += side_checks(seen.side.profiles, seen.side, job.thresholds, job.seed)
        if len(versions) > 1:
            found.note = (f"predictions from {len(versions)} model versions: the class-"
                          f"distribution and confidence checks use the {seen.versions[main]} rows "
                          f"of v{main} (the most frequent) against its reference; the text checks "
                          f"use every row")
    drifted = [c.name for c in found.checks if c.drifted]
    found.estimated, found.estimate_alerts = estimation.report_estimates(
        seen.expected, seen.expected_labelled, references, found.performance, job.thresholds,
        drifted)
    if found.estimated is not None:
        found.estimated = replace(found.estimated, class_mix=_class_mix(seen, versions,
                                                                        references))
    _log_estimate(found.estimated)
    return found


def _class_mix(seen: StreamTotals, versions: list[str],
               references: dict[str, ReferenceProfile | None]) -> dict[str, classmix.ClassMix]:
    """Each version's class mix tonight (those with probabilities and training priors), logged:
    a warning when it moved or the two estimators disagree."""
    mixes = {}
    for version in versions:
        reference = references.get(version)
        if reference is None:
            continue
        mix = classmix.class_mix(seen.proba.get(version), seen.predicted.get(version),
                                 reference.class_priors, reference.test_confusion)
        if mix is None:
            continue
        mixes[version] = mix
        if mix.moved > classmix.MOVED or mix.flagged:
            log.warning(mix.describe(version))
        else:
            log.info(mix.describe(version))
    return mixes


def _refuse_foreign_labels(performance: PerformanceReport | None, classes: list[str],
                           label_column: str) -> None:
    """Labels none of which is a class of the model are a format mismatch (``0.0``/``1.0``
    against a model of ``0``/``1``, or the wrong column), not a performance drop: exit 2."""
    if not performance or not performance.unknown_labels:
        return
    truth = set(performance.overall.support_per_class)
    if truth and truth <= set(performance.unknown_labels):
        raise BadInputError(
            f"none of the labels in {label_column!r} is a class of the model (found "
            f"{', '.join(map(repr, sorted(truth)[:5]))}; the model's classes: "
            f"{', '.join(map(repr, list(classes)[:10]))}); check --label-column and how the "
            f"labels are spelled")


def _log_estimate(estimated: EstimateReport | None) -> None:
    if estimated is None:
        log.info("performance not estimated: no probability in the input")
        return
    overall = estimated.overall
    low, high = overall.accuracy_interval
    log.info("estimated accuracy %.4f (%s; 90%% interval %.4f-%.4f) on %d rows, macro-F1 %s; %s",
             overall.accuracy, estimated.method_name.split(" (")[0], low, high, overall.rows,
             "unknown" if overall.macro_f1 is None else f"{overall.macro_f1:.4f}",
             overall.trust)
    realized = estimated.realized
    if realized and realized.estimated_accuracy is not None:
        log.info("on the %d labelled rows: estimated accuracy %.4f, realized %.4f (error %+.4f)",
                 realized.rows, realized.estimated_accuracy, realized.accuracy,
                 realized.accuracy_error)
    if estimated.note:
        log.warning(estimated.note)


def _current(job: MonitorJob, spec: StreamSpec, seen: StreamTotals, pipeline: Any) -> drift.Current:
    """What the drift checks compare with the reference (samples, bounded)."""
    main = seen.main_version
    confidence = np.asarray(seen.confidences(main), dtype=float)
    texts = seen.texts.items
    oov = None
    if spec.has_text and pipeline is not None and texts:
        oov = drift.oov_rates(texts, *drift.word_vocabulary(pipeline))
    sample = [texts[i] for i in drift.sample_indices(len(texts), job.domain_sample)]
    return drift.Current(
        rows=seen.versions[main], predicted_counts=dict(seen.predicted[main]),
        confidence=confidence if len(confidence) else None,
        lengths=np.asarray(seen.lengths.items, dtype=float) if spec.has_text else None,
        oov=oov, texts=sample if spec.has_text else None)


def _try_load(name: str, version: str) -> Any:
    try:
        return registry.load_pipeline(name, version)
    except Exception as exc:  # noqa: BLE001 - only the vocabulary check needs it
        log.warning("model v%s not loadable (%s): out-of-vocabulary rate not checked", version, exc)
        return None


def _slice_findings(found: _CheckFindings, job: MonitorJob, seen: StreamTotals,
                    reference: ReferenceProfile | None, collector: labelling.Collector) -> None:
    """--slice-by: each slice's figures against the main version's test accuracy at training;
    a slice that dropped (beyond chance, all slices considered) is a performance alert."""
    if seen.slices is None:
        return
    classes = list(reference.classes) if reference else sorted(
        {p for pairs in seen.tallies.values() for _, p in pairs})
    sample_of = None
    if collector.labels is not None:
        align = data.spelled_as(classes)
        sample_of = lambda values: collector.slice_estimate(align, values)  # noqa: E731
    found.slices = slicing.report(seen.slices, job.columns.slices[0], job.slice_top,
                                  job.slice_min_rows, reference, classes,
                                  job.thresholds.max_relative_drop, sample_of)
    checked = sum(1 for s in found.slices.slices if s.checked)
    log.info("slices by %r: %d reported, %d with at least %d rows checked, %d alert(s)%s",
             found.slices.column, len(found.slices.slices), checked, job.slice_min_rows,
             len(found.slices.alerts), f"; {found.slices.note}" if found.slices.note else "")
    found.alerts += found.slices.alerts


def _sample_estimate(found: _CheckFindings, collector: labelling.Collector,
                     reference: ReferenceProfile | None, job: MonitorJob, sha256: str) -> None:
    """With a labels file: the night's accuracy from the labelled sample, beside the label-free
    estimate (``estimated.sample``); alerts then come from it, not from the label-free one."""
    classes = list(reference.classes) if reference else []
    try:
        sample = collector.sample_estimate(data.spelled_as(classes), classes, sha256)
    except ValueError as exc:
        raise BadInputError(f"--labels {job.labels}: {exc}; label the to_label file written for "
                            f"this --data (joined on {', '.join(job.columns.ids) or 'row'})"
                            ) from None
    if sample is not None and found.estimated is None:
        raise BadInputError(f"--labels {job.labels}: the labelled sample is reported beside the "
                            f"label-free estimate, which needs the predictions' confidences: "
                            f"give predict.py's output with its probability column, or the texts")
    if sample is None:
        found.alerts += found.estimate_alerts
        return
    sample = replace(sample, label_free_accuracy=found.estimated.overall.accuracy)
    found.estimated = replace(found.estimated, sample=sample)
    low, high = sample.accuracy_interval
    log.info("labelled sample: accuracy %.4f (90%% interval %.4f-%.4f) from %d labelled rows; "
             "the label-free estimate was %+.4f off", sample.accuracy, low, high,
             sample.labelled_rows, sample.gap)
    if found.performance is None:  # the labelled sample is the judge tonight
        found.alerts += estimation.estimation_alerts(
            sample, found.estimated.overall.training_accuracy, job.thresholds, "overall",
            f"{sample.labelled_rows} labelled rows")


def _keep_labels(job: MonitorJob, collector: labelling.Collector) -> None:
    """Append the accepted labels to the ledger (once: the same file again adds nothing)."""
    if job.ledger is None or collector.labels is None:
        return
    rows = labelling.ledger_rows(collector.labels, job.columns.ids, collector.text_column,
                                 job.model_name, job.labeller,
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"))
    kept = ledger.append(job.ledger, rows)
    log.info("labels ledger %s: %d row(s) added, %d already there, %d relabelled a text an "
             "earlier batch labelled otherwise (both kept; the later one wins)", job.ledger,
             kept.added, kept.already, kept.conflicts)
    if kept.conflicts:
        log.warning("labels ledger: %d text(s) got another label than in an earlier batch",
                    kept.conflicts)


def _write_to_label(job: MonitorJob, collector: labelling.Collector, result: MonitorReport,
                    references: References) -> LabelSampleFile | None:
    """Write the rows to label when asked (--label-sample N) or when tonight's estimate is not
    to be trusted alone (drift, or estimators that disagree): into their own file, named by
    night, model version and data, under a --to-label folder (or the --to-label file). A file
    that already exists for this data is left as it is (the same seeded draw), and one in which
    any label was filled in is never replaced."""
    estimated = result.estimated.overall if result.estimated else None
    if job.label_sample_forced:
        why = f"--label-sample {job.label_sample_forced}"
    elif job.label_sample and ((estimated and estimated.label_a_sample) or result.drift.drifted):
        why = (estimated.trust if estimated else "") or "drift"
    else:
        return None
    if job.to_label is None or collector.sampler is None:
        return None
    version = result.model.versions[0] if len(result.model.versions) == 1 else "s"
    sample_id = (f"{datetime.now().strftime('%Y-%m-%d')}-{_slug(job.model_name)}-v{version}-"
                 f"{result.data.sha256[:12]}")
    target = job.to_label / f"{sample_id}.csv" if job.to_label_folder else job.to_label
    label_column = references.label_column(result.model.versions[0], job.columns.label)
    refuse_design_clash(job.columns.ids, label_column)
    kept = _kept_as_it_is(target, job.to_label_folder, label_column)
    if kept:
        log.warning("rows to label: %s is kept as it is (%s)", target, kept)
        return LabelSampleFile(str(target), None, why, None, kept)
    rows = collector.to_label(label_column, sample_id, result.data.sha256)
    with atomic_output(target, "w", encoding="utf-8", newline="") as handle:
        rows.to_csv(handle, index=False)
    log.warning("wrote %d rows to label to %s (%s); fill in %r and pass --labels %s", len(rows),
                target, why, label_column, target)
    return LabelSampleFile(str(target), int(len(rows)), why,
                           int(rows["stratum"].nunique()) if len(rows) else 0)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _kept_as_it_is(target: Path, per_sample: bool, label_column: str) -> str:
    """Why an existing to_label file must not be written over ("" when it may): it holds
    labels someone filled in, or (a file of its own per sample) it is this very sample."""
    if not target.exists():
        return ""
    try:
        frame = pd.read_csv(target, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            sep=None, engine="python")
    except Exception:  # noqa: BLE001 - unreadable: somebody's file; never written over
        return "it cannot be read as a to_label file; move it away to get a new sample"
    columns = [c for c in (label_column, FALLBACK_LABEL) if c in frame.columns]
    if columns and (frame[columns[0]].str.strip() != "").any():
        return "labels were filled in; pass it to --labels, or move it away for a new sample"
    return "already written for this data: the same seeded sample" if per_sample else ""


def _report(job: MonitorJob, spec: StreamSpec, seen: StreamTotals, versions: list[str],
            found: _CheckFindings, sha256: str) -> MonitorReport:
    """The report (the JSON, the HTML page and the MLflow run are made from it)."""
    main = seen.main_version
    main_estimate = found.estimated.per_version.get(main) if found.estimated else None
    movement = estimation.moved(main_estimate, main_estimate.at_training if main_estimate else None)
    drifted = [f"drift: {c.name}: {c.detail}; {movement}" for c in found.checks if c.drifted]
    status = alerts.verdict(found.alerts, drifted)
    return MonitorReport(
        status=status, exit_code=int(alerts.VERDICTS[status]), alerts=found.alerts,
        checked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        data=DataSummary(job.shown, sha256, seen.rows, seen.scored, seen.skipped),
        model=ModelSummary(job.model_name, versions,
                           "recorded predictions" if spec.recorded else f"@{job.model}"),
        thresholds=job.thresholds, performance=found.performance, estimated=found.estimated,
        drift=DriftSummary(found.reference_version, seen.versions[main], list(found.checks),
                           drifted, found.note), slices=found.slices)
