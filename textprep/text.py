"""The first step of every pipeline: the text column selected and normalised into strings
(missing text becomes "", overlong text is cut), with optional URL, handle and number masks."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

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

    With ``side_columns`` (a model reading columns beside the text, see ``textprep.side``) it
    takes a DataFrame and returns one: the normalised text column and the side columns as given.
    """

    __module__ = "textprep"  # its name in saved models, as when textprep was one module

    side_columns: tuple[str, ...] = ()  # absent in models saved before side columns existed

    def __init__(self, column: str = "text", mask_urls: bool = False, mask_handles: bool = False,
                 mask_numbers: bool = False, max_chars: int | None = 100_000,
                 side_columns: tuple[str, ...] = ()):
        self.column = column
        self.mask_urls = mask_urls
        self.mask_handles = mask_handles
        self.mask_numbers = mask_numbers
        self.max_chars = max_chars
        self.side_columns = side_columns

    def fit(self, X: Any, y: Any = None) -> "TextColumn":
        return self

    def transform(self, X: Any) -> np.ndarray | pd.DataFrame:
        if not self.side_columns:
            return self._texts(X)
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"this model reads the columns {self.column!r}, "
                            f"{', '.join(map(repr, self.side_columns))}: give it a DataFrame")
        missing = [c for c in (self.column, *self.side_columns) if c not in X.columns]
        if missing:
            raise KeyError(f"input has no {missing[0]!r} column (the model reads {self.column!r} "
                           f"and {', '.join(map(repr, self.side_columns))})")
        out = X[list(self.side_columns)].reset_index(drop=True)
        out.insert(0, self.column, self._texts(X[self.column]))
        return out

    def _texts(self, X: Any) -> np.ndarray:
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
