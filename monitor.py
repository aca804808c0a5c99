#!/usr/bin/env python
"""Check a model on recent data: drift without labels, performance with them (for CI / cron).

Input, by its columns:
  * texts (the text column): the model (default @champion) scores them;
  * a predictions file written by predict.py (prediction, model_version, optionally probability
    and the text): the recorded predictions are used, per model version.
With a label column, performance is checked too (per model version for predictions files).

Performance alerts (exit 1): accuracy < --min-accuracy, macro-F1 < --min-macro-f1, either one more
than --max-relative-drop below the version's own test metrics at training time, or a class's
recall < --min-class-recall (classes with enough labelled rows).
Drift alerts (exit 3), against the reference profile saved with the model version at training
time: predicted-class shift (PSI > --psi-max; chi-square p reported), confidence and text-length
shift (Kolmogorov-Smirnov D > --ks-max with p < TEXTOPS_MONITOR_KS_PVALUE), out-of-vocabulary
rate rising by more than --oov-increase-max, text content (domain classifier ROC-AUC >
--domain-auc-max and above chance at p < TEXTOPS_MONITOR_DOMAIN_PVALUE, with the words typical of
each side).
Writes a JSON report and a self-contained HTML report (atomically) and logs an MLflow run in the
monitoring experiment, tagged with the model version, so the MLflow UI charts it over time.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import (
    BadInputError,
    add_common_arguments,
    atomic_output,
    cli_path,
    config_path,
    make_parser,
    run_main,
    start,
)

log = logging.getLogger("monitor")


def parse_args(argv: list[str] | None, config: dict[str, Any]):
    m = config["monitor"]
    parser = make_parser(__doc__, epilog="Example: python monitor.py --data today_scored.csv; "
                                         "[ $? -eq 3 ] && notify-team 'inputs drifted'")
    parser.add_argument("--data", type=cli_path, default=config_path(m["data"]),
                        help="CSV of texts, or predict.py output; with labels or without "
                             "[TEXTOPS_MONITOR_DATA]")
    parser.add_argument("--label-column", default=None,
                        help="column holding the true label; when the default column is absent "
                             "only drift is checked [TEXTOPS_LABEL_COLUMN, default "
                             f"{config['data']['label_column']}]")
    parser.add_argument("--model", default=m["model"],
                        help="model to score raw data with: alias, 'latest' or version; ignored "
                             "for predictions files [TEXTOPS_MONITOR_MODEL]")
    parser.add_argument("--report", type=cli_path, default=config_path(m["report"]),
                        help="JSON report path, replaced atomically [TEXTOPS_MONITOR_REPORT]")
    parser.add_argument("--html", type=cli_path, default=config_path(m["html"]) if m["html"] else None,
                        help="HTML report path, replaced atomically [TEXTOPS_MONITOR_HTML]")
    parser.add_argument("--no-html", dest="html", action="store_const", const=None,
                        help="do not write the HTML report")
    g = parser.add_argument_group("performance alerts (exit 1)")
    g.add_argument("--min-accuracy", type=float, default=m["min_accuracy"],
                   help="alert below this accuracy [TEXTOPS_MONITOR_MIN_ACCURACY]")
    g.add_argument("--min-macro-f1", type=float, default=m["min_macro_f1"],
                   help="alert below this macro-F1 [TEXTOPS_MONITOR_MIN_MACRO_F1]")
    g.add_argument("--max-relative-drop", type=float, default=m["max_relative_drop"],
                   help="alert when accuracy or macro-F1 is this fraction below the version's "
                        "test metrics at training time [TEXTOPS_MONITOR_MAX_RELATIVE_DROP]")
    g.add_argument("--min-class-recall", type=float, default=m["min_class_recall"],
                   help="alert when a class with >= TEXTOPS_MONITOR_MIN_CLASS_SUPPORT labelled "
                        "rows has a lower recall [TEXTOPS_MONITOR_MIN_CLASS_RECALL]")
    g = parser.add_argument_group("drift alerts (exit 3)")
    g.add_argument("--psi-max", type=float, default=m["psi_max"],
                   help="predicted-class distribution: population stability index above this "
                        "[TEXTOPS_MONITOR_PSI_MAX]")
    g.add_argument("--ks-max", type=float, default=m["ks_max"],
                   help="confidence and text length: Kolmogorov-Smirnov D above this (and p "
                        "below TEXTOPS_MONITOR_KS_PVALUE) [TEXTOPS_MONITOR_KS_MAX]")
    g.add_argument("--oov-increase-max", type=float, default=m["oov_increase_max"],
                   help="out-of-vocabulary rate rising by more than this (absolute) "
                        "[TEXTOPS_MONITOR_OOV_INCREASE_MAX]")
    g.add_argument("--domain-auc-max", type=float, default=m["domain_auc_max"],
                   help="text content: domain classifier ROC-AUC above this "
                        "[TEXTOPS_MONITOR_DOMAIN_AUC_MAX]")
    parser.add_argument("--experiment", default=config["mlflow"]["monitor_experiment"],
                        help="MLflow experiment for monitoring runs [TEXTOPS_MONITOR_EXPERIMENT]")
    parser.add_argument("--chunk-size", type=int, default=config["predict"]["chunk_size"],
                        help="rows read and scored at a time [TEXTOPS_PREDICT_CHUNK_SIZE]")
    add_common_arguments(parser, config)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    config, args = start("monitor", parse_args, argv)
    started = time.perf_counter()

    import dataio
    import drift
    import monitoring
    import tracking

    if args.data is None:
        raise BadInputError("no input given; pass --data PATH")
    if args.chunk_size < 1:
        raise BadInputError(f"--chunk-size must be positive, got {args.chunk_size}")
    m = config["monitor"]
    thresholds = {
        "min_accuracy": args.min_accuracy, "min_macro_f1": args.min_macro_f1,
        "max_relative_drop": args.max_relative_drop, "min_class_recall": args.min_class_recall,
        "min_class_support": int(m["min_class_support"]), "psi_max": args.psi_max,
        "ks_max": args.ks_max, "ks_pvalue": float(m["ks_pvalue"]),
        "oov_increase_max": args.oov_increase_max, "domain_auc_max": args.domain_auc_max,
        "domain_pvalue": float(m["domain_pvalue"]),
        "domain_min_rows": int(m["domain_min_rows"]),
    }
    data_path = Path(args.data)
    text_col = config["data"]["text_column"]
    label_col = args.label_column or config["data"]["label_column"]
    name = config["mlflow"]["model_name"]

    dataio.check_readable_file(data_path)
    fmt = dataio.detect_format(data_path, config["data"]["encoding"], config["data"]["delimiter"])
    header = set(dataio.read_header(data_path, fmt))
    recorded = {"prediction", "model_version"} <= header
    if args.label_column is not None:  # asked for explicitly: it must be there
        dataio.require_columns(header, {label_col: "--label-column"}, data_path)
    if not recorded:
        dataio.require_columns(header, {text_col: "--text-column"}, data_path)
    has_labels, has_text = label_col in header, text_col in header
    log.info("monitor: data=%s mode=%s, %s", data_path,
             "recorded predictions" if recorded else f"score with {name}@{args.model}",
             f"labels in {label_col!r}" if has_labels else "no labels (drift only)")

    client = tracking.connect(config)
    pipeline, scored_version = None, None
    if not recorded:
        resolved = tracking.resolve_version(client, name, args.model)
        scored_version = resolved.version
        pipeline = tracking.load_pipeline(name, scored_version)
        log.info("scoring with %s v%s (requested %r)", name, scored_version, args.model)

    seen = _stream(data_path, fmt, header, args.chunk_size, recorded, has_labels, has_text, text_col,
                   label_col, pipeline, scored_version, int(config["data"]["random_seed"]))
    if seen.scored == 0:
        raise BadInputError(f"{data_path} has no rows with a text or prediction to check; check "
                            f"--text-column (and the file's content)")
    if seen.skipped:
        log.warning("skipped %d rows with an empty text/prediction", seen.skipped)
    versions = sorted(seen.versions, key=lambda v: (len(v), v))
    main_version = seen.versions.most_common(1)[0][0]
    references = {v: load_reference(client, name, v) for v in versions}
    reference = references[main_version]

    # Performance (labelled rows)
    alerts: list[str] = []
    performance = None
    if has_labels:
        classes = reference["classes"] if reference else sorted({p for t in seen.tallies.values()
                                                                 for _, p in t.pairs})
        overall_pairs = Counter()
        per_version = {}
        for v in versions:
            tally = seen.tallies.get(v)
            if tally is None or tally.rows == 0:
                continue
            pairs = _align(tally.pairs, classes)
            overall_pairs.update(pairs)
            per_version[v] = monitoring.performance(pairs)
            per_version[v]["reference"] = _reference_metrics(references[v])
        if overall_pairs:
            overall = monitoring.performance(overall_pairs)
            single = len(per_version) == 1
            alerts += monitoring.performance_alerts(
                overall, per_version[next(iter(per_version))]["reference"] if single else None,
                thresholds, "overall")
            if not single:
                for v, stats in per_version.items():
                    alerts += monitoring.performance_alerts(stats, stats["reference"], thresholds,
                                                            f"model v{v}")
            unknown = sorted({t for t, _ in overall_pairs} - set(classes))
            if unknown:
                log.warning("labels the model does not know (always errors): %s", unknown[:20])
            performance = {"overall": overall, "per_version": per_version,
                           "unknown_labels": unknown, "rows_without_label": seen.unlabelled}
        else:
            log.warning("no row has a label in %r: drift only", label_col)

    # Drift (all rows)
    checks: list = []
    note = ""
    if reference is None:
        note = (f"v{main_version} has no reference profile (trained before textops saved one): "
                f"drift not checked; retrain to get one")
        log.warning(note)
    else:
        if seen.texts.items and pipeline is None:
            pipeline = _try_load(tracking, name, main_version)
        current = drift.Current(
            rows=seen.versions[main_version], predicted_counts=dict(seen.predicted[main_version]),
            confidence=np.asarray(_items(seen.confidence.get(main_version)), dtype=float),
            lengths=np.asarray(seen.lengths.items, dtype=float) if has_text else None,
            oov=_oov(drift, pipeline, seen.texts.items) if has_text else None,
            texts=_subsample(seen.texts.items, int(m["domain_sample"])) if has_text else None)
        if not len(current.confidence):
            current.confidence = None
        checks = drift.compare(reference, current, thresholds, int(config["data"]["random_seed"]))
        if len(versions) > 1:
            note = (f"predictions from {len(versions)} model versions: the class-distribution and "
                    f"confidence checks use the {seen.versions[main_version]} rows of "
                    f"v{main_version} (the most frequent) against its reference; the text checks "
                    f"use every row")
    drifted = [f"drift: {c.name}: {c.detail}" for c in checks if c.drifted]
    status = monitoring.verdict(alerts, drifted)
    exit_code = monitoring.VERDICTS[status]

    report = {
        "status": status,
        "exit_code": int(exit_code),
        "alerts": alerts,
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": str(data_path), "sha256": dataio.file_sha256(data_path),
                 "rows": seen.rows, "rows_checked": seen.scored, "rows_skipped": seen.skipped},
        "model": {"name": name, "versions": versions,
                  "source": "recorded predictions" if recorded else f"@{args.model}"},
        "thresholds": thresholds,
        "performance": performance,
        "drift": {"reference_version": main_version if reference else None,
                  "rows_of_reference_version": seen.versions[main_version],
                  "checks": [c.to_dict() for c in checks],
                  "drifted": drifted, "note": note},
    }
    experiment_id = tracking.ensure_experiment(client, config, args.experiment)
    history = _history(client, experiment_id, name, int(m["history_runs"]), report)
    report_path = Path(args.report)
    with atomic_output(report_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
    html_path = Path(args.html) if args.html else None
    if html_path is not None:
        _write_html(html_path, report, reference, seen, history)
    _log_run(experiment_id, report, [report_path] + ([html_path] if html_path else []))

    for alert in alerts + drifted:
        log.warning("ALERT %s", alert)
    log.info("monitor finished in %.1f s: %s (%d rows)", time.perf_counter() - started, status,
             seen.rows)
    print(_summary(report) + f" (report {report_path}" +
          (f", {html_path})" if html_path else ")"))
    return int(exit_code)


# --------------------------------------------------------------------------------------------
# Reading the data once, in chunks
# --------------------------------------------------------------------------------------------
class Seen:
    """Everything kept from the stream: counts, confusion tallies and bounded samples."""

    def __init__(self, seed: int):
        import monitoring

        self.rows = self.scored = self.skipped = self.unlabelled = 0
        self.seed = seed
        self.predicted: dict[str, Counter] = {}  # per model version
        self.versions: Counter = Counter()
        self.tallies: dict[str, Any] = {}
        self.confidence: dict[str, Any] = {}  # per model version: a Reservoir
        self.lengths = monitoring.Reservoir(SAMPLE_VALUES, seed + 1)
        self.texts = monitoring.Reservoir(SAMPLE_TEXTS, seed + 2)


SAMPLE_VALUES = 50_000  # confidences / text lengths kept for the KS tests
SAMPLE_TEXTS = 5_000  # texts kept for the out-of-vocabulary rate and the domain classifier


def _stream(path: Path, fmt, header: set[str], chunk_size: int, recorded: bool, has_labels: bool,
            has_text: bool, text_col: str, label_col: str, pipeline, version: str | None,
            seed: int) -> Seen:
    import dataio
    import modeling
    import monitoring

    seen = Seen(seed)
    wanted = ([text_col] if has_text else []) + ([label_col] if has_labels else [])
    if recorded:
        wanted += ["prediction", "model_version", "probability"]
    usecols = [c for c in dict.fromkeys(wanted) if c in header]
    for chunk in dataio.iter_table(path, fmt, chunk_size, usecols):
        seen.rows += len(chunk)
        if has_text:
            texts = chunk[text_col].fillna("").astype(str)
            blank = (texts.str.strip() == "").to_numpy()
        if recorded:
            usable = chunk["prediction"].notna().to_numpy()
            chunk = chunk[usable]
            predicted = chunk["prediction"].astype(str).to_numpy()
            versions = chunk["model_version"].fillna("").astype(str).str.strip().to_numpy()
            confidence = (pd.to_numeric(chunk["probability"], errors="coerce").to_numpy()
                          if "probability" in chunk else np.array([]))
        else:
            usable = ~blank
            chunk = chunk[usable]
            if len(chunk):
                predicted, proba = modeling.score_texts(pipeline, chunk[[text_col]])
                predicted = np.asarray(predicted).astype(str)
                confidence = proba.max(axis=1)
            else:
                predicted, confidence = np.array([], dtype=str), np.array([])
            versions = np.full(len(chunk), str(version), dtype=object)
        seen.skipped += int((~usable).sum())
        if not len(chunk):
            continue
        seen.scored += len(chunk)
        seen.versions.update(versions)
        for v in np.unique(versions):  # model-dependent statistics are kept per version
            mask = versions == v
            seen.predicted.setdefault(str(v), Counter()).update(predicted[mask])
            if len(confidence):
                values = confidence[mask]
                seen.confidence.setdefault(
                    str(v), monitoring.Reservoir(SAMPLE_VALUES, seen.seed)).add(
                    values[np.isfinite(values)].tolist())
        if has_text:
            kept = texts[usable]
            seen.lengths.add(kept.str.len().tolist())
            seen.texts.add(kept.tolist())
        if has_labels:
            labels = chunk[label_col]
            labelled = labels.notna().to_numpy()
            seen.unlabelled += int((~labelled).sum())
            truth = labels[labelled].astype(str).str.strip().to_numpy()
            for v in np.unique(versions[labelled]):
                mask = versions[labelled] == v
                seen.tallies.setdefault(str(v), monitoring.VersionTally()).add(
                    truth[mask], predicted[labelled][mask])
    return seen


def _items(reservoir) -> list:
    return reservoir.items if reservoir is not None else []


def _align(pairs: Counter, classes: list[str]) -> Counter:
    """Label spellings mapped onto the model's (``TRUE`` -> ``True``)."""
    by_key = {str(c).casefold(): str(c) for c in classes}
    aligned = Counter()
    for (truth, predicted), n in pairs.items():
        aligned[(by_key.get(truth.casefold(), truth), predicted)] += n
    return aligned


def _subsample(items: list, size: int, seed: int = 0) -> list:
    import drift

    return [items[i] for i in drift.sample_indices(len(items), size, seed)]


def _oov(drift, pipeline, texts: list[str]):
    if pipeline is None or not texts:
        return None
    vocabulary, stop_words, preprocess = drift.word_vocabulary(pipeline)
    return drift.oov_rates(texts, vocabulary, stop_words, preprocess)


def _try_load(tracking, name: str, version: str):
    try:
        return tracking.load_pipeline(name, version)
    except Exception as exc:  # noqa: BLE001 - only the vocabulary check needs it
        log.warning("model v%s not loadable (%s): out-of-vocabulary rate not checked", version, exc)
        return None


# --------------------------------------------------------------------------------------------
# Reference, history, outputs
# --------------------------------------------------------------------------------------------
def load_reference(client, name: str, version: str) -> dict[str, Any] | None:
    """The version's reference profile saved by train.py (None when it has none)."""
    import tempfile

    import drift

    try:
        run_id = client.get_model_version(name, version).run_id
    except Exception as exc:  # noqa: BLE001 - e.g. a version typed by hand in a predictions file
        log.warning("model %s v%s not found in the registry: %s", name, version, exc)
        return None
    with tempfile.TemporaryDirectory(prefix="textops-ref-") as tmp:
        try:
            path = client.download_artifacts(run_id, f"{drift.REFERENCE_DIR}/{drift.REFERENCE_FILE}", tmp)
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - older versions have no reference
            log.info("no reference profile for %s v%s: %s", name, version, exc)
            return None


def _reference_metrics(reference: dict[str, Any] | None) -> dict[str, float]:
    metrics = (reference or {}).get("metrics", {})
    return {k: metrics[k] for k in ("accuracy", "macro_f1") if k in metrics}


def _history(client, experiment_id: str, name: str, limit: int,
             report: dict[str, Any]) -> list[dict[str, Any]]:
    """Earlier monitoring runs of this model (oldest first), plus this one."""
    points = []
    try:
        runs = client.search_runs([experiment_id], f"tags.`textops.model_name` = '{name}'",
                                  order_by=["attributes.start_time DESC"], max_results=limit)
    except Exception as exc:  # noqa: BLE001 - the history is a nice-to-have
        log.info("monitoring history unavailable: %s", exc)
        runs = []
    for run in reversed(runs):
        metrics = run.data.metrics
        points.append({"time": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc),
                       "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
                       "drift.text_content": metrics.get("drift.text_content")})
    now = {"time": datetime.now(timezone.utc)}
    if report["performance"]:
        now.update(accuracy=report["performance"]["overall"]["accuracy"],
                   macro_f1=report["performance"]["overall"]["macro_f1"])
    for check in report["drift"]["checks"]:
        if check["name"] == "text_content":
            now["drift.text_content"] = check["value"]
    return points + [now]


def _write_html(path: Path, report: dict[str, Any], reference: dict[str, Any] | None, seen: Seen,
                history: list[dict[str, Any]]) -> None:
    import report_html

    plots = {}
    if reference:
        version = report["drift"]["reference_version"]
        predicted = seen.predicted.get(version, Counter())
        total = sum(predicted.values()) or 1
        plots["Predicted class distribution"] = report_html.class_plot(
            reference["predicted_distribution"],
            {c: predicted.get(c, 0) / total for c in reference["classes"]})
        confidence = _items(seen.confidence.get(version))
        if confidence:
            plots["Confidence (probability of the predicted label)"] = report_html.histogram_plot(
                reference["confidence"]["sample"], confidence, "Confidence",
                "probability of the predicted label", np.linspace(0, 1, 21))
        if seen.lengths.items:
            top = max(np.percentile(reference["length"]["sample"], 99), 10)
            plots["Text length"] = report_html.histogram_plot(
                reference["length"]["sample"], seen.lengths.items, "Text length",
                "characters (longer texts in the last bin)", np.linspace(0, top, 31))
    if sum(1 for h in history if h.get("accuracy") is not None or
           h.get("drift.text_content") is not None) >= 2:
        plots["Monitoring history"] = report_html.history_plot(history)
    page = report_html.render(report, plots)
    with atomic_output(path, "w", encoding="utf-8") as handle:
        handle.write(page)


def _summary(report: dict[str, Any]) -> str:
    parts = [f"{report['status'].upper()}: {report['model']['name']} "
             + ",".join(f"v{v}" for v in report["model"]["versions"])]
    if report["performance"]:
        overall = report["performance"]["overall"]
        parts.append(f"accuracy {overall['accuracy']:.4f} macro-F1 {overall['macro_f1']:.4f} on "
                     f"{overall['rows']} labelled rows")
    checks = report["drift"]["checks"]
    if checks:
        parts.append("drift in " + (", ".join(c["name"] for c in checks if c["drifted"]) or "none")
                     + f" of {sum(c['value'] is not None for c in checks)} checks")
    parts += report["alerts"]
    return "; ".join(parts)


def _log_run(experiment_id: str, report: dict[str, Any], artifacts: list[Path]) -> None:
    import mlflow

    versions = report["model"]["versions"]
    with mlflow.start_run(experiment_id=experiment_id, run_name="monitor"):
        mlflow.set_tags({
            "textops.model_name": report["model"]["name"],
            "textops.model_version": ",".join(versions),
            "textops.status": report["status"],
            "textops.alerts": " | ".join(report["alerts"] + report["drift"]["drifted"])[:5000],
        })
        mlflow.log_params({
            "data.path": report["data"]["path"],
            "data.sha256": report["data"]["sha256"],
            **{f"threshold.{k}": v for k, v in report["thresholds"].items()},
        })
        metrics = {"rows": report["data"]["rows"], "alerts": len(report["alerts"]),
                   "drift_alerts": len(report["drift"]["drifted"])}
        if report["performance"]:
            overall = report["performance"]["overall"]
            metrics.update(accuracy=overall["accuracy"], macro_f1=overall["macro_f1"])
            for v, stats in report["performance"]["per_version"].items():
                metrics[f"v{v}.accuracy"] = stats["accuracy"]
                metrics[f"v{v}.macro_f1"] = stats["macro_f1"]
        for check in report["drift"]["checks"]:
            if check["value"] is not None:
                metrics[f"drift.{check['name']}"] = check["value"]
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path))


if __name__ == "__main__":
    sys.exit(run_main("monitor.py", main))
