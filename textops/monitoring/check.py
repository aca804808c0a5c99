"""What monitor.py does, step by step: inspect the input, read it once into a bounded summary,
check performance (labelled rows) and drift (every row) against each version's reference
profile, then write the reports and log the monitoring run."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import config as cfg
from common import BadInputError, atomic_output, refuse_overwriting
from textops import batch, data, registry
from textops.monitoring import alerts, drift, estimation, report, runs
from textops.monitoring.reference import load_reference
from textops.monitoring.stream import (Seen, StreamSpec, accumulate, accumulate_scored,
                                       proba_classes)

log = logging.getLogger(__name__)

THRESHOLDS = ("min_accuracy", "min_macro_f1", "max_relative_drop", "min_class_recall",
              "min_class_support", "psi_max", "psi_pvalue", "ks_max", "ks_pvalue", "oov_increase_max",
              "domain_auc_max", "domain_pvalue", "domain_min_rows")


@dataclass(frozen=True)
class MonitorJob:
    """One monitor.py run, resolved from the configuration and flags."""

    data: Path
    report: Path
    html: Path | None
    model_name: str
    model: str  # alias, 'latest' or version, for raw texts
    text_column: str
    label_column: str
    label_required: bool  # --label-column given: the column must exist
    experiment: str
    chunk_size: int
    encoding: str
    delimiter: str
    thresholds: dict[str, Any]
    seed: int = 42
    domain_sample: int = 1000
    history_runs: int = 30
    workers: int = 0  # processes scoring raw texts; 0 = automatic
    pool_min_bytes: int = 2_000_000  # automatic: smaller inputs are scored in this process


def job_from_config(config: dict[str, Any], label_required: bool) -> MonitorJob:
    m = config["monitor"]
    if not m["data"]:
        raise BadInputError("no input given; pass --data PATH")
    if int(m["chunk_size"]) < 1:
        raise BadInputError(f"--chunk-size must be positive, got {m['chunk_size']}")
    data_path, report_path = cfg.resolve_path(m["data"]), cfg.resolve_path(m["report"])
    html = cfg.resolve_path(m["html"]) if m["html"] else None
    refuse_overwriting({"--data": data_path}, {"--report": report_path, "--html": html})
    return MonitorJob(
        data=data_path, report=report_path, html=html,
        model_name=config["mlflow"]["model_name"], model=str(m["model"]),
        text_column=config["data"]["text_column"], label_column=config["data"]["label_column"],
        label_required=label_required, experiment=config["mlflow"]["monitor_experiment"],
        chunk_size=int(m["chunk_size"]), encoding=config["data"]["encoding"],
        delimiter=config["data"]["delimiter"], thresholds={k: m[k] for k in THRESHOLDS},
        seed=int(config["data"]["random_seed"]), domain_sample=int(m["domain_sample"]),
        history_runs=int(m["history_runs"]),
        workers=max(int(m["workers"]), 0))


def inspect_input(job: MonitorJob) -> tuple[data.CsvFormat, list[str], StreamSpec]:
    """Everything wrong with the input fails here, before the tracking store is touched."""
    data.check_readable_file(job.data)
    fmt = data.detect_format(job.data, job.encoding, job.delimiter)
    header = data.read_header(job.data, fmt)
    recorded = {"prediction", "model_version"} <= set(header)
    if job.label_required:
        data.require_columns(header, {job.label_column: "--label-column"}, job.data)
    if not recorded:
        data.require_columns(header, {job.text_column: "--text-column"}, job.data)
    spec = StreamSpec(job.text_column, job.label_column, has_text=job.text_column in header,
                      has_labels=job.label_column in header, recorded=recorded, seed=job.seed,
                      proba_classes=proba_classes(header) if recorded else ())
    return fmt, header, spec


def run(job: MonitorJob, config: dict[str, Any]) -> dict[str, Any]:
    """Check the data; write the JSON and HTML reports and log the run; returns the report."""
    fmt, header, spec = inspect_input(job)
    log.info("monitor: data=%s mode=%s, %s", job.data,
             "recorded predictions" if spec.recorded else f"score with {job.model_name}@{job.model}",
             f"labels in {job.label_column!r}" if spec.has_labels else "no labels (drift only)")
    client = registry.connect(config)
    chunks = data.iter_table(job.data, fmt, job.chunk_size, spec.columns(header))
    pipeline = None
    if spec.recorded:
        seen = accumulate(chunks, spec, None)
    else:
        resolved = registry.resolve_version(client, job.model_name, job.model)
        spec = replace(spec, version=resolved.version)
        seen, pipeline = _score_texts(job, chunks, spec, resolved.version)
    if seen.scored == 0:
        raise BadInputError(f"{job.data} has no rows with a text or prediction to check; check "
                            f"--text-column (and the file's content)")
    if seen.skipped:
        log.warning("skipped %d rows with an empty text/prediction", seen.skipped)
    versions = sorted(seen.versions, key=lambda v: (len(v), v))
    if spec.recorded:
        registry.require_versions(client, job.model_name, versions, "the model_version column")
    references = {v: load_reference(client, job.model_name, v) for v in versions}
    found = _findings(job, spec, seen, versions, references, pipeline)
    result = _report(job, spec, seen, versions, found)
    experiment_id = registry.ensure_experiment(client, config, job.experiment)
    with atomic_output(job.report, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
    if job.html is not None:
        points = runs.history(client, experiment_id, job.model_name, job.history_runs, result)
        report.write_html(job.html, result,
                          report.plots(result, references[seen.main_version], seen, points))
    runs.log_run(experiment_id, result, [job.report] + ([job.html] if job.html else []))
    return result


def _score_texts(job: MonitorJob, chunks: Any, spec: StreamSpec, version: str) -> tuple[Seen, Any]:
    """Score raw texts as predict.py does: worker processes that each load the model (one per
    core by default), or this process for small inputs; returns the summary and the model when
    it was loaded here."""
    workers = job.workers
    if workers == 0:  # automatic: one per core, unless the input is small
        small = job.data.stat().st_size < job.pool_min_bytes
        workers = 1 if small else (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
        model_job = batch.Job(registry.download_model(job.model_name, version, tmp),
                              job.text_column, (), version, False, 0, model_name=job.model_name)
        pipeline = batch.load_job_model(model_job) if workers <= 1 else None
        log.info("scoring with %s v%s (requested %r), %d worker(s)", job.model_name, version,
                 job.model, workers)
        pairs = batch.scored_chunks(chunks, model_job, batch.Run(workers=workers, model=pipeline))
        return accumulate_scored(pairs, spec), pipeline


@dataclass
class _Findings:
    alerts: list[str]
    performance: dict[str, Any] | None
    checks: list[drift.Check]
    note: str
    reference_version: str | None = None
    estimated: dict[str, Any] | None = None  # performance estimated from the probabilities


def _findings(job: MonitorJob, spec: StreamSpec, seen: Seen, versions: list[str],
              references: dict[str, Any], pipeline: Any) -> _Findings:
    main = seen.main_version
    reference = references[main]
    found = _Findings([], None, [], "", main if reference else None)
    if spec.has_labels:
        classes = reference["classes"] if reference else sorted(
            {p for pairs in seen.tallies.values() for _, p in pairs})
        found.alerts, found.performance = alerts.evaluate_versions(
            {v: seen.tallies.get(v) for v in versions}, references, classes, job.thresholds,
            seen.unlabelled)
        _refuse_foreign_labels(found.performance, classes, job.label_column)
        if found.performance is None:
            log.warning("no row has a label in %r: drift only", job.label_column)
        elif found.performance["unknown_labels"]:
            log.warning("labels the model does not know (always errors): %s",
                        found.performance["unknown_labels"][:20])
    found.estimated, estimate_alerts = estimation.report_estimates(
        seen.expected, seen.expected_labelled, references, found.performance, job.thresholds)
    found.alerts += estimate_alerts
    _log_estimate(found.estimated)
    if reference is None:
        found.note = (f"v{main} has no reference profile (trained before textops saved one): "
                      f"drift not checked; retrain to get one")
        log.warning(found.note)
        return found
    if seen.texts.items and pipeline is None:
        pipeline = _try_load(job.model_name, main)
    found.checks = drift.compare(reference, _current(job, spec, seen, pipeline), job.thresholds,
                                 job.seed)
    if len(versions) > 1:
        found.note = (f"predictions from {len(versions)} model versions: the class-distribution "
                      f"and confidence checks use the {seen.versions[main]} rows of v{main} (the "
                      f"most frequent) against its reference; the text checks use every row")
    return found


def _refuse_foreign_labels(performance: dict[str, Any] | None, classes: list[str],
                           label_column: str) -> None:
    """Labels none of which is a class of the model are a format mismatch (``0.0``/``1.0``
    against a model of ``0``/``1``, or the wrong column), not a performance drop: exit 2."""
    if not performance or not performance["unknown_labels"]:
        return
    truth = set(performance["overall"]["support_per_class"])
    if truth and truth <= set(performance["unknown_labels"]):
        raise BadInputError(
            f"none of the labels in {label_column!r} is a class of the model (found "
            f"{', '.join(map(repr, sorted(truth)[:5]))}; the model's classes: "
            f"{', '.join(map(repr, list(classes)[:10]))}); check --label-column and how the "
            f"labels are spelled")


def _log_estimate(estimated: dict[str, Any] | None) -> None:
    if estimated is None:
        log.info("performance not estimated: no probability in the input")
        return
    low, high = estimated["accuracy_interval"]
    log.info("estimated accuracy %.4f (90%% interval %.4f-%.4f) on %d rows, macro-F1 %s",
             estimated["accuracy"], low, high, estimated["rows"],
             "unknown" if estimated["macro_f1"] is None else f"{estimated['macro_f1']:.4f}")
    realized = estimated["realized"]
    if realized and realized["estimated_accuracy"] is not None:
        log.info("on the %d labelled rows: estimated accuracy %.4f, realized %.4f (error %+.4f)",
                 realized["rows"], realized["estimated_accuracy"], realized["accuracy"],
                 realized["accuracy_error"])
    if estimated["note"]:
        log.warning(estimated["note"])


def _current(job: MonitorJob, spec: StreamSpec, seen: Seen, pipeline: Any) -> drift.Current:
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


def _report(job: MonitorJob, spec: StreamSpec, seen: Seen, versions: list[str],
            found: _Findings) -> dict[str, Any]:
    """The JSON report (also what the HTML page and the MLflow run are made from)."""
    main = seen.main_version
    main_estimate = (found.estimated or {}).get("per_version", {}).get(main)
    movement = estimation.moved(main_estimate, (main_estimate or {}).get("at_training"))
    drifted = [f"drift: {c.name}: {c.detail}; {movement}" for c in found.checks if c.drifted]
    status = alerts.verdict(found.alerts, drifted)
    return {
        "status": status,
        "exit_code": int(alerts.VERDICTS[status]),
        "alerts": found.alerts,
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": str(job.data), "sha256": data.file_sha256(job.data),
                 "rows": seen.rows, "rows_checked": seen.scored, "rows_skipped": seen.skipped},
        "model": {"name": job.model_name, "versions": versions,
                  "source": "recorded predictions" if spec.recorded else f"@{job.model}"},
        "thresholds": job.thresholds,
        "performance": found.performance,
        "estimated": found.estimated,
        "drift": {"reference_version": found.reference_version,
                  "rows_of_reference_version": seen.versions[main],
                  "checks": [c.to_dict() for c in found.checks],
                  "drifted": drifted, "note": found.note},
    }
