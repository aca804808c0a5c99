"""Reading messy real CSVs, validating labelled data and splitting it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textops import inputs
from textops import data as dataio
from common import BadInputError
from conftest import shared


def read(path, **kw):
    return inputs.read_table(path, kw.pop("encoding", "utf-8"), kw.pop("delimiter", ","), **kw)


def test_raw_twcs_export_keeps_bare_carriage_returns_inside_rows():
    frame = read(shared("twcs", "twcs_head5k_raw.csv"))
    assert len(frame) == 5000  # a naive read_csv gives 5,001 rows, one of them broken
    assert set(frame["inbound"]) == {"True", "False"}
    assert frame["text"].str.contains("\r").sum() == 1
    assert "Unnamed: 0" in frame.columns  # the extra index column is tolerated


def test_crlf_file_leaves_no_carriage_return_in_values():
    frame = read(shared("banking77", "test.csv"))
    assert len(frame) == 3080
    assert not frame["category"].str.endswith("\r").any()
    assert frame["category"].nunique() == 77


def test_usecols_keeps_only_the_needed_columns():
    frame = read(shared("twcs", "sample.csv"), usecols=["text", "inbound"])
    assert sorted(frame.columns) == ["inbound", "text"]


def test_bom_utf16_and_latin1(tmp_path):
    rows = "text,label\ncafé crème,a\nniño,b\n"
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    (tmp_path / "u16.csv").write_bytes(rows.encode("utf-16"))
    (tmp_path / "latin.csv").write_bytes(rows.encode("latin-1"))
    assert list(read(tmp_path / "bom.csv").columns) == ["text", "label"]
    assert read(tmp_path / "u16.csv")["text"].tolist() == ["café crème", "niño"]
    with pytest.raises(BadInputError, match="--encoding"):
        read(tmp_path / "latin.csv")
    assert read(tmp_path / "latin.csv", encoding="latin-1")["text"][1] == "niño"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n\n", "no header"),
    (b'text,label\n"unclosed,a\nmore,b\n', "well-formed"),
])
def test_unreadable_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message):
        read(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        read(tmp_path / "nope.csv")
    with pytest.raises(BadInputError, match="is a directory"):
        read(tmp_path)


def test_missing_column_names_the_flag(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("body,label\nhello,a\n")
    with pytest.raises(BadInputError, match=r"column 'text' not found.*--text-column"):
        read(path, usecols=["text", "label"])


def test_label_spellings_merge_into_the_most_frequent():
    labels, merges = dataio.canonical_labels(pd.Series(["True", "TRUE", "true ", "True", "False"]))
    assert labels.tolist() == ["True", "True", "True", "True", "False"]
    assert merges == {"True": ["TRUE", "true"]} or merges == {"True": ["true", "TRUE"]}


def test_prepare_drops_and_counts_blank_texts_and_missing_labels(tmp_path):
    frame = pd.DataFrame({"text": ["a", " ", None, "b", "c"], "label": ["x", "y", "x", None, "y"]})
    data = dataio.prepare_labelled(frame, "text", "label", tmp_path / "f.csv")
    assert data.texts.tolist() == ["a", "c"]
    assert data.dropped_blank_text == 2 and data.dropped_missing_label == 1


def test_header_only_and_all_blank_are_rejected(tmp_path):
    with pytest.raises(BadInputError, match="no data rows"):
        dataio.prepare_labelled(pd.DataFrame({"text": [], "label": []}), "text", "label", tmp_path)
    frame = pd.DataFrame({"text": ["", "  "], "label": ["a", "b"]})
    with pytest.raises(BadInputError, match="no usable rows"):
        dataio.prepare_labelled(frame, "text", "label", tmp_path)


def test_split_validation_explains_what_is_wrong():
    with pytest.raises(BadInputError, match="single class"):
        dataio.validate_for_split(pd.Series(["a"] * 20), "label", 0.2, 0.1)
    with pytest.raises(BadInputError, match="too few rows per class"):
        dataio.validate_for_split(pd.Series(["a"] * 20 + ["b"] * 2), "label", 0.2, 0.1)
    with pytest.raises(BadInputError, match="fractions"):
        dataio.validate_for_split(pd.Series(["a", "b"] * 10), "label", 0.7, 0.4)
    dataio.validate_for_split(pd.Series(["a", "b"] * 10), "label", 0.2, 0.1)


def test_split_is_disjoint_roughly_stratified_and_reproducible():
    texts = pd.Series([f"text number {i}" for i in range(2000)])
    labels = pd.Series(["a"] * 1500 + ["b"] * 500)
    one = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=3)
    two = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=3)
    assert one.x_test["text"].tolist() == two.x_test["text"].tolist()
    parts = [set(one.x_train["text"]), set(one.x_val["text"]), set(one.x_test["text"])]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 2000
    assert abs(len(one.y_test) - 400) < 60 and abs(len(one.y_val) - 200) < 50
    assert abs((one.y_test == "b").mean() - 0.25) < 0.05
    other_seed = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=4)
    assert set(other_seed.x_test["text"]) != parts[2]


def test_a_rows_partition_never_changes_when_the_file_grows():
    texts = pd.Series([f"tweet {i}" for i in range(1000)])
    labels = pd.Series(["a", "b"] * 500)
    before = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=0)
    more = pd.concat([texts, pd.Series([f"new tweet {i}" for i in range(500)])], ignore_index=True)
    after = dataio.split_dataset(more, pd.Series(["a", "b"] * 750), "text", 0.2, 0.1, seed=0)
    assert set(before.x_test["text"]) <= set(after.x_test["text"])
    assert set(before.x_train["text"]) <= set(after.x_train["text"])


def test_duplicate_texts_never_straddle_train_and_test():
    texts = pd.Series([f"t{i % 50}" for i in range(500)])
    labels = pd.Series(["a", "b"] * 250)
    split = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=0)
    assert not set(split.x_train["text"]) & set(split.x_test["text"])


def test_every_class_gets_a_row_in_every_partition_even_when_tiny():
    texts = pd.Series([f"row {i}" for i in range(103)])
    labels = pd.Series(["big"] * 100 + ["tiny"] * 3)
    split = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=0)
    for part in (split.y_train, split.y_val, split.y_test):
        assert (part == "tiny").sum() == 1


def test_a_stratified_sample_keeps_class_shares_rare_classes_and_is_seeded():
    labels = np.array(["a"] * 9000 + ["b"] * 990 + ["rare"] * 10)
    picked = dataio.stratified_sample(labels, 1000, seed=1)
    assert np.all(np.diff(picked) > 0) and 990 <= len(picked) <= 1010
    chosen = pd.Series(labels[picked]).value_counts()
    assert chosen["a"] == 900 and chosen["b"] == 99 and chosen["rare"] == 3
    assert np.array_equal(picked, dataio.stratified_sample(labels, 1000, seed=1))
    assert not np.array_equal(picked, dataio.stratified_sample(labels, 1000, seed=2))
    assert np.array_equal(dataio.stratified_sample(labels[:50], 1000, seed=1), np.arange(50))


def test_a_bounded_split_cuts_training_and_validation_rows_alike_and_keeps_the_test_rows():
    texts = pd.Series([f"text number {i}" for i in range(10000)])
    labels = pd.Series(["a", "b", "b", "b"] * 2500)
    split = dataio.split_dataset(texts, labels, "text", 0.2, 0.1, seed=0)
    assert split.bounded(0, seed=0).sizes == split.bounded(20000, seed=0).sizes == split.sizes
    cut = split.bounded(2000, seed=0)
    sizes = cut.sizes
    assert abs(sizes["train"] + sizes["validation"] - 2000) <= 4
    assert abs(sizes["validation"] / 2000 - split.sizes["validation"] / 8000) < 0.02
    assert sizes["test"] == split.sizes["test"] and cut.x_test is split.x_test
    assert set(cut.x_train["text"]) <= set(split.x_train["text"])
    assert abs((cut.y_train == "a").mean() - 0.25) < 0.01
    probes = split.bounded(2000, seed=0, test_limit=500)
    assert abs(probes.sizes["test"] - 500) <= 2
