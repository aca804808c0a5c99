"""HashedTfidf: TF-IDF of hashed word and character n-grams, counted by the compiled loops of
:mod:`textprep.ngrams`."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from textprep.ngrams import (_KERNEL, _WORD_RUN, _char_ngrams_fast, _code_points, _finalize,
                             _fnv, _kernel, _tables, _word_ngrams)


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

    __module__ = "textprep"  # its name in saved models, as when textprep was one module

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
