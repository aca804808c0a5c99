#!/usr/bin/env python
"""Model-quality benchmark on the real datasets in ../shared/data (run on demand).

For every dataset, on identical splits and in one run:
  reference  TF-IDF (100 features) + CatBoost (50 iterations): the configuration textops grew from
  baseline   TF-IDF 1-2-grams + LogisticRegression fitted on the whole training portion
  textops    the default pipeline trained exactly as train.py trains it on that portion (20 % held
             out for its own test metrics, early stopping on 10 %, refit on the other 80 %)
  textops-all-rows  the same, but without the 20 % hold-out (what refitting on every row would give)
  textops-masked    default with @handles, URLs and numbers masked (twcs only: label leakage)

Splits: twcs_head5k and sms_spam stratified 80/20 (seed 0); BANKING77 official train -> test.
Prints a markdown table and writes JSON (default bench/results/quality.json).

    python bench/quality_bench.py [--datasets twcs,sms,banking77] [--mlflow]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config as cfg  # noqa: E402
from textops import inputs
from textops import diagnostics, registry, settings  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textprep import CatBoostText, TextColumn  # noqa: E402

SHARED = Path(os.environ.get("TEXTOPS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load(name: str):
    """(x_fit, y_fit, x_test, y_test) as DataFrames with a ``text`` column and string labels."""
    from sklearn.model_selection import train_test_split

    if name == "banking77":
        fit = inputs.read_table(SHARED / "banking77" / "train.csv")
        test = inputs.read_table(SHARED / "banking77" / "test.csv")
        return fit[["text"]], fit["category"], test[["text"]], test["category"]
    if name == "twcs":
        frame = inputs.read_table(SHARED / "twcs" / "twcs_head5k.csv")
        label = "inbound"
    elif name == "sms":
        frame = inputs.read_table(SHARED / "sms_spam" / "sms_spam.csv")
        label = "label"
    else:
        raise SystemExit(f"unknown dataset {name}")
    x_fit, x_test, y_fit, y_test = train_test_split(
        frame[["text"]], frame[label], test_size=0.2, stratify=frame[label], random_state=0)
    return x_fit, y_fit, x_test, y_test


def reference_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("text", TextColumn("text")),
        ("tfidf", TfidfVectorizer(max_features=100)),
        ("clf", CatBoostText(iterations=50, learning_rate=None, depth=6, border_count=254,
                             early_stopping_rounds=None, linear_boost=False)),
    ])


def fit_textops(config, x_fit, y_fit, hold_out_test: bool):
    """Train like train.py: stable split, early stopping on validation, refit on train+val."""
    data = config["data"]
    test_size = data["test_size"] if hold_out_test else 1e-9
    split = dataio.split_dataset(x_fit["text"], y_fit, "text", test_size, data["validation_size"],
                                 data["random_seed"])
    stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    model, _ = modeling.train_model(modeling.build_pipeline(settings.resolve(config, cfg.PROJECT_ROOT).model, stopwords), split.x_train,
                                    split.y_train, split.x_val, split.y_val,
                                    refit=config["train"]["refit"])
    return model


def measure(name, fit, x_fit, y_fit, x_test, y_test):
    started = time.perf_counter()
    model = fit(x_fit, y_fit)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    proba = model.predict_proba(x_test)
    predict_seconds = time.perf_counter() - started
    pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    ev = modeling.evaluate(np.asarray(y_test), pred)
    return {"model": name, "macro_f1": ev.metrics["macro_f1"], "accuracy": ev.metrics["accuracy"],
            "train_seconds": train_seconds,
            "predict_rows_per_second": len(y_test) / max(predict_seconds, 1e-9)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="twcs,sms,banking77")
    parser.add_argument("--models", default="reference,baseline,textops,textops-all-rows,textops-masked")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    parser.add_argument("--mlflow", action="store_true",
                        help="also log each result as a run in the 'textops-benchmark' experiment")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    wanted = args.models.split(",")
    config = cfg.load_config()  # TEXTOPS_* variables select a variant of the default
    results = []
    for dataset in args.datasets.split(","):
        x_fit, y_fit, x_test, y_test = load(dataset)
        fitters = {
            "reference": lambda x, y: reference_pipeline().fit(x, y),
            "baseline": lambda x, y: diagnostics.baseline_pipeline("text").fit(x, y),
            "textops": lambda x, y: fit_textops(config, x, y, hold_out_test=True),
            "textops-all-rows": lambda x, y: fit_textops(config, x, y, hold_out_test=False),
        }
        if dataset == "twcs":
            masked = cfg.load_config({**os.environ, "TEXTOPS_PREPROCESSING_MASK_HANDLES": "true",
                                      "TEXTOPS_PREPROCESSING_MASK_URLS": "true",
                                      "TEXTOPS_PREPROCESSING_MASK_NUMBERS": "true"})
            fitters["textops-masked"] = lambda x, y: fit_textops(masked, x, y, hold_out_test=True)
        for name, fit in fitters.items():
            if name not in wanted:
                continue
            row = {"dataset": dataset, "fit_rows": len(y_fit), "test_rows": len(y_test),
                   **measure(name, fit, x_fit, y_fit, x_test, y_test)}
            results.append(row)
            print(f"{dataset:10s} {name:18s} macro-F1 {row['macro_f1']:.4f} accuracy "
                  f"{row['accuracy']:.4f} train {row['train_seconds']:6.1f} s", file=sys.stderr,
                  flush=True)

    print("| dataset | model | macro-F1 | accuracy | train s | predict rows/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['dataset']} | {r['model']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | "
              f"{r['train_seconds']:.1f} | {r['predict_rows_per_second']:,.0f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "results": results},
                                    indent=2))
    if args.mlflow:
        import mlflow

        tracking = settings.resolve(config, cfg.PROJECT_ROOT).tracking
        client = registry.connect(tracking)
        experiment_id = registry.ensure_experiment(client, tracking, "textops-benchmark")
        for r in results:
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{r['dataset']}-{r['model']}"):
                mlflow.log_params({"dataset": r["dataset"], "model": r["model"]})
                mlflow.log_metrics({k: v for k, v in r.items() if isinstance(v, float)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
