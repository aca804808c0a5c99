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
from quality_bench import load  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops import promotion, settings  # noqa: E402
from textops.settings import Thresholds  # noqa: E402
from textops.monitoring import alerts, drift, estimation, labelling  # noqa: E402
from textops.monitoring.reference import build_reference  # noqa: E402
from textops.monitoring.result import Figures  # noqa: E402
import pandas as pd  # noqa: E402
from shifts import SCENARIOS  # noqa: E402


def fit(config, x, y):
    """(model, split) trained as train.py trains: its own test rows held out."""
    d = config["data"]
    split = dataio.split_dataset(x["text"], y, "text", d["test_size"], d["validation_size"], 42)
    stopwords = modeling.load_stopwords(config["preprocessing"]["stopwords"])
    model, _ = modeling.train_model(modeling.build_pipeline(settings.resolve(config, cfg.PROJECT_ROOT).model, stopwords), split.x_train,
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


def scenario_row(scenario, model, split, x_mon, y_mon, seconds, config, budgets, seeds):
    """Every estimator on one monitored part whose labels it never sees, beside the realized
    accuracy; the drift checks monitor.py runs; and the labelled-sample estimates."""
    classes = [str(c) for c in model.classes_]
    test_proba = model.predict_proba(split.x_test)
    test_pred = np.asarray(classes, dtype=object)[test_proba.argmax(axis=1)]
    y_test = np.asarray(split.y_test).astype(str)
    test_accuracy = float(np.mean(test_pred == y_test))
    test_conf = test_proba.max(axis=1)
    threshold = estimation.fit_threshold(test_conf, test_accuracy)
    proba = model.predict_proba(x_mon)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    conf = proba.max(axis=1)
    right = (predicted == np.asarray(y_mon).astype(str)).astype(float)
    realized = alerts.performance(Counter(zip(np.asarray(y_mon).astype(str), predicted)))
    sums = estimation.EstimateSums(threshold=threshold)
    sums.add(predicted, conf, proba, classes)
    found = estimation.methods(sums, classes)
    metrics = {"accuracy": test_accuracy, "macro_f1": 0.0, "recall_per_class": {}}
    reference = build_reference(model, [str(t) for t in split.x_test["text"]], test_pred,
                                test_conf, split.y_train, metrics, seed=0, oov_rows=2000)
    texts = [str(t)[:1000] for t in x_mon["text"]]
    current = drift.Current(rows=len(predicted), predicted_counts=dict(Counter(predicted)),
                            confidence=np.round(conf, 6),
                            lengths=np.array([len(str(t)) for t in x_mon["text"]], dtype=float),
                            oov=None,
                            texts=[texts[i] for i in drift.sample_indices(len(texts), 1000)])
    thresholds = Thresholds.of(settings.resolve(config, cfg.PROJECT_ROOT).monitor)
    checks = drift.compare(reference, current, thresholds, seed=0)
    drifted = [c.name for c in checks if c.drifted]
    labelled = {}
    edges = labelling.strata_edges(test_conf, threshold)
    for budget in budgets:
        strat, simple = [], []
        for seed in range(seeds):
            sampler = labelling.Sampler(budget, edges, seed)
            sampler.add(pd.DataFrame({"right": right}), conf)
            drawn = sampler.draw()
            strat.append(labelling.stratified_accuracy(drawn["right"].to_numpy(),
                                                       drawn["stratum"].to_numpy(),
                                                       drawn["stratum_rows"].to_numpy()))
            pick = np.random.default_rng(seed).choice(len(right), min(budget, len(right)),
                                                      replace=False)
            simple.append(labelling.stratified_accuracy(right[pick], np.zeros(len(pick)),
                                                        np.full(len(pick), len(right))))
        labelled[budget] = {kind: _sample_summary(rows, realized.accuracy)
                            for kind, rows in (("stratified", strat), ("random", simple))}
    return {"scenario": scenario.name, "shifted": scenario.shifted, "what": scenario.what,
            "concept": scenario.concept,
            "train_rows": len(split.y_train) + len(split.y_val), "test_rows": len(y_test),
            "monitored_rows": len(predicted), "classes": len(classes), "train_seconds": seconds,
            "test_accuracy": test_accuracy, "threshold": threshold.to_dict(),
            "realized_accuracy": realized.accuracy, "realized_macro_f1": realized.macro_f1,
            "methods": {name: f.to_dict() for name, f in found.items()}, "drift": {c.name: {"value": c.value, "drifted": c.drifted}
                                        for c in checks},
            "drifted": drifted, "labelled": labelled}


def _sample_summary(rows, truth):
    errors = [r.accuracy - truth for r in rows]
    half = [(r.accuracy_interval[1] - r.accuracy_interval[0]) / 2 for r in rows]
    inside = [r.accuracy_interval[0] <= truth <= r.accuracy_interval[1] for r in rows]
    return {"mean_abs_error": float(np.mean(np.abs(errors))), "mean_error": float(np.mean(errors)),
            "half_width": float(np.mean(half)), "coverage": float(np.mean(inside)),
            "seeds": len(rows)}


def evaluate(row, config):
    """The headline, its interval and the alerts, from a row's stored estimator figures (so
    the combination rule can be judged again without refitting: --from-json)."""
    found = {name: Figures(f["accuracy"], tuple(f["accuracy_interval"]), f["macro_f1"], f["rows"])
             for name, f in row["methods"].items()}
    thresholds = Thresholds.of(settings.resolve(config, cfg.PROJECT_ROOT).monitor)
    combined = estimation.combine(found, row["drifted"], row["threshold"]["accuracy"])
    realized = row["realized_accuracy"]
    low, high = combined.accuracy_interval
    fired = estimation.estimation_alerts(combined, row["test_accuracy"], thresholds, "overall")
    per_method = {}
    for name, figures in found.items():
        m_low, m_high = figures.accuracy_interval
        alone = estimation.combine({name: figures})  # the estimator on its own, no drift rule
        per_method[name] = {"error": figures.accuracy - realized,
                            "inside": bool(m_low <= realized <= m_high),
                            "alert": bool(estimation.estimation_alerts(
                                alone, row["test_accuracy"], thresholds, "x"))}
    return {"combined": combined, "error": combined.accuracy - realized,
            "inside": bool(low <= realized <= high), "alert": bool(fired),
            "drop": 1 - realized / row["test_accuracy"], "methods": per_method}


def cost_per_100k(classes=5, rows=100_000, repeats=3):
    """Seconds to fold 100k rows into every estimator's sums (vectors of ``classes``)."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(classes) * 0.3, rows)
    labels = np.array([f"c{i}" for i in range(classes)], dtype=object)
    predicted, conf = labels[proba.argmax(axis=1)], proba.max(axis=1)
    threshold = estimation.fit_threshold(conf[:2000], 0.9)
    best = {}
    for name, th in (("cbpe", None), ("cbpe+doc+atc", threshold)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            sums = estimation.EstimateSums(threshold=th)
            for chunk in range(0, rows, 10_000):
                sums.add(predicted[chunk:chunk + 10_000], conf[chunk:chunk + 10_000],
                         proba[chunk:chunk + 10_000], list(labels))
            estimation.methods(sums, list(labels))
            times.append(time.perf_counter() - started)
        best[name] = min(times)
    return best


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
    parser.add_argument("--from-json", action="store_true",
                        help="re-judge the stored estimator figures (no training)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per labelling budget")
    parser.add_argument("--promotion", action="store_true",
                        help="also the seed-only / better-configuration promotion cases")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    config = cfg.load_config()
    budgets = (100, 200, 500)
    if args.from_json:
        stored = json.loads(args.json.read_text())
        rows, cost, promotions = stored["estimation"], stored["cost"], stored.get("promotion", [])
    else:
        rows, models, promotions = [], {}, []
        wanted = {n for n in args.only.split(",") if n}
        for scenario in SCENARIOS:
            if wanted and scenario.name not in wanted:
                continue
            x_fit, y_fit, x_mon, y_mon = scenario.build()
            started = time.perf_counter()
            if scenario.model and scenario.model in models:
                model, split = models[scenario.model]
            else:
                model, split = fit(config, x_fit, y_fit)
                models[scenario.name] = (model, split)
            seconds = time.perf_counter() - started
            rows.append(scenario_row(scenario, model, split, x_mon, y_mon, seconds, config,
                                     budgets, args.seeds))
            r = rows[-1]
            print(f"{r['scenario']:20s} realized {r['realized_accuracy']:.4f} " + " ".join(
                f"{k} {v['accuracy']:.4f}" for k, v in r["methods"].items()) +
                f" drift {r['drifted']}", file=sys.stderr, flush=True)
        cost = cost_per_100k()
        if args.promotion:
            promotions = promotion_cases(config)
    print_tables(rows, cost, promotions, config, budgets)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "estimation": rows,
                                     "cost": cost, "promotion": promotions}, indent=2))
    return 0


def print_tables(rows, cost, promotions, config, budgets):
    judged = [(r, evaluate(r, config)) for r in rows]
    table = judged
    judged = [(r, j) for r, j in table if not r.get("concept")]  # the summary: covariate shift
    print("| data | shift | monitored rows | realized accuracy (drop vs test) | CBPE | DoC | ATC "
          "| headline (90% interval) | covers | drift alerts | estimate alert |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r, j in table:
        m = r["methods"]
        low, high = j["combined"].accuracy_interval
        print(f"| {r['scenario']} | {'yes' if r['shifted'] else 'no'} | {r['monitored_rows']:,} | "
              f"{r['realized_accuracy']:.4f} ({j['drop']:+.1%}) | "
              + " | ".join(f"{m[k]['accuracy'] - r['realized_accuracy']:+.4f}" if k in m else "-"
                           for k in ("cbpe", "doc", "atc"))
              + f" | {j['combined'].accuracy:.4f} ({low:.4f}-{high:.4f}) | "
              f"{'yes' if j['inside'] else '**no**'} | {', '.join(r['drifted']) or '-'} | "
              f"{'**exit 1**' if j['alert'] else '-'} |")
    print()
    print("| estimator | mean abs error, shifted | worst, shifted | mean abs error, unshifted | "
          "worst, unshifted | own interval covers (shifted / unshifted) | alerts (shifted / "
          "unshifted) |")
    print("|---|---|---|---|---|---|---|")
    for name in ("cbpe", "doc", "atc", "headline"):
        cells = []
        for shifted in (True, False):
            errs = [abs(j["error"] if name == "headline" else j["methods"][name]["error"])
                    for r, j in judged if r["shifted"] == shifted
                    and (name == "headline" or name in j["methods"])]
            cells += [f"{np.mean(errs):.4f}" if errs else "-", f"{np.max(errs):.4f}" if errs else "-"]
        cover = [sum(j["inside"] if name == "headline" else j["methods"][name]["inside"]
                     for r, j in judged if r["shifted"] == s_ and (name == "headline" or name in
                                                                   j["methods"]))
                 for s_ in (True, False)]
        fired = [sum(j["alert"] if name == "headline" else j["methods"][name]["alert"]
                     for r, j in judged if r["shifted"] == s_ and (name == "headline" or name in
                                                                   j["methods"]))
                 for s_ in (True, False)]
        counts = [sum(1 for r, _ in judged if r["shifted"] == s_) for s_ in (True, False)]
        print(f"| {name} | {' | '.join(cells)} | {cover[0]}/{counts[0]} / {cover[1]}/{counts[1]} | "
              f"{fired[0]}/{counts[0]} / {fired[1]}/{counts[1]} |")
    print()
    print(f"Cost of folding 100k rows into the sums (5 classes, 10k-row chunks): CBPE alone "
          f"{cost['cbpe']:.3f} s, CBPE + DoC + ATC {cost['cbpe+doc+atc']:.3f} s.")
    print_sample_and_promotion_tables(rows, promotions, budgets)


def print_sample_and_promotion_tables(rows, promotions, budgets):
    print()
    print("| data | labels | stratified: mean abs error | half-width | coverage | random: mean abs "
          "error | half-width | coverage |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for budget in budgets:
            lab = r["labelled"][str(budget)] if str(budget) in r["labelled"] else r["labelled"][budget]
            s_, rnd = lab["stratified"], lab["random"]
            print(f"| {r['scenario']} | {budget} | {s_['mean_abs_error']:.4f} | "
                  f"{s_['half_width']:.4f} | {s_['coverage']:.2f} | {rnd['mean_abs_error']:.4f} | "
                  f"{rnd['half_width']:.4f} | {rnd['coverage']:.2f} |")
    if promotions:
        print()
        print("| promotion case | test rows | champion macro-F1 | challenger | difference (90% "
              "interval) | p | alias |")
        print("|---|---|---|---|---|---|---|")
        for p in promotions:
            print(f"| {p['case']} | {p['test_rows']:,} | {p['champion']:.4f} | "
                  f"{p['challenger']:.4f} | {p['difference']:+.4f} ({p['interval'][0]:+.4f} to "
                  f"{p['interval'][1]:+.4f}) | {p['pvalue']:.3f} | @{p['alias']} |")


def promotion_cases(config, seeds=6):
    """Seed-only retrainings must stay challenger; a clearly better configuration is promoted."""
    cases = []
    for name in ("sms", "twcs"):
        x_fit, y_fit, _, _ = load(name)
        base, split = fit(config, x_fit, y_fit)
        for seed in range(43, 43 + (seeds if name == "twcs" else 1)):
            other, _ = fit(with_settings(config, data__random_seed=seed), x_fit, y_fit)
            cases.append(promotion_row(f"{name}, seed 42 -> {seed}", base, other, split))
    x_fit, y_fit, _, _ = load("banking77")
    banking, split = fit(config, x_fit, y_fit)
    words, _ = fit(with_settings(config, tfidf__char_ngram_max=0), x_fit, y_fit)
    cases.append(promotion_row("banking77, words-only -> default", words, banking, split))
    return cases


if __name__ == "__main__":
    sys.exit(main())
