"""Tonight's accuracy when the data shifts: ATC beside CBPE and DoC, an interval honest about
shift, and a small labelled sample that closes the blind spot (unbiased, with its interval)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textops import inputs
from textops.settings import Thresholds
from textops.monitoring import estimation, labelling
from textops.monitoring.estimation import EstimateSums, combine, fit_threshold, methods
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.result import Figures

THRESHOLDS = Thresholds.defaults(min_accuracy=0.8, max_relative_drop=0.1)


# ------------------------------------------------------------------------------------------
# ATC: closed-form cases
# ------------------------------------------------------------------------------------------
def test_the_threshold_makes_the_share_above_it_equal_the_test_accuracy():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.51, 0.5])
    t = fit_threshold(confidence, 0.7)
    assert t.value == 0.55 and t.tie_weight == 1.0  # the 7th highest: 7 rows of 10 count
    assert t.right(confidence).mean() == pytest.approx(0.7)
    assert t.confidence_mean == pytest.approx(confidence.mean()) and t.rows == 10


def test_ties_at_the_top_are_split_so_saturated_confidences_still_give_the_accuracy():
    confidence = np.r_[np.ones(900), np.full(100, 0.7)]  # 90 % of rows at 1.0
    t = fit_threshold(confidence, 0.85)
    assert t.value == 1.0 and t.tie_weight == pytest.approx(0.85 / 0.9)
    assert t.right(confidence).mean() == pytest.approx(0.85)
    assert t.right(np.ones(10)).mean() == pytest.approx(0.85 / 0.9)  # tonight: all saturated


def test_atc_on_new_rows_is_the_share_above_the_threshold_and_folds_chunk_by_chunk():
    rng = np.random.default_rng(0)
    test = rng.beta(5, 1, 4000)
    t = fit_threshold(test, 0.9)
    tonight = rng.beta(3, 1, 5000)
    labels = np.where(rng.random(5000) < 0.5, "a", "b")
    whole, chunked = EstimateSums(threshold=t), EstimateSums(threshold=t)
    whole.add(labels, tonight)
    for part in np.array_split(np.arange(5000), 7):
        chunked.add(labels[part], tonight[part])
    expected = float(np.mean(t.right(tonight)))
    for sums in (whole, chunked):
        assert methods(sums, ["a", "b"])["atc"].accuracy == pytest.approx(expected)
    doc = methods(whole, ["a", "b"])["doc"].accuracy
    assert doc == pytest.approx(0.9 + tonight.mean() - t.confidence_mean)


def test_versions_merge_each_counted_against_its_own_threshold():
    low, high = fit_threshold([0.6, 0.7, 0.8, 0.9], 0.5), fit_threshold([0.9, 0.95, 0.99, 1], 0.5)
    v1, v2 = EstimateSums(threshold=low), EstimateSums(threshold=high)
    assert (low.value, high.value) == (0.8, 0.99)  # the 2nd highest of 4: half count
    v1.add(np.array(["a"] * 4), np.array([0.65, 0.75, 0.85, 0.95]))  # 2 reach 0.8
    v2.add(np.array(["a"] * 4), np.array([0.65, 0.75, 0.85, 0.95]))  # none reaches 0.99
    total = EstimateSums()
    total.merge(v1)
    total.merge(v2)
    assert methods(total, ["a", "b"])["atc"].accuracy == pytest.approx(2 / 8)


def test_old_versions_get_a_threshold_from_their_reference_sample_or_say_they_cannot():
    rng = np.random.default_rng(1)
    sample = rng.beta(6, 1, 2000).tolist()
    old = {"metrics": {"accuracy": 0.93}, "confidence": {"mean": float(np.mean(sample)),
                                                         "sample": sample}}
    t = estimation.threshold_from_reference(ReferenceProfile.from_dict(old))
    assert "sampled test confidences" in t.source
    assert t.right(np.array(sample)).mean() == pytest.approx(0.93, abs=1e-3)
    assert estimation.threshold_from_reference(None) is None
    sums = EstimateSums()
    sums.add(np.array(["a", "b"]), np.array([0.9, 0.8]))
    estimated, _ = estimation.report_estimates({"3": sums}, {}, {"3": None}, None, THRESHOLDS)
    assert estimated.per_version["3"].method == "cbpe"
    assert "no reference profile" in estimated.note


# ------------------------------------------------------------------------------------------
# The interval and the alert decision
# ------------------------------------------------------------------------------------------
def _found(cbpe, atc, doc, half=0.005):
    return {name: Figures(v, (v - half, v + half), None, 1000)
            for name, v in (("cbpe", cbpe), ("atc", atc), ("doc", doc))}


def test_without_drift_the_interval_spans_the_estimators_and_the_headline_is_atc():
    found = combine(_found(0.95, 0.94, 0.96))
    assert found.method == "atc" and found.accuracy == 0.94
    assert found.accuracy_interval == pytest.approx([0.935, 0.965])
    assert found.decision_accuracy == 0.94 and "trust it" not in found.trust
    agree = combine(_found(0.95, 0.951, 0.949))
    assert agree.trust.endswith("trust it") and not agree.label_a_sample


def test_after_drift_the_interval_reaches_below_by_the_fall_and_the_centre_decides():
    found = combine(_found(0.95, 0.90, 0.95), drifted=["text_content"], anchor=0.98)
    low = 0.90 - estimation.SHIFT_FALLS * 0.08 - estimation.DRIFT_MARGIN
    assert found.accuracy_interval == pytest.approx([low, 0.955])
    assert found.decision_accuracy == pytest.approx((low + 0.955) / 2)
    assert "after text_content drift" in found.trust and "label a sample" in found.trust
    alerts = estimation.estimation_alerts(found, 0.98, THRESHOLDS, "all")
    assert alerts and "drift-adjusted" in alerts[0] and "ATC 0.9000" in alerts[0]


def test_an_unshifted_night_does_not_alert_and_a_large_drop_after_drift_does():
    calm = combine(_found(0.975, 0.976, 0.974), anchor=0.98)
    assert estimation.estimation_alerts(calm, 0.98, THRESHOLDS, "overall") == []
    dropped = combine(_found(0.93, 0.85, 0.93), drifted=["confidence"], anchor=0.98)
    assert estimation.estimation_alerts(dropped, 0.98, THRESHOLDS, "overall")


# ------------------------------------------------------------------------------------------
# The labelled sample
# ------------------------------------------------------------------------------------------
def _night(n=10_000, seed=0):
    """Synthetic night with known accuracy: confidences, and errors hidden among confident rows."""
    rng = np.random.default_rng(seed)
    confidence = np.clip(rng.beta(6, 1, n), 0, 1)
    right = (rng.random(n) < np.where(confidence > 0.99, 0.8, confidence)).astype(float)
    return confidence, right


def _draw(confidence, right, budget, seed, edges):
    sampler = labelling.Sampler(budget, edges, seed)
    for part in np.array_split(np.arange(len(right)), 5):  # streamed in chunks
        sampler.add(pd.DataFrame({"right": right[part]}), confidence[part])
    drawn = sampler.draw()
    return drawn, labelling.stratified_accuracy(drawn["right"].to_numpy(),
                                                drawn["stratum"].to_numpy(),
                                                drawn["stratum_rows"].to_numpy())


def test_the_sample_estimate_is_unbiased_and_its_interval_covers_at_its_level():
    confidence, right = _night()
    truth = right.mean()
    edges = labelling.strata_edges(confidence[:2000], fit_threshold(confidence[:2000], 0.85))
    found = [_draw(confidence, right, 200, seed, edges)[1] for seed in range(300)]
    estimates = np.array([f.accuracy for f in found])
    assert abs(estimates.mean() - truth) < 3 * estimates.std() / np.sqrt(len(estimates))
    inside = np.mean([f.accuracy_interval[0] <= truth <= f.accuracy_interval[1]
                      for f in found])
    assert 0.85 <= inside <= 0.98, inside


def test_the_sample_is_reproducible_weighted_and_sized_to_the_budget():
    confidence, right = _night(5000, seed=3)
    edges = labelling.strata_edges(confidence[:1000], None)
    first, _ = _draw(confidence, right, 150, 7, edges)
    again, _ = _draw(confidence, right, 150, 7, edges)
    assert len(first) == 150 and first.equals(again)
    assert (first["inclusion_probability"] * first["weight"]).round(9).eq(1).all()
    assert first.groupby("stratum")["stratum_rows"].first().sum() == 5000
    assert first.groupby("stratum").size().min() >= labelling.MIN_PER_STRATUM


def test_a_simple_random_sample_is_the_one_stratum_case():
    right = np.r_[np.ones(180), np.zeros(20)]
    found = labelling.stratified_accuracy(right, np.zeros(200), np.full(200, 10_000))
    assert found.accuracy == pytest.approx(0.9)
    rate = (180 + labelling.SMOOTH) / (200 + 2 * labelling.SMOOTH)
    half = estimation.Z90 * np.sqrt(rate * (1 - rate) * 200 / 199 / 200 * (1 - 200 / 10_000))
    assert found.accuracy_interval == pytest.approx([0.9 - half, 0.9 + half])


def test_a_labels_file_needs_its_keys_labels_and_design_columns():
    frame = pd.DataFrame({"row": ["3", "9"], "label": ["a", ""], "stratum": ["0", "1"],
                          "stratum_rows": ["10", "20"]})
    labels = labelling.read_labels(frame, (), ["label"])
    assert labels.by_key == {"3": ("a", 0, 10)}  # the unlabelled row is ignored
    assert labels.unlabelled_strata == [1]  # which makes the estimate refuse (test_hardening)
    with pytest.raises(ValueError, match="no column 'tweet_id'"):
        labelling.read_labels(frame, ("tweet_id",), ["label"])
    with pytest.raises(ValueError, match="no row of the labels file has a label"):
        labelling.read_labels(frame.assign(label=""), (), ["label"])


# ------------------------------------------------------------------------------------------
# End to end: the twcs last-1,000 part, where no label-free estimate is right
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_labelled_sample_of_200_rows_brackets_the_nights_real_accuracy(project, tmp_path):
    import json

    from pathlib import Path

    from conftest import assert_clean_failure, ok, run_script, shared

    frame = inputs.read_table(shared("twcs", "twcs_head5k.csv"))
    first, last = tmp_path / "first.csv", tmp_path / "last.csv"
    frame.iloc[:4000].to_csv(first, index=False)
    frame.iloc[4000:][["tweet_id", "text"]].to_csv(last, index=False)
    ok(run_script(project, "train.py", "--data", first, "--label-column", "inbound",
                  "--no-leakage-check", "--no-baseline", "--threshold", "0.5"))
    report = tmp_path / "r.json"
    common = ["--data", last, "--id-columns", "tweet_id", "--report", report, "--no-html"]
    first_run = run_script(project, "monitor.py", *common, "--label-sample", "200")
    assert first_run.returncode in (0, 1, 3), first_run.stderr
    written = json.loads(report.read_text())
    to_label = Path(written["to_label"]["path"])  # its own file, named by night, model and data
    assert to_label.parent == project / "reports" / "to_label" and to_label.name.endswith(
        f"-textops-classifier-v1-{written['data']['sha256'][:12]}.csv")
    rows = pd.read_csv(to_label, dtype=str, keep_default_na=False)
    assert len(rows) == 200 and list(rows.columns) == [
        "row", "tweet_id", "text", "prediction", "probability", "model_version", "stratum",
        "stratum_rows", "inclusion_probability", "weight", "sample_id", "data_sha256", "inbound"]
    assert (rows["inbound"] == "").all() and not rows["stratum"].is_monotonic_increasing
    estimated = written["estimated"]
    assert set(estimated["methods"]) == {"cbpe", "doc", "atc"} and estimated["trust"]
    mix = estimated["class_mix"]["1"]  # the class mix tonight, by both estimators
    assert set(mix["em"]) == set(mix["bbse"]) == {"True", "False"} and 0 <= mix["moved"] <= 1
    assert written["to_label"]["rows"] == 200
    # a person fills it in where it lies; the default path goes back as --labels, and
    # --label-column names the labels file's column (never demanded in --data)
    truth = dict(zip(frame["tweet_id"].astype(str), frame["inbound"].astype(str)))
    rows["inbound"] = rows["tweet_id"].map(truth)
    rows.to_csv(to_label, index=False)
    labelled = to_label.read_bytes()
    second = run_script(project, "monitor.py", *common, "--labels", to_label, "--label-column",
                        "inbound", "--label-sample", "200")
    assert second.returncode in (0, 1, 3), second.stderr
    assert to_label.read_bytes() == labelled  # drawn again for this data: never written over
    assert "labels were filled in" in json.loads(report.read_text())["to_label"]["kept"]
    sample = json.loads(report.read_text())["estimated"]["sample"]
    from textops.monitoring import ledger  # the accepted labels were kept, once, with provenance

    kept = ledger.read(project / "data" / "labels_ledger.db")
    assert len(kept) == 200 and {r["sample_id"] for r in kept} == {to_label.stem}
    assert all(r["label"] == truth[r["ids"]["tweet_id"]] and r["text"] for r in kept)
    assert 10 < sum(r["audit"] for r in kept) < 80 and kept[0]["labeller"]
    # the same labels given with another night's data: refused, not a confident wrong estimate
    other_night = tmp_path / "other.csv"
    frame.iloc[3000:4000][["tweet_id", "text"]].to_csv(other_night, index=False)
    stale = run_script(project, "monitor.py", "--data", other_night, "--id-columns", "tweet_id",
                       "--labels", to_label, "--report", tmp_path / "stale.json", "--no-html")
    assert_clean_failure(stale, 2, "labels of another night")
    with_labels = tmp_path / "with_labels.csv"
    frame.iloc[4000:][["tweet_id", "text", "inbound"]].to_csv(with_labels, index=False)
    realized_run = run_script(project, "monitor.py", "--data", with_labels, "--label-column",
                              "inbound", "--report", report, "--no-html", "--to-label", "")
    assert realized_run.returncode in (0, 1, 3), realized_run.stderr
    realized = json.loads(report.read_text())["performance"]["overall"]["accuracy"]
    low, high = sample["accuracy_interval"]
    assert low <= realized <= high and high - low <= 0.1, (sample, realized)
    assert sample["labelled_rows"] == 200 and sample["rows"] == 1000
    assert "labelled sample" in second.stdout
