#!/usr/bin/env python
"""Check a model on recent data: drift without labels, performance with them (for CI / cron).

Input, by its columns:
  * texts (the text column): the model (default @champion) scores them;
  * a predictions file written by predict.py (prediction, model_version, optionally probability
    and the text): the recorded predictions are used, per model version.
With a label column, performance is checked too (per model version for predictions files).

Performance alerts (exit 1): accuracy < --min-accuracy, macro-F1 < --min-macro-f1, either one more
than --max-relative-drop below the version's own test metrics at training time, or a class's
recall < --min-class-recall (classes with enough labelled rows). --slice-by COLUMN: the same
figures for each of the column's top values, and an alert for a slice more than
--max-relative-drop below the test accuracy at training that chance (shared by the slices
checked) cannot explain.
Without labels, accuracy is estimated from the model's confidences (report key "estimated"):
ATC (average thresholded confidence, the headline), CBPE and DoC side by side, with a 90-percent
interval that widens when they disagree and after drift; alert when the whole interval is below
--min-accuracy or the estimate (after drift: the interval's centre) is more than
--max-relative-drop below the version's test accuracy at training time. When drift fires or the
estimators disagree, a stratified sample of rows to label is written to --to-label
(--label-sample N: every run); --labels with those rows labelled gives an unbiased estimate of
the night's accuracy, which the alerts then use.
Drift alerts (exit 3), against the reference profile saved with the model version at training
time: predicted-class shift (PSI > --psi-max; chi-square p reported), confidence and text-length
shift (Kolmogorov-Smirnov D > --ks-max with p < TEXTOPS_MONITOR_KS_PVALUE), out-of-vocabulary
rate rising by more than --oov-increase-max, text content (domain classifier ROC-AUC >
--domain-auc-max and above chance at p < TEXTOPS_MONITOR_DOMAIN_PVALUE, with the words typical of
each side).
Writes a JSON report and a self-contained HTML report (atomically) and logs an MLflow run in the
monitoring experiment, tagged with the model version, so the MLflow UI charts it over time.

--engine spark: Spark reads --data (a file, predict.py's Spark output folder, or a Hadoop-FS URI:
hdfs://, s3a://, ...), its executors fold each partition into the same running sums and bounded
samples and the driver merges them (never a row); the same figures from sums as the local engine,
other uniform samples; rows to label are known by their --id-columns.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from typing import Any

from common import make_parser, run_main, start
from textops.monitoring import check, report

log = logging.getLogger("monitor")

GROUPS = {f"monitor.{key}": "performance alerts (exit 1)" for key in
          ("min_accuracy", "min_macro_f1", "max_relative_drop", "min_class_recall", "slice_by",
           "slice_top", "slice_min_rows")}
GROUPS.update({f"monitor.{key}": "drift alerts (exit 3)" for key in
               ("psi_max", "ks_max", "oov_increase_max", "domain_auc_max")})


def build_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    parser = make_parser("monitor", config, __doc__, groups=GROUPS,
                         epilog="Example: python monitor.py --data today_scored.csv; "
                                "[ $? -eq 3 ] && notify-team 'inputs drifted'")
    parser.add_argument("--label-column", default=None,
                        help="column holding the true label; when the default column is absent "
                             "only drift is checked; with --labels: the labels file's column "
                             "(then not needed in --data) [TEXTOPS_DATA_LABEL_COLUMN, default "
                             f"{config['data']['label_column']}]")
    parser.add_argument("--no-html", dest="monitor.html", action="store_const", const="",
                        help="do not write the HTML report")
    parser.add_argument("--label-sample", type=int, default=None, metavar="N",
                        help="write N rows to label to --to-label on this run, whatever the "
                             "estimate says (without it: TEXTOPS_MONITOR_LABEL_SAMPLE rows, only "
                             "when drift fires or the estimators disagree)")
    return parser


def main(argv: list[str] | None = None) -> int:
    resolved, args = start("monitor", build_parser, argv)
    started = time.perf_counter()
    if args.label_column is not None:  # asked for explicitly: it must be there
        resolved = replace(resolved, data=replace(resolved.data, label_column=args.label_column))
    job = check.make_job(resolved, label_required=args.label_column is not None,
                         label_sample=args.label_sample)
    result = check.run(job)
    for alert in result.all_alerts:
        log.warning("ALERT %s", alert)
    log.info("monitor finished in %.1f s: %s (%d rows)", time.perf_counter() - started,
             result.status, result.data.rows)
    print(report.summary(result) + f" (report {job.report}" +
          (f", {job.html})" if job.html else ")"))
    return int(result.exit_code)


if __name__ == "__main__":
    sys.exit(run_main("monitor.py", main))
