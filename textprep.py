"""Estimators that travel inside the logged model (shipped with it via MLflow ``code_paths``).

Keep this module small, self-contained (no project imports) and backward compatible: every
registered model version imports it by the name ``textprep`` when loaded (by predict.py,
monitor.py, ``mlflow.pyfunc.load_model`` or ``mlflow models serve``), and models saved by
earlier releases are loaded with today's classes (tests/test_compatibility.py).
"""
from __future__ import annotations

import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
import skops.io as sio
import yaml
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

URL_TOKEN = " xxurl "
HANDLE_TOKEN = " xxuser "
NUMBER_TOKEN = " xxnum "
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class TextColumn(TransformerMixin, BaseEstimator):
    """Select the text column of a DataFrame and normalise it into a 1-D array of strings.

    Accepts a DataFrame (the ``column`` is used), a Series, or a list of strings, so the
    pipeline gives one prediction per row through ``mlflow.pyfunc`` as well as in plain
    scikit-learn. Missing values become empty strings instead of raising. Texts longer than
    ``max_chars`` are cut there (a 10 MB "text" is a broken row, and would otherwise cost
    gigabytes of character n-grams).
    """

    def __init__(self, column: str = "text", mask_urls: bool = False, mask_handles: bool = False,
                 mask_numbers: bool = False, max_chars: int | None = 100_000):
        self.column = column
        self.mask_urls = mask_urls
        self.mask_handles = mask_handles
        self.mask_numbers = mask_numbers
        self.max_chars = max_chars

    def fit(self, X: Any, y: Any = None) -> "TextColumn":
        return self

    def transform(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if self.column in X.columns:
                X = X[self.column]
            elif X.shape[1] == 1:
                X = X.iloc[:, 0]
            else:
                raise KeyError(f"input has no {self.column!r} column (columns: {list(X.columns)})")
        texts = pd.Series(np.asarray(X, dtype=object).ravel(), dtype=object)
        texts = texts.where(texts.notna(), "").astype(str)
        limit = getattr(self, "max_chars", None)  # absent in models saved before it existed
        if limit and len(texts) and texts.str.len().max() > limit:
            texts = texts.str.slice(0, limit)
        if self.mask_urls:
            texts = texts.str.replace(_URL, URL_TOKEN, regex=True)
        if self.mask_handles:
            texts = texts.str.replace(_HANDLE, HANDLE_TOKEN, regex=True)
        if self.mask_numbers:
            texts = texts.str.replace(_NUMBER, NUMBER_TOKEN, regex=True)
        return texts.to_numpy(dtype=object)


# --------------------------------------------------------------------------------------------
# Hashed TF-IDF: word 1..N-grams and character n-grams within words, built by one compiled loop
# over UTF-32 code points (numba) instead of one Python string per n-gram.
# --------------------------------------------------------------------------------------------
_MASK = 0xFFFFFFFFFFFFFFFF
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_BIGRAM, _CHAR_SEED = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F
_SPACE = 32


def _finalize(key: int) -> int:
    """splitmix64's finaliser: spreads every bit of ``key`` over the low bits (the bucket)."""
    key = ((key ^ (key >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    key = ((key ^ (key >> 27)) * 0x94D049BB133111EB) & _MASK
    return key ^ (key >> 31)


def _fnv(codes: Any, seed: int = _FNV_OFFSET) -> int:
    h = seed
    for cp in codes:
        h = ((h ^ int(cp)) * _FNV_PRIME) & _MASK
    return h


def _join(left: int, right: int) -> int:
    """The key of an n-gram of words from the keys of its first words and its last word."""
    return ((((left ^ _BIGRAM) * _FNV_PRIME) & _MASK ^ right) * _FNV_PRIME) & _MASK


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what the re module's \w matches


def _word_ngrams(tokens: list[str], keys: list[int], n_max: int):
    """(n-gram, key) of the word 1..``n_max``-grams of ``tokens``, given each token's key."""
    for n in range(1, n_max + 1):
        for i in range(len(tokens) - n + 1):
            key = keys[i]
            for j in range(i + 1, i + n):
                key = _join(key, keys[j])
            yield " ".join(tokens[i:i + n]), key


def reference_ngrams(text: str, word_ngram_max: int, char_ngram_min: int, char_ngram_max: int,
                     stop_words: frozenset = frozenset()) -> tuple[list[tuple[str, int]],
                                                                   list[tuple[str, int]]]:
    """The definition, in plain Python, of what :class:`HashedTfidf` counts in one (already
    lowercased) text: (n-gram, 64-bit key) pairs for words and for characters.

    Words are scikit-learn's: maximal runs of ``\\w`` of two characters or more, stop words
    removed, then 1..N-grams joined by spaces. Characters are scikit-learn's ``char_wb``: each
    white-space separated word padded with one space on both sides, n-grams inside it. The
    compiled loop must give exactly these keys (tests/test_features.py)."""
    tokens, word = [], []
    for ch in text + " ":
        if _is_word(ch):
            word.append(ch)
            continue
        if len(word) >= 2:
            token = "".join(word)
            if token not in stop_words:
                tokens.append(token)
        word = []
    words = list(_word_ngrams(tokens, [_fnv(map(ord, t)) for t in tokens], word_ngram_max))
    chars = []
    for w in text.split():
        chars.extend(_char_ngrams(w, char_ngram_min, char_ngram_max))
    return words, chars


def _char_ngrams(word: str, char_ngram_min: int, char_ngram_max: int) -> list[tuple[str, int]]:
    """(n-gram, key) pairs of one white-space free word, as scikit-learn's ``char_wb``: the word
    padded with a space on both sides, every window of min..max characters (the whole padded
    word when it is shorter than min)."""
    padded, grams = f" {word} ", []
    for n in range(char_ngram_min, char_ngram_max + 1):
        offset = 0
        while True:
            gram = padded[offset:offset + n]
            grams.append((gram, _fnv(map(ord, gram), _CHAR_SEED)))
            if offset + n >= len(padded):
                break
            offset += 1
        if offset == 0:
            break
    return grams


def _char_ngrams_fast(word: str, char_ngram_min: int, char_ngram_max: int) -> list[tuple[str, int]]:
    """The pairs of ``_char_ngrams``, in another order: each window's key extended one character
    at a time, as the compiled loop does (a few times faster in Python)."""
    padded, grams = f" {word} ", []
    codes = [ord(ch) for ch in padded]
    size = len(padded)
    if size < char_ngram_min:
        return [(padded, _fnv(codes, _CHAR_SEED))] if char_ngram_max >= char_ngram_min else []
    for o in range(size):
        h = _CHAR_SEED
        for n in range(1, min(char_ngram_max, size - o) + 1):
            h = ((h ^ codes[o + n - 1]) * _FNV_PRIME) & _MASK
            if n >= char_ngram_min:
                grams.append((padded[o:o + n], h))
    return grams


_WORD_RUN = re.compile(r"\w+")  # \w is exactly _is_word: str.isalnum() or "_"
_KERNEL: dict[str, Any] = {}
_TABLES: dict[str, Any] = {}


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Per Unicode code point: is it a word character (``\\w``), is it white space."""
    if not _TABLES:
        chars = [chr(cp) for cp in range(0x110000)]
        _TABLES["word"] = np.fromiter((c.isalnum() or c == "_" for c in chars), bool, 0x110000)
        _TABLES["space"] = np.fromiter((c.isspace() for c in chars), bool, 0x110000)
    return _TABLES["word"], _TABLES["space"]


# The compiled loop. Plain functions here; _kernel() compiles them with numba (in this order, so
# that each one calls the compiled versions of the ones before it) on first use.
_PRIME, _OFFSET = np.uint64(0x100000001B3), np.uint64(0xCBF29CE484222325)


def _nb_finalize(key):
    key = (key ^ (key >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    key = (key ^ (key >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return key ^ (key >> np.uint64(31))


def _nb_tokens(codes, start, end, is_word, stop_keys, tokens):
    """Keys of the row's words (runs of \\w, 2+ characters, stop words dropped)."""
    n_tok = 0
    i = start
    while i < end:
        if not is_word[codes[i]]:
            i += 1
            continue
        j = i
        h = _OFFSET
        while j < end and is_word[codes[j]]:
            h = (h ^ np.uint64(codes[j])) * _PRIME
            j += 1
        if j - i >= 2:
            lo, hi = 0, stop_keys.shape[0]
            while lo < hi:  # binary search among the stop words' keys
                mid = (lo + hi) // 2
                if stop_keys[mid] < h:
                    lo = mid + 1
                else:
                    hi = mid
            if not (lo < stop_keys.shape[0] and stop_keys[lo] == h):
                if n_tok == tokens.shape[0]:
                    more = np.empty(n_tok * 2, np.uint64)
                    more[:n_tok] = tokens[:n_tok]
                    tokens = more
                tokens[n_tok] = h
                n_tok += 1
        i = j
    return tokens, n_tok


def _nb_word_keys(tokens, n_tok, word_max, low, keys):
    n_keys = 0
    for n in range(1, word_max + 1):
        for t in range(n_tok - n + 1):
            key = tokens[t]
            for u in range(t + 1, t + n):
                key = ((key ^ np.uint64(0x9E3779B97F4A7C15)) * _PRIME ^ tokens[u]) * _PRIME
            keys[n_keys] = np.int64(_nb_finalize(key) & low)
            n_keys += 1
    return n_keys


def _nb_char_keys(codes, start, end, is_space, char_min, char_max, low, keys, window):
    """Keys of the n-grams inside each white-space separated word padded with spaces: every
    full window of char_min..char_max characters (order is irrelevant: keys are counted), and
    the whole padded word when it is shorter than char_min."""
    seed = np.uint64(0xC2B2AE3D27D4EB4F)
    n_keys = 0
    i = start
    while i < end:
        if is_space[codes[i]]:
            i += 1
            continue
        j = i
        while j < end and not is_space[codes[j]]:
            j += 1
        size = j - i + 2
        if size > window.shape[0]:
            window = np.empty(size * 2, np.uint32)
        window[0] = 32
        window[1:size - 1] = codes[i:j]
        window[size - 1] = 32
        for o in range(size):
            h = seed
            for n in range(1, char_max + 1):
                if o + n > size:
                    break
                h = (h ^ np.uint64(window[o + n - 1])) * _PRIME
                if n >= char_min:
                    keys[n_keys] = np.int64(_nb_finalize(h) & low)
                    n_keys += 1
        if size < char_min:
            h = seed
            for k in range(size):
                h = (h ^ np.uint64(window[k])) * _PRIME
            keys[n_keys] = np.int64(_nb_finalize(h) & low)
            n_keys += 1
        i = j
    return n_keys, window


def _nb_flush(keys, n, out_idx, out_cnt, used, table, counts, stamps, stamp):
    """The (bucket, count) pairs of one row appended to the output, buckets ascending.
    Counting goes through a small open-addressing table (``stamps`` marks the slots of this
    row, so nothing is cleared between rows); only the distinct buckets are sorted."""
    if used + n > out_idx.shape[0]:
        grown = max(out_idx.shape[0] * 2, used + n)
        bigger_idx = np.empty(grown, np.int64)
        bigger_idx[:used] = out_idx[:used]
        bigger_cnt = np.empty(grown, np.float32)
        bigger_cnt[:used] = out_cnt[:used]
        out_idx, out_cnt = bigger_idx, bigger_cnt
    mask = table.shape[0] - 1
    if 2 * n > table.shape[0]:  # a very long text: sort instead
        row = np.sort(keys[:n])
        i = 0
        while i < n:
            j = i
            while j < n and row[j] == row[i]:
                j += 1
            out_idx[used] = row[i]
            out_cnt[used] = j - i
            used += 1
            i = j
        return out_idx, out_cnt, used
    first = used
    for e in range(n):
        key = keys[e]
        slot = key & mask
        while stamps[slot] == stamp and table[slot] != key:
            slot = (slot + 1) & mask
        if stamps[slot] != stamp:
            stamps[slot] = stamp
            table[slot] = key
            counts[slot] = 0
            out_idx[used] = key
            used += 1
        counts[slot] += 1
    out_idx[first:used] = np.sort(out_idx[first:used])
    for e in range(first, used):
        slot = out_idx[e] & mask
        while table[slot] != out_idx[e]:
            slot = (slot + 1) & mask
        out_cnt[e] = counts[slot]
    return out_idx, out_cnt, used


def _nb_count(codes, bounds, is_word, is_space, stop_keys, word_max, char_min, char_max, buckets):
    """Per row, the (bucket, count) pairs of its word n-grams and of its character n-grams, as
    two CSR triples (indptr, buckets, counts)."""
    n_rows = bounds.shape[0] - 1
    low = np.uint64(buckets - 1)  # buckets is a power of two
    w_idx, w_cnt = np.empty(max(16, codes.shape[0]), np.int64), np.empty(max(16, codes.shape[0]), np.float32)
    c_idx, c_cnt = np.empty(max(16, codes.shape[0] * 4), np.int64), np.empty(max(16, codes.shape[0] * 4), np.float32)
    w_ptr, c_ptr = np.zeros(n_rows + 1, np.int64), np.zeros(n_rows + 1, np.int64)
    w_used = c_used = 0
    keys = np.empty(64, np.int64)
    table, counts = np.zeros(4096, np.int64), np.zeros(4096, np.float32)
    stamps = np.full(4096, -1, np.int64)
    tokens, window = np.empty(64, np.uint64), np.empty(64, np.uint32)
    for r in range(n_rows):
        start, end = bounds[r], bounds[r + 1]
        bound = 3 * (end - start + 1) * max(char_max, word_max)  # keys this row can make
        if bound > keys.shape[0]:
            keys = np.empty(bound, np.int64)
        tokens, n_tok = _nb_tokens(codes, start, end, is_word, stop_keys, tokens)
        n_keys = _nb_word_keys(tokens, n_tok, word_max, low, keys)
        w_idx, w_cnt, w_used = _nb_flush(keys, n_keys, w_idx, w_cnt, w_used, table, counts,
                                         stamps, 2 * r)
        w_ptr[r + 1] = w_used
        n_keys, window = _nb_char_keys(codes, start, end, is_space, char_min, char_max, low,
                                       keys, window)
        c_idx, c_cnt, c_used = _nb_flush(keys, n_keys, c_idx, c_cnt, c_used, table, counts,
                                         stamps, 2 * r + 1)
        c_ptr[r + 1] = c_used
    return w_ptr, w_idx[:w_used], w_cnt[:w_used], c_ptr, c_idx[:c_used], c_cnt[:c_used]


def _nb_weigh(families, remaps, idfs, sublinear):
    """Compact CSR of the kept columns: (sublinear) TF x IDF, each family L2-normalised, words
    then characters in every row (column indices ascending)."""
    n_rows = families[0][0].shape[0] - 1
    size = families[0][1].shape[0] + families[1][1].shape[0]
    indptr = np.zeros(n_rows + 1, np.int64)
    indices = np.empty(size, np.int32)
    data = np.empty(size, np.float32)
    used = 0
    for r in range(n_rows):
        for f in range(2):
            ptr, idx, cnt = families[f]
            remap, idf = remaps[f], idfs[f]
            first = used
            total = 0.0
            for e in range(ptr[r], ptr[r + 1]):
                column = remap[idx[e]]
                if column < 0:
                    continue
                tf = cnt[e]
                if sublinear:
                    tf = 1.0 + np.log(tf)
                value = tf * idf[column]
                indices[used] = column
                data[used] = value
                total += value * value
                used += 1
            if total > 0:
                norm = np.sqrt(total)
                for e in range(first, used):
                    data[e] = data[e] / norm
        indptr[r + 1] = used
    return indptr, indices[:used], data[:used]


_COMPILED = ("_nb_finalize", "_nb_tokens", "_nb_word_keys", "_nb_char_keys", "_nb_flush",
             "_nb_count", "_nb_weigh")


def _kernel():
    """The compiled n-gram counter (numba: compiled once per process, cached on disk)."""
    if "count" not in _KERNEL:
        import numba  # heavy (LLVM): only when features are computed

        module = globals()
        for name in _COMPILED:  # callees first: later ones call the compiled versions
            module[name] = numba.njit(cache=True, nogil=True)(module[name])
        _KERNEL["count"], _KERNEL["weigh"] = module["_nb_count"], module["_nb_weigh"]
    return _KERNEL["count"]


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one array of UTF-32 code points, and each text's bounds in it."""
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    bounds = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(lengths, out=bounds[1:])
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    return codes, bounds


class HashedTfidf(TransformerMixin, BaseEstimator):
    """TF-IDF of word 1..N-grams and of character n-grams within words (scikit-learn's
    ``char_wb``), like two ``TfidfVectorizer`` side by side, but computed by one compiled loop
    over code points and hashed into ``n_buckets`` per family: no vocabulary is built, so
    fitting needs memory for counts per bucket, not for every n-gram ever seen.

    ``fit`` counts document frequencies per bucket, keeps the buckets seen in at least
    ``min_df`` texts (and at most ``max_df``), then the ``max_features`` / ``char_max_features``
    most frequent ones, as the output columns (words first). ``names_`` holds, per kept column,
    the most frequent n-gram seen in it in a sample of the training texts, for explanations.
    Each family is L2-normalised on its own, as a FeatureUnion of two vectorizers would be.
    """

    def __init__(self, lowercase: bool = True, stop_words: tuple[str, ...] = (),
                 word_ngram_max: int = 2, char_ngram_min: int = 2, char_ngram_max: int = 5,
                 min_df: int = 2, max_df: float = 1.0, max_features: int = 20000,
                 char_max_features: int = 50000, sublinear_tf: bool = True,
                 n_buckets: int = 2 ** 20, batch_rows: int = 20000, name_sample: int = 20000):
        self.lowercase = lowercase
        self.stop_words = stop_words
        self.word_ngram_max = word_ngram_max
        self.char_ngram_min = char_ngram_min
        self.char_ngram_max = char_ngram_max
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.char_max_features = char_max_features
        self.sublinear_tf = sublinear_tf
        self.n_buckets = n_buckets
        self.batch_rows = batch_rows
        self.name_sample = name_sample

    # -- counting ----------------------------------------------------------------------------
    def _prepare(self, texts: Any) -> list[str]:
        texts = [t if isinstance(t, str) else "" for t in np.asarray(texts, dtype=object).ravel()]
        return [t.lower() for t in texts] if self.lowercase else texts

    def _stop_keys(self) -> np.ndarray:
        words = {w.lower() if self.lowercase else w for w in self.stop_words}
        return np.array(sorted(_fnv(map(ord, w)) for w in words), dtype=np.uint64)

    def _batches(self, texts: list[str]):
        """(word CSR parts, char CSR parts) per batch of rows: raw buckets and counts."""
        is_word, is_space = _tables()
        count, stop = _kernel(), self._stop_keys()
        for begin in range(0, len(texts), self.batch_rows):
            codes, bounds = _code_points(texts[begin:begin + self.batch_rows])
            parts = count(codes, bounds, is_word, is_space, stop, int(self.word_ngram_max),
                          int(self.char_ngram_min), int(self.char_ngram_max), int(self.n_buckets))
            yield (parts[0], parts[1], parts[2]), (parts[3], parts[4], parts[5])

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "HashedTfidf":
        self.__dict__.pop("_remap_cache", None)  # a refit must not use the previous columns
        texts = self._prepare(X)
        n = len(texts)
        nb = int(self.n_buckets)
        df = [np.zeros(nb, np.int64), np.zeros(nb, np.int64)]
        total = [np.zeros(nb, np.float64), np.zeros(nb, np.float64)]
        for families in self._batches(texts):
            for f, (_, idx, cnt) in enumerate(families):
                df[f] += np.bincount(idx, minlength=nb)
                total[f] += np.bincount(idx, weights=cnt, minlength=nb)
        kept = []
        for f, limit in enumerate((self.max_features, self.char_max_features)):
            allowed = (df[f] >= self.min_df) & (df[f] <= self.max_df * n) & (df[f] > 0)
            candidates = np.flatnonzero(allowed)
            if limit and len(candidates) > limit:
                order = np.argsort(-total[f][candidates], kind="stable")[:int(limit)]
                candidates = np.sort(candidates[order])
            kept.append(candidates)
        self.word_buckets_, self.char_buckets_ = kept
        self.word_idf_ = (np.log((1 + n) / (1 + df[0][kept[0]])) + 1).astype(np.float32)
        self.char_idf_ = (np.log((1 + n) / (1 + df[1][kept[1]])) + 1).astype(np.float32)
        self.n_features_out_ = len(kept[0]) + len(kept[1])
        self.names_ = self._names(texts)
        return self

    def _remaps(self) -> tuple[np.ndarray, np.ndarray]:
        cache = self.__dict__.get("_remap_cache")
        if cache is None:
            cache = []
            for buckets, shift in ((self.word_buckets_, 0), (self.char_buckets_, len(self.word_buckets_))):
                remap = np.full(int(self.n_buckets), -1, np.int64)
                remap[buckets] = np.arange(len(buckets)) + shift
                cache.append(remap)
            self.__dict__["_remap_cache"] = cache
        return cache[0], cache[1]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_remap_cache", None)  # rebuilt on first use; not worth storing
        return state

    def transform(self, X: Any) -> sp.csr_matrix:
        check_is_fitted(self, "word_buckets_")
        texts = self._prepare(X)
        remaps, shift = self._remaps(), len(self.word_buckets_)
        idfs = (self.word_idf_, np.concatenate([np.zeros(shift, np.float32), self.char_idf_]))
        _kernel()
        weigh = _KERNEL["weigh"]
        blocks = []
        for families in self._batches(texts):
            indptr, indices, data = weigh(families, remaps, idfs, bool(self.sublinear_tf))
            blocks.append(sp.csr_matrix((data, indices, indptr),
                                        shape=(len(indptr) - 1, self.n_features_out_)))
        if not blocks:
            return sp.csr_matrix((0, self.n_features_out_), dtype=np.float32)
        return sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Each column's most frequent n-gram in the fit sample: words as is, character n-grams
        as ``[xy]`` with word boundaries shown as ``_``; ``#<bucket>`` when none was seen."""
        check_is_fitted(self, "names_")
        known = self.names_.split("\n")
        buckets = np.concatenate([self.word_buckets_, self.char_buckets_])
        shift = len(self.word_buckets_)
        return np.asarray([name or (f"#{b}" if i < shift else f"[#{b}]")
                           for i, (name, b) in enumerate(zip(known, buckets))], dtype=object)

    def known_words(self, words: Any) -> np.ndarray:
        """Per (already lowercased) word: does the model have a column for it as a unigram?
        Used for the out-of-vocabulary rate of monitored texts (collisions count as known)."""
        check_is_fitted(self, "word_buckets_")
        remap, _ = self._remaps()
        low = int(self.n_buckets) - 1
        buckets = [_finalize(_fnv(map(ord, w))) & low for w in words]
        return remap[np.asarray(buckets, dtype=np.int64)] >= 0 if buckets else np.zeros(0, bool)

    def _names(self, texts: list[str]) -> str:
        """Per column, the most frequent n-gram in a seeded sample of the fit texts (bounded),
        as one string, a line per column (empty when none was seen): cheap to store. Counts the
        n-grams of ``reference_ngrams``, caching each distinct word's keys."""
        remap_w, remap_c = self._remaps()
        low = int(self.n_buckets) - 1
        stop = frozenset(w.lower() if self.lowercase else w for w in self.stop_words)
        word_max, char_min, char_max = (int(self.word_ngram_max), int(self.char_ngram_min),
                                        int(self.char_ngram_max))
        word_keys: dict[str, int] = {}
        char_columns: dict[str, list[tuple[int, str]]] = {}
        seen: Counter = Counter()  # (column, n-gram) -> count; updated in C, a text at a time
        picks = np.random.default_rng(0).permutation(len(texts))[:int(self.name_sample)]
        for i in picks:
            tokens = [t for t in _WORD_RUN.findall(texts[i]) if len(t) >= 2 and t not in stop]
            for t in tokens:
                if t not in word_keys:
                    word_keys[t] = _fnv(map(ord, t))
            found = [(column, gram) for gram, key in
                     _word_ngrams(tokens, [word_keys[t] for t in tokens], word_max)
                     if (column := int(remap_w[_finalize(key) & low])) >= 0]
            for w in texts[i].split():
                grams = char_columns.get(w)
                if grams is None:
                    grams = char_columns[w] = [
                        (column, f"[{g.replace(' ', '_')}]") for g, k in
                        _char_ngrams_fast(w, char_min, char_max)
                        if (column := int(remap_c[_finalize(k) & low])) >= 0]
                found.extend(grams)
            seen.update(found)
        best, most = [""] * int(self.n_features_out_), [0] * int(self.n_features_out_)
        for (column, name), n in seen.items():
            if n > most[column]:
                best[column], most[column] = name, n
        return "\n".join(best)


class CatBoostText(ClassifierMixin, BaseEstimator):
    """CatBoost on TF-IDF features, boosted from a linear model's scores.

    With ``linear_boost=True`` (the default) a multinomial logistic regression is fitted on the
    sparse TF-IDF matrix; its out-of-fold logits are CatBoost's features *and* its starting point
    (CatBoost ``baseline``), so the trees learn corrections to a strong linear text model instead
    of rediscovering it from 20k sparse columns (much faster, especially with many classes).
    With ``linear_boost=False`` CatBoost fits the TF-IDF matrix directly.

    ``classes_`` keeps the labels in the training data's spelling; ``predict`` returns a 1-D array
    of them and is always the arg-max of ``predict_proba``. ``fit`` takes an optional
    ``eval_set=(X, y)`` for early stopping.
    """

    calibrate = False  # models saved before calibration existed have neither it nor temperature_
    calibration_folds = 0  # nor this: their temperature (if any) came from the probe's rows

    def __init__(self, iterations: int = 300, learning_rate: float | None = 0.1, depth: int = 4,
                 border_count: int = 32, early_stopping_rounds: int | None = 30,
                 thread_count: int = -1, random_seed: int = 0, linear_boost: bool = True,
                 linear_c: float = 10.0, cv_folds: int = 5, calibrate: bool = True,
                 calibration_folds: int = 3):
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.border_count = border_count
        self.early_stopping_rounds = early_stopping_rounds
        self.thread_count = thread_count
        self.random_seed = random_seed
        self.linear_boost = linear_boost
        self.linear_c = linear_c
        self.cv_folds = cv_folds
        self.calibrate = calibrate
        self.calibration_folds = calibration_folds

    # -- helpers ---------------------------------------------------------------------------
    def _make_model(self, n_classes: int):
        from catboost import CatBoostClassifier  # heavy: only when fitting or scoring

        return CatBoostClassifier(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            border_count=self.border_count,
            loss_function="Logloss" if n_classes == 2 else "MultiClass",
            thread_count=self.thread_count,
            random_seed=self.random_seed,
            allow_writing_files=False,
            verbose=0,
        )

    def _make_linear(self):
        return LogisticRegression(C=self.linear_c, max_iter=2000)

    @staticmethod
    def _as_matrix(scores: np.ndarray) -> np.ndarray:
        return scores.reshape(len(scores), -1)

    def _out_of_fold_scores(self, X: Any, codes: np.ndarray) -> np.ndarray:
        folds = max(2, min(int(self.cv_folds), int(np.bincount(codes).min())))
        n_jobs = (os.cpu_count() or 1) if self.thread_count == -1 else max(1, int(self.thread_count))
        if n_jobs > 1 and fold_copy_bytes(X, folds) * n_jobs > PARALLEL_FOLDS_MAX_BYTES:
            n_jobs = 1  # one fold at a time: its copy of X is the fit's memory peak
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_seed)
        # Threads, not processes: the folds share X instead of each receiving a copy (the
        # solver spends its time in numpy/scipy, which release the GIL: measured as fast).
        with parallel_config(backend="threading"):
            return cross_val_predict(self._make_linear(), X, codes, cv=cv,
                                     method="decision_function", n_jobs=n_jobs)

    def _pool(self, X: Any, labels: np.ndarray | None = None, linear_scores: np.ndarray | None = None):
        from catboost import Pool  # heavy: only when fitting or scoring

        if linear_scores is None:
            return Pool(X, labels)
        return Pool(self._as_matrix(linear_scores), labels, baseline=self._as_matrix(linear_scores))

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None,
            validation_mask: Any = None) -> "CatBoostText":
        """Fit on ``X``/``y``. Early stopping (when ``early_stopping_rounds`` is set) uses either

        * ``eval_set=(X_val, y_val)``: separate rows, never trained on; or
        * ``validation_mask``: a boolean mask of rows of ``X`` to stop on. The trees are first
          grown on the other rows until the validation loss stops improving, then refitted on
          all rows with that many trees; the linear model's out-of-fold logits are computed once
          for all rows, so the validation rows cost no extra fit and no accuracy.

        With ``calibrate``, the temperature is fitted for the model that is kept, on rows it was
        not fitted on: after a refit, by cross-fitting (``calibration_folds`` copies of the
        refitted trees, each grown on the other folds, score their own fold); otherwise on the
        early-stopping rows the kept model never saw.
        """
        y = np.asarray(y, dtype=object).astype(str)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two classes")
        scores, held_out = None, None
        if self.linear_boost:
            scores = self._as_matrix(self._out_of_fold_scores(X, codes))
            self.linear_ = self._make_linear().fit(X, codes)
        n_classes = len(self.classes_)
        stop = dict(early_stopping_rounds=self.early_stopping_rounds, use_best_model=True)
        if validation_mask is not None and self.early_stopping_rounds:
            val = np.asarray(validation_mask, dtype=bool)
            rows = lambda m: None if scores is None else scores[m]  # noqa: E731
            probe = self._make_model(n_classes)
            probe.fit(self._pool(X[~val], codes[~val], rows(~val)),
                      eval_set=self._pool(X[val], codes[val], rows(val)), **stop)
            self.best_iteration_ = max(int(probe.tree_count_), 1)
            held_out = (self._raw(probe, X[val], rows(val)), codes[val])
            model = self._make_model(n_classes)
            model.set_params(iterations=self.best_iteration_)
            model.fit(self._pool(X, codes, scores))
            if self.calibrate:
                held_out = self._cross_fitted_raw(X, codes, scores) or held_out
        else:
            model, held_out = self._fit_on_eval_set(X, codes, scores, eval_set, stop)
        self.model_ = model
        self.n_features_in_ = X.shape[1]
        self.temperature_ = 1.0
        if self.calibrate and held_out is not None and len(held_out[1]):
            self.temperature_ = fit_temperature(*held_out)
        return self

    def _fit_on_eval_set(self, X: Any, codes: np.ndarray, scores: np.ndarray | None,
                         eval_set: tuple[Any, Any] | None, stop: dict[str, Any]):
        """Fit on every row, stopping early on ``eval_set`` (its rows of known classes) when
        given; returns the model and the eval rows' raw scores with their codes (or None)."""
        model = self._make_model(len(self.classes_))
        fit_kwargs: dict[str, Any] = {}
        held_out = None
        if eval_set is not None and self.early_stopping_rounds:
            lookup = {label: i for i, label in enumerate(self.classes_)}
            y_val = np.asarray(eval_set[1], dtype=object).astype(str)
            known = np.array([label in lookup for label in y_val])
            if known.any():
                x_val = eval_set[0][known]
                val_codes = np.array([lookup[label] for label in y_val[known]])
                val_scores = self.linear_.decision_function(x_val) if self.linear_boost else None
                fit_kwargs = dict(eval_set=self._pool(x_val, val_codes, val_scores), **stop)
                held_out = (x_val, val_codes, val_scores)
        model.fit(self._pool(X, codes, scores), **fit_kwargs)
        self.best_iteration_ = int(model.tree_count_)
        if held_out is not None:
            held_out = (self._raw(model, held_out[0], held_out[2]), held_out[1])
        return model, held_out

    def _cross_fitted_raw(self, X: Any, codes: np.ndarray,
                          scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Raw scores of every row from a copy of the refitted trees (same number of trees)
        grown without that row's fold: the held-out scores of the model that is kept. The
        linear logits are already out of fold. None when folds are off or a class is too rare."""
        folds = min(int(self.calibration_folds), int(np.bincount(codes).min()))
        if folds < 2:
            return None
        raw = np.empty((len(codes), 1 if len(self.classes_) == 2 else len(self.classes_)))
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_seed + 1)
        for fit_rows, own_rows in cv.split(np.zeros(len(codes)), codes):
            copy = self._make_model(len(self.classes_))
            copy.set_params(iterations=self.best_iteration_)
            copy.fit(self._pool(X[fit_rows], codes[fit_rows],
                                None if scores is None else scores[fit_rows]))
            raw[own_rows] = self._raw(copy, X[own_rows],
                                      None if scores is None else scores[own_rows])
        return raw, codes

    def _raw(self, model: Any, X: Any, linear: np.ndarray | None) -> np.ndarray:
        """Raw scores of ``model`` (trees) on ``X``, plus the linear logits when boosting."""
        if linear is None:
            return self._as_matrix(model.predict(X, prediction_type="RawFormulaVal",
                                                 thread_count=self.thread_count))
        linear = self._as_matrix(linear)
        trees = model.predict(self._pool(X, linear_scores=linear), prediction_type="RawFormulaVal",
                              thread_count=self.thread_count)
        return linear + self._as_matrix(trees)

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores: the linear logits plus the trees' corrections (one column per class,
        or one column for binary tasks)."""
        check_is_fitted(self, "model_")
        return self._raw(self.model_, X,
                         self.linear_.decision_function(X) if self.linear_boost else None)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; calibrated (raw scores divided by ``temperature_``, fitted on
        held-out rows) for models trained with ``calibrate``. The arg-max, and so ``predict``,
        is the same with or without calibration."""
        return scores_to_proba(self.decision_function(X) / getattr(self, "temperature_", 1.0))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def scores_to_proba(raw: np.ndarray) -> np.ndarray:
    """Probabilities from raw scores: sigmoid of one column (binary), softmax of several."""
    if raw.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    raw = raw - raw.max(axis=1, keepdims=True)
    exp = np.exp(raw)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(raw: np.ndarray, codes: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the log loss of ``scores_to_proba(raw / T)``
    on held-out rows (one parameter, so it cannot overfit them, and the arg-max never moves)."""
    rows = np.arange(len(codes))

    def loss(log_t: float) -> float:
        proba = scores_to_proba(raw / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(proba[rows, codes], 1e-15, 1.0))))

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


# Out-of-fold logits: folds are fitted side by side only while their copies of X (each fold's
# training rows, converted to float64 by the solver) stay below this; above it, one at a time.
# Measured on 300k tweet-like rows (2 cores): peak 2.85 -> 2.42 GiB, fit 42 -> 53 s.
PARALLEL_FOLDS_MAX_BYTES = 1 << 30


def fold_copy_bytes(X: Any, folds: int) -> int:
    """Bytes of one fold's float64 copy of its training rows of ``X``."""
    stored = X.nnz if sp.issparse(X) else int(np.prod(X.shape))
    per_value = 12 if sp.issparse(X) else 8  # sparse: value + column index
    return int(stored * per_value * (folds - 1) / folds)


# --------------------------------------------------------------------------------------------
# Loading a logged model, and the python_function flavor: what `mlflow.pyfunc.load_model`,
# `mlflow models serve` and `mlflow.pyfunc.spark_udf` call. The MLmodel's python_function flavor
# names this module as its loader; the sklearn flavor (mlflow.sklearn.load_model) is unchanged.
# --------------------------------------------------------------------------------------------
class UnsafeModelError(ValueError):
    """The model folder is not a skops-serialised sklearn model (e.g. a pickle)."""


def load_model_folder(folder: str | os.PathLike[str]) -> Any:
    """The one model loader (predict.py, monitor.py, batch workers, pyfunc): a logged MLflow
    sklearn model folder, loaded with skops and only the trusted types its MLmodel lists.

    textops never unpickles a model: unpickling runs whatever code the file names. MLflow is not
    imported (a worker needs ~220 MB less). The ``code/`` folder logged with the model is put on
    ``sys.path`` last, so the running project's modules win over the copies shipped with it.
    """
    folder = Path(folder)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"].get("sklearn", {})
    fmt = flavor.get("serialization_format", "pickle" if flavor else "none")
    if fmt != "skops":
        raise UnsafeModelError(
            f"is stored as {fmt!r}, not skops: textops does not unpickle models (that would run "
            f"any code the file names); retrain it with train.py or pass another --model")
    code = folder / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.append(str(code))
    return sio.load(folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types", []))


# The model's output columns (pyfunc, predict.py), declared once (textops.columns re-exports them).
PREDICTION = "prediction"  # the arg-max label
PROBABILITY = "probability"  # its (calibrated) probability
PROBA_PREFIX = "proba_"  # one output column per class: proba_<class>


def top_class(proba: np.ndarray, classes: Any) -> tuple[np.ndarray, np.ndarray]:
    """The prediction rule, once: each row's arg-max class (as text) and its probability."""
    best = np.argmax(proba, axis=1)
    return np.asarray(classes).astype(str)[best], proba[np.arange(len(best)), best]


def predictions_frame(pipeline: Any, texts: Any) -> pd.DataFrame:
    """One row per input row: ``prediction`` (label), ``probability`` (of that label) and one
    ``proba_<class>`` column per class, in the order of ``pipeline.classes_``. ``texts``: what
    the pipeline takes (a frame holding its text column, a Series or a list of texts)."""
    classes = np.asarray(pipeline.classes_).astype(str)
    proba = np.asarray(pipeline.predict_proba(texts), dtype=np.float64)
    labels, probability = top_class(proba, classes)
    out = pd.DataFrame({PREDICTION: labels, PROBABILITY: probability})
    for j, label in enumerate(classes):
        out[PROBA_PREFIX + label] = proba[:, j]
    return out


class PyfuncModel:
    """The registered pipeline seen through pyfunc: labels and probabilities in one frame."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def get_raw_model(self) -> Any:
        """The scikit-learn Pipeline itself (``predict_proba``, ``classes_`` ...)."""
        return self.pipeline

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame({self.pipeline.steps[0][1].column: list(data)})
        return predictions_frame(self.pipeline, data)


def _load_pyfunc(path: str) -> PyfuncModel:
    """pyfunc loader: ``path`` is the serialized pipeline inside the model folder."""
    return PyfuncModel(load_model_folder(os.path.dirname(path) if os.path.isfile(path) else path))
