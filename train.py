#!/usr/bin/env python
"""Train a TF-IDF + CatBoost text classifier, log it to MLflow, register it and promote it.

The new version becomes @champion only if its test metric reaches the threshold AND it beats the
current champion evaluated on the same test rows in this run; otherwise it becomes @challenger.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    ExitCode,
    Stopwatch,
    add_common_arguments,
    apply_common_arguments,
    cli_path,
    config_path,
    make_parser,
    run_main,
    start,
)

log = logging.getLogger("train")


def parse_args(argv: list[str] | None, config: dict[str, Any]):
    parser = make_parser(
        __doc__,
        epilog="Example: python train.py --data ../shared/data/twcs/twcs_head5k_raw.csv "
               "--label-column inbound",
    )
    parser.add_argument("--data", type=cli_path, default=config_path(config["train"]["data"]),
                        help="labelled training CSV [TEXTOPS_TRAIN_DATA]")
    parser.add_argument("--label-column", default=config["data"]["label_column"],
                        help="column holding the class label [TEXTOPS_LABEL_COLUMN]")
    parser.add_argument("--experiment", default=config["mlflow"]["experiment"],
                        help="MLflow experiment for training runs [TEXTOPS_EXPERIMENT]")
    parser.add_argument("--test-size", type=float, default=config["data"]["test_size"],
                        help="share of rows held out for test metrics and promotion [TEXTOPS_TEST_SIZE]")
    parser.add_argument("--validation-size", type=float, default=config["data"]["validation_size"],
                        help="share of rows for early stopping; 0 disables it [TEXTOPS_VALIDATION_SIZE]")
    parser.add_argument("--seed", type=int, default=config["data"]["random_seed"],
                        help="random seed for the split and the model [TEXTOPS_RANDOM_SEED]")
    parser.add_argument("--stopwords", default=config["preprocessing"]["stopwords"],
                        help="stop word language, or 'none' [TEXTOPS_STOPWORDS]")
    parser.add_argument("--iterations", type=int, default=config["catboost"]["iterations"],
                        help="maximum CatBoost iterations [TEXTOPS_CATBOOST_ITERATIONS]")
    parser.add_argument("--max-features", type=int, default=config["tfidf"]["max_features"],
                        help="TF-IDF vocabulary size [TEXTOPS_TFIDF_MAX_FEATURES]")
    parser.add_argument("--metric", choices=("accuracy", "macro_f1"), default=config["promotion"]["metric"],
                        help="test metric used for promotion [TEXTOPS_PROMOTION_METRIC]")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction,
                        default=config["train"]["baseline"],
                        help="also fit TF-IDF + LogisticRegression and log its test metrics "
                             "[TEXTOPS_BASELINE]")
    parser.add_argument("--leakage-check", action=argparse.BooleanOptionalAction,
                        default=config["train"]["leakage_check"],
                        help="warn when a few tokens or identifiers carry the score "
                             "[TEXTOPS_LEAKAGE_CHECK]")
    parser.add_argument("--tune", action=argparse.BooleanOptionalAction,
                        default=config["train"]["tune"],
                        help="random search over TF-IDF/CatBoost settings first (nested MLflow "
                             "runs, chosen on the validation rows); the best is registered "
                             "[TEXTOPS_TUNE]")
    parser.add_argument("--tune-trials", type=int, default=config["train"]["tune_trials"],
                        help="maximum configurations tried by --tune [TEXTOPS_TUNE_TRIALS]")
    parser.add_argument("--tune-minutes", type=float, default=config["train"]["tune_minutes"],
                        help="time budget of --tune; no new trial starts after it "
                             "[TEXTOPS_TUNE_MINUTES]")
    parser.add_argument("--threshold", type=float, default=config["promotion"]["threshold"],
                        help="minimum test metric for @champion [TEXTOPS_PROMOTION_THRESHOLD]")
    parser.add_argument("--lock-wait", type=float, default=config["train"]["lock_wait"],
                        metavar="SECONDS",
                        help="when another train.py of the same model is running, wait this "
                             "long for it, then skip with exit 5 [TEXTOPS_TRAIN_LOCK_WAIT]")
    add_common_arguments(parser, config)
    return parser.parse_args(argv)


def apply_args(config: dict[str, Any], args) -> None:
    apply_common_arguments(config, args)
    config["train"]["data"] = str(args.data)
    config["data"].update(label_column=args.label_column, test_size=args.test_size,
                          validation_size=args.validation_size, random_seed=args.seed)
    config["mlflow"]["experiment"] = args.experiment
    config["preprocessing"]["stopwords"] = args.stopwords
    config["catboost"]["iterations"] = args.iterations
    config["tfidf"]["max_features"] = args.max_features
    config["promotion"].update(metric=args.metric, threshold=args.threshold)
    config["train"].update(baseline=args.baseline, leakage_check=args.leakage_check,
                           tune=args.tune, tune_trials=args.tune_trials,
                           tune_minutes=args.tune_minutes, lock_wait=args.lock_wait)


def flat_params(config: dict[str, Any]) -> dict[str, Any]:
    sections = ("data", "preprocessing", "tfidf", "catboost", "promotion")
    params = {f"{s}.{k}": v for s in sections for k, v in config[s].items()}
    params.update({f"train.{k}": config["train"][k] for k in ("refit", "baseline", "leakage_check")})
    return params


def main(argv: list[str] | None = None) -> int:
    config, args = start("train", parse_args, argv, apply_args)
    started = time.perf_counter()

    import dataio
    import modeling

    data_cfg = config["data"]
    text_col, label_col = data_cfg["text_column"], data_cfg["label_column"]
    path = Path(config["train"]["data"])
    log.info("train: data=%s text=%s label=%s model=%s", path, text_col, label_col,
             config["mlflow"]["model_name"])

    # 1. Data: everything that can be wrong with the input fails here, before any MLflow run.
    frame = dataio.read_table(path, data_cfg["encoding"], data_cfg["delimiter"],
                              usecols=[text_col, label_col])
    data = dataio.prepare_labelled(frame, text_col, label_col, path)
    del frame
    if data.dropped_blank_text or data.dropped_missing_label:
        log.warning("dropped %d rows with empty text and %d rows with a missing label",
                    data.dropped_blank_text, data.dropped_missing_label)
    for canonical, others in data.label_merges.items():
        log.warning("label spellings %s merged into %r", others, canonical)
    dataio.validate_for_split(data.labels, label_col, data_cfg["test_size"], data_cfg["validation_size"])
    split = dataio.split_dataset(data.texts, data.labels, text_col, data_cfg["test_size"],
                                 data_cfg["validation_size"], data_cfg["random_seed"])
    log.info("rows: %d usable, split %s, %d classes", len(data.labels), split.sizes,
             len(data.class_counts))
    stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    log.info("stop words: %s, %d words, from %s", stopwords.language, len(stopwords.words),
             stopwords.source)
    sha256 = dataio.file_sha256(path)

    # 2. One training of a model at a time (overlapping cron runs): exit 5 when busy.
    import locking

    lock = config_path(config["train"]["lock_dir"]) / f"train-{config['mlflow']['model_name']}.lock"
    with locking.exclusive(lock, float(config["train"]["lock_wait"]), "train.py of this model"):
        return _train_locked(config, path, data, split, stopwords, sha256, started)


def _train_locked(config, path, data, split, stopwords, sha256, started) -> int:
    import tracking

    # 3. Tracking: fail fast (exit 4) when the store is unreachable.
    client = tracking.connect(config)
    experiment_id = tracking.ensure_experiment(client, config, config["mlflow"]["experiment"])
    model_name = config["mlflow"]["model_name"]

    import mlflow

    run = mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{path.stem}")
    log.info("MLflow run %s in %s", run.info.run_id, tracking.redact(tracking.tracking_uri(config)))
    try:
        summary = _train_in_run(config, client, model_name, path, sha256, data, split, stopwords)
    except BaseException as exc:
        from common import Interrupted

        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, Interrupted)) else "FAILED"
        mlflow.set_tag("textops.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run(status=status)
        log.error("run %s ended %s", run.info.run_id, status)
        raise
    mlflow.log_metric("total_seconds", time.perf_counter() - started)
    mlflow.end_run(status="FINISHED")
    print(summary)
    log.info("done in %.1f s", time.perf_counter() - started)
    return int(ExitCode.OK)


def _train_in_run(config, client, model_name, path, sha256, data, split, stopwords) -> str:
    import mlflow

    import drift
    import modeling
    import tracking

    metric, threshold = config["promotion"]["metric"], float(config["promotion"]["threshold"])
    mlflow.log_params(flat_params(config))
    mlflow.log_params({
        "data.path": str(path),
        "data.sha256": sha256,
        "data.rows_usable": len(data.labels),
        "data.rows_dropped_blank_text": data.dropped_blank_text,
        "data.rows_dropped_missing_label": data.dropped_missing_label,
        "data.n_classes": len(data.class_counts),
        **{f"data.rows_{k}": v for k, v in split.sizes.items()},
        "stopwords.source": stopwords.source,
        "stopwords.count": len(stopwords.words),
        "model_name": model_name,
    })

    if config["train"]["tune"]:
        config = _tune(config, split, stopwords)
        mlflow.log_params({f"tuned.{k}": v for k, v in modeling.trial_params(config).items()})
        stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    with Stopwatch() as fit_time:
        pipeline, fit_info = modeling.train_model(
            modeling.build_pipeline(config, stopwords), split.x_train, split.y_train,
            split.x_val, split.y_val, refit=bool(config["train"]["refit"]))
    clf = pipeline[-1]
    log.info("fitted in %.1f s (%d features, %d trees chosen by early stopping, final fit on %d "
             "rows)", fit_time.seconds, clf.n_features_in_, fit_info["best_iteration"],
             fit_info["fit_rows"])

    with Stopwatch() as eval_time:
        y_pred, proba = modeling.score_texts(pipeline, split.x_test)
    evaluation = modeling.evaluate(split.y_test, y_pred, proba, pipeline.classes_)
    score = evaluation.metrics[metric]
    mlflow.log_metrics(evaluation.metrics)
    mlflow.log_metrics({
        "training_seconds": fit_time.seconds,
        "predict_rows_per_second": len(split.y_test) / max(eval_time.seconds, 1e-9),
        "best_iteration": fit_info["best_iteration"],
        "fit_rows": fit_info["fit_rows"],
        "n_features": clf.n_features_in_,
    })
    log.info("test: accuracy %.4f, macro-F1 %.4f", evaluation.metrics["accuracy"],
             evaluation.metrics["macro_f1"])

    quality_tags = _baseline_and_leakage(config, pipeline, split, evaluation.metrics["macro_f1"])

    with tempfile.TemporaryDirectory(prefix="textops-") as tmp:
        tmp_dir = Path(tmp)
        modeling.token_importance(pipeline, split.training_rows()[0]).to_csv(tmp_dir / "token_importance.csv",
                                                          index=False)
        modeling.save_confusion_matrix(evaluation, tmp_dir / "confusion_matrix.png",
                                       f"{model_name}: test split ({len(split.y_test)} rows)")
        (tmp_dir / "classification_report.txt").write_text(evaluation.report_text, encoding="utf-8")
        (tmp_dir / "classification_report.json").write_text(json.dumps(evaluation.report, indent=2))
        profile = {
            "path": str(path), "sha256": sha256, "class_counts": data.class_counts,
            "split_sizes": split.sizes, "label_merges": data.label_merges,
            "dropped_blank_text": data.dropped_blank_text,
            "dropped_missing_label": data.dropped_missing_label,
        }
        (tmp_dir / "data_profile.json").write_text(json.dumps(profile, indent=2, ensure_ascii=False))
        (tmp_dir / "stopwords.txt").write_text("\n".join(stopwords.words) + "\n", encoding="utf-8")
        reference = _reference_profile(config, pipeline, split, y_pred, proba, evaluation)
        (tmp_dir / drift.REFERENCE_DIR).mkdir()
        (tmp_dir / drift.REFERENCE_DIR / drift.REFERENCE_FILE).write_text(
            json.dumps(reference, ensure_ascii=False), encoding="utf-8")
        mlflow.log_artifacts(str(tmp_dir))

    # Current champion, scored on the very same test rows.
    champion_version = tracking.aliases_of(client, model_name).get(tracking.CHAMPION)
    champion_score = None
    if champion_version is not None:
        try:
            champion = tracking.load_pipeline(model_name, champion_version)
            champ_pred, _ = modeling.score_texts(champion, split.x_test)
            champion_score = modeling.evaluate(split.y_test, champ_pred).metrics[metric]
            mlflow.log_metric(f"champion_{metric}", champion_score)
            log.info("champion v%s on the same test rows: %s %.4f", champion_version, metric,
                     champion_score)
        except Exception as exc:  # noqa: BLE001 - a broken champion must not block training
            log.warning("current champion v%s could not be evaluated: %s", champion_version, exc)

    input_example = split.x_test.head(5).reset_index(drop=True)
    info = tracking.log_and_register(pipeline, model_name, input_example)
    version = str(info.registered_model_version)
    decision = tracking.decide_promotion(metric, score, threshold, champion_version, champion_score)
    tracking.move_alias(client, model_name, decision.alias, version, decision.reason,
                        tracking.actor("train.py"))
    tags = {
        "textops.decision": decision.alias,
        "textops.reason": decision.reason,
        "textops.metric": metric,
        "textops.score": f"{score:.6f}",
        "textops.threshold": str(threshold),
        "textops.previous_champion": champion_version or "",
        "textops.champion_score": "" if champion_score is None else f"{champion_score:.6f}",
        "textops.data_sha256": sha256,
        "textops.reference": f"{drift.REFERENCE_DIR}/{drift.REFERENCE_FILE}",
        **quality_tags,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    mlflow.set_tags({**tags, "textops.model_version": version})
    log.info("v%s -> @%s: %s", version, decision.alias, decision.reason)
    return f"{model_name} v{version} -> @{decision.alias}: {decision.reason}"


def _reference_profile(config, pipeline, split, y_pred, proba, evaluation) -> dict[str, Any]:
    """What monitor.py compares new data with: the test split's profile (drift.py)."""
    import numpy as np

    import drift

    text_col = config["data"]["text_column"]
    report = evaluation.report
    metrics = {
        "accuracy": evaluation.metrics["accuracy"],
        "macro_f1": evaluation.metrics["macro_f1"],
        "recall_per_class": {str(c): float(report[str(c)]["recall"])
                             for c in pipeline.classes_ if str(c) in report},
    }
    monitor = config["monitor"]
    with Stopwatch() as took:
        reference = drift.build_reference(
            pipeline, split.x_test[text_col].fillna("").astype(str).tolist(), y_pred,
            np.max(proba, axis=1), split.training_rows()[1], metrics,
            text_sample=int(monitor["reference_texts"]), seed=int(config["data"]["random_seed"]))
    log.info("reference profile for monitoring: %d test rows, %d texts kept (%.1f s)",
             reference["rows"], len(reference["texts"]), took.seconds)
    return reference


def _tune(config, split, stopwords) -> dict[str, Any]:
    """Seeded random search; each trial is a nested MLflow run scored on the validation rows."""
    import mlflow

    import modeling

    if split.x_val is None:
        from common import BadInputError

        raise BadInputError("--tune needs validation rows; set a validation size above 0")
    trials = modeling.sample_configs(config, max(1, int(config["train"]["tune_trials"])),
                                     int(config["data"]["random_seed"]))
    deadline = time.monotonic() + 60 * float(config["train"]["tune_minutes"])
    best, best_score = config, -1.0
    experiment_id = mlflow.active_run().info.experiment_id
    for i, candidate in enumerate(trials):
        if i and time.monotonic() > deadline:
            log.info("tuning: time budget spent after %d trials", i)
            break
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{i}", nested=True):
            mlflow.log_params(modeling.trial_params(candidate))
            with Stopwatch() as took:
                words = modeling.load_stopwords(candidate["preprocessing"]["stopwords"])
                pipe = modeling.build_pipeline(candidate, words)
                modeling.fit_pipeline(pipe, split.x_train, split.y_train, split.x_val, split.y_val)
                score = modeling.evaluate(split.y_val, pipe.predict(split.x_val)).metrics["macro_f1"]
            mlflow.log_metrics({"validation_macro_f1": score, "training_seconds": took.seconds})
        log.info("tuning trial %d: validation macro-F1 %.4f in %.1f s", i, score, took.seconds)
        if score > best_score:
            best, best_score = candidate, score
    mlflow.log_metric("tuning.best_validation_macro_f1", best_score)
    return best


def _baseline_and_leakage(config, pipeline, split, macro_f1: float) -> dict[str, str]:
    """Log the linear baseline's test metrics and the leakage probes; returns tags to set."""
    import mlflow

    import modeling

    tags: dict[str, str] = {}
    text_col = config["data"]["text_column"]
    if config["train"]["baseline"]:
        x_fit, y_fit = split.training_rows()
        with Stopwatch() as took:
            baseline = modeling.baseline_pipeline(text_col).fit(x_fit, y_fit)
        base = modeling.evaluate(split.y_test, baseline.predict(split.x_test)).metrics
        mlflow.log_metrics({"baseline.accuracy": base["accuracy"],
                            "baseline.macro_f1": base["macro_f1"],
                            "baseline.training_seconds": took.seconds,
                            "gap.macro_f1": macro_f1 - base["macro_f1"]})
        tags["textops.baseline_macro_f1"] = f"{base['macro_f1']:.6f}"
        log.info("baseline TF-IDF + LogisticRegression: macro-F1 %.4f (model %+.4f)",
                 base["macro_f1"], macro_f1 - base["macro_f1"])
    if config["train"]["leakage_check"]:
        report = modeling.leakage_check(pipeline, split, macro_f1, text_col,
                                        seed=int(config["data"]["random_seed"]))
        mlflow.log_metrics({f"leakage.{k}": v for k, v in report.figures.items()})
        tags["textops.leakage_warning"] = " | ".join(report.reasons) if report.suspicious else "none"
        for reason in report.reasons:
            log.warning("LEAKAGE WARNING: %s", reason)
    return tags


if __name__ == "__main__":
    sys.exit(run_main("train.py", main))
