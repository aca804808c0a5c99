"""Monitoring: drift statistics, performance from confusion counts, graded exit codes, history
and the HTML report (rendered in headless Chromium), on real data."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from textops.columns import Columns
from sklearn.metrics import accuracy_score, f1_score, recall_score

import config as cfg
from textops import settings
from textops.settings import Thresholds
from textops.monitoring import alerts as monitoring
from textops.monitoring import check, drift, estimation, report
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.result import (DataSummary, DriftSummary, ModelSummary, MonitorReport,
                                       Performance, PerformanceReport)
from textops.monitoring.stream import Reservoir, StreamSpec, accumulate
from conftest import copy_project, registry, run_script, shared

MODEL = "textops-classifier"


def ok_or(result, code):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


# ------------------------------------------------------------------------------------------
# Units
# ------------------------------------------------------------------------------------------
def test_performance_from_confusion_counts_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y_true = rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1])
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.choice(["a", "b", "d"], 500))
    got = monitoring.performance(Counter(zip(y_true, y_pred)))
    assert got.rows == 500
    assert got.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert got.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro",
                                                     labels=sorted(set(y_true)), zero_division=0))
    for label in ("a", "b", "c"):
        assert got.recall_per_class[label] == pytest.approx(
            recall_score(y_true, y_pred, labels=[label], average="macro", zero_division=0))
    assert "d" not in got.recall_per_class  # never a true label: no recall to speak of


def test_a_predicted_class_absent_from_a_labelled_batch_raises_no_false_alert():
    """Macro-F1 has one definition: over the classes in the truth, as at training (issue 19)."""
    pairs = Counter({("a", "a"): 48, ("a", "c"): 2, ("b", "b"): 48})  # "c": predicted only
    got = monitoring.performance(pairs)
    assert got.macro_f1 == pytest.approx(f1_score(
        ["a"] * 50 + ["b"] * 48, ["a"] * 48 + ["c"] * 2 + ["b"] * 48, average="macro",
        labels=["a", "b"]))
    reference = {"accuracy": 0.98, "macro_f1": 0.98}
    thresholds = Thresholds.defaults(min_accuracy=0.8, min_macro_f1=0.7, max_relative_drop=0.1,
                                     min_class_recall=0.5, min_class_support=20)
    assert monitoring.performance_alerts(got, reference, thresholds, "overall") == []


def test_reservoir_is_bounded_uniform_and_reproducible():
    def sample(seed):
        reservoir = Reservoir(1000, seed)
        for start in range(0, 100_000, 7_000):
            reservoir.add(range(start, min(start + 7_000, 100_000)))
        return reservoir

    first = sample(0)
    assert len(first.items) == 1000 and first.seen == 100_000
    assert first.items == sample(0).items
    assert len(set(first.items)) == 1000
    assert 40_000 < np.mean(first.items) < 60_000  # not biased to the start of the stream
    assert np.histogram(first.items, bins=4, range=(0, 100_000))[0].min() > 200


def test_psi_and_ks_react_to_shifts_not_to_noise():
    ref = {"a": 0.5, "b": 0.5}
    assert drift.psi(ref, {"a": 0.5, "b": 0.5}) == pytest.approx(0)
    assert drift.psi(ref, {"a": 0.52, "b": 0.48}) < 0.01
    assert drift.psi(ref, {"a": 0.9, "b": 0.1}) > 0.2
    rng = np.random.default_rng(1)
    d_same, _ = drift.ks(rng.normal(size=2000), rng.normal(size=5000))
    d_moved, p_moved = drift.ks(rng.normal(size=2000), rng.normal(0.5, size=5000))
    assert d_same < 0.05 and d_moved > 0.15 and p_moved < 1e-6


def test_domain_classifier_tells_domains_apart_and_names_their_words():
    twcs = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)["text"].sample(1200, random_state=0)
    banking = pd.read_csv(shared("banking77", "test.csv"), dtype=str)["text"].sample(600, random_state=0)
    same = drift.domain_classifier(twcs.iloc[:600].tolist(), twcs.iloc[600:].tolist())
    other = drift.domain_classifier(twcs.iloc[:600].tolist(), banking.tolist())
    assert same.auc < 0.55 < 0.95 < other.auc
    assert {"card", "transfer"} & set(other.current_words)
    assert not any(re.search(r"\d", w) for w in other.reference_words)  # ids are not content


def test_performance_alerts_absolute_relative_and_per_class():
    thresholds = Thresholds.defaults(min_accuracy=0.5, min_macro_f1=0.5, max_relative_drop=0.1,
                                     min_class_recall=0.6, min_class_support=20)
    healthy = Performance(rows=100, accuracy=0.95, macro_f1=0.94,
                          recall_per_class={"a": 0.9, "b": 0.95},
                          support_per_class={"a": 50, "b": 50})
    assert monitoring.performance_alerts(healthy, {"accuracy": 0.96, "macro_f1": 0.95},
                                         thresholds, "overall") == []
    slipped = replace(healthy, accuracy=0.80)  # above 0.5, but 17% below the test accuracy
    assert any("below its training-time" in a for a in monitoring.performance_alerts(
        slipped, {"accuracy": 0.96}, thresholds, "overall"))
    weak = replace(healthy, recall_per_class={"a": 0.3, "b": 0.95, "c": 0.1},
                support_per_class={"a": 50, "b": 50, "c": 5})  # c: too few rows to judge
    [alert] = monitoring.performance_alerts(weak, None, thresholds, "v3")
    assert "1 class(es): a 0.30" in alert
    assert monitoring.verdict([], []) == "healthy"
    assert monitoring.verdict([], ["drift"]) == "drift"
    assert monitoring.verdict(["perf"], ["drift"]) == "alert"


def test_stream_keeps_counts_per_version_and_bounded_samples():
    chunks = [pd.DataFrame({"text": ["a b", "  ", "c d e", "f"], "label": ["x", "x", "y", None],
                            "prediction": ["x", None, "x", "y"], "model_version": ["1", "1", "2", "2"],
                            "probability": ["0.9", None, "0.6", "0.7"]})] * 3
    spec = StreamSpec(Columns(text="text", label="label"), has_text=True, has_labels=True, recorded=True)
    seen = accumulate(chunks, spec, score=None)
    assert (seen.rows, seen.scored, seen.skipped, seen.unlabelled) == (12, 9, 3, 3)
    assert seen.versions == Counter({"1": 3, "2": 6}) and seen.main_version == "2"
    assert seen.tallies["1"] == Counter({("x", "x"): 3})
    assert seen.tallies["2"] == Counter({("y", "x"): 3})
    assert sorted(seen.confidences("2")) == [0.6] * 3 + [0.7] * 3
    assert len(seen.texts.items) == 9 and max(seen.lengths.items) == 5


def test_stream_scores_raw_texts_and_skips_blank_ones():
    calls = []

    def score(frame):
        calls.append(len(frame))
        return pd.DataFrame({"p": 0.8, "q": 0.2}, index=frame.index)

    spec = StreamSpec(Columns(text="text", label="label"), has_text=True, has_labels=False, recorded=False, version="4")
    seen = accumulate([pd.DataFrame({"text": ["one", None, "two", " "]})], spec, score)
    assert calls == [2] and seen.skipped == 2 and seen.predicted["4"] == Counter({"p": 2})
    assert seen.confidences("4") == [0.8, 0.8]
    np.testing.assert_allclose(seen.expected["4"].confusion, [[1.6, 0.0], [0.4, 0.0]])


def test_evaluating_versions_aligns_label_spellings_and_checks_each_version():
    tallies = {"1": Counter({("true", "True"): 90, ("false", "False"): 10}),
               "2": Counter({("TRUE", "False"): 40, ("false", "False"): 60})}
    references = {"1": ReferenceProfile.from_dict({"metrics": {"accuracy": 0.99, "macro_f1": 0.98}}),
                  "2": None}
    thresholds = Thresholds.defaults(min_accuracy=0.8, min_macro_f1=0.5, max_relative_drop=0.1,
                                     min_class_recall=0.5, min_class_support=20)
    found, perf = monitoring.evaluate_versions(tallies, references, ["False", "True"],
                                               thresholds, rows_without_label=3)
    assert perf.per_version["1"].accuracy == 1.0
    assert perf.per_version["2"].accuracy == 0.6 and perf.unknown_labels == []
    assert perf.per_version["1"].reference == {"accuracy": 0.99, "macro_f1": 0.98}
    assert any(a.startswith("model v2: accuracy 0.6000 < 0.8000") for a in found)
    assert not any(a.startswith("model v1") for a in found)
    assert monitoring.evaluate_versions({}, {}, [], thresholds, 0) == ([], None)


def test_html_report_shows_a_dash_not_nan_for_unknown_training_metrics():
    stats = Performance(rows=10, accuracy=0.9, macro_f1=0.8, recall_per_class={},
                        support_per_class={})
    known = replace(stats, reference={"accuracy": 0.95, "macro_f1": 0.9})
    result = MonitorReport(
        status="healthy", exit_code=0, alerts=[], checked_at="now",
        data=DataSummary("x.csv", "0" * 64, 10, 10, 0),
        model=ModelSummary("m", ["1", "2"], "@champion"), thresholds=Thresholds.defaults(),
        performance=PerformanceReport(stats, {"1": known, "2": replace(stats, reference={})},
                                      [], 0),
        estimated=None, drift=DriftSummary(None, 10, [], [], "n"))
    page = report.render(result, {})
    assert "nan" not in page.lower() and "0.9500" in page and "&ndash;" in page
    single = replace(result, performance=PerformanceReport(stats, {"1": known}, [], 0))
    assert report.render(single, {}).count("0.9500") == 2  # the overall row shows it too


def _legacy_model_registered(tmp_path, monkeypatch):
    """A store at ``tmp_path`` whose @champion is the legacy fixture model, and a monitor
    configuration on its inputs (reports in ``tmp_path``)."""
    import shutil

    from conftest import PROJECT_ROOT, registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    shutil.copytree(PROJECT_ROOT / "tests" / "fixtures" / "legacy_model" / "model", tmp_path / "m")
    client = registry(tmp_path, uri)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, source=str(tmp_path / "m"))
    client.set_registered_model_alias(MODEL, "champion", "1")
    config = cfg.load_config({"MLFLOW_TRACKING_URI": uri,
                              "TEXTOPS_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts")})
    config["monitor"].update(data=str(PROJECT_ROOT / "tests" / "fixtures" / "legacy_model" /
                                      "inputs.csv"), report=str(tmp_path / "r.json"),
                             html=str(tmp_path / "r.html"), chunk_size=6)
    return client, config


def test_a_store_that_cannot_be_written_still_gets_the_nights_report_first(tmp_path, monkeypatch):
    """A read-only project folder (issue 29): the store can be read, not written; the JSON
    report is written before the store is asked to record anything, and the failure is exit 4
    in one line (common.environment_failure)."""
    import sqlite3

    import common
    from textops import registry as registry_module

    _, config = _legacy_model_registered(tmp_path, monkeypatch)

    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(registry_module, "ensure_experiment", read_only)
    with pytest.raises(sqlite3.OperationalError) as caught:
        check.run(check.make_job(settings.resolve(config, cfg.PROJECT_ROOT), label_required=False))
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "healthy"
    code, line = common.environment_failure(caught.value)
    assert code == 4 and "cannot be written" in line


def test_an_input_that_changed_while_it_was_read_gives_no_report(tmp_path, monkeypatch):
    """A night's file still being appended to when monitor.py reads it: exit 2 naming it, and no
    report, HTML page or MLflow run built from the torn file."""
    import shutil

    from common import BadInputError
    from textops import inputs

    client, config = _legacy_model_registered(tmp_path, monkeypatch)
    data = tmp_path / "night.csv"
    shutil.copy(config["monitor"]["data"], data)
    config["monitor"]["data"] = str(data)
    stream = inputs.Input.chunks

    def appended_meanwhile(self, *args, **kwargs):
        yield from stream(self, *args, **kwargs)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("a late row\n")

    monkeypatch.setattr(inputs.Input, "chunks", appended_meanwhile)
    with pytest.raises(BadInputError, match="night.csv changed while it was being read"):
        check.run(check.make_job(settings.resolve(config, cfg.PROJECT_ROOT), label_required=False))
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.html").exists()
    assert client.get_experiment_by_name("textops-monitoring") is None


@pytest.mark.parametrize("workers", [1, 2])
def test_monitoring_a_registered_model_in_process(tmp_path, monkeypatch, workers):
    """The whole check (stream, drift, report, MLflow run) on the legacy fixture model, raw texts
    scored here or by worker processes: a version without a reference profile is scored and
    reported, drift is skipped with a note."""
    client, config = _legacy_model_registered(tmp_path, monkeypatch)
    config["monitor"]["workers"] = workers
    result = check.run(check.make_job(settings.resolve(config, cfg.PROJECT_ROOT), label_required=False))
    assert result.status == "healthy" and result.model.versions == ["1"]
    assert (result.data.rows, result.data.rows_checked, result.data.rows_skipped) == (20, 18, 2)
    assert "no reference profile" in result.drift.note and result.performance is None
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == json.loads(json.dumps(result.to_dict())) and written["status"] == "healthy"
    assert list(written) == ["status", "exit_code", "alerts", "checked_at", "data", "model",
                             "thresholds", "performance", "estimated", "drift", "to_label"]
    assert "HEALTHY" in (tmp_path / "r.html").read_text()
    [run] = client.search_runs([client.get_experiment_by_name("textops-monitoring").experiment_id])
    assert run.data.tags["textops.model_version"] == "1" and run.data.metrics["rows"] == 20


# ------------------------------------------------------------------------------------------
# End to end: a champion trained on 80 % of twcs, monitored on what it never saw
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitored")
    root = copy_project(tmp / "project")
    tweets = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)
    held = tweets.sample(1000, random_state=7)  # a random held-back slice, never trained on
    tweets.drop(held.index).to_csv(tmp / "train.csv", index=False)
    held.to_csv(tmp / "held.csv", index=False)
    shuffled = held.copy()
    shuffled["inbound"] = np.random.default_rng(0).permutation(shuffled["inbound"].to_numpy())
    shuffled.to_csv(tmp / "shuffled.csv", index=False)
    pd.read_csv(shared("banking77", "test.csv"), dtype=str)[["text"]].to_csv(
        tmp / "banking.csv", index=False)
    ok_or(run_script(root, "train.py", "--data", tmp / "train.csv", "--label-column", "inbound",
                     "--no-baseline", "--no-leakage-check"), 0)
    return {"root": root, "tmp": tmp}


def monitor(monitored, name, *args):
    tmp = monitored["tmp"]
    report, html = tmp / f"{name}.json", tmp / f"{name}.html"
    result = run_script(monitored["root"], "monitor.py", "--data", tmp / f"{name}.csv",
                        "--report", report, "--html", html, *args)
    body = json.loads(report.read_text()) if report.exists() else None
    return result, body, html


@pytest.mark.slow
def test_reference_profile_is_saved_with_the_version(monitored):
    client = registry(monitored["root"])
    version = client.get_model_version(MODEL, "1")
    assert version.tags["textops.reference"] == "reference/reference.json"
    path = client.download_artifacts(version.run_id, "reference/reference.json", str(monitored["tmp"]))
    reference = json.loads(open(path, encoding="utf-8").read())
    assert reference["classes"] == ["False", "True"]
    assert sum(reference["predicted_distribution"].values()) == pytest.approx(1)
    assert reference["metrics"]["macro_f1"] > 0.9
    assert 0 < reference["oov_rate"]["mean"] < 0.5
    assert len(reference["texts"]) == reference["rows"] > 500
    assert len(reference["confidence"]["sample"]) == reference["rows"]
    profile = ReferenceProfile.from_dict(reference)  # what monitor.py reads back
    assert profile.classes == reference["classes"] and profile.calibrated
    assert profile.confidence_sample == reference["confidence"]["sample"]
    assert profile.length_sample == reference["length"]["sample"]
    assert profile.texts == reference["texts"] and profile.text_chars == reference["text_chars"]
    assert profile.atc == reference["atc"] and profile.accuracy == reference["metrics"]["accuracy"]
    # written and read by the same class: the stored JSON is the profile's to_dict, byte for byte
    assert json.dumps(profile.to_dict(), ensure_ascii=False) == open(path, encoding="utf-8").read()


@pytest.mark.slow
def test_held_back_twcs_is_healthy_exit_0(monitored):
    result, body, html = monitor(monitored, "held", "--label-column", "inbound")
    ok_or(result, 0)
    assert result.stdout.startswith("HEALTHY")
    assert body["status"] == "healthy" and body["alerts"] == [] and body["drift"]["drifted"] == []
    checks = {c["name"]: c for c in body["drift"]["checks"]}
    assert set(checks) == {"predicted_class_distribution", "confidence", "text_length",
                           "out_of_vocabulary_rate", "text_content"}
    assert all(c["value"] is not None and not c["drifted"] for c in checks.values())
    assert checks["text_content"]["value"] < 0.55
    assert body["performance"]["overall"]["accuracy"] > 0.95
    assert html.exists() and "HEALTHY" in html.read_text()


@pytest.mark.slow
def test_banking77_text_is_a_drift_alert_exit_3_naming_the_drift(monitored):
    result, body, html = monitor(monitored, "banking")  # no labels: drift only
    ok_or(result, 3)
    assert result.stdout.startswith("DRIFT") and "text_content" in result.stdout
    assert body["status"] == "drift" and body["performance"] is None
    checks = {c["name"]: c for c in body["drift"]["checks"]}
    assert checks["text_content"]["drifted"] and checks["text_content"]["value"] > 0.9
    assert checks["text_length"]["drifted"]
    assert {"card", "transfer", "account"} & set(checks["text_content"]["extra"]["current_words"])
    page = html.read_text()
    assert "DRIFT" in page and "card" in page


@pytest.mark.slow
def test_shuffled_labels_are_a_performance_alert_exit_1(monitored):
    result, body, _ = monitor(monitored, "shuffled", "--label-column", "inbound")
    ok_or(result, 1)
    assert body["status"] == "alert" and body["exit_code"] == 1
    assert any("below its training-time test accuracy" in a for a in body["alerts"])
    assert body["drift"]["drifted"] == []  # same texts: only the labels are wrong


@pytest.mark.slow
def test_one_channel_with_corrupted_labels_is_a_slice_alert_naming_it(monitored):
    """--slice-by (issue 26): five channels of the held-back tweets, one with 40 % of its labels
    flipped. The overall figure stays above its own alert line; the slice alerts, by name; the
    four healthy slices do not. Then without labels in the data, a labelled sample given back:
    its rows of each channel judge the channels."""
    tmp = monitored["tmp"]
    held = pd.read_csv(tmp / "held.csv", dtype=str)
    held["channel"] = np.array(["web", "app", "mail", "sms", "chat"])[np.arange(len(held)) % 5]
    mail = np.flatnonzero((held["channel"] == "mail").to_numpy())
    flip = np.random.default_rng(1).choice(mail, int(0.4 * len(mail)), replace=False)
    held.loc[flip, "inbound"] = held.loc[flip, "inbound"].map({"True": "False", "False": "True"})
    held.to_csv(tmp / "corrupted.csv", index=False)

    result, body, html = monitor(monitored, "corrupted", "--label-column", "inbound",
                                 "--slice-by", "channel")
    ok_or(result, 1)
    assert [a for a in body["alerts"] if a.startswith("slice ")] == [
        a for a in body["alerts"] if a.startswith("slice channel=mail: accuracy 0.")]
    assert any(a.startswith("slice channel=mail") for a in body["alerts"])
    assert not any("below its training-time test accuracy" in a for a in body["alerts"])
    found = body["slices"]
    assert found["column"] == "channel" and found["level"] == pytest.approx(0.01)
    by_value = {s["value"]: s for s in found["slices"]}
    assert set(by_value) == {"web", "app", "mail", "sms", "chat"}
    assert by_value["mail"]["alert"] and by_value["mail"]["labelled_rows"] == 200
    assert all(not by_value[v]["alert"] for v in ("web", "app", "sms", "chat"))
    assert by_value["web"]["estimated_accuracy"] > 0.9  # the label-free figure beside it
    assert "Slices by <code>channel</code>" in html.read_text()
    assert "slice channel=mail" in result.stdout

    client = registry(monitored["root"])
    experiment = client.get_experiment_by_name("textops-monitoring").experiment_id
    [last] = client.search_runs([experiment], order_by=["attributes.start_time DESC"],
                                max_results=1)
    assert last.data.metrics["slices.alerts"] == 1 and "slice.mail.accuracy" in last.data.metrics

    # no labels in the data, a labelled sample given back: its rows of each slice judge it
    held.drop(columns="inbound").to_csv(tmp / "channel_texts.csv", index=False)
    sample = tmp / "channel_sample.csv"
    args = ("--slice-by", "channel", "--id-columns", "tweet_id")
    drawn = monitor(monitored, "channel_texts", "--label-sample", "300", "--to-label", sample,
                    *args)[0]
    assert drawn.returncode in (0, 3) and "Traceback" not in drawn.stderr, drawn.stderr
    rows = pd.read_csv(sample, dtype=str)
    rows["inbound"] = rows["tweet_id"].map(dict(zip(held["tweet_id"], held["inbound"])))
    rows.to_csv(tmp / "channel_labelled.csv", index=False)
    result, body, _ = monitor(monitored, "channel_texts", "--labels", tmp / "channel_labelled.csv",
                              *args)
    ok_or(result, 1)
    by_value = {s["value"]: s for s in body["slices"]["slices"]}
    assert by_value["mail"]["sample"]["accuracy"] < 0.8 < by_value["web"]["sample"]["accuracy"]
    assert sum(s["sample"]["labelled_rows"] for s in by_value.values()) == 300
    assert [a.split(":")[0] for a in body["alerts"] if a.startswith("slice ")] == [
        "slice channel=mail"]
    assert "rows of the labelled sample" in by_value["mail"]["alert"]


@pytest.mark.parametrize("slice_by, words", [
    ("region", "column 'region' not found in"), ("text", "--slice-by 'text' is the text column"),
    ("shop,region", "--slice-by takes one column")])
def test_slice_by_a_missing_column_or_the_text_is_refused_before_anything_runs(tmp_path, slice_by,
                                                                                words):
    from common import BadInputError

    (tmp_path / "d.csv").write_text("text,shop\nhello,a\n", encoding="utf-8")
    config = cfg.load_config({})
    config["monitor"].update(data=str(tmp_path / "d.csv"), report=str(tmp_path / "r.json"),
                             slice_by=slice_by)
    with pytest.raises(BadInputError, match=words):
        check.inspect_input(check.make_job(settings.resolve(config, cfg.PROJECT_ROOT),
                                           label_required=False))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("case, words", [
    ("uri", "is a Hadoop-FS URI, which only Spark reads; add --engine spark"),
    ("labels without ids", "--labels needs --id-columns"),
    ("csv parts", "is a folder of CSV parts .* add --engine spark")])
def test_what_only_the_spark_engine_reads_or_it_cannot_join_is_refused_first(tmp_path, case,
                                                                              words):
    """Before a session starts, a registry is touched or a report written: a URI without
    --engine spark, labels the Spark engine could not join to rows without ids, and (local
    engine) a folder of CSV parts, which predict.py --engine spark --spark-format csv writes."""
    from common import BadInputError

    config = cfg.load_config({})
    config["monitor"].update(data="hdfs://nn:8020/scored/tonight", report=str(tmp_path / "r.json"))
    if case == "labels without ids":
        pytest.importorskip("pyspark")
        (tmp_path / "d.csv").write_text("text\nhello\n", encoding="utf-8")
        config["monitor"].update(data=str(tmp_path / "d.csv"), engine="spark",
                                 labels=str(tmp_path / "labelled.csv"))
    elif case == "csv parts":
        (tmp_path / "parts").mkdir()
        (tmp_path / "parts" / "part-00000-0.csv").write_text("text\nhello\n", encoding="utf-8")
        (tmp_path / "parts" / "_SUCCESS").touch()
        config["monitor"]["data"] = str(tmp_path / "parts")
    with pytest.raises(BadInputError, match=words):
        check.run(check.make_job(settings.resolve(config, cfg.PROJECT_ROOT), label_required=False))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_predictions_file_without_labels_checks_drift_from_recorded_scores(monitored):
    tmp = monitored["tmp"]
    ok_or(run_script(monitored["root"], "predict.py", "--data", tmp / "banking.csv", "--output",
                     tmp / "scored.csv", "--id-columns", "text"), 0)
    result, body, _ = monitor(monitored, "scored")
    ok_or(result, 3)
    assert body["model"]["source"] == "recorded predictions" and body["model"]["versions"] == ["1"]
    assert {c["name"] for c in body["drift"]["checks"] if c["drifted"]} >= {"text_content"}


@pytest.mark.slow
def test_each_run_is_logged_to_mlflow_and_the_html_charts_the_history(monitored):
    monitor(monitored, "held", "--label-column", "inbound")
    _, body, html = monitor(monitored, "held", "--label-column", "inbound")
    client = registry(monitored["root"])
    experiment = client.get_experiment_by_name("textops-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) >= 3
    latest = runs[0]
    assert latest.data.tags["textops.model_version"] == "1"
    assert latest.data.tags["textops.status"] == "healthy"
    assert {"accuracy", "drift.text_content", "drift.predicted_class_distribution"} <= set(latest.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(latest.info.run_id)}
    assert {"held.json", "held.html"} <= artifacts
    assert "Monitoring history" in html.read_text()


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return path


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(monitored, tmp_path):
    _, body, html = monitor(monitored, "banking")
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=5000"]
    dom = subprocess.run(command + ["--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert loaded, dom.stdout[:2000]  # the page's script ran after every image loaded
    assert int(loaded.group(1)) == int(loaded.group(2)) >= 3  # every plot decoded
    assert 'id="status">DRIFT<' in dom.stdout
    auc = next(c for c in body["drift"]["checks"] if c["name"] == "text_content")["value"]
    assert f"{auc:.3f}" in dom.stdout and "text_content" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(command + [f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page


def test_each_drift_check_is_its_own_function_and_compare_runs_them_in_order():
    rng = np.random.default_rng(0)
    reference = ReferenceProfile.from_dict(
        {"classes": ["a", "b"], "predicted_distribution": {"a": 0.5, "b": 0.5},
         "confidence": {"sample": list(rng.uniform(0.6, 1.0, 500))},
         "length": {"sample": list(rng.integers(20, 80, 500))}, "oov_rate": {"mean": 0.05}})
    current = drift.Current(rows=500, predicted_counts={"a": 250, "b": 250},
                            confidence=rng.uniform(0.5, 0.7, 500),
                            lengths=rng.integers(20, 80, 500), oov=np.full(500, 0.06), texts=None)
    thresholds = Thresholds.defaults(psi_max=0.2, psi_pvalue=0.01, ks_max=0.1, ks_pvalue=0.01,
                                     oov_increase_max=0.05, domain_auc_max=0.7,
                                     domain_pvalue=0.01, domain_min_rows=50)
    checks = drift.compare(reference, current, thresholds)
    assert [c.name for c in checks] == ["predicted_class_distribution", "confidence",
                                        "text_length", "out_of_vocabulary_rate"]
    assert [c.drifted for c in checks] == [False, True, False, False]
    assert drift.confidence_distribution(reference, current, thresholds) == checks[1]
    assert drift.text_content(reference, current, thresholds) is None  # no texts: not run


def test_a_reference_profile_is_written_and_read_by_the_same_class():
    """Issue 28: ReferenceProfile.to_dict is what train.py stores; from_dict reads it back whole,
    key for key and in order (a stored profile of this release round-trips unchanged)."""
    stored = {"format": 1, "rows": 3, "classes": ["a", "b"], "class_priors": {"a": 0.5, "b": 0.5},
              "predicted_distribution": {"a": 1 / 3, "b": 2 / 3},
              "metrics": {"accuracy": 0.9, "macro_f1": 0.8, "calibrated": True},
              "atc": {"threshold": 0.7, "tie_weight": 1.0, "accuracy": 0.9,
                      "confidence_mean": 0.8, "rows": 3, "source": "test rows at training"},
              "confidence": {"mean": 0.8, "sample": [0.7, 0.8, 0.9]},
              "length": {"mean": 12.0, "median": 11.0, "sample": [10, 11, 15]},
              "oov_rate": {"mean": 0.1, "rows": 3}, "texts": ["x", "y", "z"], "text_chars": 1000,
              "test_confusion": {"classes": ["a", "b"], "counts": [[1, 0], [1, 1]]}}
    profile = ReferenceProfile.from_dict(stored)
    assert json.dumps(profile.to_dict()) == json.dumps(stored)
    without = {k: v for k, v in stored.items() if k != "test_confusion"}
    assert json.dumps(ReferenceProfile.from_dict(without).to_dict()) == json.dumps(without)


def test_a_reference_profile_of_an_earlier_release_reads_with_its_missing_parts_empty():
    """Profiles saved before the ATC threshold, the text sample and the calibration flag were
    stored: the drift checks they allow still run, the threshold comes from the sample."""
    rng = np.random.default_rng(1)
    sample = list(rng.beta(6, 1, 800))
    old = ReferenceProfile.from_dict(
        {"format": 1, "classes": ["a", "b"], "predicted_distribution": {"a": 0.4, "b": 0.6},
         "metrics": {"accuracy": 0.9, "macro_f1": 0.88}, "confidence": {"mean": 0.85,
                                                                        "sample": sample},
         "length": {"sample": list(rng.integers(20, 80, 800))}, "oov_rate": {"mean": 0.1}})
    assert (old.atc, old.texts, old.text_chars, old.calibrated) == (None, [], None, False)
    assert old.test_metrics == {"accuracy": 0.9, "macro_f1": 0.88}
    current = drift.Current(rows=800, predicted_counts={"a": 320, "b": 480},
                            confidence=np.array(sample), lengths=rng.integers(20, 80, 800),
                            oov=None, texts=["some text"] * 800)
    checks = drift.compare(old, current, Thresholds.defaults())
    assert [c.name for c in checks] == ["predicted_class_distribution", "confidence", "text_length"]
    # each check's detail is typed and lands in the JSON as before (a dict per check)
    stored = json.loads(json.dumps([c.to_dict() for c in checks]))
    assert set(stored[0]["extra"]) == {"chi_square_pvalue", "psi_pvalue", "reference", "current"}
    assert set(stored[1]["extra"]) == set(stored[2]["extra"]) == {"pvalue"}
    assert list(stored[0]) == ["name", "method", "value", "threshold", "drifted", "detail", "extra"]
    assert "sampled test confidences" in estimation.threshold_from_reference(old).source
    empty = ReferenceProfile.from_dict({})
    assert (empty.classes, empty.oov_rate, empty.accuracy) == ([], None, None)
