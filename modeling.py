"""The model: TF-IDF + CatBoost in one scikit-learn Pipeline, its training and its evaluation."""
from __future__ import annotations

import logging
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
from sklearn.pipeline import Pipeline

import config as cfg
from common import BadInputError
from textprep import CatBoostText, TextColumn

log = logging.getLogger(__name__)

SHIPPED_STOPWORDS = cfg.PROJECT_ROOT / "nltk_data" / "corpora" / "stopwords"


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
        from nltk.corpus import stopwords as nltk_stopwords

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
        f"{', '.join(available)}); set TEXTOPS_STOPWORDS to one of those, or to 'none'"
    )


def build_pipeline(config: dict[str, Any], stopwords: Stopwords) -> Pipeline:
    """TextColumn -> TF-IDF -> CatBoost. Works on a DataFrame with the text column, as pyfunc
    passes it, and gives one prediction per row."""
    pre, tfidf, cb = config["preprocessing"], config["tfidf"], config["catboost"]
    return Pipeline([
        ("text", TextColumn(
            column=config["data"]["text_column"],
            mask_urls=bool(pre["mask_urls"]),
            mask_handles=bool(pre["mask_handles"]),
            mask_numbers=bool(pre["mask_numbers"]),
        )),
        ("tfidf", TfidfVectorizer(
            lowercase=bool(pre["lowercase"]),
            stop_words=list(stopwords.words) or None,
            ngram_range=(1, int(tfidf["ngram_max"])),
            min_df=int(tfidf["min_df"]),
            max_df=float(tfidf["max_df"]),
            max_features=int(tfidf["max_features"]) or None,
            sublinear_tf=bool(tfidf["sublinear_tf"]),
            dtype=np.float32,
        )),
        ("clf", CatBoostText(
            iterations=int(cb["iterations"]),
            learning_rate=cb["learning_rate"],
            depth=int(cb["depth"]),
            border_count=int(cb["border_count"]),
            early_stopping_rounds=int(cb["early_stopping_rounds"]) or None,
            thread_count=int(cb["thread_count"]),
            random_seed=int(config["data"]["random_seed"]),
            linear_boost=bool(cb["linear_boost"]),
            linear_c=float(cb["linear_c"]),
            cv_folds=int(cb["cv_folds"]),
        )),
    ])


def fit_pipeline(pipeline: Pipeline, x_train: pd.DataFrame, y_train: pd.Series,
                 x_val: pd.DataFrame | None = None, y_val: pd.Series | None = None) -> Pipeline:
    """Fit the feature steps on the training rows, then CatBoost with early stopping on the
    validation rows (transformed by the same fitted features)."""
    features = pipeline[:-1]
    x_feat = features.fit_transform(x_train, y_train)
    if x_feat.shape[1] == 0:
        raise BadInputError("the texts produced no features (all stop words or too rare); "
                            "lower TEXTOPS_TFIDF_MIN_DF or set TEXTOPS_STOPWORDS=none")
    eval_set = None
    if x_val is not None and y_val is not None and len(y_val):
        eval_set = (features.transform(x_val), np.asarray(y_val))
    pipeline[-1].fit(x_feat, np.asarray(y_train), eval_set=eval_set)
    vectorizer = pipeline.named_steps.get("tfidf")
    if hasattr(vectorizer, "stop_words_"):
        # Every pruned n-gram: often millions of strings, only for introspection. Dropping it
        # shrinks the logged model and its save/load time by an order of magnitude.
        del vectorizer.stop_words_
    if hasattr(vectorizer, "vocabulary_"):
        # numpy int64 values are stored by skops as one array file each (20k files, minutes to
        # save); plain ints serialise as one JSON object.
        vectorizer.vocabulary_ = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    return pipeline


def _safe_key(label: str) -> str:
    """MLflow metric/param keys allow alphanumerics, _ - . / and spaces."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in str(label))
    return cleaned.strip()[:200] or "_"


@dataclass
class Evaluation:
    metrics: dict[str, float]
    report_text: str
    report: dict[str, Any]
    labels: list[str]
    confusion: np.ndarray


def evaluate(y_true: pd.Series | np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None,
             classes: np.ndarray | None = None) -> Evaluation:
    """Accuracy, macro-F1, per-class precision/recall/F1 and, for binary tasks, ROC-AUC."""
    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = sorted(set(y_true) | set(y_pred) | set(map(str, classes if classes is not None else [])))
    metrics: dict[str, float] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=sorted(set(y_true)),
                                   zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                               zero_division=0)
    for label, p, r, f in zip(labels, precision, recall, f1):
        key = _safe_key(label)
        metrics[f"precision.{key}"] = float(p)
        metrics[f"recall.{key}"] = float(r)
        metrics[f"f1.{key}"] = float(f)
    if proba is not None and classes is not None and len(classes) == 2 and len(set(y_true)) == 2:
        positive = str(classes[1])
        metrics["roc_auc"] = float(roc_auc_score(y_true == positive, proba[:, 1]))
    report_text = classification_report(y_true, y_pred, labels=labels, zero_division=0, digits=4)
    report = classification_report(y_true, y_pred, labels=labels, zero_division=0, output_dict=True)
    return Evaluation(metrics, report_text, report, labels,
                      confusion_matrix(y_true, y_pred, labels=labels))


def save_confusion_matrix(evaluation: Evaluation, path: Path, title: str) -> Path:
    """Render the confusion matrix as a PNG (row-normalised colours, raw counts when they fit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, cm = evaluation.labels, evaluation.confusion
    n = len(labels)
    size = min(4 + 0.28 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=8 if n > 20 else 10)
    ax.set_yticks(range(n), labels, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if normalised[i, j] > 0.5 else "black", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def score_texts(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and probability matrix (columns in ``pipeline.classes_`` order)."""
    proba = pipeline.predict_proba(frame)
    classes = np.asarray(pipeline.classes_)
    return classes[np.argmax(proba, axis=1)], proba


def score_frame(pipeline: Pipeline, frame: pd.DataFrame, text_column: str, id_columns: list[str],
                model_version: str, proba_columns: bool = False) -> pd.DataFrame:
    """Batch-prediction output for one chunk, rows in input order.

    Columns: the id columns, ``prediction`` (label in the training data's spelling),
    ``probability`` (of that label), ``model_version`` and optionally ``proba_<class>``.
    Rows whose text is empty or missing are kept with a blank prediction and probability:
    the model is not asked to guess from nothing.
    """
    classes = np.asarray(pipeline.classes_).astype(str)
    texts = frame[text_column].fillna("").astype(str)
    scorable = (texts.str.strip() != "").to_numpy()
    n = len(frame)
    prediction = np.full(n, None, dtype=object)
    probability = np.full(n, np.nan)
    proba = np.full((n, len(classes)), np.nan)
    if scorable.any():
        proba[scorable] = pipeline.predict_proba(pd.DataFrame({text_column: texts[scorable].to_numpy()}))
        best = np.argmax(proba[scorable], axis=1)
        prediction[scorable] = classes[best]
        probability[scorable] = proba[scorable][np.arange(len(best)), best]
    out = pd.DataFrame({c: frame[c].to_numpy() for c in id_columns})
    out["prediction"] = prediction
    out["probability"] = probability
    out["model_version"] = str(model_version)
    if proba_columns:
        for j, label in enumerate(classes):
            out[f"proba_{label}"] = proba[:, j]
    return out
