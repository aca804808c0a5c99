#!/usr/bin/env python
"""The class mix tonight (run on demand): how well EM and BBSE estimate the monitored part's
class shares, and whether the EM-adjusted confidence is a better accuracy estimate than ATC.

Every scenario of bench/shifts.py (covariate shifts, the two label shifts sms-prior and
twcs-prior, the concept shift); each model trained as train.py trains it. Errors: total
variation distance between the estimated and the true class mix of the monitored part; the
accuracy estimates' error against the realized accuracy.

    python bench/classmix_bench.py [--json bench/results/classmix.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import config as cfg  # noqa: E402
from estimation_bench import fit  # noqa: E402
from textops.monitoring import classmix, estimation  # noqa: E402
from shifts import SCENARIOS  # noqa: E402


def row(scenario, model, split, x_mon, y_mon) -> dict:
    classes = [str(c) for c in model.classes_]
    test_proba = model.predict_proba(split.x_test)
    test_pred = np.asarray(classes, dtype=object)[test_proba.argmax(axis=1)]
    y_test = np.asarray(split.y_test).astype(str)
    test_accuracy = float(np.mean(test_pred == y_test))
    threshold = estimation.fit_threshold(test_proba.max(axis=1), test_accuracy)
    train_labels = split.training_rows()[1].astype(str)
    priors = {c: float(np.mean(train_labels == c)) for c in classes}
    confusion = classmix.test_confusion(test_pred, y_test, classes)
    proba = model.predict_proba(x_mon)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    truth = np.asarray(y_mon).astype(str)
    sample = classmix.ProbaSample(seed=0)
    sample.add(proba, classes)
    mix = classmix.class_mix(sample, Counter(predicted), priors, confusion)
    true_mix = np.array([np.mean(truth == c) for c in classes])
    sums = estimation.EstimateSums(threshold=threshold)
    sums.add(predicted, proba.max(axis=1), proba, classes)
    found = estimation.methods(sums, classes)
    realized = float(np.mean(predicted == truth))
    return {"scenario": scenario.name, "label_shift": scenario.name.endswith("prior"),
            "concept": scenario.concept, "classes": len(classes),
            "true_moved": classmix.total_variation(np.array(mix.training), true_mix),
            "em_error": classmix.total_variation(np.array(mix.em), true_mix),
            "bbse_error": (None if mix.bbse is None
                           else classmix.total_variation(np.array(mix.bbse), true_mix)),
            "disagreement": mix.disagreement, "flagged": mix.flagged, "moved": mix.moved,
            "realized": realized, "atc_error": found["atc"].accuracy - realized,
            "cbpe_error": found["cbpe"].accuracy - realized,
            "em_accuracy_error": mix.em_accuracy - realized}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = cfg.load_config()
    models, rows = {}, []
    started = time.perf_counter()
    for scenario in SCENARIOS:
        x_fit, y_fit, x_mon, y_mon = scenario.build()
        if scenario.model and scenario.model in models:
            model, split = models[scenario.model]
        else:
            model, split = fit(config, x_fit, y_fit)
            models[scenario.name] = (model, split)
        rows.append(row(scenario, model, split, x_mon, y_mon))
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(4).to_string(index=False))
    shifted = table[table["scenario"].isin([s.name for s in SCENARIOS if s.shifted])
                    & ~table["concept"]]
    for name, part in (("all shifted (no concept)", shifted),
                       ("label shift", shifted[shifted["label_shift"]]),
                       ("class mix moved >= 0.05", shifted[shifted["true_moved"] >= 0.05]),
                       ("class mix moved < 0.05", shifted[shifted["true_moved"] < 0.05])):
        if len(part):
            print(f"{name}: n={len(part)} mean |error| ATC {part['atc_error'].abs().mean():.4f}"
                  f" CBPE {part['cbpe_error'].abs().mean():.4f} EM-adjusted "
                  f"{part['em_accuracy_error'].abs().mean():.4f}; class mix EM "
                  f"{part['em_error'].mean():.4f} BBSE {part['bbse_error'].mean():.4f}")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
