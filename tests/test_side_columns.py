"""Issue 26: the columns beside the text. A side column is read with the kind its values say
(or forced categorical), encoded for CatBoost inside the model, refused when it cannot be a
feature, probed by the leakage guard, scored with what training never saw counted, explained
beside the tokens, and watched for drift in bounded memory."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import config as cfg
from textops import diagnostics, features, model, settings
from textops.columns import Columns
from textops.data import split_dataset
from textops.errors import BadInputError
from textops.monitoring.sidedrift import SideSums, side_checks
from textops.monitoring.sideprofile import MISSING, TOP_CATEGORIES, UNSEEN, profile_side
from textops.settings import Thresholds
from textprep.side import (CATEGORICAL, MISSING_CODE, NUMERIC, UNSEEN_CODE, SideColumns,
                           category_strings)


# ---- encoding (inside the model) ---------------------------------------------------------------
def test_categories_are_named_alike_whatever_type_they_arrive_as():
    """A CSV column of integers with a gap is read as floats, JSON sends ints, a CSV read as
    text sends strings: all three name the same category."""
    assert category_strings(pd.Series([1.0, np.nan, 2])).tolist() == ["1", None, "2"]
    assert category_strings(pd.Series([1, 2], dtype=object)).tolist() == ["1", "2"]
    assert category_strings(pd.Series([" mail ", True, 2.5])).tolist() == ["mail", "True", "2.5"]


def test_the_encoder_codes_missing_unseen_and_known_values_and_counts_surprises():
    train = pd.DataFrame({"channel": ["mail", "chat", None, "mail"], "hour": ["1", "2", "", "23"]})
    encoder = SideColumns(("channel", "hour"), (CATEGORICAL, NUMERIC)).fit(train)
    now = pd.DataFrame({"channel": ["chat", "fax", None], "hour": ["7", "noon", None]})
    encoded = encoder.transform(now)
    assert encoded[:, 0].tolist() == [2.0, UNSEEN_CODE, MISSING_CODE]  # chat is the first known
    assert encoded[0, 1] == 7.0 and np.isnan(encoded[1:, 1]).all()
    assert encoder.surprises(now) == {"channel": 1, "hour": 1}  # fax; "noon"
    with pytest.raises(KeyError, match="channel"):
        encoder.transform(now.drop(columns="channel"))


# ---- choosing and refusing side columns (train.py) -----------------------------------------------
def _rows(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "reply": rng.choice(["True", "False"], n),
        "hour": rng.integers(0, 24, n).astype(str),
        "store": rng.choice(["1", "2", "3"], n),
        "amount": [f"{v:.2f}" for v in rng.normal(50, 10, n)],
        "ticket": [f"T{i}" for i in range(n)],
        "empty": [None] * n,
        "same": ["x"] * n,
    })


def test_kinds_are_inferred_from_the_values_and_can_be_forced_categorical():
    spec = features.side_spec(_rows(), ("reply", "hour", "store"), ("store",), 1000, "data.csv")
    assert spec.kinds == (CATEGORICAL, NUMERIC, CATEGORICAL)
    assert spec.describe() == "reply (categorical, 2 values), hour (numeric), store (categorical, 3 values)"
    assert spec.as_json() == '{"reply": "categorical", "hour": "numeric", "store": "categorical"}'
    assert not spec.suspects


@pytest.mark.parametrize("column, limit, needle", [
    ("empty", 1000, "no value in any row"),
    ("same", 1000, "one value only"),
    ("ticket", 100, "more than TEXTOPS_TRAIN_MAX_CATEGORIES=100"),
])
def test_a_column_that_cannot_be_a_feature_is_refused(column, limit, needle):
    with pytest.raises(BadInputError, match=needle):
        features.side_spec(_rows(), (column,), (), limit, "data.csv")


def test_an_identifier_look_alike_is_a_leakage_suspect_but_a_measurement_is_not():
    spec = features.side_spec(_rows(), ("ticket", "amount"), (), 1000, "data.csv")
    assert len(spec.suspects) == 1 and "'ticket' looks like an identifier" in spec.suspects[0]


@pytest.mark.parametrize("feature, categorical, needle", [
    ("text", (), "is the text column"),
    ("label", (), "is the label column"),
    ("id", (), "is an id column"),
    ("hour", ("store",), "'store', which is not in --feature-columns"),
])
def test_a_feature_column_with_another_role_is_refused(feature, categorical, needle):
    roles = Columns(text="text", label="label", ids=("id",), features=(feature,))
    with pytest.raises(BadInputError, match=needle):
        features.check_roles(roles, categorical)


def _spec():
    return settings.resolve(cfg.load_config({}), cfg.PROJECT_ROOT).model


# ---- the model --------------------------------------------------------------------------------
def _channel_task(n: int = 600, seed: int = 1) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Texts that say little, and a channel that says a lot: urgent tickets come by phone."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["urgent", "routine"], n)
    words = np.array(["order", "account", "help", "please", "status", "question", "today"])
    texts = [" ".join(rng.choice(words, 5)) + (" asap" if rng.random() < 0.2 and y == "urgent" else "")
             for y in labels]
    channel = np.where(rng.random(n) < 0.9, np.where(labels == "urgent", "phone", "mail"),
                       rng.choice(["phone", "mail", "chat"], n))
    hour = rng.integers(0, 24, n).astype(str)
    return pd.Series(texts), pd.Series(labels), pd.DataFrame({"channel": channel, "hour": hour})


def _fit(spec_side: features.SideSpec | None, texts, labels, side):
    spec = _spec().with_setting("catboost", "iterations", 60)
    split = split_dataset(texts, labels, "text", 0.25, 0.15, 0, side if spec_side else None)
    pipeline = model.build_pipeline(spec, model.load_stopwords("none"), spec_side)
    model.train_model(pipeline, split.x_train, split.y_train, split.x_val, split.y_val)
    predicted, _ = model.predict_with_proba(pipeline, split.x_test)
    return pipeline, split, model.evaluate(split.y_test, predicted).metrics["macro_f1"]


def test_a_side_column_that_carries_the_signal_lifts_the_model_and_is_explained():
    texts, labels, side = _channel_task()
    spec = features.side_spec(side, ("channel", "hour"), (), 1000, "data.csv")
    _, _, text_only = _fit(None, texts, labels, side)
    pipeline, split, with_side = _fit(spec, texts, labels, side)
    assert with_side > text_only + 0.2, (text_only, with_side)
    shares = diagnostics.side_importance(pipeline)
    assert shares["channel"] > shares["hour"]
    table = diagnostics.token_importance(pipeline, split.x_test)
    assert table["token"].iloc[0] == "side:channel" and table["share"].sum() == pytest.approx(1, abs=0.05)
    predicted, _ = model.predict_with_proba(pipeline, split.x_test)
    explained = diagnostics.top_tokens(pipeline, split.x_test, predicted, 2)
    assert sum(t.startswith("channel=") for t in explained) > len(explained) / 2
    # the model refuses data without its side columns, naming the column
    with pytest.raises(KeyError, match="channel"):
        pipeline.predict_proba(split.x_test.drop(columns="channel"))


def test_the_leakage_guard_probes_each_side_column_and_all_of_them_without_the_text():
    texts, labels, side = _channel_task()
    side = side.assign(copy=labels.map({"urgent": "u", "routine": "r"}))  # the label itself
    spec = features.side_spec(side, ("hour", "copy"), (), 1000, "data.csv")
    pipeline, split, score = _fit(spec, texts, labels, side)
    report = diagnostics.leakage_check(pipeline, split, score, "text")
    assert report.figures["side.copy_macro_f1"] == pytest.approx(1.0)
    assert report.figures["side.hour_macro_f1"] < 0.7
    assert any("feature column 'copy' alone reaches" in r for r in report.reasons)
    assert not any("'hour'" in r for r in report.reasons)


def test_a_text_only_model_is_built_as_before():
    spec = _spec()
    pipeline = model.build_pipeline(spec, model.load_stopwords("none"))
    assert [name for name, _ in pipeline.steps] == ["text", "tfidf", "clf"]
    assert pipeline.named_steps["text"].side_columns == ()
    assert pipeline.named_steps["clf"].side_kinds == ()
    assert type(pipeline.named_steps["tfidf"]).__name__ == "HashedTfidf"


# ---- drift of the side columns (monitor.py) ---------------------------------------------------------
def _profiles(frame: pd.DataFrame):
    encoder = SideColumns(("channel", "hour"), (CATEGORICAL, NUMERIC)).fit(frame)
    return profile_side(frame, encoder, seed=0)


def _world(n: int, seed: int, phone: float = 0.3, hour_missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["phone", "mail", "chat"], n, p=[phone, (1 - phone) / 2, (1 - phone) / 2])
    hour = rng.integers(0, 24, n).astype(float)
    hour[rng.random(n) < hour_missing] = np.nan
    return pd.DataFrame({"channel": channel, "hour": hour})


def _checked(profiles, frame: pd.DataFrame, chunk: int = 700):
    sums = SideSums(profiles, seed=0)
    for start in range(0, len(frame), chunk):
        sums.add(frame.iloc[start:start + chunk])
    return {c.name: c for c in side_checks(profiles, sums, Thresholds.defaults())}, sums


def test_the_same_distribution_is_quiet_and_a_moved_one_alerts():
    profiles = _profiles(_world(2000, 0))
    quiet, _ = _checked(profiles, _world(3000, 1))
    assert not any(c.drifted for c in quiet.values())
    moved, _ = _checked(profiles, _world(3000, 2, phone=0.8, hour_missing=0.3))
    assert moved["side:channel"].drifted and "phone 30" in moved["side:channel"].detail
    assert moved["side:hour"].drifted and moved["side:hour"].extra.missing_current == pytest.approx(0.3, abs=0.02)


def test_new_categories_count_as_unseen_and_memory_stays_bounded():
    profiles = _profiles(_world(2000, 0))
    rng = np.random.default_rng(3)
    stream = pd.DataFrame({"channel": [f"new-{i}" for i in range(5000)],  # an identifier now
                           "hour": rng.integers(0, 24, 5000).astype(float)})
    found, sums = _checked(profiles, stream)
    assert found["side:channel"].extra.current[UNSEEN] == pytest.approx(1.0)
    assert found["side:channel"].drifted
    assert len(sums.counts["channel"]) <= TOP_CATEGORIES + 3  # buckets, not values
    assert len(sums.numbers["hour"].items) <= 2000


def test_the_profile_round_trips_through_the_reference_json():
    from textops.monitoring.profile import ReferenceProfile

    profiles = _profiles(_world(500, 0))
    stored = ReferenceProfile(classes=["a", "b"], predicted_distribution={}, metrics={},
                              side=profiles).to_dict()
    assert ReferenceProfile.from_dict(stored).side == profiles
    assert profiles["channel"].shares[MISSING] == 0.0
    assert "side" not in ReferenceProfile(classes=[], predicted_distribution={}, metrics={}).to_dict()
