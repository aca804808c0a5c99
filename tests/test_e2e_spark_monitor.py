"""End to end: monitor.py --engine spark run as cron would run it, against the local engine on
the same data (the in-process checks of the merged sums: tests/test_spark_monitor.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_project, ok, run_script, shared

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project whose champion v1 was trained on twcs_head5k_raw."""
    pytest.importorskip("pyspark")
    root = copy_project(tmp_path_factory.mktemp("spark-monitor") / "project")
    ok(run_script(root, "train.py", "--data", shared("twcs", "twcs_head5k_raw.csv"),
                  "--label-column", "inbound", "--no-baseline"))
    return root


def _monitor_both(root: Path, tmp_path: Path, *args: object) -> dict[str, Path]:
    """Reports (and rows to label, each engine into a folder of its own) of both engines."""
    reports = {}
    for engine in ("local", "spark"):
        reports[engine] = tmp_path / f"{engine}.json"
        result = run_script(root, "monitor.py", *args, "--report", reports[engine], "--html", "",
                            "--to-label", tmp_path / f"{engine}_to_label", "--engine", engine,
                            "--spark-master", "local[2]")
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


def test_raw_texts_are_scored_in_the_executors_as_the_local_engine_scores_them(project,
                                                                               tmp_path):
    """Raw labelled texts, scored by the broadcast champion in the executors, sliced, with
    rows to label: the local engine's report (performance, estimate, slices, drift, the label
    sample's strata) but for the text-content check, which trains a classifier on 1,000 texts
    sampled from the 1,199 (another uniform sample); the rows to label are a sample of the same
    strata, in a file of the same name. predict.py's Spark folder read by the Spark engine:
    tests/test_e2e.py; refusals before Spark starts: tests/test_monitoring.py."""
    data = tmp_path / "tweets.csv"
    tweets = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str).iloc[2700:3900]
    tweets.to_csv(data, index=False)
    reports = _monitor_both(project, tmp_path, "--data", data, "--label-column", "inbound",
                            "--slice-by", "inbound", "--id-columns", "tweet_id",
                            "--label-sample", "20")
    differences = _differences(reports["local"], reports["spark"])
    assert "to_label.path" in differences and "drift.checks[4].value" in differences
    assert all(d.startswith("drift.checks[4]") or d == "to_label.path" for d in differences)
    body = json.loads(reports["spark"].read_text())
    assert body["drift"]["checks"][4]["name"] == "text_content"
    assert body["slices"]["column"] == "inbound" and len(body["slices"]["slices"]) == 2
    files = {e: list((tmp_path / f"{e}_to_label").iterdir()) for e in ("local", "spark")}
    assert [f.name for f in files["spark"]] == [f.name for f in files["local"]]  # one sample id
    drawn = {e: pd.read_csv(found[0], dtype=str) for e, found in files.items()}
    assert len(drawn["spark"]) == 20 and drawn["spark"]["tweet_id"].is_unique
    assert "row" not in drawn["spark"] and drawn["spark"]["tweet_id"].isin(tweets["tweet_id"]).all()
    strata = {e: d.groupby("stratum")["stratum_rows"].first().to_dict() for e, d in drawn.items()}
    assert strata["spark"] == strata["local"]
