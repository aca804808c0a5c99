"""Side columns at training: which columns, of which kind (categorical or numeric), and the
checks that refuse (exit 2) or warn about a side column before anything is fitted.

The model-side encoding (what travels inside the model) is ``textprep.side``."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from textops.columns import Columns
from textops.errors import BadInputError
from textprep.side import CATEGORICAL, NUMERIC, as_numbers, category_strings

log = logging.getLogger(__name__)

# a side column with at least this share of distinct values among its present values (and
# at least IDENTIFIER_MIN_ROWS of them) looks like an identifier: warned about before training
IDENTIFIER_SHARE = 0.9
IDENTIFIER_MIN_ROWS = 50


@dataclass(frozen=True)
class SideColumn:
    """One side column as the model reads it."""

    name: str
    kind: str  # CATEGORICAL or NUMERIC
    distinct: int  # distinct present values in the training rows
    missing_share: float  # share of training rows without a value


@dataclass(frozen=True)
class SideSpec:
    """The side columns of one training, in order (empty: a text-only model)."""

    columns: tuple[SideColumn, ...] = ()
    suspects: tuple[str, ...] = ()  # why a column looks like an identifier (LEAKAGE WARNINGs)

    def __bool__(self) -> bool:
        return bool(self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(c.kind for c in self.columns)

    def describe(self) -> str:
        """e.g. "channel (categorical, 5 values), hour (numeric)"."""
        return ", ".join(f"{c.name} ({c.kind}" + (f", {c.distinct} values" if c.kind == CATEGORICAL else "")
                         + ")" for c in self.columns) or "none"

    def as_json(self) -> str:
        """The kinds by column, as the run's param and the version's tag record them."""
        return json.dumps({c.name: c.kind for c in self.columns}, ensure_ascii=False)


def check_roles(columns: Columns, categorical: tuple[str, ...]) -> None:
    """Refuse a feature column that is also the text, the label or an id column, and a
    --categorical-columns name that is not a feature column."""
    roles = {columns.text: "the text column (--text-column)",
             columns.label: "the label column (--label-column)",
             **{c: "an id column" for c in columns.ids}}
    for name in columns.features:
        if name in roles:
            raise BadInputError(f"feature column {name!r} is {roles[name]}: a model may not read "
                                f"it as a side column; remove it from --feature-columns")
    if len(set(columns.features)) != len(columns.features):
        raise BadInputError(f"--feature-columns names a column twice: {', '.join(columns.features)}")
    stray = [c for c in categorical if c not in columns.features]
    if stray:
        raise BadInputError(f"--categorical-columns names {stray[0]!r}, which is not in "
                            f"--feature-columns ({', '.join(columns.features) or 'none'})")


def infer_kind(values: pd.Series) -> str:
    """Numeric when every present value parses as a number, otherwise categorical."""
    present = values.dropna()
    if present.dtype == bool:
        return CATEGORICAL
    return NUMERIC if as_numbers(present)[1] == 0 else CATEGORICAL


def side_spec(frame: pd.DataFrame, names: tuple[str, ...], categorical: tuple[str, ...],
              max_categories: int, path: Path | str) -> SideSpec:
    """The side columns of the training rows ``frame``, their kinds inferred (or forced
    categorical), checked: an all-missing or constant column, or a categorical one with more
    than ``max_categories`` values, is refused (BadInputError); one that looks like an
    identifier (nearly one value per row) is warned about."""
    specs, suspects = [], []
    for name in names:
        values = frame[name].reset_index(drop=True)
        present = int(values.notna().sum())
        if present == 0:
            raise BadInputError(f"feature column {name!r} of {path} has no value in any row; "
                                f"remove it from --feature-columns")
        kind = CATEGORICAL if name in categorical else infer_kind(values)
        shown = category_strings(values) if kind == CATEGORICAL else pd.Series(as_numbers(values)[0])
        distinct = int(shown.nunique(dropna=True))
        if distinct < 2:
            raise BadInputError(f"feature column {name!r} of {path} holds one value only "
                                f"({shown.dropna().iloc[0]!r}): it cannot tell classes apart; "
                                f"remove it from --feature-columns")
        if kind == CATEGORICAL and distinct > max_categories:
            raise BadInputError(
                f"feature column {name!r} of {path} has {distinct} categories, more than "
                f"TEXTOPS_TRAIN_MAX_CATEGORIES={max_categories}: an identifier is no feature (and "
                f"leaks); remove it, bin it, or raise the limit")
        integral = kind == CATEGORICAL or bool(np.all(np.mod(shown.dropna(), 1) == 0))
        if integral and present >= IDENTIFIER_MIN_ROWS and distinct >= IDENTIFIER_SHARE * present:
            suspects.append(f"feature column {name!r} looks like an identifier ({distinct} "
                            f"distinct values in {present} rows): a model reading it learns rows, "
                            f"not a pattern")
        specs.append(SideColumn(name, kind, distinct, round(1 - present / len(values), 6)))
    return SideSpec(tuple(specs), tuple(suspects))


def typed_example(rows: pd.DataFrame, side: SideSpec) -> pd.DataFrame:
    """The model's input example (its MLflow signature is inferred from it): the rows as read,
    a numeric side column as numbers (double) and a categorical one as text (string), which is
    what the scoring server then asks for."""
    rows = rows.reset_index(drop=True)
    if not side:
        return rows
    out = rows.copy()
    for column in side.columns:
        out[column.name] = (as_numbers(rows[column.name])[0] if column.kind == NUMERIC
                            else category_strings(rows[column.name]))
    return out
