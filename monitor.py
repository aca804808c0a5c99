#!/usr/bin/env python
"""Check a model's accuracy on recent labelled data; exit 1 when an alert fires (for CI / cron).

Two kinds of input:
  * a labelled CSV (text + label): the model (default @champion) scores it;
  * a predictions file written by predict.py joined with later labels (columns prediction,
    model_version and the label): the recorded predictions are evaluated, per model version.

Alerts fire when accuracy < --min-accuracy or macro-F1 < --min-macro-f1 (overall or for any model
version). A JSON report is written atomically and the check is logged as an MLflow run in the
monitoring experiment, tagged with the model version, so the MLflow UI charts it over time.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import (
    BadInputError,
    ExitCode,
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
    parser = make_parser(__doc__, epilog="Example: python monitor.py --data labelled_week.csv "
                                         "--label-column inbound || notify-team")
    parser.add_argument("--data", type=cli_path, default=config_path(m["data"]),
                        help="labelled CSV, or predict.py output joined with labels "
                             "[TEXTOPS_MONITOR_DATA]")
    parser.add_argument("--label-column", default=config["data"]["label_column"],
                        help="column holding the true label [TEXTOPS_LABEL_COLUMN]")
    parser.add_argument("--model", default=m["model"],
                        help="model to score raw data with: alias, 'latest' or version; ignored "
                             "for predictions files [TEXTOPS_MONITOR_MODEL]")
    parser.add_argument("--report", type=cli_path, default=config_path(m["report"]),
                        help="JSON report path, replaced atomically [TEXTOPS_MONITOR_REPORT]")
    parser.add_argument("--min-accuracy", type=float, default=m["min_accuracy"],
                        help="alert below this accuracy [TEXTOPS_MONITOR_MIN_ACCURACY]")
    parser.add_argument("--min-macro-f1", type=float, default=m["min_macro_f1"],
                        help="alert below this macro-F1 [TEXTOPS_MONITOR_MIN_MACRO_F1]")
    parser.add_argument("--experiment", default=config["mlflow"]["monitor_experiment"],
                        help="MLflow experiment for monitoring runs [TEXTOPS_MONITOR_EXPERIMENT]")
    parser.add_argument("--chunk-size", type=int, default=config["predict"]["chunk_size"],
                        help="rows read and scored at a time [TEXTOPS_PREDICT_CHUNK_SIZE]")
    add_common_arguments(parser, config)
    return parser.parse_args(argv)


def align_labels(labels: pd.Series, classes: list[str]) -> pd.Series:
    """Map label spellings onto the model's (``TRUE`` -> ``True``); unknown labels stay as is."""
    by_key = {str(c).casefold(): str(c) for c in classes}
    stripped = labels.astype(str).str.strip()
    return stripped.map(lambda v: by_key.get(v.casefold(), v))


def check_thresholds(metrics: dict[str, float], min_accuracy: float, min_macro_f1: float,
                     scope: str) -> list[str]:
    """Alert messages for the thresholds ``metrics`` breaches (empty when healthy)."""
    alerts = []
    if metrics["accuracy"] < min_accuracy:
        alerts.append(f"{scope}: accuracy {metrics['accuracy']:.4f} < {min_accuracy:.4f}")
    if metrics["macro_f1"] < min_macro_f1:
        alerts.append(f"{scope}: macro-F1 {metrics['macro_f1']:.4f} < {min_macro_f1:.4f}")
    return alerts


def summarise(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    import modeling

    evaluation = modeling.evaluate(y_true, y_pred)
    recall = {label: float(evaluation.report[label]["recall"]) for label in evaluation.labels
              if label in evaluation.report and label in set(y_true)}
    return {
        "rows": int(len(y_true)),
        "accuracy": evaluation.metrics["accuracy"],
        "macro_f1": evaluation.metrics["macro_f1"],
        "recall_per_class": recall,
    }


def main(argv: list[str] | None = None) -> int:
    config, args = start("monitor", parse_args, argv)
    started = time.perf_counter()

    import dataio
    import tracking

    if args.data is None:
        raise BadInputError("no input given; pass --data PATH")
    if args.chunk_size < 1:
        raise BadInputError(f"--chunk-size must be positive, got {args.chunk_size}")
    data_path = Path(args.data)
    text_col, label_col = config["data"]["text_column"], args.label_column
    name = config["mlflow"]["model_name"]

    dataio.check_readable_file(data_path)
    fmt = dataio.detect_format(data_path, config["data"]["encoding"], config["data"]["delimiter"])
    header = dataio.read_header(data_path, fmt)
    recorded = {"prediction", "model_version"} <= set(header)
    dataio.require_columns(header, {label_col: "--label-column"}, data_path)
    if not recorded:
        dataio.require_columns(header, {text_col: "--text-column"}, data_path)
    log.info("monitor: data=%s label=%s mode=%s", data_path, label_col,
             "recorded predictions" if recorded else f"score with {name}@{args.model}")

    client = tracking.connect(config)
    y_true_parts, y_pred_parts, version_parts = [], [], []
    skipped = 0
    if recorded:
        usecols = [label_col, "prediction", "model_version"]
        for chunk in dataio.iter_table(data_path, fmt, args.chunk_size, usecols):
            usable = chunk[label_col].notna() & chunk["prediction"].notna()
            skipped += int((~usable).sum())
            chunk = chunk[usable]
            y_true_parts.append(chunk[label_col].astype(str).str.strip().to_numpy())
            y_pred_parts.append(chunk["prediction"].astype(str).to_numpy())
            version_parts.append(chunk["model_version"].astype(str).str.strip().to_numpy())
        classes = sorted(set(np.concatenate(y_pred_parts))) if y_pred_parts else []
    else:
        import modeling

        version = tracking.resolve_version(client, name, args.model)
        pipeline = tracking.load_pipeline(name, version.version)
        classes = [str(c) for c in pipeline.classes_]
        log.info("scoring with %s v%s (requested %r)", name, version.version, args.model)
        for chunk in dataio.iter_table(data_path, fmt, args.chunk_size, [text_col, label_col]):
            usable = chunk[label_col].notna() & ~dataio.is_blank(chunk[text_col])
            skipped += int((~usable).sum())
            chunk = chunk[usable]
            if len(chunk) == 0:
                continue
            predicted, _ = modeling.score_texts(pipeline, chunk[[text_col]])
            y_true_parts.append(chunk[label_col].to_numpy())
            y_pred_parts.append(np.asarray(predicted).astype(str))
            version_parts.append(np.full(len(chunk), str(version.version), dtype=object))
    if not y_true_parts or sum(len(p) for p in y_true_parts) == 0:
        raise BadInputError(f"{data_path} has no rows with both a label and a text/prediction "
                            f"to evaluate; check --label-column and --text-column")
    y_true = align_labels(pd.Series(np.concatenate(y_true_parts)), classes).to_numpy()
    y_pred = np.concatenate(y_pred_parts)
    versions = np.concatenate(version_parts)
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        log.warning("labels the model does not know (always counted as errors): %s", unknown[:20])
    if skipped:
        log.warning("skipped %d rows with a missing label or empty text/prediction", skipped)

    overall = summarise(y_true, y_pred)
    alerts = check_thresholds(overall, args.min_accuracy, args.min_macro_f1, "overall")
    per_version: dict[str, Any] = {}
    several_versions = len(set(versions)) > 1
    for v in sorted(set(versions), key=lambda s: (len(s), s)):
        mask = versions == v
        per_version[v] = summarise(y_true[mask], y_pred[mask])
        per_version[v]["reference"] = _reference_metrics(client, name, v)
        if several_versions:
            alerts += check_thresholds(per_version[v], args.min_accuracy, args.min_macro_f1,
                                       f"model v{v}")
    status = "alert" if alerts else "healthy"
    exit_code = ExitCode.ALERT if alerts else ExitCode.OK
    report = {
        "status": status,
        "exit_code": int(exit_code),
        "alerts": alerts,
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": str(data_path), "sha256": dataio.file_sha256(data_path),
                 "rows_evaluated": overall["rows"], "rows_skipped": skipped,
                 "unknown_labels": unknown},
        "model": {"name": name, "versions": sorted(per_version),
                  "source": "recorded predictions" if recorded else f"@{args.model}"},
        "thresholds": {"min_accuracy": args.min_accuracy, "min_macro_f1": args.min_macro_f1},
        "metrics": overall,
        "per_version": per_version,
    }
    report_path = Path(args.report)
    with atomic_output(report_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
    _log_run(client, config, args.experiment, report, report_path)

    for alert in alerts:
        log.warning("ALERT %s", alert)
    log.info("monitor finished in %.1f s: %s", time.perf_counter() - started, status)
    versions_text = ",".join(f"v{v}" for v in sorted(per_version))
    print(f"{status.upper()}: {name} {versions_text} accuracy {overall['accuracy']:.4f} macro-F1 "
          f"{overall['macro_f1']:.4f} on {overall['rows']} rows"
          + (f"; {'; '.join(alerts)}" if alerts else "") + f" (report {report_path})")
    return int(exit_code)


def _reference_metrics(client, name: str, version: str) -> dict[str, float]:
    """The version's own test-split metrics from its training run (empty if unavailable)."""
    try:
        run_id = client.get_model_version(name, version).run_id
        metrics = client.get_run(run_id).data.metrics
        return {k: metrics[k] for k in ("accuracy", "macro_f1") if k in metrics}
    except Exception as exc:  # noqa: BLE001 - the reference is informative only
        log.info("no training metrics for %s v%s: %s", name, version, exc)
        return {}


def _log_run(client, config, experiment: str, report: dict[str, Any], report_path: Path) -> None:
    import mlflow

    import tracking

    experiment_id = tracking.ensure_experiment(client, config, experiment)
    versions = report["model"]["versions"]
    with mlflow.start_run(experiment_id=experiment_id, run_name="monitor"):
        mlflow.set_tags({
            "textops.model_name": report["model"]["name"],
            "textops.model_version": ",".join(versions),
            "textops.status": report["status"],
            "textops.alerts": " | ".join(report["alerts"])[:5000],
        })
        mlflow.log_params({
            "data.path": report["data"]["path"],
            "data.sha256": report["data"]["sha256"],
            "min_accuracy": report["thresholds"]["min_accuracy"],
            "min_macro_f1": report["thresholds"]["min_macro_f1"],
        })
        metrics = {k: report["metrics"][k] for k in ("accuracy", "macro_f1")}
        metrics["rows"] = report["metrics"]["rows"]
        metrics["alerts"] = len(report["alerts"])
        for v, stats in report["per_version"].items():
            metrics[f"v{v}.accuracy"] = stats["accuracy"]
            metrics[f"v{v}.macro_f1"] = stats["macro_f1"]
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(report_path))


if __name__ == "__main__":
    sys.exit(run_main("monitor.py", main))
