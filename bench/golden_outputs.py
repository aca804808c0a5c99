"""Golden outputs for refactors: run predict.py and monitor.py scenarios (and one training) of a
checkout against one stored model, and write every file and console line they produce, with what
changes from run to run (run ids, times, temporary paths) masked, into OUT.

A refactor that must keep behaviour byte-identical is checked by running this before and after
and comparing the two folders::

    python bench/golden_outputs.py /tmp/golden/before --code /tmp/golden/old-checkout
    python bench/golden_outputs.py /tmp/golden/after
    diff -r /tmp/golden/before /tmp/golden/after

The model both runs score with is trained once (``--store``, kept between runs) on the first
3,000 rows of twcs from ../shared/data; the scenarios use the next 1,500. Nothing is committed
from the data."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parents[1]
TWCS = Path(os.environ.get("TEXTOPS_SHARED_DATA", HERE.parent / "shared" / "data")) / "twcs" / \
    "twcs_head5k.csv"
WORK = Path("/tmp/textops-golden/project")  # one fixed place: stored artifact paths stay valid
FAST = {"TEXTOPS_CATBOOST_ITERATIONS": "60", "TEXTOPS_CATBOOST_CV_FOLDS": "3",
        "TEXTOPS_CATBOOST_CALIBRATION_FOLDS": "2", "TEXTOPS_TFIDF_MAX_FEATURES": "5000",
        "TEXTOPS_TFIDF_CHAR_MAX_FEATURES": "5000"}

MASKS = [
    (re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+"), "<png>"),  # history charts carry times
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d([.,]\d+)?(\+00:00|Z)?"), "<time>"),
    (re.compile(r"\d\d:\d\d:\d\d(,\d+)?"), "<clock>"),
    (re.compile(r"\b\d+(\.\d+)? ?(s|ms|seconds|min)\b"), "<secs>"),
    (re.compile(r"\b\d+(\.\d+)? rows/s\b"), "<rate>"),
    (re.compile(r"\b\d+(\.\d+)? ?(MiB|GiB|MB|KB|KiB)\b"), "<size>"),
    (re.compile(r"\bpid \d+"), "pid <n>"),
    (re.compile(r'"(duration|seconds|elapsed)[a-z_]*": [0-9.e-]+'), r'"\1": <n>'),
]


def masked(text: str) -> str:
    text = "".join(line for line in text.splitlines(keepends=True)
                   if " progress: " not in line)  # every 10 s: depends on the machine's load
    text = text.replace(str(WORK), "<project>")
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTOPS_", "MLFLOW_"))}
    out.update(FAST, MLFLOW_DISABLE_TELEMETRY="true")
    out.update(extra)
    return out


def run(out: Path, name: str, script: str, *args: str, **extra: str) -> int:
    result = subprocess.run([sys.executable, str(WORK / script), *args], cwd=WORK, env=env(**extra),
                            capture_output=True, text=True, timeout=900)
    (out / f"{name}.console").write_text(
        f"exit {result.returncode}\n--- stdout\n{masked(result.stdout)}--- stderr\n"
        f"{masked(result.stderr)}", encoding="utf-8")
    return result.returncode


def copy_code(code: Path) -> None:
    shutil.rmtree(WORK.parent, ignore_errors=True)
    WORK.mkdir(parents=True)
    for module in code.glob("*.py"):
        shutil.copy2(module, WORK / module.name)
    for folder in ("textops", "textprep", "nltk_data"):
        shutil.copytree(code / folder, WORK / folder, ignore=shutil.ignore_patterns("__pycache__"))


def data(folder: Path) -> None:
    """train.csv (3,000 rows), recent.csv (1,500 labelled), recent_texts.csv (no labels), drift.csv
    (customers' tweets only, shouted: a class and a text shift), train2.csv (a second training)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = pd.read_csv(TWCS, dtype=str, keep_default_na=False)
    rows = pd.DataFrame({"tweet_id": raw["tweet_id"], "text": raw["text"],
                         "label": raw["inbound"].str.lower()})
    rows.iloc[:3000].to_csv(folder / "train.csv", index=False)
    rows.iloc[3000:4500].to_csv(folder / "recent.csv", index=False)
    rows.iloc[3000:4500].drop(columns="label").to_csv(folder / "recent_texts.csv", index=False)
    shifted = rows.iloc[3000:].loc[lambda r: r["label"] == "true"].copy()
    shifted["text"] = shifted["text"].str.upper() + " !!!"
    shifted.to_csv(folder / "drift.csv", index=False)
    rows.iloc[1000:4000].to_csv(folder / "train2.csv", index=False)


def store(path: Path, code: Path) -> None:
    """The stored model every run scores with (trained once, by ``code``)."""
    copy_code(code)
    data(WORK / "data")
    code_ = subprocess.run([sys.executable, str(WORK / "train.py"), "--data", "data/train.csv",
                            "--quiet"], cwd=WORK, env=env(), capture_output=True, text=True)
    if code_.returncode != 0:
        sys.exit(f"training the golden model failed:\n{code_.stderr}")
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy2(WORK / "mlflow.db", path / "mlflow.db")
    shutil.copytree(WORK / "mlartifacts", path / "mlartifacts", dirs_exist_ok=True)


def scenarios(out: Path) -> None:
    d = "data/"
    run(out, "predict", "predict.py", "--data", d + "recent_texts.csv", "--output", "o/pred.csv",
        "--id-columns", "tweet_id")
    run(out, "predict-proba-explain", "predict.py", "--data", d + "recent.csv", "--output",
        "o/pred_all.csv", "--proba", "all", "--explain", "3", "--workers", "2", "--chunk-size", "400")
    run(out, "predict-parquet", "predict.py", "--data", d + "recent.csv", "--output",
        "o/pred.parquet")
    run(out, "predict-missing-column", "predict.py", "--data", d + "recent.csv", "--output",
        "o/none.csv", "--text-column", "body")
    run(out, "predict-tsv-wrong-delimiter", "predict.py", "--data", d + "recent.csv", "--output",
        "o/none2.csv", "--delimiter", "\t")
    run(out, "monitor-labelled", "monitor.py", "--data", d + "recent.csv", "--report",
        "o/m1.json", "--html", "o/m1.html")
    run(out, "monitor-texts", "monitor.py", "--data", d + "recent_texts.csv", "--report",
        "o/m2.json", "--html", "o/m2.html")
    run(out, "monitor-predictions", "monitor.py", "--data", "o/pred_all.csv", "--report",
        "o/m3.json", "--html", "")
    run(out, "monitor-drift-sample", "monitor.py", "--data", d + "drift.csv", "--report",
        "o/m4.json", "--html", "o/m4.html", "--label-sample", "60", "--to-label", "o/to_label.csv",
        "--id-columns", "tweet_id")
    sample = WORK / "o" / "to_label.csv"
    if sample.exists():
        truth = pd.read_csv(WORK / d / "drift.csv", dtype=str, keep_default_na=False)
        rows = pd.read_csv(sample, dtype=str, keep_default_na=False)
        rows["label"] = rows["tweet_id"].map(dict(zip(truth["tweet_id"], truth["label"])))
        rows.to_csv(WORK / "o" / "labelled.csv", index=False)
        run(out, "monitor-labels", "monitor.py", "--data", d + "drift.csv", "--report", "o/m5.json",
            "--html", "", "--labels", "o/labelled.csv", "--id-columns", "tweet_id")
    run(out, "monitor-missing-file", "monitor.py", "--data", d + "nothing.csv", "--report",
        "o/m6.json")
    run(out, "train-second", "train.py", "--data", d + "train2.csv")


def collect(out: Path) -> None:
    """The output files (masked) and the second training's stored reference profile and card."""
    for path in sorted((WORK / "o").glob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            (out / f"{path.name}.csv").write_text(masked(frame.to_csv(index=False)), encoding="utf-8")
            (out / f"{path.name}.schema").write_text(str(frame.dtypes), encoding="utf-8")
        else:
            (out / path.name).write_text(masked(path.read_text(encoding="utf-8")), encoding="utf-8")
    for name in ("reference.json", "model_card.md", "metrics.json"):
        found = sorted(WORK.glob(f"mlartifacts/**/{name}"), key=lambda p: p.stat().st_mtime)
        if found:
            text = found[-1].read_text(encoding="utf-8")
            if name.endswith(".json"):
                text = json.dumps(json.loads(text), indent=1, sort_keys=False)
            (out / f"train2-{name}").write_text(masked(text), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the outputs (replaced)")
    parser.add_argument("--code", type=Path, default=HERE, help="the checkout to run")
    parser.add_argument("--store", type=Path, default=Path("/tmp/textops-golden-store"),
                        help="the stored model (trained by --code when missing)")
    args = parser.parse_args()
    if not TWCS.exists():
        sys.exit(f"{TWCS} not found (../shared/data)")
    if not (args.store / "mlflow.db").exists():
        store(args.store, args.code.resolve())
    copy_code(args.code.resolve())
    data(WORK / "data")
    shutil.copy2(args.store / "mlflow.db", WORK / "mlflow.db")
    shutil.copytree(args.store / "mlartifacts", WORK / "mlartifacts")
    (WORK / "o").mkdir()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    scenarios(args.out)
    collect(args.out)
    print(f"wrote {len(list(args.out.iterdir()))} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
