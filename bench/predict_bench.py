#!/usr/bin/env python
"""Batch-prediction benchmark (run on demand; Linux: reads /proc for memory).

Builds input CSVs by resampling real rows of ../shared/data/twcs/twcs_head5k.csv, trains a
champion with the default configuration in a private embedded store (or reuses it), and measures
side by side, each in its own process:

  (a) in-memory limit   the champion's predict_proba on texts already in memory, one process
  (b) naive baseline    read the whole CSV with pandas, predict, write the CSV
  (c) predict.py        --workers 1
  (d) predict.py        --workers 0 (one per core)
  (e) plain linear      TF-IDF 1-2-grams + LogisticRegression (train.py's logged baseline),
                        fitted on the same rows, predict_proba in memory as (a): the speed goal
  (f) sklearn TF-IDF    (a) for a champion trained with TEXTOPS_TFIDF_VECTORIZER=sklearn (the
                        previous release's feature step), in the same store

For each: wall time, rows/s, peak memory of the whole process tree (sum of PSS), and rows/s
relative to (a) and to (e).
Prints a markdown table and writes JSON (default bench/results/predict.json).

    python bench/predict_bench.py --rows 100000,1000000
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TEXTOPS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODEL = "bench-twcs"

IN_MEMORY = """
import sys, time, pandas as pd, mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.sklearn.load_model(f"models:/{sys.argv[2]}@champion")
texts = pd.read_csv(sys.argv[3], usecols=["text"], dtype=str, keep_default_na=False)
start = time.perf_counter()
for i in range(0, len(texts), 10000):
    model.predict_proba(texts.iloc[i:i + 10000])
print(time.perf_counter() - start)
"""

NAIVE = """
import sys, time, numpy as np, pandas as pd, mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.sklearn.load_model(f"models:/{sys.argv[2]}@champion")
start = time.perf_counter()
frame = pd.read_csv(sys.argv[3], dtype=str, keep_default_na=False)
proba = model.predict_proba(frame[["text"]])
out = pd.DataFrame({"tweet_id": frame["tweet_id"],
                    "prediction": np.asarray(model.classes_)[proba.argmax(axis=1)],
                    "probability": proba.max(axis=1)})
out.to_csv(sys.argv[4], index=False)
print(time.perf_counter() - start)
"""


PLAIN = """
import sys, time, pandas as pd
sys.path.insert(0, sys.argv[3])
from textops import diagnostics
train = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
model = diagnostics.baseline_pipeline("text").fit(train[["text"]], train["inbound"])
texts = pd.read_csv(sys.argv[2], usecols=["text"], dtype=str, keep_default_na=False)
start = time.perf_counter()
for i in range(0, len(texts), 10000):
    model.predict_proba(texts.iloc[i:i + 10000])
print(time.perf_counter() - start)
"""
SKLEARN_MODEL = MODEL + "-sklearn-tfidf"


def _descendants(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/*/children (no scan of all /proc)."""
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                stack.extend(int(c) for c in task.read_text().split())
            except OSError:
                continue
    return found


def tree_rss_kb(pid: int) -> int:
    """Memory of ``pid`` and all its descendants: the sum of their proportional set sizes (PSS:
    pages shared after fork count once overall, not once per process), or of their RSS where
    PSS is not available."""
    total = 0
    for p in _descendants(pid):
        for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
            try:
                text = Path(f"/proc/{p}/{name}").read_text()
            except OSError:
                continue
            line = next((x for x in text.splitlines() if x.startswith(key)), None)
            if line:
                total += int(line.split()[1])
                break
    return total


MAKE_TWEETS = SHARED.parent / "tools" / "make_tweets.py"


def make_rows(rows: int, folder: Path) -> Path:
    """``folder/tweets_<rows>.csv``: that many distinct tweet-like rows (make_tweets.py, seed 7),
    built once and kept between runs."""
    path = folder / f"tweets_{rows}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(MAKE_TWEETS), str(rows), str(path), "7"], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def measure(cmd: list[str], env: dict[str, str],
            also: Callable[[int], None] | None = None,
            exit_codes: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Run ``cmd``; wall time, peak tree RSS, and the seconds it printed last (if any).
    ``also(pid)`` is called at each memory sample (for other peaks the caller keeps);
    ``exit_codes``: the ones that mean it ran (monitor.py's alerts are 1 and 3)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))
            if also is not None:
                also(proc.pid)
            time.sleep(1.0)  # reading smaps_rollup briefly locks the process's memory map

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode not in exit_codes:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    inner = None
    for line in reversed(out.strip().splitlines()):
        try:
            inner = float(line)
            break
        except ValueError:
            continue
    return {"wall_seconds": wall, "timed_seconds": inner, "peak_rss_mb": peak[0] / 1024,
            "stdout": out}


def bench_env(work: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without textops/MLflow settings, pointed at a private store
    (registry, artifacts, logs) in ``work``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTOPS_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", TEXTOPS_MODEL_NAME=MODEL,
               MLFLOW_TRACKING_URI=f"sqlite:///{work / 'bench.db'}",
               TEXTOPS_MLFLOW_ARTIFACT_ROOT=str(work / "artifacts"),
               TEXTOPS_LOG_DIR=str(work / "logs"), **extra)
    return env


def make_input(rows: int, folder: Path) -> Path:
    import pandas as pd

    path = folder / f"twcs_{rows}.csv"
    if not path.exists():
        source = pd.read_csv(SHARED / "twcs" / "twcs_head5k.csv", dtype=str, keep_default_na=False)
        sample = source.sample(rows, replace=True, random_state=0).reset_index(drop=True)
        sample["tweet_id"] = range(rows)
        sample[["tweet_id", "text"]].to_csv(path, index=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000", help="comma-separated input sizes")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/textops-predict-bench"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "predict.json")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each measurement this many times and keep the median rows/s "
                             "(this machine is noisy)")
    parser.add_argument("--runs", default="abcdef",
                        help="which runs, by letter (e.g. 'cd' at sizes where (b) would not fit "
                             "in memory)")
    parser.add_argument("--retrain", action="store_true", help="train a new champion first")
    args = parser.parse_args()

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    env = bench_env(work)
    py = sys.executable
    if args.retrain or not (work / "bench.db").exists() or not (work / "artifacts").exists():
        subprocess.run([py, str(ROOT / "train.py"), "--data", str(SHARED / "twcs" / "twcs_head5k.csv"),
                        "--label-column", "inbound", "--no-leakage-check", "--no-baseline", "--quiet"],
                       env=env, check=True)
    if "f" in args.runs and (args.retrain or not (work / "sklearn.trained").exists()):
        subprocess.run([py, str(ROOT / "train.py"), "--data", str(SHARED / "twcs" / "twcs_head5k.csv"),
                        "--label-column", "inbound", "--no-leakage-check", "--no-baseline", "--quiet"],
                       env={**env, "TEXTOPS_MODEL_NAME": SKLEARN_MODEL,
                            "TEXTOPS_TFIDF_VECTORIZER": "sklearn"}, check=True)
        (work / "sklearn.trained").touch()
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        data = make_input(rows, work)
        out = work / "out.csv"
        runs = {
            "(a) in-memory predict_proba": [py, "-c", IN_MEMORY, env["MLFLOW_TRACKING_URI"], MODEL, str(data)],
            "(b) naive pandas read/predict/write": [py, "-c", NAIVE, env["MLFLOW_TRACKING_URI"], MODEL,
                                                    str(data), str(out)],
            "(c) predict.py --workers 1": [py, str(ROOT / "predict.py"), "--data", str(data), "--output",
                                           str(out), "--id-columns", "tweet_id", "--workers", "1", "--quiet"],
            "(d) predict.py all cores": [py, str(ROOT / "predict.py"), "--data", str(data), "--output",
                                         str(out), "--id-columns", "tweet_id", "--workers", "0", "--quiet"],
            "(e) plain TF-IDF + LR, in memory": [py, "-c", PLAIN, str(SHARED / "twcs" / "twcs_head5k.csv"),
                                                 str(data), str(ROOT)],
            "(f) (a) with sklearn's TF-IDF (before)": [py, "-c", IN_MEMORY, env["MLFLOW_TRACKING_URI"],
                                                       SKLEARN_MODEL, str(data)],
        }
        for name, cmd in runs.items():
            if name[1] in args.runs:
                results.append(median_run(name, cmd, env, rows, work, args.repeat))
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cores": os.cpu_count(), "results": results}, indent=2))
    return 0


def median_run(name: str, cmd: list[str], env: dict[str, str], rows: int, work: Path,
               repeat: int) -> dict:
    """``repeat`` runs of ``cmd``; the median one by rows/s, with the highest peak memory."""
    tries = []
    for _ in range(max(repeat, 1)):
        m = measure(cmd, env)
        m.pop("stdout")
        if name.startswith("(c)") or name.startswith("(d)"):
            log = next(line for line in reversed(
                (work / "logs" / "predict.log").read_text().splitlines())
                if " s reading+scoring+writing" in line)
            m["timed_seconds"] = float(
                log.split(" s reading+scoring+writing")[0].rsplit(" in ", 1)[1])
        m["rows_per_second"] = rows / m["timed_seconds"]
        tries.append(m)
    tries.sort(key=lambda t: t["rows_per_second"])
    m = dict(tries[len(tries) // 2])  # the median run
    m.update(rows=rows, run=name, repeats=len(tries),
             all_rows_per_second=[round(t["rows_per_second"]) for t in tries],
             peak_rss_mb=max(t["peak_rss_mb"] for t in tries))
    print(f"{rows:>9,} {name:38s} {m['rows_per_second']:10,.0f} rows/s  "
          f"peak {m['peak_rss_mb']:7.0f} MB  wall {m['wall_seconds']:6.1f} s", file=sys.stderr)
    return m


def print_table(results: list[dict]) -> None:
    print(f"Machine: {os.cpu_count()} cores. rows/s: (a), (e), (f) time predict_proba alone; "
          f"(b) reading, scoring and writing; (c), (d) predict.py's reading, scoring and writing "
          f"including the workers' model loading; wall: the whole process.\n")
    print("| rows | run | rows/s | vs (a) | vs (e) plain linear | peak memory MB (PSS) | wall s |")
    print("|---|---|---|---|---|---|---|")
    for m in results:
        def ratio(letter: str) -> float | None:
            base = next((r for r in results if r["rows"] == m["rows"]
                         and r["run"].startswith(f"({letter})")), None)
            return m["rows_per_second"] / base["rows_per_second"] if base else None

        m["ratio_to_in_memory"], m["ratio_to_plain"] = ratio("a"), ratio("e")
        shown = ["—" if r is None else f"{r:.2f}" for r in (m["ratio_to_in_memory"],
                                                              m["ratio_to_plain"])]
        print(f"| {m['rows']:,} | {m['run']} | {m['rows_per_second']:,.0f} | {shown[0]} | "
              f"{shown[1]} | {m['peak_rss_mb']:,.0f} | {m['wall_seconds']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
