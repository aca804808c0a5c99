"""The side columns of a model version's test rows at training (``train.py --feature-columns``),
reduced to what monitor.py's drift checks compare with (``sidedrift.py``): per categorical column
the shares of its top categories, of the other known ones, of categories never seen in training
and of missing values; per numeric column its missing share and a seeded sample of values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from textprep.side import CATEGORICAL, NUMERIC, SideColumns, as_numbers, category_strings

TOP_CATEGORIES = 20  # categories compared one by one; the rest pooled
SAMPLE_NUMBERS = 2000  # numbers kept per numeric column, in the profile and while monitoring
OTHER, UNSEEN, MISSING = "(other)", "(unseen in training)", "(missing)"


@dataclass(frozen=True)
class SideProfile:
    """One side column on the test rows at training."""

    kind: str  # categorical / numeric
    rows: int
    missing: float  # share of rows without a value
    shares: dict[str, float] = field(default_factory=dict)  # categorical: bucket -> share of rows
    known: list[str] = field(default_factory=list)  # categorical: the training rows' categories
    sample: list[float] = field(default_factory=list)  # numeric: seeded sample of present values

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing": self.missing}
        if self.kind == CATEGORICAL:
            out.update(shares=self.shares, known=self.known)
        else:
            out.update(sample=self.sample)
        return out

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "SideProfile":
        return cls(kind=str(stored.get("kind")), rows=int(stored.get("rows") or 0),
                   missing=float(stored.get("missing") or 0.0),
                   shares={str(k): float(v) for k, v in (stored.get("shares") or {}).items()},
                   known=[str(v) for v in stored.get("known") or []],
                   sample=[float(v) for v in stored.get("sample") or []])

    @property
    def top(self) -> list[str]:
        """The categories compared one by one."""
        return [k for k in self.shares if k not in (OTHER, UNSEEN, MISSING)]


def buckets(names: pd.Series, top: list[str], known: set[str]) -> pd.Series:
    """Each value's bucket: a top category, another known one, unseen in training, missing."""
    values = names.to_numpy(dtype=object)
    missing = names.isna().to_numpy()
    in_top = names.isin(top).to_numpy()
    seen = names.isin(known).to_numpy()
    out = np.where(in_top, values, np.where(missing, MISSING, np.where(seen, OTHER, UNSEEN)))
    return pd.Series(out, dtype=object)


def profile_side(frame: pd.DataFrame, encoder: SideColumns, seed: int = 0) -> dict[str, SideProfile]:
    """Each side column of the test rows ``frame``, as the fitted ``encoder`` reads it."""
    profiles = {}
    rng = np.random.default_rng(seed + 7)
    for column, kind in zip(encoder.columns, encoder.kinds):
        values = frame[column].reset_index(drop=True)
        rows = len(values)
        missing = float(values.isna().mean()) if rows else 0.0
        if kind == CATEGORICAL:
            names = category_strings(values)
            known = list(encoder.categories_[column])
            top = names.value_counts().index[:TOP_CATEGORIES].tolist()
            counts = buckets(names, top, set(known)).value_counts()
            order = top + [OTHER, UNSEEN, MISSING]
            shares = {k: float(counts.get(k, 0)) / max(rows, 1) for k in order}
            profiles[column] = SideProfile(CATEGORICAL, rows, missing, shares, known)
        else:
            numbers = as_numbers(values)[0]
            present = numbers[~np.isnan(numbers)]
            if len(present) > SAMPLE_NUMBERS:
                present = rng.choice(present, SAMPLE_NUMBERS, replace=False)
            profiles[column] = SideProfile(NUMERIC, rows, float(np.isnan(numbers).mean()) if rows
                                           else 0.0, sample=[float(v) for v in present])
    return profiles


