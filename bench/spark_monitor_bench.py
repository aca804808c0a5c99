#!/usr/bin/env python
"""monitor.py's two engines at scale (run on demand; Linux: reads /proc for memory; needs
requirements-spark.txt and Java 17).

Trains one champion (twcs_head5k_raw, label inbound) in its own embedded store, then for each
size N builds N distinct tweet-like rows with ../shared/tools/make_tweets.py, scores them with
predict.py (local engine, one Parquet file with the ids, the labels and every class's
probability) and monitors that file twice, each run in its own process:

  local   monitor.py                  (this process folds the file chunk by chunk)
  spark   monitor.py --engine spark   (the executors fold each partition into running sums and
                                       samples; the parts merge in a tree; the driver gets a
                                       few bounded objects, never a row)

Both with labels and a label sample of 200 rows. For each: wall time; the peak memory of the
Python driver alone (its VmHWM: where rows would pile up if they reached the driver), of the
JVM (local mode: driver and executors) and of the process tree (sum of PSS). Then where the two
reports differ (numbers compared to 1e-9): the figures made from sums should not; the sampled
ones (KS tests on 50,000 kept confidences, the text checks) may, within their randomness.

    python bench/spark_monitor_bench.py --rows 1000000,5000000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from predict_bench import SHARED, bench_env, make_rows  # noqa: E402
from spark_bench import run  # noqa: E402



def differences(a: dict, b: dict, path: str = "") -> list[str]:
    """Where two reports differ (numbers to 1e-9 relative), besides when they were checked and
    where their label samples went."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) if key not in ("checked_at", "path")
                for d in differences(a.get(key), b.get(key), f"{path}.{key}".lstrip("."))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-9 * max(1.0, abs(a)) else [f"{path}: {a:.6g} vs {b:.6g}"]
    return [] if a == b else [f"{path}: {str(a)[:40]} vs {str(b)[:40]}"]


def print_tables(results: list[dict], master: str) -> None:
    """The markdown table of docs/benchmarks.md, the reports' differences, the peak ratios."""
    print(f"Machine: {os.cpu_count()} cores, master {master}.\n")
    print("| rows | engine | wall s | driver (Python) peak GiB | JVM peak GiB | tree peak GiB | "
          "accuracy | estimated accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for engine in ("local", "spark"):
            m = r[engine]
            print(f"| {r['rows']:,} | {engine} | {m['wall_seconds']:.0f} | "
                  f"{m['driver_python_mb'] / 1024:.2f} | {m['jvm_mb'] / 1024:.2f} | "
                  f"{m['tree_mb'] / 1024:.2f} | {m['accuracy']:.6f} | {m['estimated']:.6f} |")
    for r in results:
        print(f"\n{r['rows']:,} rows: the reports differ in {len(r['differences'])} figure(s)"
              + "".join(f"\n  - {d}" for d in r["differences"]))
    first = results[0]
    for r in results[1:]:
        print(f"\nspark driver (Python) peak at {r['rows']:,} rows / at {first['rows']:,}: "
              f"{r['spark']['driver_python_mb'] / first['spark']['driver_python_mb']:.2f}x; "
              f"local tree peak: {r['local']['tree_mb'] / first['local']['tree_mb']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated input sizes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-spark-monitor-bench"))
    parser.add_argument("--json", type=Path,
                        default=ROOT / "bench" / "results" / "spark_monitor.json")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    py, env, results = sys.executable, bench_env(work / "store"), []
    (work / "store").mkdir(exist_ok=True)
    subprocess.run([py, str(ROOT / "train.py"), "--data", str(SHARED / "twcs" / "twcs_head5k_raw.csv"),
                    "--label-column", "inbound", "--quiet", "--no-baseline"], env=env, check=True)
    for rows in [int(r) for r in args.rows.split(",")]:
        data, scored = make_rows(rows, work), work / f"scored_{rows}.parquet"
        subprocess.run([py, str(ROOT / "predict.py"), "--data", str(data), "--output", str(scored),
                        "--id-columns", "id,inbound", "--proba", "all", "--quiet"], env=env,
                       check=True)
        row: dict = {"rows": rows}
        for engine in ("local", "spark"):
            extra = ["--engine", "spark", "--spark-master", args.master] if engine == "spark" else []
            report = work / f"report_{engine}_{rows}.json"
            row[engine] = run([py, str(ROOT / "monitor.py"), "--data", str(scored),
                               "--label-column", "inbound", "--id-columns", "id",
                               "--label-sample", "200", "--to-label",
                               str(work / f"to_label_{engine}_{rows}.csv"), "--report",
                               str(report), "--html", "", "--quiet", *extra], env,
                              exit_codes=(0, 1, 3))
            body = json.loads(report.read_text())
            row[engine]["accuracy"] = body["performance"]["overall"]["accuracy"]
            row[engine]["estimated"] = body["estimated"]["accuracy"]
            row[engine]["report"] = body
        row["differences"] = differences(row["local"].pop("report"), row["spark"].pop("report"))
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print_tables(results, args.master)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "master": args.master,
                                     "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
