"""Drift of the side columns a model reads beside its text (``train.py --feature-columns``).

At training, :func:`profile_side` reduces each side column of the test rows to a
:class:`SideProfile` (stored in the version's reference profile); monitor.py folds its chunks
into :class:`SideSums` (bounded: a count per reference category and a seeded sample of
numbers, never rows) and :func:`side_checks` compares them, with the rule the other checks use
("large, and unlikely by chance"):

* categorical: PSI over the reference's top categories, the other known ones, the categories
  never seen in training and the missing values; drift when PSI > ``psi_max`` and a PSI this
  large has chance p < ``psi_pvalue`` for this many rows. The share of unseen categories is
  reported beside it.
* numeric: Kolmogorov-Smirnov on the present values (D > ``ks_max`` and p < ``ks_pvalue``), or
  a change of the missing rate (PSI over missing / present, the same PSI rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from textops.monitoring import drift
from textops.monitoring.sampling import Reservoir
from textops.monitoring.sideprofile import (MISSING, SAMPLE_NUMBERS, UNSEEN, SideProfile,
                                            buckets)
from textprep.side import CATEGORICAL, NUMERIC, as_numbers, category_strings


class SideSums:
    """What monitoring keeps of the side columns: per categorical column a count per bucket,
    per numeric column the missing count and a seeded reservoir of present values."""

    def __init__(self, profiles: Mapping[str, SideProfile], seed: int = 0,
                 sample: Callable[[int, Any], Any] = Reservoir):
        self.profiles = dict(profiles)
        self.known = {c: set(p.known) for c, p in self.profiles.items()}
        self.rows = 0
        self.counts: dict[str, dict[str, int]] = {c: {} for c in self.profiles}
        self.missing: dict[str, int] = {c: 0 for c in self.profiles}
        self.numbers = {c: sample(SAMPLE_NUMBERS, seed + 11 + i)
                        for i, (c, p) in enumerate(self.profiles.items()) if p.kind == NUMERIC}

    def add(self, chunk: pd.DataFrame) -> None:
        self.rows += len(chunk)
        for column, profile in self.profiles.items():
            if column not in chunk:
                continue
            if profile.kind == CATEGORICAL:
                found = buckets(category_strings(chunk[column]), profile.top, self.known[column])
                for bucket, n in found.value_counts().items():
                    self.counts[column][bucket] = self.counts[column].get(bucket, 0) + int(n)
            else:
                numbers = as_numbers(chunk[column])[0]
                present = ~np.isnan(numbers)
                self.missing[column] += int((~present).sum())
                self.numbers[column].add(numbers[present].tolist())

    def merge(self, other: "SideSums") -> None:
        """Add another part's counts and samples (parts sampled with ``KeyedSample``)."""
        self.rows += other.rows
        for column, counts in other.counts.items():
            for bucket, n in counts.items():
                self.counts[column][bucket] = self.counts[column].get(bucket, 0) + n
        for column, n in other.missing.items():
            self.missing[column] += n
        for column, sample in other.numbers.items():
            self.numbers[column].merge(sample)


@dataclass(frozen=True)
class SideDetail:
    """A side column's check: its kind and what was compared."""

    column: str
    kind: str
    psi_pvalue: float | None = None  # categorical: chance of this PSI; numeric: of the missing-rate PSI
    reference: dict[str, float] = field(default_factory=dict)  # bucket shares at training
    current: dict[str, float] = field(default_factory=dict)  # bucket shares now
    ks_pvalue: float | None = None  # numeric
    missing_reference: float = 0.0
    missing_current: float = 0.0


def side_checks(profiles: Mapping[str, SideProfile], sums: SideSums, thresholds: Any,
                seed: int = 0) -> list[Any]:
    """One drift check per side column (see the module's docstring)."""
    checks = []
    for column, profile in profiles.items():
        if sums.rows == 0:
            continue
        name = f"side:{column}"
        if profile.kind == CATEGORICAL:
            counts = sums.counts[column]
            shares = {k: counts.get(k, 0) / sums.rows for k in profile.shares}
            value = drift.psi(profile.shares, shares)
            chance = drift.psi_pvalue(profile.shares, {k: counts.get(k, 0) for k in profile.shares},
                                      value, seed=seed)
            moved = sorted(profile.shares, key=lambda k: -abs(shares[k] - profile.shares[k]))
            checks.append(drift.Check(
                name, "PSI", value, thresholds.psi_max,
                value > thresholds.psi_max and chance < thresholds.psi_pvalue,
                f"PSI {value:.3f} (chance p={chance:.2g} for {sums.rows} rows); unseen in "
                f"training {profile.shares.get(UNSEEN, 0.0):.1%}->{shares.get(UNSEEN, 0.0):.1%}; "
                "largest change: " + ", ".join(f"{k} {profile.shares[k]:.1%}->{shares[k]:.1%}"
                                               for k in moved[:3]),
                SideDetail(column, CATEGORICAL, chance, profile.shares, shares)))
            continue
        sample = sums.numbers[column].items
        missing_now = sums.missing[column] / sums.rows
        before = {MISSING: profile.missing, "present": 1 - profile.missing}
        now = {MISSING: missing_now, "present": 1 - missing_now}
        missing_psi = drift.psi(before, now)
        missing_chance = drift.psi_pvalue(before, {MISSING: sums.missing[column],
                                                   "present": sums.rows - sums.missing[column]},
                                          missing_psi, seed=seed)
        missing_moved = missing_psi > thresholds.psi_max and missing_chance < thresholds.psi_pvalue
        d, p = drift.ks(profile.sample, sample) if len(sample) and profile.sample else (None, 1.0)
        shifted = d is not None and d > thresholds.ks_max and p < thresholds.ks_pvalue
        shown = (f"D {d:.3f} (p={p:.2g}); median {np.median(profile.sample):.4g} -> "
                 f"{np.median(sample):.4g}" if d is not None else "no present value to compare")
        checks.append(drift.Check(
            name, "Kolmogorov-Smirnov D", d, thresholds.ks_max, shifted or missing_moved,
            f"{shown}; missing {profile.missing:.1%}->{missing_now:.1%} (PSI {missing_psi:.3f}, "
            f"chance p={missing_chance:.2g})",
            SideDetail(column, NUMERIC, missing_chance, ks_pvalue=p,
                       missing_reference=profile.missing, missing_current=missing_now)))
    return checks
