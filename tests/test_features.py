"""textprep.HashedTfidf, the compiled n-gram counter of the default pipeline: it counts exactly what its plain-Python definition says, which is what scikit-learn's
word and char_wb analyzers produce; it is deterministic and copes with empty and non-ASCII text."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

import textprep
from textprep import ngrams

TEXTS = [
    "@AppleSupport my iPhone won't charge!! https://t.co/xYz 2nd time",
    "hi",
    "a",
    "",
    "  spaces\tand\nnew lines  ",
    "café naïve résumé — ünïcödé テキスト 😀 x",
    "the the the cat sat on the mat, the end",
    "snake_case and CamelCase_words 12 345",
    "e\u0301 combining, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral",
]
STOP = frozenset({"the", "on", "and"})


def counted(text: str, n_buckets: int = 2 ** 20) -> tuple[Counter, Counter]:
    """The compiled loop's (bucket -> count) for one text, words and characters."""
    codes, bounds = ngrams._code_points([text])
    word, space = ngrams._tables()
    stop = np.array(sorted(ngrams._fnv(map(ord, w)) for w in STOP), dtype=np.uint64)
    w_ptr, w_idx, w_cnt, c_ptr, c_idx, c_cnt = ngrams._kernel()(
        codes, bounds, word, space, stop, 2, 2, 5, n_buckets)
    return Counter(dict(zip(w_idx.tolist(), w_cnt.tolist()))), \
        Counter(dict(zip(c_idx.tolist(), c_cnt.tolist())))


@pytest.mark.parametrize("text", TEXTS)
def test_the_definition_is_scikit_learns_word_and_char_wb_analyzers(text):
    text = text.lower()
    words, chars = textprep.reference_ngrams(text, 2, 2, 5, STOP)
    sk_words = TfidfVectorizer(ngram_range=(1, 2), stop_words=sorted(STOP)).build_analyzer()(text)
    sk_chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()(text)
    assert sorted(w for w, _ in words) == sorted(sk_words)
    assert sorted(c for c, _ in chars) == sorted(sk_chars)


@pytest.mark.parametrize("text", TEXTS)
def test_the_compiled_loop_counts_exactly_what_the_definition_says(text):
    text = text.lower()
    words, chars = textprep.reference_ngrams(text, 2, 2, 5, STOP)
    bucket = lambda key: ngrams._finalize(key) & (2 ** 20 - 1)  # noqa: E731
    got_words, got_chars = counted(text)
    assert got_words == Counter(bucket(k) for _, k in words)
    assert got_chars == Counter(bucket(k) for _, k in chars)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("low, high", [(2, 5), (3, 3), (1, 4), (6, 8)])
def test_column_names_hash_the_character_ngrams_of_the_definition(text, low, high):
    for word in text.lower().split():
        assert sorted(ngrams._char_ngrams_fast(word, low, high)) == \
            sorted(ngrams._char_ngrams(word, low, high))


def test_columns_are_named_by_their_most_frequent_ngram_and_the_names_survive_skops():
    import skops.io as sio

    texts = ["refund my order", "refund please", "my order is late", "late again"] * 5
    model = textprep.HashedTfidf(char_ngram_max=3, min_df=2).fit(texts)
    names = model.get_feature_names_out()
    assert len(names) == model.n_features_out_
    assert {"refund", "order", "my order", "late", "[_re]", "[te_]"} <= set(names)
    restored = sio.loads(sio.dumps(model), trusted=["textprep.HashedTfidf"])
    assert list(restored.get_feature_names_out()) == list(names)


def test_hashed_tfidf_is_deterministic_and_copes_with_empty_and_non_ascii_text():
    corpus = TEXTS * 3 + [None]
    first = textprep.HashedTfidf(stop_words=tuple(STOP), min_df=1).fit(corpus)
    second = textprep.HashedTfidf(stop_words=tuple(STOP), min_df=1).fit(corpus)
    np.testing.assert_array_equal(first.char_buckets_, second.char_buckets_)
    a, b = first.transform(corpus), second.transform(corpus)
    assert (a != b).nnz == 0 and a.shape == (len(corpus), first.n_features_out_)
    assert a[3].nnz == 0 and a[-1].nnz == 0  # "" and None: no features, no error
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=1))).ravel()
    assert np.all((np.isclose(norms, np.sqrt(2)) | np.isclose(norms, 1) | (norms == 0)))
    names = set(first.get_feature_names_out())
    assert {"iphone", "テキスト", "[😀]", "[_x_]"} & names
    assert "the" not in names  # a stop word


def test_max_features_keeps_the_most_frequent_columns():
    corpus = ["alpha beta"] * 5 + ["alpha gamma"] * 3 + ["delta"] * 2
    model = textprep.HashedTfidf(max_features=1, char_max_features=3, min_df=1).fit(corpus)
    assert model.get_feature_names_out()[0] == "alpha"  # 8 occurrences; beta has 5
    assert model.n_features_out_ == 4
    rare = textprep.HashedTfidf(min_df=3).fit(corpus)  # delta is in 2 texts only
    assert "delta" not in set(rare.get_feature_names_out())


def test_refitting_the_same_extractor_forgets_the_previous_columns():
    other = ["completely different words here"] * 4 + ["and more of them"] * 2
    texts = ["refund my order", "refund please", "my order is late", "late again"] * 5
    reused = textprep.HashedTfidf(char_ngram_max=3, min_df=2).fit(texts)
    reused.transform(texts)  # builds the column lookup of the first fit
    reused.fit(other)
    fresh = textprep.HashedTfidf(char_ngram_max=3, min_df=2).fit(other)
    assert (reused.transform(other) != fresh.transform(other)).nnz == 0
    assert list(reused.get_feature_names_out()) == list(fresh.get_feature_names_out())
