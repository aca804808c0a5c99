#!/usr/bin/env python
"""Label-free performance estimation and significance-gated promotion (run on demand).

Estimation: each model is trained exactly as train.py trains it (stable split, early stopping,
temperature calibrated on held-out rows, refit), then scores another part whose labels the
estimator never sees; the estimate (CBPE, textops.monitoring.estimation) is compared with the
accuracy realized on that part's labels.

  sms           SMS spam, stratified 80/20 (seed 0): same distribution
  twcs-shift    twcs_head5k: trained on its first 4,000 rows, monitored on its last 1,000
                (later tweets, new brands: a real covariate shift)
  banking77     BANKING77 official train -> test (77 classes)
  sms-concept   the sms monitored part with 30 % of its labels flipped: concept shift, which
                CBPE cannot see (the texts, and so the probabilities, are the same)

Promotion (textops.promotion's paired test on the new model's test rows, alpha 0.05):
  seed-only     the same configuration trained twice, model seed 42 then 43, same split:
                the second must stay challenger (sms; twcs with seeds 43..48)
  better        BANKING77: words-only TF-IDF champion, then the default (word + char n-grams)
                challenger: it must be promoted

    python bench/estimation_bench.py [--json bench/results/estimation.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import config as cfg  # noqa: E402
from quality_bench import SHARED, load  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops import promotion  # noqa: E402
from textops.calibration import ece, label_codes, uncalibrated  # noqa: E402
from textops.monitoring import alerts  # noqa: E402
from textops.monitoring.estimation import Expected, estimate  # noqa: E402


def fit(config, x, y):
    """(model, split) trained as train.py trains: its own test rows held out."""
    d = config["data"]
    split = dataio.split_dataset(x["text"], y, "text", d["test_size"], d["validation_size"], 42)
    stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    model, _ = modeling.train_model(modeling.build_pipeline(config, stopwords), split.x_train,
                                    split.y_train, split.x_val, split.y_val,
                                    refit=config["train"]["refit"])
    return model, split


def with_settings(config, **changes):
    """A copy of the configuration with ``section__key=value`` settings changed."""
    config = copy.deepcopy(config)
    for key, value in changes.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


def twcs_shift():
    frame = dataio.read_table(SHARED / "twcs" / "twcs_head5k.csv")
    first, last = frame.iloc[:4000], frame.iloc[4000:]
    return first[["text"]], first["inbound"], last[["text"]], last["inbound"]


def estimation_row(name, model, split, x_mon, y_mon, seconds):
    classes = [str(c) for c in model.classes_]
    test_proba = model.predict_proba(split.x_test)
    temperature = float(getattr(model[-1], "temperature_", 1.0))
    test_codes = label_codes(split.y_test, classes)
    proba = model.predict_proba(x_mon)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    sums = Expected()
    sums.add(predicted, proba.max(axis=1), proba, classes)
    found = estimate(sums, classes)
    realized = alerts.performance(Counter(zip(np.asarray(y_mon).astype(str), predicted)))
    low, high = found["accuracy_interval"]
    return {
        "scenario": name, "train_rows": len(split.y_train) + len(split.y_val),
        "monitored_rows": len(y_mon), "classes": len(classes), "train_seconds": seconds,
        "temperature": temperature,
        "ece_raw": ece(uncalibrated(test_proba, temperature), test_codes),
        "ece": ece(test_proba, test_codes),
        "ece_monitored": ece(proba, label_codes(y_mon, classes)),
        "estimated_accuracy": found["accuracy"], "interval": [low, high],
        "realized_accuracy": realized["accuracy"],
        "accuracy_error": found["accuracy"] - realized["accuracy"],
        "inside_interval": bool(low <= realized["accuracy"] <= high),
        "estimated_macro_f1": found["macro_f1"], "realized_macro_f1": realized["macro_f1"],
        "macro_f1_error": found["macro_f1"] - realized["macro_f1"],
    }


def promotion_row(name, champion, challenger, split, metric="macro_f1"):
    """train.py's rule on the challenger's test rows: threshold 0.7, alpha 0.05."""
    y = np.asarray(split.y_test).astype(str)
    new = np.asarray(challenger.predict(split.x_test)).astype(str)
    old = np.asarray(champion.predict(split.x_test)).astype(str)
    score = modeling.evaluate(y, new).metrics[metric]
    before = modeling.evaluate(y, old).metrics[metric]
    test = promotion.paired_test(metric, y, new, old, alpha=0.05, seed=42)
    decision = promotion.decide_promotion(metric, score, 0.7, "1", before, test, alpha=0.05)
    return {"case": name, "test_rows": len(y), "champion": before, "challenger": score,
            "difference": test.difference, "interval": list(test.interval),
            "pvalue": test.pvalue, "alias": decision.alias, "reason": decision.reason}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "estimation.json")
    parser.add_argument("--flip", type=float, default=0.3, help="share of labels flipped (concept)")
    parser.add_argument("--seeds", type=int, default=6,
                        help="seed-only challengers trained on twcs (model seeds 43, 44, ...)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    config = cfg.load_config()
    estimates, promotions = [], []

    def timed_fit(conf, x, y):
        started = time.perf_counter()
        model, split = fit(conf, x, y)
        return model, split, time.perf_counter() - started

    def report(row):
        estimates.append(row)
        print(f"{row['scenario']:12s} estimated {row['estimated_accuracy']:.4f} realized "
              f"{row['realized_accuracy']:.4f} error {row['accuracy_error']:+.4f} ECE "
              f"{row['ece_raw']:.4f} -> {row['ece']:.4f}", file=sys.stderr, flush=True)

    # same distribution, and concept shift on the same texts
    x_fit, y_fit, x_mon, y_mon = load("sms")
    sms, sms_split, seconds = timed_fit(config, x_fit, y_fit)
    report(estimation_row("sms", sms, sms_split, x_mon, y_mon, seconds))
    rng = np.random.default_rng(0)
    flipped = np.asarray(y_mon).astype(str).copy()
    labels = sorted(set(flipped))
    chosen = rng.random(len(flipped)) < args.flip
    flipped[chosen] = [labels[1 - labels.index(v)] for v in flipped[chosen]]
    report(estimation_row("sms-concept", sms, sms_split, x_mon, flipped, seconds))
    other, _, _ = timed_fit(with_settings(config, data__random_seed=43), x_fit, y_fit)
    promotions.append(promotion_row("sms, seed 42 -> 43", sms, other, sms_split))

    # covariate shift
    x_fit, y_fit, x_mon, y_mon = twcs_shift()
    twcs, twcs_split, seconds = timed_fit(config, x_fit, y_fit)
    report(estimation_row("twcs-shift", twcs, twcs_split, x_mon, y_mon, seconds))
    for seed in range(43, 43 + args.seeds):
        other, _, _ = timed_fit(with_settings(config, data__random_seed=seed), x_fit, y_fit)
        promotions.append(promotion_row(f"twcs, seed 42 -> {seed}", twcs, other, twcs_split))

    # many classes; and a clearly better configuration
    x_fit, y_fit, x_mon, y_mon = load("banking77")
    banking, banking_split, seconds = timed_fit(config, x_fit, y_fit)
    report(estimation_row("banking77", banking, banking_split, x_mon, y_mon, seconds))
    words, _, _ = timed_fit(with_settings(config, tfidf__char_ngram_max=0), x_fit, y_fit)
    promotions.append(promotion_row("banking77, words-only -> default", words, banking,
                                    banking_split))
    other, _, _ = timed_fit(with_settings(config, data__random_seed=43), x_fit, y_fit)
    promotions.append(promotion_row("banking77, seed 42 -> 43", banking, other, banking_split))

    print("| scenario | train rows | monitored rows | ECE raw -> calibrated (test rows) | "
          "estimated accuracy (90% interval) | realized | error | est. macro-F1 | realized | error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in estimates:
        low, high = r["interval"]
        print(f"| {r['scenario']} | {r['train_rows']:,} | {r['monitored_rows']:,} | "
              f"{r['ece_raw']:.4f} -> {r['ece']:.4f} | {r['estimated_accuracy']:.4f} "
              f"({low:.4f}-{high:.4f}) | {r['realized_accuracy']:.4f} | "
              f"{r['accuracy_error']:+.4f} | {r['estimated_macro_f1']:.4f} | "
              f"{r['realized_macro_f1']:.4f} | {r['macro_f1_error']:+.4f} |")
    print()
    print("| promotion case | test rows | champion macro-F1 | challenger | difference (90% interval) "
          "| p | alias |")
    print("|---|---|---|---|---|---|---|")
    for p in promotions:
        print(f"| {p['case']} | {p['test_rows']:,} | {p['champion']:.4f} | {p['challenger']:.4f} | "
              f"{p['difference']:+.4f} ({p['interval'][0]:+.4f} to {p['interval'][1]:+.4f}) | "
              f"{p['pvalue']:.3f} | @{p['alias']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores",
                                     "estimation": estimates, "promotion": promotions}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
