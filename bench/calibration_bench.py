#!/usr/bin/env python
"""Which calibrator (run on demand): the measurement behind CatBoostText's temperature scaling.

For each dataset the default pipeline is fitted, uncalibrated, on the training rows of train.py's
split (early stopping on the validation rows, no refit), so the validation rows stay unseen.
Each calibrator is fitted on the validation rows' raw scores and judged on rows unseen by both:
the split's test rows (ECE, Brier, log loss) and a separate monitored part (the error of the
label-free accuracy estimate, mean top probability minus realized accuracy).

  none         the raw probabilities
  temperature  one T for all scores (textprep.fit_temperature): arg-max unchanged
  vector       per-class scale and bias on the scores (Platt scaling when binary): may move
               the arg-max
  isotonic     isotonic regression of "right?" on the top probability, the other classes
               rescaled to fill the rest: arg-max unchanged, ties possible

Datasets and parts as in estimation_bench.py: sms (80/20), twcs-shift (first 4,000 / last
1,000), banking77 (train / test).

``--refit`` measures instead where the temperature of the *registered* (refitted) model comes
from: trained as train.py trains (early stopping on the validation rows, then refitted on all
rows), with the temperature fitted on the early-stopping probe's validation rows
(``calibration_folds=0``, earlier releases) or on cross-fitted copies of the refitted trees
(``calibration_folds=3``, the default); judged on the split's test rows and on the monitored
part of every scenario of bench/shifts.py (concept shift left out), neither seen by either.

    python bench/calibration_bench.py [--json bench/results/calibration.json]
    python bench/calibration_bench.py --refit [--json bench/results/calibration_refit.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import config as cfg  # noqa: E402
from estimation_bench import fit, with_settings  # noqa: E402
from quality_bench import load  # noqa: E402
from shifts import twcs_time  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops import settings  # noqa: E402
from textops.calibration import brier, ece, label_codes  # noqa: E402
from textprep import fit_temperature, scores_to_proba  # noqa: E402


def log_loss(proba: np.ndarray, codes: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-15, 1.0))))


def fit_vector(raw: np.ndarray, codes: np.ndarray):
    """Per-class scale and bias minimising the log loss (L2 0.01 towards identity)."""
    k = raw.shape[1]

    def unpack(w):
        return w[:k], w[k:]

    def loss(w):
        a, b = unpack(w)
        return log_loss(scores_to_proba(raw * a + b), codes) + 0.01 * np.sum((a - 1) ** 2 + b ** 2)

    w = minimize(loss, np.concatenate([np.ones(k), np.zeros(k)]), method="L-BFGS-B").x
    a, b = unpack(w)
    return lambda r: scores_to_proba(r * a + b)


def fit_isotonic(raw: np.ndarray, codes: np.ndarray):
    proba = scores_to_proba(raw)
    top = proba.max(axis=1)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        top, proba.argmax(axis=1) == codes)

    def apply(r):
        p = scores_to_proba(r)
        best = p.argmax(axis=1)
        conf = p[np.arange(len(p)), best]
        new = np.maximum(iso.predict(conf), 1.0 / p.shape[1])
        rest = 1.0 - conf
        scale = np.where(rest > 0, (1.0 - new) / np.where(rest > 0, rest, 1.0), 0.0)
        out = p * scale[:, None]
        out[np.arange(len(p)), best] = new
        return out

    return apply


def calibrator_rows() -> list[dict]:
    """Each calibrator fitted on the validation rows of an uncalibrated, not refitted model."""
    config = with_settings(cfg.load_config(), catboost__calibrate=False)
    stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    results = []
    for name, parts in (("sms", load("sms")), ("twcs-shift", twcs_time()),
                        ("banking77", load("banking77"))):
        x_fit, y_fit, x_mon, y_mon = parts
        d = config["data"]
        split = dataio.split_dataset(x_fit["text"], y_fit, "text", d["test_size"],
                                     d["validation_size"], 42)
        model, _ = modeling.train_model(modeling.build_pipeline(settings.resolve(config, cfg.PROJECT_ROOT).model, stopwords), split.x_train,
                                        split.y_train, split.x_val, split.y_val, refit=False)
        classes = model.classes_
        raw = {part: np.asarray(model.decision_function(x), dtype=float).reshape(len(x), -1)
               for part, x in (("val", split.x_val), ("test", split.x_test), ("mon", x_mon))}
        codes = {"val": label_codes(split.y_val, classes), "test": label_codes(split.y_test, classes),
                 "mon": label_codes(y_mon, classes)}
        calibrators = {
            "none": lambda r: scores_to_proba(r),
            "temperature": (lambda t: lambda r: scores_to_proba(r / t))(
                fit_temperature(raw["val"], codes["val"])),
            "vector": fit_vector(raw["val"], codes["val"]),
            "isotonic": fit_isotonic(raw["val"], codes["val"]),
        }
        for method, calibrate in calibrators.items():
            test, mon = calibrate(raw["test"]), calibrate(raw["mon"])
            realized = float(np.mean(mon.argmax(axis=1) == codes["mon"]))
            row = {"dataset": name, "method": method, "val_rows": len(codes["val"]),
                   "ece": ece(test, codes["test"]), "brier": brier(test, codes["test"]),
                   "log_loss": log_loss(test, codes["test"]),
                   "test_accuracy": float(np.mean(test.argmax(axis=1) == codes["test"])),
                   "estimate_error": float(mon.max(axis=1).mean()) - realized}
            results.append(row)
            print(f"{name:10s} {method:11s} ECE {row['ece']:.4f} Brier {row['brier']:.4f} "
                  f"log loss {row['log_loss']:.4f} estimate error {row['estimate_error']:+.4f}",
                  file=sys.stderr, flush=True)
    return results


def refit_rows(config, folds_compared=(0, 3), only=None, seeds=(42,)) -> list[dict]:
    """ECE and estimate error of the refitted model, per source of its temperature (and per
    model seed, to see how much the temperature itself varies)."""
    import time

    from shifts import SCENARIOS

    rows, models, parts = [], {}, {}
    for scenario, seed, folds in ((s, seed, f) for s in SCENARIOS for seed in seeds
                                  for f in folds_compared):
        if scenario.concept or (only and scenario.name not in only):
            continue
        if scenario.name not in parts:  # read and split once, not once per seed and source
            parts[scenario.name] = scenario.build()
        x_fit, y_fit, x_mon, y_mon = parts[scenario.name]
        key = (scenario.model or scenario.name, folds, seed)
        if key not in models:
            started = time.perf_counter()
            models[key] = (*fit(with_settings(config, catboost__calibration_folds=folds,
                                              data__random_seed=seed),
                                x_fit, y_fit), time.perf_counter() - started)
        model, split, seconds = models[key]
        classes = model.classes_
        test, mon = model.predict_proba(split.x_test), model.predict_proba(x_mon)
        codes_test, codes_mon = label_codes(split.y_test, classes), label_codes(y_mon, classes)
        realized = float(np.mean(mon.argmax(axis=1) == codes_mon))
        row = {"scenario": scenario.name, "shifted": scenario.shifted, "seed": seed,
               "calibration_folds": folds, "temperature": float(model[-1].temperature_),
               "ece_test": ece(test, codes_test), "ece_monitored": ece(mon, codes_mon),
               "estimate_error": float(mon.max(axis=1).mean()) - realized,
               "fit_seconds": seconds}
        rows.append(row)
        print(f"{scenario.name:20s} seed {seed} folds {folds} T {row['temperature']:.3f} ECE test "
              f"{row['ece_test']:.4f} monitored {row['ece_monitored']:.4f} estimate error "
              f"{row['estimate_error']:+.4f} fit {seconds:.0f} s", file=sys.stderr, flush=True)
    return rows


def print_refit_table(rows: list[dict]) -> None:
    print("| scenario | temperature from | T | ECE test rows | ECE monitored | CBPE error | fit s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        source = "probe's validation rows" if r["calibration_folds"] == 0 else \
            f"{r['calibration_folds']}-fold cross-fit"
        print(f"| {r['scenario']} | {source} | {r['temperature']:.3f} | {r['ece_test']:.4f} | "
              f"{r['ece_monitored']:.4f} | {r['estimate_error']:+.4f} | {r['fit_seconds']:.0f} |")
    for folds in sorted({r["calibration_folds"] for r in rows}):
        mine = [r for r in rows if r["calibration_folds"] == folds]
        print(f"\ncalibration_folds={folds}: mean ECE test {np.mean([r['ece_test'] for r in mine]):.4f}"
              f", monitored {np.mean([r['ece_monitored'] for r in mine]):.4f}, mean |CBPE error| "
              f"{np.mean([abs(r['estimate_error']) for r in mine]):.4f}, temperature spread over "
              f"seeds (mean std per scenario) {spread(mine):.3f}")


def spread(rows: list[dict]) -> float:
    """Mean over scenarios of the standard deviation of the temperature over seeds."""
    by_scenario: dict[str, list[float]] = {}
    for r in rows:
        by_scenario.setdefault(r["scenario"], []).append(r["temperature"])
    return float(np.mean([np.std(t) for t in by_scenario.values()]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--refit", action="store_true",
                        help="compare the refitted model's temperature sources instead")
    parser.add_argument("--only", nargs="*", help="--refit: only these scenarios")
    parser.add_argument("--seeds", type=int, default=1, help="--refit: model seeds 42, 43, ...")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    if args.refit:
        rows = refit_rows(cfg.load_config(), only=args.only,
                          seeds=tuple(range(42, 42 + args.seeds)))
        print_refit_table(rows)
        out = args.json or ROOT / "bench" / "results" / "calibration_refit.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "results": rows}, indent=2))
        return 0
    args.json = args.json or ROOT / "bench" / "results" / "calibration.json"
    results = calibrator_rows()
    print("| dataset | calibrator | ECE (test rows) | Brier | log loss | test accuracy | "
          "estimate error (monitored part) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['dataset']} | {r['method']} | {r['ece']:.4f} | {r['brier']:.4f} | "
              f"{r['log_loss']:.4f} | {r['test_accuracy']:.4f} | {r['estimate_error']:+.4f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "results": results},
                                    indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
