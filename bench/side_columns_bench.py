#!/usr/bin/env python
"""Side columns (issue 26): do they help, do they hurt, and what do they cost when scoring?

Quality, on twcs_head5k (label ``inbound``), three seeded stratified 80/20 splits, in one run:
  twcs-reply-hour  side columns that carry signal: whether the tweet answers another
                   (``in_response_to_tweet_id`` present; categorical) and its hour (numeric)
  twcs-noise       side columns that carry none: the weekday, a seeded random store number of 20
                   (categorical) and a random minute (numeric): they must not hurt
Models:
  lr-text          TF-IDF 1-2-grams + LogisticRegression, text only (textops' baseline)
  lr-onehot        the same with the side columns one-hot encoded beside the TF-IDF
  textops-text     the default pipeline, trained as train.py trains it, text only
  textops-side     the default pipeline with the side columns (CatBoost reads them beside the
                   linear logits; categorical ones as CatBoost categories)
  textops-side+linear  as textops-side, and the side columns also one-hot in the linear stage

Speed: ROWS tweet-like rows (../shared/tools/make_tweets.py) with three side columns, scored as a
predict.py worker scores a chunk (``batch._score_chunk``: predict, render the CSV bytes, count
unseen values) with a text-only model and a model with the three side columns, trained on the
same rows, alternately, three rounds; the ratio of medians.

    python bench/side_columns_bench.py [--rows 100000] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config as cfg  # noqa: E402
from textops import batch, features, settings  # noqa: E402
from textops import data as dataio  # noqa: E402
from textops import model as modeling  # noqa: E402
from textops.columns import Columns  # noqa: E402
from textprep import TextAndSide  # noqa: E402
from textprep.side import SideFeatures, category_strings  # noqa: E402

SHARED = Path(os.environ.get("TEXTOPS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAKE_TWEETS = SHARED.parent / "tools" / "make_tweets.py"


def twcs(noise: bool) -> tuple[pd.DataFrame, list[str]]:
    """twcs_head5k with its side columns (see the module's docstring), and their names."""
    rows = pd.read_csv(SHARED / "twcs" / "twcs_head5k.csv", dtype=str)
    posted = pd.to_datetime(rows["created_at"], format="%a %b %d %H:%M:%S %z %Y")
    frame = pd.DataFrame({"text": rows["text"], "label": rows["inbound"]})
    if not noise:
        frame["is_reply"] = rows["in_response_to_tweet_id"].notna().map(str)
        frame["hour"] = posted.dt.hour.astype(str)
        return frame, ["is_reply", "hour"]
    rng = np.random.default_rng(7)
    frame["weekday"] = posted.dt.day_name()
    frame["store"] = rng.integers(1, 21, len(frame)).astype(str)
    frame["minute"] = rng.integers(0, 60, len(frame)).astype(str)
    return frame, ["weekday", "store", "minute"]


class OneHotBeside(TextAndSide):
    """A bench-only variant: the side columns also one-hot encoded beside the TF-IDF, so the
    linear stage reads them too (CatBoost still gets them as in textops-side)."""

    def fit_transform(self, X, y=None, **_):
        from sklearn.preprocessing import OneHotEncoder

        out = super().fit_transform(X, y)
        self.onehot_ = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
        extra = self.onehot_.fit_transform(self._names(X))
        return SideFeatures(sp.hstack([out.text, extra], format="csr"), out.side)

    def transform(self, X):
        out = super().transform(X)
        extra = self.onehot_.transform(self._names(X))
        return SideFeatures(sp.hstack([out.text, extra], format="csr"), out.side)

    def _names(self, X):
        return np.column_stack([category_strings(X[c]).fillna("(missing)").to_numpy(dtype=object)
                                for c in self.side.columns])


def lr_pipeline(side: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50000, sublinear_tf=True,
                            dtype=np.float32)
    parts = [("text", tfidf, "text")]
    if side:
        parts.append(("side", OneHotEncoder(handle_unknown="ignore"), side))
    return Pipeline([("features", ColumnTransformer(parts, sparse_threshold=1.0)),
                     ("clf", LogisticRegression(C=10, max_iter=1000))])


def fit_textops(x_fit: pd.DataFrame, y_fit: pd.Series, side: list[str], linear: bool = False):
    """Train as train.py trains: the stable split, early stopping on validation, refit."""
    config = cfg.load_config()
    spec = settings.resolve(config, cfg.PROJECT_ROOT).model
    d = config["data"]
    side_frame = x_fit[side].reset_index(drop=True) if side else None
    split = dataio.split_dataset(x_fit["text"], y_fit, "text", 1e-9, d["validation_size"],
                                 d["random_seed"], side_frame)
    kinds = features.side_spec(side_frame, tuple(side), (), 1000, "bench") if side else None
    pipeline = modeling.build_pipeline(spec, modeling.load_stopwords("english"), kinds)
    if linear:
        step = pipeline.named_steps["tfidf"]
        pipeline.steps[1] = ("tfidf", OneHotBeside(step.vectorizer, step.side, "text"))
    model, _ = modeling.train_model(pipeline, split.x_train, split.y_train, split.x_val,
                                    split.y_val)
    return model


def quality(seeds: list[int]) -> list[dict]:
    from sklearn.model_selection import train_test_split

    results = []
    for dataset, noise in (("twcs-reply-hour", False), ("twcs-noise", True)):
        frame, side = twcs(noise)
        for seed in seeds:
            x_fit, x_test, y_fit, y_test = train_test_split(
                frame.drop(columns="label"), frame["label"], test_size=0.2,
                stratify=frame["label"], random_state=seed)
            fitters = {
                "lr-text": lambda: lr_pipeline([]).fit(x_fit, y_fit),
                "lr-onehot": lambda: lr_pipeline(side).fit(x_fit, y_fit),
                "textops-text": lambda: fit_textops(x_fit, y_fit, []),
                "textops-side": lambda: fit_textops(x_fit, y_fit, side),
                "textops-side+linear": lambda: fit_textops(x_fit, y_fit, side, linear=True),
            }
            for name, fit in fitters.items():
                started = time.perf_counter()
                fitted = fit()
                seconds = time.perf_counter() - started
                predicted = np.asarray(fitted.classes_)[fitted.predict_proba(x_test).argmax(axis=1)]
                f1 = modeling.evaluate(np.asarray(y_test), predicted).metrics["macro_f1"]
                results.append({"dataset": dataset, "seed": seed, "model": name,
                                "macro_f1": f1, "train_seconds": seconds})
                print(f"{dataset:16s} seed {seed} {name:20s} macro-F1 {f1:.4f} ({seconds:.1f} s)",
                      file=sys.stderr, flush=True)
    return results


def speed(rows: int, rounds: int = 3) -> dict:
    """Scoring throughput with and without three side columns, as predict.py scores a chunk."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tweets.csv"
        subprocess.run([sys.executable, str(MAKE_TWEETS), str(rows), str(path)], check=True)
        frame = pd.read_csv(path, dtype=str)
    rng = np.random.default_rng(0)
    frame["is_reply"] = rng.choice(["True", "False"], len(frame))
    frame["hour"] = rng.integers(0, 24, len(frame)).astype(str)
    frame["weekday"] = rng.choice(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], len(frame))
    side = ["is_reply", "hour", "weekday"]
    fit = frame.head(20_000)
    models = {"text only": fit_textops(fit, fit["inbound"], []),
              "3 side columns": fit_textops(fit, fit["inbound"], side)}
    specs = {
        "text only": batch.ScoringSpec(model_path="", columns=Columns(text="text", label="inbound"),
                                       model_version="1", proba_columns=False, explain=0),
        "3 side columns": batch.ScoringSpec(
            model_path="", columns=Columns(text="text", label="inbound"), model_version="1",
            proba_columns=False, explain=0, model_text="text", side_columns=tuple(side),
            side_kinds=("categorical", "numeric", "categorical")),
    }
    chunks = [frame.iloc[i:i + 50_000] for i in range(0, len(frame), 50_000)]
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, fitted in models.items():
            started = time.perf_counter()
            for index, chunk in enumerate(chunks):  # a worker's work: score, render, count
                batch._score_chunk(batch.single_threaded(fitted), chunk, specs[name], index == 0)
            times[name].append(time.perf_counter() - started)
    rate = {name: len(frame) / statistics.median(t) for name, t in times.items()}
    return {"rows": len(frame), "rows_per_second": rate,
            "ratio": rate["3 side columns"] / rate["text only"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", choices=("quality", "speed"), help="run one half only")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "side_columns.json")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    results = [] if args.only == "speed" else quality([int(s) for s in args.seeds.split(",")])
    if results:
        print_quality(results)
    timing = speed(args.rows) if args.only != "quality" else {}
    if timing:
        print(f"\nscoring {timing['rows']:,} rows as predict.py does (one process): "
              + ", ".join(f"{k} {v:,.0f} rows/s" for k, v in timing["rows_per_second"].items())
              + f"; ratio {timing['ratio']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"quality": results, "speed": timing}, indent=2))
    return 0


def print_quality(results: list[dict]) -> None:
    frame = pd.DataFrame(results)
    table = frame.groupby(["dataset", "model"], sort=False).agg(
        macro_f1=("macro_f1", "mean"), low=("macro_f1", "min"), high=("macro_f1", "max"),
        train_seconds=("train_seconds", "mean")).reset_index()
    print("| data | model | macro-F1 (mean of seeds) | min-max | train s |")
    print("|---|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.dataset} | {r.model} | {r.macro_f1:.4f} | {r.low:.4f}-{r.high:.4f} | "
              f"{r.train_seconds:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
