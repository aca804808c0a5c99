"""Hashed n-grams for :class:`textprep.HashedTfidf`: the hash functions, the pure-Python
reference counter (what the compiled loop must agree with) and the loops numba compiles on first
use."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

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
