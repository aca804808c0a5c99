"""monitor.py's running sums folded in parts and merged (what Spark executors do) equal one
stream's: every count and sum the report is made from, exactly (floating-point sums to 1e-9);
the samples are uniform samples of the whole, the same whatever order the parts merge in."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from textops.columns import Columns
from textops.monitoring import labelling
from textops.monitoring.profile import Threshold
from textops.monitoring.sampling import KeyedSample
from textops.monitoring.sideprofile import SideProfile
from textops.monitoring.sidedrift import SideSums
from textops.monitoring.stream import StreamSpec, accumulate

ROWS = 3_000
THRESHOLDS = {"3": Threshold(0.7, 0.5, 0.9, 0.85, 400), "4": Threshold(0.6, 1.0, 0.8, 0.8, 300)}
PROFILES = {"channel": SideProfile("categorical", 100, 0.1, {"web": 0.5, "app": 0.4},
                                   ["web", "app", "mail"]),
            "amount": SideProfile("numeric", 100, 0.0, sample=[1.0, 2.0, 3.0])}


def _predictions(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A predictions file as predict.py writes it (two versions, proba_ columns), with ids,
    texts, labels (some missing), a slice column and side columns."""
    rng = np.random.default_rng(seed)
    p1 = rng.beta(2, 2, rows)
    frame = pd.DataFrame({
        "id": [f"r{i}" for i in range(rows)],
        "text": [f"text number {i % 977}" for i in range(rows)],
        "label": np.where(rng.random(rows) < 0.3, None,
                          np.where(rng.random(rows) < p1, "1", "0")).astype(object),
        "store": rng.choice(["a", "b", "c", " ", None], rows).astype(object),
        "channel": rng.choice(["web", "app", "mail", "fax", None], rows).astype(object),
        "amount": np.where(rng.random(rows) < 0.1, None, rng.normal(size=rows).round(3).astype(str)),
        "prediction": np.where(p1 >= 0.5, "1", "0").astype(object),
        "probability": np.maximum(p1, 1 - p1), "model_version": rng.choice(["3", "4"], rows),
        "proba_0": 1 - p1, "proba_1": p1})
    frame.loc[frame.index[::97], "prediction"] = np.nan  # blank texts: no prediction
    return frame


SPEC = StreamSpec(Columns(text="text", label="label", ids=("id",), slices=("store",),
                          features=("channel", "amount")),
                  has_text=True, has_labels=True, recorded=True, seed=5, proba_classes=("0", "1"))


def _labels(frame: pd.DataFrame) -> labelling.Labels:
    picked = frame.iloc[::150]
    sheet = pd.DataFrame({"id": picked["id"], "label": "1", "stratum": "0", "stratum_rows": "10"})
    return labelling.read_labels(sheet, ("id",), ["label"])


def _whole(frame: pd.DataFrame):
    collector = labelling.Collector(40, 9, ("id",), "text", lambda v: [0.6, 0.8], _labels(frame))
    return accumulate([frame.iloc[i:i + 500] for i in range(0, len(frame), 500)], SPEC, None,
                      THRESHOLDS.get, collector, SideSums(PROFILES, 5))


def _parts(frame: pd.DataFrame, cuts: list[int]):
    """Each part folded on its own (its own index, as a Spark batch has), then pickled."""
    parent = labelling.Collector(40, 9, ("id",), "text", None, _labels(frame))
    parts = []
    for n, (start, stop) in enumerate(zip([0] + cuts, cuts + [len(frame)])):
        chunk = frame.iloc[start:stop].reset_index(drop=True)
        seen = accumulate([chunk.iloc[:200], chunk.iloc[200:]], SPEC, None, THRESHOLDS.get,
                          parent.for_part(n, [0.6, 0.8]),
                          SideSums(PROFILES, 5, lambda size, seed, n=n: KeyedSample(size, (seed, n))),
                          part=n, admitted=frozenset({"a", "b", "c", "(missing)"}))
        parts.append(pickle.loads(pickle.dumps(seen.detached())))
    return parent, parts


def _merged(parent, parts):
    total = parts[0]
    for part in parts[1:]:
        total.merge(part)
    total.threshold_of = THRESHOLDS.get
    parent.merge(total.collector)
    return total, parent


def _same_sums(a, b) -> None:
    assert a.rows == b.rows and np.allclose(a.confusion_rows, b.confusion_rows)
    assert sorted(a.by_label) == sorted(b.by_label)
    for label in a.by_label:
        assert np.allclose(a.by_label[label], b.by_label[label], rtol=1e-9, atol=0)
        assert a.atc_by_label[label] == pytest.approx(b.atc_by_label[label], rel=1e-9)
    assert a.anchored_rows == b.anchored_rows
    assert a.doc_shift == pytest.approx(b.doc_shift, rel=1e-9)
    assert np.allclose(a.confusion, b.confusion, rtol=1e-9)
    assert np.allclose(a.atc_confusion, b.atc_confusion, rtol=1e-9)


def test_counts_and_sums_of_merged_parts_equal_one_streams():
    frame = _predictions()
    whole = _whole(frame)
    parent, parts = _parts(frame, [700, 1900, 2400])
    merged, collector = _merged(parent, parts)
    for name in ("rows", "scored", "skipped", "unlabelled"):
        assert getattr(merged, name) == getattr(whole, name)
    assert merged.versions == whole.versions
    assert merged.predicted == whole.predicted and merged.tallies == whole.tallies
    for table in ("expected", "expected_labelled"):
        assert sorted(getattr(merged, table)) == sorted(getattr(whole, table)) == ["3", "4"]
        for version in ("3", "4"):
            _same_sums(getattr(merged, table)[version], getattr(whole, table)[version])
    assert merged.slices.rows == whole.slices.rows and merged.slices.tallies == whole.slices.tallies
    assert sorted(merged.slices.expected) == sorted(whole.slices.expected)
    for key in whole.slices.expected:
        _same_sums(merged.slices.expected[key], whole.slices.expected[key])
    assert merged.side.rows == whole.side.rows and merged.side.missing == whole.side.missing
    assert merged.side.counts == whole.side.counts
    # the labels file's rows: each found once, with its prediction, text and slice
    assert collector.labels.found == whole.collector.labels.found
    assert collector.labels.predictions == whole.collector.labels.predictions
    assert collector.labels.texts == whole.collector.labels.texts
    assert collector.labels.slice_of == whole.collector.labels.slice_of
    for mine, theirs in zip(collector.sampler.strata, whole.collector.sampler.strata):
        assert (mine.rows, mine.seen) == (theirs.rows, theirs.seen)
        assert mine.confidence_sum == pytest.approx(theirs.confidence_sum, rel=1e-12)


def test_merged_samples_are_samples_of_the_whole_in_any_merge_order():
    frame = _predictions()
    whole = _whole(frame)
    parent, parts = _parts(frame, [700, 1900, 2400])
    merged, collector = _merged(parent, [pickle.loads(pickle.dumps(p)) for p in parts])
    backwards, _ = _merged(parent.for_part(0, []), [pickle.loads(pickle.dumps(p))
                                                    for p in reversed(parts)])
    assert merged.texts.items == backwards.texts.items  # bottom-k: merge order does not matter
    assert merged.confidences("3") == backwards.confidences("3")
    usable = frame[frame["prediction"].notna()]
    assert merged.texts.seen == whole.texts.seen == len(usable)
    assert len(merged.texts.items) == len(whole.texts.items) == len(usable)  # fewer than 5,000
    assert sorted(merged.texts.items) == sorted(whole.texts.items)
    assert sorted(merged.confidences("4")) == sorted(whole.confidences("4"))
    assert merged.proba["3"].rows.shape == whole.proba["3"].rows.shape
    assert np.allclose(np.sort(merged.proba["3"].rows[:, 1]), np.sort(whole.proba["3"].rows[:, 1]))
    # the rows to label: drawn from the strata's merged samples, each a row of its stratum
    drawn = collector.to_label("label", "s", "sha")
    assert len(drawn) == 40 and drawn["id"].is_unique and "row" not in drawn
    assert set(drawn["id"]) <= set(usable["id"])
    assert (drawn["stratum_rows"].groupby(drawn["stratum"]).first().to_dict()
            == {h: s.rows for h, s in enumerate(whole.collector.sampler.strata) if s.rows})


def test_a_keyed_sample_is_uniform_over_the_parts_it_merges():
    """Two parts of very different sizes: each item is kept with the same probability."""
    kept = np.zeros(1000)
    for trial in range(400):
        small, large = KeyedSample(50, (trial, 0)), KeyedSample(50, (trial, 1))
        small.add(range(100))
        for start in range(100, 1000, 300):
            large.add(range(start, min(start + 300, 1000)))
        small.merge(large)
        assert small.seen == 1000 and len(small.items) == 50
        kept[small.items] += 1
    share_small, share_large = kept[:100].mean() / 400, kept[100:].mean() / 400
    assert share_small == pytest.approx(0.05, abs=0.006)
    assert share_large == pytest.approx(0.05, abs=0.003)
