"""The model: TF-IDF + CatBoost in one scikit-learn Pipeline, its training and its evaluation.

The estimators themselves live in the top-level ``textprep`` package (shipped inside every model)."""
from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.pipeline import FeatureUnion, Pipeline

from textops.errors import BadInputError
from textops.metrics import macro_f1 as metrics_macro_f1, macro_f1_from_confusion
from textops.settings import ModelSpec, Preprocessing, Tfidf
from textops.features import SideSpec
from textprep import CatBoostText, HashedTfidf, SideColumns, SideFeatures, TextAndSide, TextColumn

log = logging.getLogger(__name__)

# The stop-word lists shipped beside the package (the project's nltk_data/, NLTK's layout)
SHIPPED_STOPWORDS = Path(__file__).resolve().parents[1] / "nltk_data" / "corpora" / "stopwords"


@dataclass(frozen=True)
class Stopwords:
    language: str
    words: tuple[str, ...]
    source: str  # "none", "nltk" or the shipped file's path


def load_stopwords(language: str) -> Stopwords:
    """NLTK's stopword corpus when installed, else the list shipped in ``nltk_data/``.

    Never downloads anything (``nltk.download`` fails offline, quietly).
    """
    language = (language or "none").strip().lower()
    if language in ("none", "off", "false", ""):
        return Stopwords("none", (), "none")
    try:
        from nltk.corpus import stopwords as nltk_stopwords  # NLTK's lazy corpus loader

        words = nltk_stopwords.words(language)
        return Stopwords(language, tuple(words), "nltk")
    except (LookupError, OSError, ImportError):
        pass
    shipped = SHIPPED_STOPWORDS / language
    if shipped.is_file():
        words = [w.strip() for w in shipped.read_text(encoding="utf-8").splitlines() if w.strip()]
        return Stopwords(language, tuple(words), str(shipped))
    available = sorted(p.name for p in SHIPPED_STOPWORDS.iterdir() if p.is_file() and p.name != "README")
    raise BadInputError(
        f"no stop word list for language {language!r} (NLTK corpus not installed; shipped: "
        f"{', '.join(available)}); set TEXTOPS_PREPROCESSING_STOPWORDS to one of those, or to 'none'"
    )


def _vectorizer(pre: Preprocessing, tfidf: Tfidf, stopwords: Stopwords):
    """Word 1..N-gram TF-IDF, joined by character n-grams within words (scikit-learn's
    ``char_wb``) when ``tfidf.char_ngram_max`` >= 2: robust to misspellings, hashtags and other
    languages. ``tfidf.vectorizer`` = hashed (default): both counted by textprep.HashedTfidf's
    compiled loop; sklearn: two TfidfVectorizers in a FeatureUnion (releases before 2026-11)."""
    char_max = tfidf.char_ngram_max if tfidf.char_ngram_max >= 2 else 0
    if tfidf.vectorizer == "hashed":
        return HashedTfidf(
            lowercase=pre.lowercase, stop_words=tuple(stopwords.words),
            word_ngram_max=tfidf.ngram_max, char_ngram_max=char_max, min_df=tfidf.min_df,
            max_df=tfidf.max_df, max_features=tfidf.max_features,
            char_max_features=tfidf.char_max_features, sublinear_tf=tfidf.sublinear_tf)
    words = TfidfVectorizer(
        lowercase=pre.lowercase, stop_words=list(stopwords.words) or None,
        ngram_range=(1, tfidf.ngram_max), min_df=tfidf.min_df, max_df=tfidf.max_df,
        max_features=tfidf.max_features or None, sublinear_tf=tfidf.sublinear_tf,
        dtype=np.float32)
    if not char_max:
        return words
    chars = TfidfVectorizer(
        analyzer="char_wb", lowercase=pre.lowercase, ngram_range=(2, char_max),
        min_df=tfidf.min_df, max_df=tfidf.max_df, max_features=tfidf.char_max_features or None,
        sublinear_tf=tfidf.sublinear_tf, dtype=np.float32)
    return FeatureUnion([("word", words), ("char", chars)])


def _text_vectorizer(pipeline: Pipeline) -> Any:
    """The TF-IDF of the text: the pipeline's "tfidf" step, or its text part (side columns)."""
    step = pipeline.named_steps["tfidf"]
    return step.vectorizer_ if isinstance(step, TextAndSide) else step


def side_columns(pipeline: Any) -> SideColumns | None:
    """The fitted side-column encoder of a model with side columns (None: text only)."""
    step = pipeline.named_steps["tfidf"]
    return step.side_ if isinstance(step, TextAndSide) else None


def text_matrix(pipeline: Pipeline, frame: pd.DataFrame) -> Any:
    """The TF-IDF matrix of ``frame``'s texts (sparse), without any side column."""
    out = pipeline[:-1].transform(frame)
    return out.text if isinstance(out, SideFeatures) else out


def vectorizers(pipeline: Pipeline) -> list[Any]:
    """The pipeline's TF-IDF step(s): one HashedTfidf, one TfidfVectorizer, or the two
    TfidfVectorizers (words, characters) of a FeatureUnion."""
    step = _text_vectorizer(pipeline)
    return [v for _, v in step.transformer_list] if isinstance(step, FeatureUnion) else [step]


def feature_names(pipeline: Pipeline) -> np.ndarray:
    """Readable names of the model's TF-IDF columns: words as is, character n-grams as [xy]
    with spaces (word boundaries) shown as _ (e.g. [_my_]). Hashed columns are named by the
    n-gram seen most often in them when fitting."""
    step = _text_vectorizer(pipeline)
    if not isinstance(step, FeatureUnion):
        return np.asarray(step.get_feature_names_out(), dtype=object)
    names = []
    for name, vectorizer in step.transformer_list:
        out = vectorizer.get_feature_names_out()
        names.append(out if name == "word" else np.array([f"[{t.replace(' ', '_')}]" for t in out], dtype=object))
    return np.concatenate(names)


def build_pipeline(spec: ModelSpec, stopwords: Stopwords, side: SideSpec | None = None) -> Pipeline:
    """TextColumn -> TF-IDF -> CatBoost, each step built from its settings. Works on a
    DataFrame with the text column, as pyfunc passes it, and gives one prediction per row.

    With ``side`` columns the same three steps read them too: TextColumn passes them on, the
    TF-IDF step is a :class:`~textprep.TextAndSide` (TF-IDF of the text, the side columns
    encoded) and CatBoost's trees see them beside the linear logits (categorical ones as
    CatBoost categories). A text-only model is built exactly as before."""
    pre, cb = spec.preprocessing, spec.catboost
    side = side or SideSpec()
    if side and not cb.linear_boost:
        raise BadInputError("--feature-columns needs TEXTOPS_CATBOOST_LINEAR_BOOST=true (the side "
                            "columns join the linear stage's logits in the trees)")
    vectorizer = _vectorizer(pre, spec.tfidf, stopwords)
    text_extra: dict[str, Any] = {}
    clf_extra: dict[str, Any] = {}
    if side:
        vectorizer = TextAndSide(vectorizer, SideColumns(side.names, side.kinds), spec.text_column)
        text_extra, clf_extra = {"side_columns": side.names}, {"side_kinds": side.kinds}
    return Pipeline([
        ("text", TextColumn(
            column=spec.text_column, mask_urls=pre.mask_urls, mask_handles=pre.mask_handles,
            mask_numbers=pre.mask_numbers, max_chars=pre.max_chars or None, **text_extra)),
        ("tfidf", vectorizer),
        ("clf", CatBoostText(
            iterations=cb.iterations, learning_rate=cb.learning_rate, depth=cb.depth,
            border_count=cb.border_count, early_stopping_rounds=cb.early_stopping_rounds or None,
            thread_count=cb.thread_count, random_seed=spec.seed, linear_boost=cb.linear_boost,
            linear_c=cb.linear_c, cv_folds=cb.cv_folds, calibrate=cb.calibrate,
            calibration_folds=cb.calibration_folds, split_features=cb.split_features,
            linear_solver=cb.linear_solver, fold_stopping=cb.fold_stopping,
            fold_trees=cb.fold_trees, **clf_extra)),
    ])


def _text_of(features: Any) -> Any:
    return features.text if isinstance(features, SideFeatures) else features


def fit_pipeline(pipeline: Pipeline, x_train: pd.DataFrame, y_train: pd.Series,
                 x_val: pd.DataFrame | None = None, y_val: pd.Series | None = None,
                 validation_mask: np.ndarray | None = None) -> Pipeline:
    """Fit the feature steps on the training rows, then CatBoost, early-stopped either on
    separate validation rows (``x_val``/``y_val``, never trained on) or on the rows of
    ``validation_mask`` (then refitted on all rows, see ``CatBoostText.fit``)."""
    features = pipeline[:-1]
    x_feat = features.fit_transform(x_train, y_train)
    if _text_of(x_feat).shape[1] == 0:
        raise BadInputError("the texts produced no features (all stop words or too rare); "
                            "lower TEXTOPS_TFIDF_MIN_DF or set TEXTOPS_PREPROCESSING_STOPWORDS=none")
    eval_set = None
    if x_val is not None and y_val is not None and len(y_val):
        eval_set = (features.transform(x_val), np.asarray(y_val))
    pipeline[-1].fit(x_feat, np.asarray(y_train), eval_set=eval_set,
                     validation_mask=validation_mask)
    for vectorizer in vectorizers(pipeline):
        if not hasattr(vectorizer, "vocabulary_"):
            continue  # HashedTfidf: no vocabulary
        if hasattr(vectorizer, "stop_words_"):
            # Every pruned n-gram: often millions of strings, only for introspection. Dropping
            # it shrinks the logged model and its save/load time by an order of magnitude.
            del vectorizer.stop_words_
        # numpy int64 values are stored by skops as one array file each (20k files, minutes
        # to save); plain ints serialise as one JSON object.
        vectorizer.vocabulary_ = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    return pipeline


def train_model(pipeline: Pipeline, x_train: pd.DataFrame, y_train: pd.Series,
                x_val: pd.DataFrame | None = None, y_val: pd.Series | None = None,
                refit: bool = True) -> tuple[Pipeline, dict[str, Any]]:
    """Train as train.py does. With ``refit`` (the default) the model is fitted on training +
    validation rows, so holding them out costs no accuracy; the number of trees is chosen by
    early stopping on cross-fitting folds of those rows (``fold_stopping``, the default) or on
    the validation rows. Without it, the validation rows are never trained on."""
    has_val = x_val is not None and y_val is not None and len(y_val) > 0
    if refit and has_val:
        x_all = pd.concat([x_train, x_val], ignore_index=True)
        y_all = pd.Series(np.concatenate([np.asarray(y_train), np.asarray(y_val)]))
        mask = np.r_[np.zeros(len(y_train), dtype=bool), np.ones(len(y_val), dtype=bool)]
        fit_pipeline(pipeline, x_all, y_all, validation_mask=mask)
        fit_rows = len(y_all)
    else:
        fit_pipeline(pipeline, x_train, y_train, x_val, y_val)
        fit_rows = len(y_train)
    info = {"best_iteration": int(pipeline[-1].best_iteration_), "refit": bool(refit and has_val),
            "fit_rows": fit_rows, "kept_trees": int(pipeline[-1].model_.tree_count_)}
    return pipeline, info


def _safe_key(label: str) -> str:
    """A label as part of an MLflow metric key: alphanumerics, _ - . / and spaces, as before;
    a "/" that would make a key MLflow refuses as a path (``recall.a//b``, ``recall.x/``,
    ``recall.a/../b``) becomes "_" (keys that were valid stay the same)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in str(label))
    cleaned = cleaned.strip()[:200] or "_"
    probe = f"metric.{cleaned}"
    if "/" in cleaned and (posixpath.normpath(probe) != probe or cleaned.endswith("/")):
        cleaned = cleaned.replace("/", "_")
    return cleaned


def metric_keys(labels: list[str]) -> dict[str, str]:
    """label -> its metric key, distinct for every label (``a/b`` and ``a_b`` do not collide)."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        key, n = _safe_key(label), 1
        while key in used:
            n += 1
            key = f"{_safe_key(label)}_{n}"
        used.add(key)
        keys[label] = key
    return keys


@dataclass
class Evaluation:
    metrics: dict[str, float]
    report_text: str
    report: dict[str, Any]
    labels: list[str]
    confusion: np.ndarray


def evaluate(y_true: pd.Series | np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None,
             classes: np.ndarray | None = None, weight: np.ndarray | None = None,
             roc_auc: float | None = None) -> Evaluation:
    """Accuracy, macro-F1, per-class precision/recall/F1 and, for binary tasks, ROC-AUC.
    ``weight``: rows per (truth, prediction) pair, when the pairs are a confusion table's
    cells (see :func:`evaluate_counts`); ``roc_auc``: given rather than computed."""
    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = sorted(set(y_true) | set(y_pred) | set(map(str, classes if classes is not None else [])))
    metrics: dict[str, float] = {
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=weight)),
        "macro_f1": (metrics_macro_f1(y_true, y_pred) if weight is None else
                     float(macro_f1_from_confusion(confusion_matrix(
                         y_true, y_pred, labels=labels, sample_weight=weight)))),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0,
                                      sample_weight=weight)),
    }
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                               zero_division=0,
                                                               sample_weight=weight)
    keys = metric_keys(labels)
    for label, p, r, f in zip(labels, precision, recall, f1):
        key = keys[label]
        metrics[f"precision.{key}"] = float(p)
        metrics[f"recall.{key}"] = float(r)
        metrics[f"f1.{key}"] = float(f)
    if roc_auc is not None:
        metrics["roc_auc"] = roc_auc
    elif proba is not None and classes is not None and len(classes) == 2 and len(set(y_true)) == 2:
        positive = str(classes[1])
        metrics["roc_auc"] = float(roc_auc_score(y_true == positive, proba[:, 1]))
    report_text = classification_report(y_true, y_pred, labels=labels, zero_division=0, digits=4,
                                        sample_weight=weight)
    report = classification_report(y_true, y_pred, labels=labels, zero_division=0, output_dict=True,
                                   sample_weight=weight)
    if weight is not None:  # the supports are row counts: spelled as integers, as without weights
        report_text = re.sub(r"(\d+)\.0$", lambda m: "  " + m.group(1), report_text, flags=re.M)
    return Evaluation(metrics, report_text, report, labels,
                      confusion_matrix(y_true, y_pred, labels=labels, sample_weight=weight))


def evaluate_counts(cells: dict[tuple[str, str], int], classes: np.ndarray | None = None,
                    roc_auc: float | None = None) -> Evaluation:
    """:func:`evaluate` from the rows per (truth, prediction) pair alone: the same figures
    as on the rows themselves, from a table of classes x classes counts."""
    pairs = sorted(cells)
    return evaluate(np.array([t for t, _ in pairs], dtype=object),
                    np.array([p for _, p in pairs], dtype=object), classes=classes,
                    weight=np.array([cells[pair] for pair in pairs], dtype=np.int64),
                    roc_auc=roc_auc)


def predict_with_proba(pipeline: Pipeline, frame: pd.DataFrame,
                       chunk_rows: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and probability matrix (columns in ``pipeline.classes_`` order), scored
    ``chunk_rows`` at a time so that the feature matrix of a large test split never exists
    whole."""
    if len(frame) <= chunk_rows:
        proba = pipeline.predict_proba(frame)
    else:
        proba = np.vstack([pipeline.predict_proba(frame.iloc[i:i + chunk_rows])
                           for i in range(0, len(frame), chunk_rows)])
    classes = np.asarray(pipeline.classes_)
    return classes[np.argmax(proba, axis=1)], proba
