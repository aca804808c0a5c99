#!/usr/bin/env python
"""Monitoring benchmark (run on demand; Linux: reads /proc for memory).

Trains (or reuses) a champion on twcs_head5k in a private embedded store, scores the 5,000 real
rows once with predict.py (keeping text and label), then builds predictions files of the
requested sizes by resampling those scored rows, and measures side by side, each in its own
process:

  (a) floor          pandas reads the same columns of the file (what any check must pay)
  (b) monitor.py     on the predictions file with labels: performance + every drift check
  (c) monitor.py     on the raw texts (no predictions): it scores them with the model first

For each: wall time, rows/s, peak memory of the process tree (sum of PSS). Prints a markdown
table and writes JSON (default bench/results/monitor.json).

    python bench/monitor_bench.py --rows 100000,1000000 --raw-rows 100000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from predict_bench import SHARED, bench_env, measure  # noqa: E402

FLOOR = """
import sys, time, pandas as pd
start = time.perf_counter()
n = 0
for chunk in pd.read_csv(sys.argv[1], usecols=["text", "inbound", "prediction", "model_version",
                         "probability"], dtype=str, keep_default_na=False, chunksize=10000):
    n += len(chunk)
print(time.perf_counter() - start)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="predictions-file sizes")
    parser.add_argument("--raw-rows", default="100000", help="raw-text sizes (scored by monitor)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-monitor-bench"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "monitor.json")
    args = parser.parse_args()

    import pandas as pd

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    env = bench_env(work, TEXTOPS_LABEL_COLUMN="inbound")
    py = sys.executable
    source = SHARED / "twcs" / "twcs_head5k.csv"
    if not (work / "bench.db").exists() or not (work / "artifacts").exists():
        subprocess.run([py, str(ROOT / "train.py"), "--data", str(source), "--no-leakage-check",
                        "--no-baseline", "--quiet"], env=env, check=True)
    scored = work / "scored_5k.csv"
    if not scored.exists():
        subprocess.run([py, str(ROOT / "predict.py"), "--data", str(source), "--output", str(scored),
                        "--id-columns", "tweet_id,inbound,text", "--quiet"], env=env, check=True)
    base = pd.read_csv(scored, dtype=str, keep_default_na=False)
    results = []

    def run(name: str, rows: int, cmd: list[str]) -> None:
        m = measure(cmd, env)
        if m["timed_seconds"] is None:
            m["timed_seconds"] = m["wall_seconds"]
        m.update(rows=rows, run=name, rows_per_second=rows / m["wall_seconds"])
        results.append(m)
        print(f"{rows:>9,} {name:44s} wall {m['wall_seconds']:6.1f} s  peak {m['peak_rss_mb']:6.0f} MB",
              file=sys.stderr)

    for rows in [int(r) for r in args.rows.split(",") if r]:
        path = work / f"predictions_{rows}.csv"
        if not path.exists():
            base.sample(rows, replace=True, random_state=0).to_csv(path, index=False)
        run("(a) floor: pandas reads the columns", rows, [py, "-c", FLOOR, str(path)])
        run("(b) monitor.py, predictions file + labels", rows,
            [py, str(ROOT / "monitor.py"), "--data", str(path), "--report", str(work / "r.json"),
             "--html", str(work / "r.html"), "--quiet"])
    for rows in [int(r) for r in args.raw_rows.split(",") if r]:
        path = work / f"raw_{rows}.csv"
        if not path.exists():
            pd.read_csv(source, dtype=str, keep_default_na=False)[["tweet_id", "text", "inbound"]] \
                .sample(rows, replace=True, random_state=0).to_csv(path, index=False)
        run("(c) monitor.py, raw texts (scores them)", rows,
            [py, str(ROOT / "monitor.py"), "--data", str(path), "--report", str(work / "r.json"),
             "--html", str(work / "r.html"), "--quiet"])
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cores": os.cpu_count(), "results": results,
                                     "measured_at": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    return 0


def print_table(results: list[dict]) -> None:
    print(f"Machine: {os.cpu_count()} cores. Wall time includes process start-up, model / "
          f"reference download, every check, the JSON + HTML reports and the MLflow run.\n")
    print("| rows | run | wall s | rows/s | vs floor | peak memory MB (PSS) |")
    print("|---|---|---|---|---|---|")
    for m in results:
        floor = next((r for r in results if r["rows"] == m["rows"] and r["run"].startswith("(a)")), None)
        ratio = f"{m['wall_seconds'] / floor['wall_seconds']:.1f}×" if floor and m is not floor else "—"
        print(f"| {m['rows']:,} | {m['run']} | {m['wall_seconds']:.1f} | {m['rows_per_second']:,.0f} | "
              f"{ratio} | {m['peak_rss_mb']:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
