"""Drift checks: the data a model sees now against the reference profile saved with its version
at training time (``reference.py``); no labels needed.

Every statistic is a pure function of arrays; ``compare`` runs them all and returns one
``Check`` per method with its value, threshold and verdict. Methods and defaults (CONFIG
``monitor``):

* predicted-class distribution: population stability index, drift when PSI > ``psi_max``
  (0.2; < 0.1 is usually read as stable). A chi-square goodness-of-fit p-value is reported too.
* confidence (probability of the predicted label) and text length (characters): two-sample
  Kolmogorov-Smirnov, drift when the statistic D > ``ks_max`` (0.1) *and* p < ``ks_pvalue`` (0.01),
  so that huge samples do not flag negligible shifts.
* out-of-vocabulary rate against the model's own word vocabulary: drift when the mean rate rises
  by more than ``oov_increase_max`` (0.10, absolute).
* text content: a domain classifier (TF-IDF of letter-only words + logistic regression, 5-fold
  cross-validated) tries to tell reference texts from current texts; drift when ROC-AUC >
  ``domain_auc_max`` (0.55, the common default: 0.5 means indistinguishable) *and* above what
  chance reaches with probability ``domain_pvalue`` (0.001) for these sample sizes (for a few
  hundred texts per side that floor is ~0.56-0.59). Its largest coefficients are the words
  typical of each side.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Container, Iterable, Sequence, Union

import numpy as np
import pandas as pd
from scipy.stats import chisquare, ks_2samp, norm
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from textops.columns import PROBABILITY_DECIMALS
from textops.model import vectorizers
from textops.monitoring.profile import ReferenceProfile
from textops.settings import Thresholds

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
_LETTERS = r"(?u)\b[^\W\d_]{2,}\b"  # words without digits: ids and handles are not content


@dataclass(frozen=True)
class ClassShiftDetail:
    """The predicted-class check's two p-values and the shares it compared."""

    chi_square_pvalue: float
    psi_pvalue: float  # the chance of a PSI this large for this many rows
    reference: dict[str, float]
    current: dict[str, float]


@dataclass(frozen=True)
class KsDetail:
    """A Kolmogorov-Smirnov check's p-value."""

    pvalue: float


@dataclass(frozen=True)
class OovDetail:
    """The out-of-vocabulary rates compared (mean share of unknown words)."""

    reference: float
    current: float


@dataclass(frozen=True)
class ContentDetail:
    """The text-content check's words typical of each side, and the two limits its threshold
    is the larger of (the configured one and what chance reaches for these sample sizes)."""

    reference_words: list[str]
    current_words: list[str]
    configured_max: float
    significance_floor: float


Detail = Union[ClassShiftDetail, KsDetail, OovDetail, ContentDetail]


@dataclass
class Check:
    """One drift method's verdict."""

    name: str
    method: str
    value: float | None
    threshold: float
    drifted: bool
    detail: str
    extra: Detail | None = None  # what the check measured beyond its value, by kind of check

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "value": self.value,
                "threshold": self.threshold, "drifted": self.drifted, "detail": self.detail,
                "extra": asdict(self.extra) if self.extra else {}}


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
def sample_indices(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A sorted, seeded uniform sample of ``size`` positions out of ``n`` (all when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def distribution(labels: Iterable[str], classes: Sequence[str]) -> dict[str, float]:
    """Share of each class (classes not seen get 0); labels outside ``classes`` are ignored."""
    counts = pd.Series(list(labels), dtype=object).value_counts()
    total = float(sum(int(counts.get(c, 0)) for c in classes)) or 1.0
    return {str(c): int(counts.get(c, 0)) / total for c in classes}


def psi(reference: dict[str, float], current: dict[str, float], eps: float = 1e-4) -> float:
    """Population stability index between two class distributions (shares)."""
    keys = sorted(set(reference) | set(current))
    ref = np.array([max(reference.get(k, 0.0), eps) for k in keys])
    cur = np.array([max(current.get(k, 0.0), eps) for k in keys])
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _psi_rows(reference: np.ndarray, current: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """:func:`psi` of each row of ``current`` (shares) against ``reference`` (shares)."""
    ref = np.maximum(reference, eps)
    ref = ref / ref.sum()
    cur = np.maximum(current, eps)
    cur = cur / cur.sum(axis=1, keepdims=True)
    return np.sum((cur - ref) * np.log(cur / ref), axis=1)


def psi_pvalue(reference: dict[str, float], current_counts: dict[str, int], observed: float,
               draws: int = 2000, seed: int = 0) -> float:
    """How often rows drawn from the reference distribution, as many as today's, reach a PSI of
    ``observed`` by chance (a seeded parametric bootstrap, exact enough at any size): with 2
    rows almost any PSI is chance; with 10,000 a PSI of 0.2 never is."""
    keys = sorted(set(reference) | set(current_counts))
    n = int(sum(current_counts.values()))
    if n == 0:
        return 1.0
    ref = np.array([max(reference.get(k, 0.0), 0.0) for k in keys], dtype=float)
    ref = ref / ref.sum() if ref.sum() > 0 else np.full(len(keys), 1 / len(keys))
    counts = np.random.default_rng(seed).multinomial(n, ref, size=draws)
    chance = _psi_rows(ref, counts / n)
    return float((np.sum(chance >= observed - 1e-12) + 1) / (draws + 1))


def chi_square_pvalue(reference: dict[str, float], current_counts: dict[str, int]) -> float:
    """Goodness of fit of the current counts to the reference shares (classes with a zero
    reference share get a tiny one so the test stays defined)."""
    keys = sorted(set(reference) | set(current_counts))
    observed = np.array([current_counts.get(k, 0) for k in keys], dtype=float)
    if observed.sum() == 0:
        return 1.0
    expected = np.array([max(reference.get(k, 0.0), 1e-6) for k in keys])
    expected = expected / expected.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic D and p-value."""
    result = ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    return float(result.statistic), float(result.pvalue)


class _HashedWords:
    """``word in vocabulary`` for a hashed model: does the word's unigram have a column."""

    def __init__(self, vectorizer: Any, cache_size: int = 200_000):
        self.vectorizer = vectorizer
        self.cache_size = cache_size
        self._known: dict[str, bool] = {}

    def __contains__(self, word: str) -> bool:
        known = self._known.get(word)
        if known is None:
            known = bool(self.vectorizer.known_words([word])[0])
            if len(self._known) < self.cache_size:
                self._known[word] = known
        return known


def word_vocabulary(pipeline: Any) -> tuple[Container[str], set[str], Any]:
    """The model's single-word vocabulary (anything supporting ``in``), its stop words and its
    preprocessor (lowercasing as the model does)."""
    vectorizer = vectorizers(pipeline)[0]
    if not hasattr(vectorizer, "vocabulary_"):  # textprep.HashedTfidf
        lower = bool(vectorizer.lowercase)
        stop = {w.lower() if lower else w for w in vectorizer.stop_words}
        return _HashedWords(vectorizer), stop, (str.lower if lower else str)
    vocabulary = {t for t in vectorizer.vocabulary_ if " " not in t}
    return vocabulary, set(vectorizer.get_stop_words() or ()), vectorizer.build_preprocessor()


def oov_rates(texts: Iterable[str], vocabulary: set[str], stop_words: set[str],
              preprocess: Any) -> np.ndarray:
    """Per text: the share of its words (stop words excluded) missing from ``vocabulary``;
    NaN for texts without words."""
    rates = []
    for text in texts:
        words = [w for w in _TOKEN.findall(preprocess(text or "")) if w not in stop_words]
        rates.append(sum(w not in vocabulary for w in words) / len(words) if words else np.nan)
    return np.asarray(rates, dtype=float)


@dataclass(frozen=True)
class DomainSplit:
    """How well a classifier tells reference texts from current ones (cross-validated ROC-AUC)
    and the words most typical of each side."""

    auc: float
    reference_words: list[str]
    current_words: list[str]


def domain_classifier(reference: Sequence[str], current: Sequence[str], seed: int = 0,
                      top: int = 15) -> DomainSplit:
    """How well a classifier tells reference texts from current ones (cross-validated ROC-AUC)
    and the words most typical of each side."""
    texts = [str(t) for t in reference] + [str(t) for t in current]
    target = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    vectorizer = TfidfVectorizer(token_pattern=_LETTERS, min_df=2, sublinear_tf=True,
                                 max_features=50000)
    try:
        features = vectorizer.fit_transform(texts)
    except ValueError:  # no word appears twice: nothing to tell the sides apart with
        return DomainSplit(0.5, [], [])
    model = LogisticRegression(C=1.0, max_iter=1000)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, target, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(target, scores))
    weights = model.fit(features, target).coef_[0]
    names = vectorizer.get_feature_names_out()
    order = np.argsort(weights)
    return DomainSplit(auc, [str(names[i]) for i in order[:top] if weights[i] < 0],
                       [str(names[i]) for i in order[::-1][:top] if weights[i] > 0])


def auc_significance_floor(n_reference: int, n_current: int, pvalue: float) -> float:
    """The ROC-AUC that chance alone exceeds with probability ``pvalue`` when both samples come
    from the same texts (normal approximation of the Mann-Whitney statistic's null variance).
    Small samples need a larger AUC before it means anything."""
    sigma = np.sqrt((n_reference + n_current + 1) / (12.0 * n_reference * n_current))
    return float(0.5 + norm.isf(pvalue) * sigma)


def histogram(values: Sequence[float], bins: np.ndarray) -> list[float]:
    """Shares of ``values`` in ``bins`` (values outside fall into the outer bins)."""
    values = np.clip(np.asarray(values, dtype=float), bins[0], bins[-1])
    counts, _ = np.histogram(values[~np.isnan(values)], bins=bins)
    total = counts.sum() or 1
    return (counts / total).tolist()


# --------------------------------------------------------------------------------------------
# Comparison (monitoring time)
# --------------------------------------------------------------------------------------------
@dataclass
class Current:
    """What monitoring saw, reduced to what the checks need (bounded: samples, not all rows)."""

    rows: int
    predicted_counts: dict[str, int]
    confidence: np.ndarray  # a sample
    lengths: np.ndarray | None  # a sample; None when the input has no text
    oov: np.ndarray | None  # a sample
    texts: list[str] | None  # a sample for the domain classifier


def compare(reference: ReferenceProfile, current: Current, thresholds: Thresholds,
            seed: int = 0) -> list[Check]:
    """Every drift check the data allows, in a fixed order: each check is a function
    ``(reference, current, thresholds) -> Check | None`` (None: not enough data for it)."""
    found = [predicted_class_distribution(reference, current, thresholds, seed),
             confidence_distribution(reference, current, thresholds),
             text_length_distribution(reference, current, thresholds),
             out_of_vocabulary_rate(reference, current, thresholds),
             text_content(reference, current, thresholds, seed)]
    return [check for check in found if check is not None]


def predicted_class_distribution(reference: ReferenceProfile, current: Current,
                                 thresholds: Thresholds, seed: int = 0) -> Check:
    """PSI of the predicted classes' shares, alerting only when chance would not reach it."""
    classes, expected = reference.classes, reference.predicted_distribution
    total = sum(current.predicted_counts.values()) or 1
    shares = {c: current.predicted_counts.get(c, 0) / total for c in classes}
    value = psi(expected, shares)
    p_value = chi_square_pvalue(expected, current.predicted_counts)
    chance = psi_pvalue(expected, current.predicted_counts, value, seed=seed)
    moved = sorted(classes, key=lambda c: -abs(shares[c] - expected[c]))
    return Check(
        "predicted_class_distribution", "PSI", value, thresholds.psi_max,
        value > thresholds.psi_max and chance < thresholds.psi_pvalue,
        f"PSI {value:.3f} (chance p={chance:.2g} for {total} rows; chi-square p={p_value:.2g}); "
        f"largest change: " + ", ".join(f"{c} {expected[c]:.1%}->{shares[c]:.1%}" for c in moved[:3]),
        ClassShiftDetail(p_value, chance, expected, shares))


def _ks_check(name: str, ref_sample: Any, cur: Any, thresholds: Thresholds,
              shown: Any) -> Check | None:
    if cur is None or len(cur) == 0 or len(ref_sample) == 0:
        return None
    d, p = ks(ref_sample, cur)
    return Check(name, "Kolmogorov-Smirnov D", d, thresholds.ks_max,
                 d > thresholds.ks_max and p < thresholds.ks_pvalue,
                 f"D {d:.3f} (p={p:.2g}); {shown(ref_sample)} -> {shown(cur)}", KsDetail(p))


def confidence_distribution(reference: ReferenceProfile, current: Current,
                            thresholds: Thresholds) -> Check | None:
    """KS test of the top probability, at the precision predict.py writes (ties compare alike)."""
    cur = None if current.confidence is None else np.round(current.confidence, PROBABILITY_DECIMALS)
    return _ks_check("confidence", np.round(reference.confidence_sample, PROBABILITY_DECIMALS), cur,
                     thresholds, lambda v: f"mean {np.mean(v):.3f}")


def text_length_distribution(reference: ReferenceProfile, current: Current,
                             thresholds: Thresholds) -> Check | None:
    """KS test of the texts' lengths in characters."""
    return _ks_check("text_length", reference.length_sample, current.lengths, thresholds,
                     lambda v: f"median {np.median(v):.0f} chars")


def out_of_vocabulary_rate(reference: ReferenceProfile, current: Current,
                           thresholds: Thresholds) -> Check | None:
    """The increase of the mean share of words the model did not know at training time."""
    if current.oov is None or not np.isfinite(current.oov).any() or reference.oov_rate is None:
        return None
    before = reference.oov_rate
    after = float(np.nanmean(current.oov))
    return Check(
        "out_of_vocabulary_rate", "increase of the mean rate", after - before,
        thresholds.oov_increase_max, after - before > thresholds.oov_increase_max,
        f"{before:.1%} of words unknown to the model at training time, {after:.1%} now",
        OovDetail(before, after))


def text_content(reference: ReferenceProfile, current: Current, thresholds: Thresholds,
                 seed: int = 0) -> Check | None:
    """A domain classifier telling reference texts from current ones (ROC-AUC), its limit
    raised to what chance reaches for these sample sizes."""
    minimum = thresholds.domain_min_rows
    if current.texts is None or not reference.texts:
        return None
    if len(current.texts) < minimum or len(reference.texts) < minimum:
        return Check(
            "text_content", "domain classifier ROC-AUC", None, thresholds.domain_auc_max,
            False, f"skipped: {len(current.texts)} current and {len(reference.texts)} "
                   f"reference texts, at least {minimum} of each needed")
    limit = reference.text_chars
    found = domain_classifier(reference.texts, [t[:limit] for t in current.texts], seed)
    floor = auc_significance_floor(len(reference.texts), len(current.texts),
                                   thresholds.domain_pvalue)
    limit_auc = max(thresholds.domain_auc_max, floor)
    return Check(
        "text_content", "domain classifier ROC-AUC", found.auc, limit_auc,
        found.auc > limit_auc,
        f"ROC-AUC {found.auc:.3f} telling {len(reference.texts)} reference texts "
        f"from {len(current.texts)} current ones (limit {limit_auc:.3f}); typical now: "
        + (", ".join(found.current_words[:8]) or "-"),
        ContentDetail(found.reference_words, found.current_words, thresholds.domain_auc_max,
                      floor))
