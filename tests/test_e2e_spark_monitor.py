"""End to end: monitor.py --engine spark run as cron would run it, against the local engine on
the same data (the in-process checks of the merged sums: tests/test_spark_monitor.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import assert_clean_failure, copy_project, ok, run_script, shared

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project whose champion v1 was trained on twcs_head5k_raw."""
    pytest.importorskip("pyspark")
    root = copy_project(tmp_path_factory.mktemp("spark-monitor") / "project")
    ok(run_script(root, "train.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                  "--label-column", "inbound", "--no-baseline"))
    return root


def _monitor_both(root: Path, tmp_path: Path, *args: object, to_label: bool = False
                  ) -> dict[str, Path]:
    reports = {}
    for engine in ("local", "spark"):
        reports[engine] = tmp_path / f"{engine}.json"
        folder = ("--to-label", tmp_path / f"{engine}_to_label") if to_label else ()
        result = run_script(root, "monitor.py", *args, *folder, "--report", reports[engine],
                            "--html", "", "--engine", engine, "--spark-master", "local[2]")
        assert result.returncode in (0, 1, 3) and "Traceback" not in result.stderr, result.stderr
    return reports


def _differences(a: Path, b: Path) -> list[str]:
    """Where two monitor reports differ (numbers to 1e-9), besides when they were checked."""
    found: list[str] = []

    def walk(x, y, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else key)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y)):
                walk(p, q, f"{path}[{i}]")
        elif isinstance(x, float) and isinstance(y, float):
            if x != pytest.approx(y, rel=1e-9, abs=1e-12):
                found.append(path)
        elif x != y:
            found.append(path)

    walk(json.loads(a.read_text()), json.loads(b.read_text()), "")
    return [f for f in found if f != "checked_at"]


def test_a_predictions_file_gets_the_local_engines_report(project, tmp_path):
    """predict.py's output with ids, labels and every class's probability: the executors' sums
    give the local engine's report, every figure (fewer rows than the samples hold, so even
    the sampled ones), the slices and the rows to label per stratum."""
    data, scored = tmp_path / "tweets.csv", tmp_path / "scored.parquet"
    tweets = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).iloc[1500:2700]
    tweets.iloc[3, tweets.columns.get_loc("text")] = "  "  # blank: no prediction
    tweets.to_csv(data, index=False)
    ok(run_script(project, "predict.py", "--data", data, "--output", scored, "--id-columns",
                  "tweet_id,inbound", "--proba", "all"))
    reports = _monitor_both(project, tmp_path, "--data", scored, "--label-column", "inbound",
                            "--slice-by", "inbound", "--id-columns", "tweet_id",
                            "--label-sample", "20", to_label=True)
    assert _differences(reports["local"], reports["spark"]) == ["to_label.path"]
    seen = json.loads(reports["spark"].read_text())
    assert seen["data"]["rows"] == 1200 and seen["performance"]["overall"]["rows"] == 1199
    files = {e: list((tmp_path / f"{e}_to_label").iterdir()) for e in ("local", "spark")}
    assert [f.name for f in files["spark"]] == [f.name for f in files["local"]]  # one sample id
    drawn = {e: pd.read_csv(found[0], dtype=str) for e, found in files.items()}
    assert len(drawn["spark"]) == 20 and drawn["spark"]["tweet_id"].isin(tweets["tweet_id"]).all()
    assert "row" not in drawn["spark"] and drawn["spark"]["tweet_id"].is_unique
    strata = {e: d.groupby("stratum")["stratum_rows"].first().to_dict() for e, d in drawn.items()}
    assert strata["spark"] == strata["local"]


def test_raw_texts_are_scored_in_the_executors_as_the_local_engine_scores_them(project,
                                                                               tmp_path):
    """Raw labelled texts, scored by the broadcast champion in the executors: the local
    engine's report but for the text-content check, which trains a classifier on 1,000 texts
    sampled from the 1,199 (another uniform sample); a URI without --engine spark, --labels
    without ids and (locally) a folder of CSV parts are refused before Spark starts."""
    data = tmp_path / "tweets.csv"
    pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).iloc[2700:3900].to_csv(data, index=False)
    reports = _monitor_both(project, tmp_path, "--data", data, "--label-column", "inbound")
    differences = _differences(reports["local"], reports["spark"])
    assert differences and all(d.startswith("drift.checks[4]") for d in differences)
    checks = json.loads(reports["spark"].read_text())["drift"]["checks"]
    assert checks[4]["name"] == "text_content" and not checks[4]["drifted"]
    uri = run_script(project, "monitor.py", "--data", "hdfs://nn:8020/scored/tonight")
    assert_clean_failure(uri, 2, "--engine spark")
    labels = run_script(project, "monitor.py", "--data", data, "--engine", "spark", "--labels",
                        tmp_path / "labelled.csv")
    assert_clean_failure(labels, 2, "--id-columns")
    parts = tmp_path / "csv_parts"  # predict.py --engine spark --spark-format csv
    parts.mkdir()
    shutil.copy(data, parts / "part-00000-0.csv")
    (parts / "_SUCCESS").touch()
    assert_clean_failure(run_script(project, "monitor.py", "--data", parts), 2,
                         "add --engine spark")
