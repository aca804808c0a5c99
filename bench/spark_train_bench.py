#!/usr/bin/env python
"""train.py's two engines at scale (run on demand; Linux: reads /proc for memory; needs
requirements-spark.txt and Java 17).

For each size N, builds N distinct tweet-like rows with ../shared/tools/make_tweets.py, then
trains on them twice, each run in its own process and its own embedded store:

  local   train.py                  (this process streams the file: census, samples, test rows)
  spark   train.py --engine spark   (the executors count the census, draw the samples and score
                                     every test row; only the samples and the sums reach the
                                     driver, which fits)

For each: wall time; the peak memory of the Python driver process alone (its VmHWM: where rows
would pile up if they passed through the driver), of the JVM (local mode: driver and executors,
bounded by Spark's heap settings) and of the whole process tree (sum of PSS). Then the two runs'
logged split sizes and test metrics side by side (the same rows, so they should agree).

    python bench/spark_train_bench.py --rows 1000000,5000000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from predict_bench import bench_env, make_rows  # noqa: E402
from spark_bench import run  # noqa: E402

COMPARED = ("data.rows_usable", "data.rows_test", "data.rows_fit_sample", "data.rows_test_sample")
METRICS = ("accuracy", "macro_f1", "roc_auc", "calibration.ece")


def logged(env: dict[str, str]) -> dict[str, str | float]:
    """The newest training run's params and metrics in a bench store."""
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("textops")
    last = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=1)[0]
    return {**{k: last.data.params.get(k, "") for k in COMPARED},
            **{k: last.data.metrics.get(k, float("nan")) for k in METRICS}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated input sizes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-spark-train-bench"))
    parser.add_argument("--json", type=Path,
                        default=ROOT / "bench" / "results" / "spark_train.json")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--train-args", default="--no-baseline --no-leakage-check",
                        help="train.py flags of both runs (pass as --train-args='...')")
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    py, results = sys.executable, []
    for rows in [int(r) for r in args.rows.split(",")]:
        data = make_rows(rows, work)
        row: dict = {"rows": rows}
        for engine in ("local", "spark"):
            store = work / f"store_{engine}_{rows}"
            store.mkdir(exist_ok=True)
            env = bench_env(store)
            extra = ["--engine", "spark", "--spark-master", args.master] if engine == "spark" else []
            row[engine] = {**run([py, str(ROOT / "train.py"), "--data", str(data), "--label-column",
                                  "inbound", "--quiet", *args.train_args.split(), *extra], env),
                           **logged(env)}
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"Machine: {os.cpu_count()} cores, master {args.master}, train.py {args.train_args}.\n")
    print("| rows | engine | wall s | driver (Python) peak GiB | JVM peak GiB | tree peak GiB | "
          "test rows | test rows in memory | macro-F1 | accuracy | ROC-AUC | ECE |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for engine in ("local", "spark"):
            m = r[engine]
            print(f"| {r['rows']:,} | {engine} | {m['wall_seconds']:.0f} | "
                  f"{m['driver_python_mb'] / 1024:.2f} | {m['jvm_mb'] / 1024:.2f} | "
                  f"{m['tree_mb'] / 1024:.2f} | {int(m['data.rows_test']):,} | "
                  f"{int(m['data.rows_test_sample'] or m['data.rows_test']):,} | "
                  f"{m['macro_f1']:.6f} | {m['accuracy']:.6f} | {m['roc_auc']:.6f} | "
                  f"{m['calibration.ece']:.6f} |")
    first = results[0]
    for r in results[1:]:
        print(f"\nspark driver (Python) peak at {r['rows']:,} rows / at {first['rows']:,}: "
              f"{r['spark']['driver_python_mb'] / first['spark']['driver_python_mb']:.2f}x; "
              f"local tree peak: {r['local']['tree_mb'] / first['local']['tree_mb']:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "master": args.master,
                                     "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
