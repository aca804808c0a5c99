#!/usr/bin/env python
"""Training-at-scale benchmark (run on demand; Linux: reads /proc for memory).

For each size N, builds N distinct tweet-like rows with ../shared/tools/make_tweets.py (perturbed
real tweets: the vocabulary grows with N, as in real traffic), then measures, each in its own
process and in the same run:

  train.py  the default configuration, in a private embedded store (baseline, leakage probes,
            token importance, reference profile and model logging included)
  plain     TF-IDF 1-2-grams (50k features) + LogisticRegression fitted on ALL the same training
            + validation rows train.py splits off, scored on the same test rows

For each: wall time, peak memory of the process tree (sum of PSS), test macro-F1; for train.py
also the macro-F1 of the baseline it logged, and the wall-time ratio to the plain pipeline.
Prints a markdown table and writes JSON (default bench/results/train_scale.json).

    python bench/train_scale_bench.py --rows 100000,300000,1000000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from predict_bench import bench_env, make_rows, measure  # noqa: E402


PLAIN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import config as cfg
from textops import inputs
from textops import data, diagnostics, model
start = time.perf_counter()
c = cfg.load_config({})["data"]
path = Path(sys.argv[1])
frame = inputs.read_table(path, usecols=["text", "inbound"])
rows = data.prepare_labelled(frame, "text", "inbound", path)
split = data.split_dataset(rows.texts, rows.labels, "text", c["test_size"], c["validation_size"],
                           c["random_seed"])
x_fit, y_fit = split.training_rows()
pipe = diagnostics.baseline_pipeline("text").fit(x_fit, y_fit)
macro_f1 = model.evaluate(split.y_test, pipe.predict(split.x_test)).metrics["macro_f1"]
print(json.dumps({"macro_f1": macro_f1, "fit_rows": len(y_fit)}))
print(time.perf_counter() - start)
"""


def logged_metrics(env: dict[str, str]) -> dict[str, float]:
    """The newest training run's metrics and parameters in the bench store."""
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("textops")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                             max_results=1)[0]
    return {**run.data.metrics, "fit_rows": float(run.data.params.get("data.rows_fit_sample", 0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,300000,1000000", help="comma-separated sizes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-train-scale-bench"))
    parser.add_argument("--json", type=Path,
                        default=ROOT / "bench" / "results" / "train_scale.json")
    parser.add_argument("--no-plain", action="store_true",
                        help="measure train.py alone (the plain pipeline holds every row: at 10M "
                             "rows it measures the machine, not textops)")
    parser.add_argument("--train-args", default="",
                        help="extra train.py flags, e.g. '--max-fit-rows 0'")
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        data = make_rows(rows, work)
        store = work / f"store_{rows}"
        store.mkdir(exist_ok=True)
        env = bench_env(store)
        plain = None
        if not args.no_plain:
            plain = measure([py, "-c", PLAIN, str(data), str(ROOT)], env)
            plain.update(json.loads(plain.pop("stdout").strip().splitlines()[-2]))
        train = measure([py, str(ROOT / "train.py"), "--data", str(data), "--label-column",
                         "inbound", "--quiet", *args.train_args.split()], env)
        train.pop("stdout")
        m = logged_metrics(env)
        train.update(macro_f1=m["macro_f1"], baseline_macro_f1=m.get("baseline.macro_f1"),
                     fit_rows=m["fit_rows"], fit_seconds=m.get("training_seconds"))
        for name, r in (("plain TF-IDF + LR", plain), ("train.py", train)):
            if r is None:
                continue
            r.update(rows=rows, run=name, wall_ratio=r["wall_seconds"] / plain["wall_seconds"]
                     if plain else float("nan"))
            results.append(r)
            print(f"{rows:>9,} {name:18s} wall {r['wall_seconds']:7.1f} s ({r['wall_ratio']:.2f}x)"
                  f"  peak {r['peak_rss_mb'] / 1024:5.2f} GiB  macro-F1 {r['macro_f1']:.4f}",
                  file=sys.stderr)
    print(f"Machine: {os.cpu_count()} cores. Wall includes reading the CSV; train.py's also "
          f"the baseline, leakage probes, token importance, reference profile and logging.\n")
    print("| rows | run | wall s | vs plain | peak PSS GiB | rows fitted | test macro-F1 | "
          "logged baseline macro-F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        base = r.get("baseline_macro_f1")
        print(f"| {r['rows']:,} | {r['run']} | {r['wall_seconds']:.0f} | {r['wall_ratio']:.2f}x | "
              f"{r['peak_rss_mb'] / 1024:.2f} | {int(r['fit_rows']):,} | {r['macro_f1']:.4f} | "
              f"{'' if base is None else f'{base:.4f}'} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cores": os.cpu_count(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
