#!/usr/bin/env python
"""Spark engine benchmark (run on demand; Linux: reads /proc for memory; needs
requirements-spark.txt and Java 17).

Builds N distinct tweet-like rows with ../shared/tools/make_tweets.py (perturbed real tweets, a
vocabulary that grows with N), trains a champion in a private embedded store (or reuses it), and
scores the same CSV, each run in its own process:

  local   predict.py --workers 0 --output local.parquet         (one file, worker processes)
  spark   predict.py --engine spark --spark-master local[2] --output spark/   (the executors
          read, score with mlflow.pyfunc.spark_udf and write Parquet parts; the driver commits)

For each: wall time and rows/s; for spark the peak memory of the Python driver process alone
(its VmHWM: where rows would pile up if they passed through the driver), of the JVM (driver and,
in local mode, the executors, bounded by Spark's heap settings) and of the whole process tree
(sum of PSS). Then the two outputs are joined on the id: rows missing on either side,
predictions that differ, and the largest probability difference.

    python bench/spark_bench.py --rows 1000000,5000000
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from predict_bench import SHARED, _descendants, bench_env, make_rows, measure  # noqa: E402



def _status_kb(pid: int, key: str) -> int:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if x.startswith(key))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1])


def run(cmd: list[str], env: dict[str, str], exit_codes: tuple[int, ...] = (0,)
        ) -> dict[str, float]:
    """Run ``cmd``; wall time and memory peaks (the process itself, its JVM child, the tree)."""
    peaks = {"driver_python_mb": 0.0, "jvm_mb": 0.0}

    def driver_and_jvm(pid: int) -> None:
        peaks["driver_python_mb"] = max(peaks["driver_python_mb"], _status_kb(pid, "VmHWM:") / 1024)
        for child in _descendants(pid)[1:]:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{child}/exe").endswith("/java"):
                    peaks["jvm_mb"] = max(peaks["jvm_mb"], _status_kb(child, "VmHWM:") / 1024)

    m = measure(cmd, env, also=driver_and_jvm, exit_codes=exit_codes)
    return {"wall_seconds": m["wall_seconds"], **peaks, "tree_mb": m["peak_rss_mb"]}


def compare(local: Path, spark: Path) -> dict[str, float]:
    """Join the two outputs on the id: missing rows, differing predictions, max |Δ probability|."""
    import pyarrow.dataset as ds

    a = ds.dataset(local).to_table(columns=["id", "prediction", "probability"]).to_pandas()
    b = ds.dataset(spark, partitioning="hive").to_table(
        columns=["id", "prediction", "probability"]).to_pandas()
    a["id"], b["id"] = a["id"].astype(str), b["id"].astype(str)
    joined = a.merge(b, on="id", how="outer", suffixes=("_local", "_spark"), indicator=True)
    both = joined[joined["_merge"] == "both"]
    same = (both["prediction_local"].astype(str) == both["prediction_spark"].astype(str))
    return {"rows_local": len(a), "rows_spark": len(b),
            "ids_missing": int((joined["_merge"] != "both").sum()),
            "predictions_differing": int((~same).sum()),
            "max_probability_difference": float((both["probability_local"] -
                                                 both["probability_spark"]).abs().max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated input sizes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-spark-bench"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "spark.json")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    env = bench_env(work)
    py = sys.executable
    if not (work / "bench.db").exists():
        subprocess.run([py, str(ROOT / "train.py"), "--data", str(SHARED / "twcs" / "twcs_head5k.csv"),
                        "--label-column", "inbound", "--no-leakage-check", "--no-baseline", "--quiet"],
                       env=env, check=True)
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        data = make_rows(rows, work)
        local, folder = work / f"local_{rows}.parquet", work / f"spark_{rows}"
        common = ["--data", str(data), "--id-columns", "id"]
        timed = {
            "local": run([py, str(ROOT / "predict.py"), *common, "--output", str(local),
                          "--workers", "0"], env),
            "spark": run([py, str(ROOT / "predict.py"), *common, "--output", str(folder),
                          "--engine", "spark", "--spark-master", args.master], env),
        }
        row = {"rows": rows, **{f"{engine}_{k}": v for engine, m in timed.items() for k, v in m.items()},
               **compare(local, folder)}
        row["spark_vs_local_wall"] = row["spark_wall_seconds"] / row["local_wall_seconds"]
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    first = results[0]
    print("| rows | local s | spark s | spark / local | local rows/s | spark rows/s | driver (Python) "
          "peak MB | JVM peak MB | spark tree peak MB | local tree peak MB | ids missing | "
          "predictions differing | max abs Δ probability |")
    print("|---|" * 1 + "---|" * 12)
    for r in results:
        print(f"| {r['rows']:,} | {r['local_wall_seconds']:.1f} | {r['spark_wall_seconds']:.1f} | "
              f"{r['spark_vs_local_wall']:.2f}× | {r['rows'] / r['local_wall_seconds']:,.0f} | "
              f"{r['rows'] / r['spark_wall_seconds']:,.0f} | {r['spark_driver_python_mb']:.0f} | "
              f"{r['spark_jvm_mb']:.0f} | {r['spark_tree_mb']:.0f} | {r['local_tree_mb']:.0f} | "
              f"{r['ids_missing']} | {r['predictions_differing']} | "
              f"{r['max_probability_difference']:.2e} |")
    for r in results[1:]:
        print(f"\ndriver (Python) peak at {r['rows']:,} rows / at {first['rows']:,}: "
              f"{r['spark_driver_python_mb'] / first['spark_driver_python_mb']:.2f}×; "
              f"JVM: {r['spark_jvm_mb'] / max(first['spark_jvm_mb'], 1e-9):.2f}×")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "master": args.master,
                                     "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
