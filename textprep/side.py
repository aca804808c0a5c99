"""Side columns: the columns a model reads beside its text (a channel, a reply flag, an hour).

:class:`SideColumns` encodes them for CatBoost (categorical columns as category codes, CatBoost
then applies its ordered target statistics; numeric columns as numbers, missing = NaN);
:class:`TextAndSide` is the pipeline's feature step of a model with side columns: the TF-IDF
of the text and the encoded side columns, carried side by side (:class:`SideFeatures`) to
``CatBoostText``, which gives the TF-IDF to its linear stage and the side columns to the trees.
Models without side columns never contain either class."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone

CATEGORICAL = "categorical"
NUMERIC = "numeric"
KINDS = (CATEGORICAL, NUMERIC)
# a categorical column's codes: 0 = missing, 1 = a category never seen in training, 2.. = known
MISSING_CODE = 0
UNSEEN_CODE = 1
_FIRST_KNOWN = 2


def category_strings(values: pd.Series) -> pd.Series:
    """A column's values as category names (missing stays missing): integral numbers without
    their ".0" (a CSV column of integers with a gap is read as floats; JSON sends ints), text
    stripped, everything else as ``str``."""
    values = pd.Series(values).reset_index(drop=True)
    present = values.notna().to_numpy()
    out = pd.Series(np.full(len(values), None, dtype=object))
    if not present.any():
        return out
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        out[present] = values[present].astype(str).to_numpy(dtype=object)
        return out
    if not pd.api.types.is_float_dtype(values.dtype):
        stripped = _stripped(values)
        if stripped is not None and int(stripped.notna().sum()) == int(present.sum()):
            out[present] = stripped[present].to_numpy(dtype=object)  # text only: the fast path
            return out
    out[present] = [_category_name(v) for v in values[present].tolist()]
    return out


def _stripped(values: pd.Series) -> pd.Series | None:
    """The values stripped, when pandas takes them for text (None: it does not)."""
    try:
        return values.str.strip()
    except AttributeError:  # e.g. an object column of numbers only
        return None


def _category_name(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def as_numbers(values: pd.Series) -> tuple[np.ndarray, int]:
    """A column as float64 (missing = NaN) and how many present values were not numbers
    (they become NaN too)."""
    values = pd.Series(values).reset_index(drop=True)
    if values.dtype == bool:
        return values.to_numpy(dtype=np.float64), 0
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return numbers, int((values.notna().to_numpy() & np.isnan(numbers)).sum())


class SideColumns(TransformerMixin, BaseEstimator):
    """Encode side columns into a dense float64 matrix, one column each, in ``columns`` order:
    categorical ones as codes (0 missing, 1 unseen in training, 2.. the categories of the
    training rows), numeric ones as numbers (missing and non-numbers = NaN)."""

    __module__ = "textprep"  # its name in saved models, like the other estimators

    def __init__(self, columns: tuple[str, ...] = (), kinds: tuple[str, ...] = ()):
        self.columns = columns
        self.kinds = kinds

    def fit(self, X: pd.DataFrame, y: Any = None) -> "SideColumns":
        if len(self.columns) != len(self.kinds) or set(self.kinds) - set(KINDS):
            raise ValueError(f"one kind ({' or '.join(KINDS)}) per side column: {self.columns}, {self.kinds}")
        self.categories_ = {}
        for column, kind in zip(self.columns, self.kinds):
            if kind == CATEGORICAL:
                names = category_strings(X[column]).dropna()
                self.categories_[column] = sorted(set(names.tolist()))
        self.n_features_in_ = len(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise KeyError(f"input has no side column {missing[0]!r} (the model reads "
                           f"{', '.join(self.columns)} beside the text)")
        out = np.empty((len(X), len(self.columns)), dtype=np.float64)
        for j, (column, kind) in enumerate(zip(self.columns, self.kinds)):
            if kind == CATEGORICAL:
                out[:, j] = self._codes(column, X[column])
            else:
                out[:, j] = as_numbers(X[column])[0]
        return out

    def _codes(self, column: str, values: pd.Series) -> np.ndarray:
        names = category_strings(values)
        codes = pd.Index(self.categories_[column], dtype=object).get_indexer(names).astype(np.int64)
        return np.where(codes >= 0, codes + _FIRST_KNOWN,
                        np.where(names.isna().to_numpy(), MISSING_CODE, UNSEEN_CODE))

    def surprises(self, X: pd.DataFrame) -> dict[str, int]:
        """Per column, the rows the model never saw the like of in training: categories unseen
        there (scored as CatBoost scores a new category), or present values of a numeric column
        that are not numbers (scored as missing)."""
        counts = {}
        for column, kind in zip(self.columns, self.kinds):
            if column not in X.columns:
                continue
            # judged once per distinct value, then weighed by its rows: a column of a few
            # values costs a value_counts, not a second encoding of every row
            seen = X[column].value_counts(dropna=True)
            values = pd.Series(seen.index.to_numpy(dtype=object), dtype=object)
            if kind == CATEGORICAL:
                odd = ~category_strings(values).isin(self.categories_[column]).to_numpy()
            else:
                odd = np.isnan(as_numbers(values)[0])
            counts[column] = int(seen.to_numpy()[odd].sum())
        return counts

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns, dtype=object)


@dataclass(frozen=True)
class SideFeatures:
    """The feature matrix of a model with side columns, as the classifier receives it: the
    text's TF-IDF (sparse) and the encoded side columns (dense), row for row."""

    text: Any  # scipy sparse, rows x TF-IDF columns
    side: np.ndarray  # rows x side columns

    @property
    def shape(self) -> tuple[int, int]:
        return self.text.shape[0], self.text.shape[1] + self.side.shape[1]

    def __len__(self) -> int:
        return self.text.shape[0]

    def __getitem__(self, rows: Any) -> "SideFeatures":
        return SideFeatures(self.text[rows], self.side[rows])


class TextAndSide(TransformerMixin, BaseEstimator):
    """The feature step of a model with side columns: ``vectorizer`` on the text column (the
    normalised text :class:`~textprep.TextColumn` passes on) and ``side`` on the side columns,
    returned together as :class:`SideFeatures`."""

    __module__ = "textprep"  # its name in saved models, like the other estimators

    def __init__(self, vectorizer: Any = None, side: SideColumns | None = None,
                 text_column: str = "text"):
        self.vectorizer = vectorizer
        self.side = side
        self.text_column = text_column

    def fit(self, X: pd.DataFrame, y: Any = None) -> "TextAndSide":
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **_: Any) -> SideFeatures:
        self.vectorizer_ = clone(self.vectorizer)
        self.side_ = clone(self.side)
        text = self.vectorizer_.fit_transform(X[self.text_column].to_numpy(dtype=object), y)
        return SideFeatures(text, self.side_.fit(X).transform(X))

    def transform(self, X: pd.DataFrame) -> SideFeatures:
        return SideFeatures(self.vectorizer_.transform(X[self.text_column].to_numpy(dtype=object)),
                            self.side_.transform(X))
