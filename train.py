#!/usr/bin/env python
"""Train a TF-IDF + CatBoost text classifier, log it to MLflow, register it and promote it.

The new version becomes @champion only if its test metric reaches the threshold AND it beats the
current champion evaluated on the same test rows in this run; otherwise it becomes @challenger.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from common import ExitCode, make_parser, run_main, start
from textops import training

log = logging.getLogger("train")


def build_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    return make_parser("train", config, __doc__, epilog="Example: python train.py --data "
                       "../shared/data/twcs/twcs_head5k_raw.csv --label-column inbound")


def main(argv: list[str] | None = None) -> int:
    resolved, _ = start("train", build_parser, argv)
    started = time.perf_counter()
    job = training.make_job(resolved)
    log.info("train: data=%s text=%s label=%s model=%s", job.location, job.columns.text,
             job.columns.label, job.tracking.model_name)
    td = training.load_training_data(job)  # input problems: exit 2, before any MLflow run
    print(training.train(job, td))
    log.info("done in %.1f s", time.perf_counter() - started)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main("train.py", main))
