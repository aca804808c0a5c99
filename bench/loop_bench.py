#!/usr/bin/env python
"""The closed loop, simulated on real shifts (run on demand): does a budget of 200 labels a
night, kept in the labels ledger and trained on, give a better champion?

For each scenario of bench/shifts.py used here, the champion is trained as train.py trains it
on the scenario's training part. The monitored part is cut (seeded) into four nights. On each
of the first three, the champion scores the night and monitor.py's sampler draws 200 rows
(textops.monitoring.labelling.Sampler, the version's confidence strata), which are "labelled"
from the truth and kept as the ledger keeps them (textops.monitoring.ledger: a seeded 20 % of
each batch is the audit part). Then train.py --with-ledger is simulated: the training part plus
the ledger's non-audit rows, split by the same text hash, fitted as train.py fits; promoted or
not by train.py's rule (test rows, then the ledger's audit rows). Measured on the fourth night:

  * realized accuracy of the champion before and of the retrained model (the lift);
  * the promotion decision and its rule;
  * the night's stratified estimate (200 labels) error and interval half-width, per mix of
    uniform and uncertainty-driven (Neyman) allocation (``uniform_share``);
  * the label-free ATC estimate's error, champion before vs after (no estimate may get worse);
  * weighting the ledger rows by their design weight (replicated) against unweighted.

    python bench/loop_bench.py [--shares 0,0.2,0.5,1] [--json bench/results/loop.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import config as cfg  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops import promotion, settings  # noqa: E402
from textops.monitoring import estimation, labelling, ledger  # noqa: E402
from shifts import SCENARIOS  # noqa: E402

BUDGET = 200
NIGHTS = 3  # labelled nights; one more night is kept to measure on
USED = ("twcs-brand", "twcs-time", "twcs-typos", "sms-length", "sms-digits", "twcs")


def fit(job_model, x_text: pd.Series, y: pd.Series, seed: int = 42):
    """(model, split): train.py's split by text hash and fit."""
    d = cfg.CONFIG["data"]
    split = dataio.split_dataset(x_text, y, "text", d["test_size"].default,
                                 d["validation_size"].default, seed)
    stopwords = modeling.load_stopwords(job_model.preprocessing.stopwords)
    model, _ = modeling.train_model(modeling.build_pipeline(job_model, stopwords), split.x_train,
                                    split.y_train, split.x_val, split.y_val, refit=True)
    return model, split


def predict(model, texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(pd.DataFrame({"text": texts.to_numpy()}))
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    return classes[proba.argmax(axis=1)], proba


def atc_estimate(model, split, texts: pd.Series) -> float:
    """The label-free ATC estimate of ``model`` on ``texts`` (threshold from its test rows)."""
    test_pred, test_proba = predict(model, split.x_test["text"])
    accuracy = float(np.mean(test_pred == np.asarray(split.y_test).astype(str)))
    threshold = estimation.fit_threshold(test_proba.max(axis=1), accuracy)
    predicted, proba = predict(model, texts)
    sums = estimation.EstimateSums(threshold=threshold)
    classes = [str(c) for c in model.classes_]
    sums.add(predicted, proba.max(axis=1), proba, classes)
    return estimation.methods(sums, classes)["atc"].accuracy


def edges_of(model, split) -> list[float]:
    test_pred, test_proba = predict(model, split.x_test["text"])
    accuracy = float(np.mean(test_pred == np.asarray(split.y_test).astype(str)))
    conf = test_proba.max(axis=1)
    return labelling.strata_edges(conf, estimation.fit_threshold(conf, accuracy))


def night_sample(model, edges, texts: pd.Series, truth: pd.Series, night: int, share: float,
                 seed: int) -> tuple[list[dict], dict]:
    """The ledger rows of one night's labelled sample, and the night's estimate figures."""
    predicted, proba = predict(model, texts)
    conf = proba.max(axis=1)
    truth = np.asarray(truth).astype(str)
    records = pd.DataFrame({"row": np.arange(1, len(texts) + 1), "text": texts.to_numpy(),
                            "truth": truth, "prediction": predicted,
                            "probability": np.round(conf, 6)})
    sampler = labelling.Sampler(BUDGET, edges, seed + night, uniform_share=share)
    sampler.add(records, conf)
    drawn = sampler.draw()
    right = (drawn["prediction"] == drawn["truth"]).to_numpy(dtype=float)
    estimate = labelling.stratified_accuracy(right, drawn["stratum"].to_numpy(),
                                             drawn["stratum_rows"].to_numpy())
    realized = float(np.mean(predicted == truth))
    sample_id = f"2026-12-0{night + 1}-bench-v1-night{night}"
    rows = [{"sample_id": sample_id, "row_key": str(r["row"]), "text": r["text"],
             "label": r["truth"], "model_name": "bench", "night": sample_id[:10],
             "audit": int(ledger.in_audit(sample_id, str(r["row"]))),
             "weight": float(r["weight"]), "inclusion_probability": float(r["inclusion_probability"]),
             "data_sha256": f"night{night}"} for r in drawn.to_dict("records")]
    low, high = estimate.accuracy_interval
    return rows, {"error": estimate.accuracy - realized, "half_width": (high - low) / 2,
                  "inside": bool(low <= realized <= high), "realized": realized}


def retrain(job_model, x_fit, y_fit, chosen: ledger.Selection, weighted: bool, rows: list[dict]):
    texts, labels = list(chosen.texts), list(chosen.labels)
    if weighted:  # each ledger row replicated in proportion to its design weight (the lightest
        # once; stochastic rounding, seeded, so the copies are right on average)
        weight = {r["text"]: r["weight"] for r in rows if not r["audit"]}
        w = np.array([weight[t] for t in texts]) / min(weight.values())
        extra = np.random.default_rng(0).random(len(w)) < (w - np.floor(w))
        copies = (np.floor(w) + extra).astype(int)
        texts = [t for t, k in zip(texts, copies) for _ in range(k)]
        labels = [lab for lab, k in zip(labels, copies) for _ in range(k)]
    in_ledger = set(chosen.texts) | {r["text"] for r in chosen.audit}
    keep = ~x_fit["text"].isin(in_ledger).to_numpy()
    x = pd.concat([x_fit["text"][keep], pd.Series(texts)], ignore_index=True)
    y = pd.concat([pd.Series(np.asarray(y_fit).astype(str)[keep]), pd.Series(labels)],
                  ignore_index=True)
    return fit(job_model, x, y)


def decide(champion, new, split, chosen: ledger.Selection) -> promotion.Decision:
    """train.py's rule: macro-F1 threshold 0.7, alpha 0.05, on the new test rows, then audit."""
    y = np.asarray(split.y_test).astype(str)
    new_pred, _ = predict(new, split.x_test["text"])
    old_pred, _ = predict(champion, split.x_test["text"])
    metric = "macro_f1"
    score = modeling.evaluate(y, new_pred).metrics[metric]
    before = modeling.evaluate(y, old_pred).metrics[metric]
    test = promotion.paired_test(metric, y, new_pred, old_pred, alpha=0.05, seed=42)
    audit = None
    if chosen.audit:
        texts = pd.Series([r["text"] for r in chosen.audit])
        truth = [r["label"] for r in chosen.audit]
        audit = promotion.audit_comparison(truth, predict(new, texts)[0],
                                           predict(champion, texts)[0],
                                           [r["weight"] for r in chosen.audit],
                                           len({r["sample_id"] for r in chosen.audit}))
    return promotion.decide_promotion(metric, score, 0.7, "1", before, test, 0.05, 0.0, audit)


def scenario_rows(scenario, shares: list[float], seed: int) -> list[dict]:
    job_model = settings.resolve(cfg.load_config(), cfg.PROJECT_ROOT).model
    x_fit, y_fit, x_mon, y_mon = scenario.build()
    started = time.perf_counter()
    champion, split = fit(job_model, x_fit["text"].reset_index(drop=True),
                          pd.Series(np.asarray(y_fit).astype(str)))
    edges = edges_of(champion, split)
    order = np.random.default_rng(seed).permutation(len(x_mon))
    nights = np.array_split(order, NIGHTS + 1)
    texts = x_mon["text"].reset_index(drop=True).astype(str)
    truth = pd.Series(np.asarray(y_mon).astype(str))
    last_texts, last_truth = texts.iloc[nights[-1]], truth.iloc[nights[-1]].to_numpy()
    before = float(np.mean(predict(champion, last_texts)[0] == last_truth))
    atc_before = atc_estimate(champion, split, last_texts)
    out = []
    for share in shares:
        rows, estimates = [], []
        for n in range(NIGHTS):
            got, figures = night_sample(champion, edges, texts.iloc[nights[n]],
                                        truth.iloc[nights[n]], n, share, seed)
            rows += got
            estimates.append(figures)
        chosen = ledger.select(rows, "bench")
        for weighted in ([False, True] if share == shares[-1] else [False]):
            new, new_split = retrain(job_model, x_fit, y_fit, chosen, weighted, rows)
            after = float(np.mean(predict(new, last_texts)[0] == last_truth))
            decision = decide(champion, new, new_split, chosen)
            out.append({
                "scenario": scenario.name, "shifted": scenario.shifted, "share": share,
                "weighted": weighted, "ledger_rows": len(chosen.texts),
                "audit_rows": len(chosen.audit), "before": before, "after": after,
                "lift": after - before, "alias": decision.alias, "reason": decision.reason,
                "estimate_abs_error": float(np.mean([abs(e["error"]) for e in estimates])),
                "estimate_half_width": float(np.mean([e["half_width"] for e in estimates])),
                "estimate_inside": int(sum(e["inside"] for e in estimates)),
                "atc_error_before": atc_before - before,
                "atc_error_after": atc_estimate(new, new_split, last_texts) - after,
                "seconds": time.perf_counter() - started})
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shares", default="0,0.2,0.5,1",
                        help="uniform shares of the labelling budget to compare (the last one "
                             "is also run with weighted ledger rows)")
    parser.add_argument("--scenarios", default=",".join(USED))
    parser.add_argument("--seeds", type=int, default=1, help="night cuts per scenario")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    wanted = args.scenarios.split(",")
    rows = []
    for scenario in [s for s in SCENARIOS if s.name in wanted]:
        for seed in range(args.seeds):
            rows += [{**r, "seed": seed} for r in scenario_rows(scenario, shares, seed)]
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.drop(columns=["reason"]).round(3).to_string(index=False))
    print(table.groupby(["share", "weighted"])[["lift", "estimate_abs_error",
                                                 "estimate_half_width"]].mean().round(4))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
