"""Per-slice monitoring (``monitor.py --slice-by COL``): the night's figures for each value of
one column of the data (a product line, a channel, a country), so that "accuracy fell for one
product line" is seen even when the overall figure hides it.

While the stream passes, each slice value keeps sums, never rows: its rows, its confusion
counts on labelled rows, and the label-free estimator's sums per model version. At most
``MAX_TRACKED`` distinct values are kept apart (a slice column has few values; an identifier
would neither fit in memory nor be read in time): the rows of any further value are pooled into ``OTHER`` and the
report says so. At the end the ``top`` values by rows are reported one by one, the rest pooled
into ``OTHER``.

A slice alerts (exit 1) when its accuracy is more than ``max_relative_drop`` below the model's
test accuracy at training and chance cannot explain it: on labelled rows, a one-sided binomial
test against that line; without labels, the label-free estimate's interval widened to the same
level. The level is shared by all the slices checked (Bonferroni: ``FAMILY_ALPHA`` divided by
their number), so thirty slices of healthy data do not make noise. Slices with fewer than
``min_rows`` rows are reported but never alert."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.stats import binom, norm

from textops.monitoring.alerts import align_labels, performance
from textops.monitoring.estimation import EstimateSums, version_estimate
from textops.monitoring.profile import ReferenceProfile, Threshold
from textops.monitoring.result import SampleEstimate, SliceFigures, SliceReport

MAX_TRACKED = 200  # distinct values kept apart while streaming
MISSING = "(missing)"  # a row without a value
OTHER = "(other)"  # the values beyond the top ones, pooled
FAMILY_ALPHA = 0.05  # one-sided, for all the slices checked together
INTERVAL_Z = float(norm.isf(0.05))  # the estimates' 90 % intervals are +- this many errors


def slice_strings(column: pd.Series) -> pd.Series:
    """A slice column's values as the slices name them: stripped text, MISSING for none."""
    return column.astype("string").str.strip().fillna(MISSING).replace("", MISSING)


@dataclass
class SliceSums:
    """What the stream keeps for each slice value: rows, labelled confusion counts, and the
    label-free estimator's sums per model version."""

    rows: Counter = field(default_factory=Counter)
    tallies: dict[str, Counter] = field(default_factory=dict)  # value: (true, predicted) counts
    expected: dict[tuple[str, str], EstimateSums] = field(default_factory=dict)  # (value, version)
    pooled_rows: int = 0  # rows of values beyond MAX_TRACKED, pooled into OTHER
    # the values kept apart, decided before the stream (Spark: the most frequent ones, counted
    # first); None: the first MAX_TRACKED values seen
    admitted: frozenset[str] | None = None

    def values_of(self, column: pd.Series) -> np.ndarray:
        """Each row's slice value as text (missing: MISSING). Values first seen once
        MAX_TRACKED are kept apart are pooled into OTHER (first come, first kept)."""
        values = slice_strings(column)
        if self.admitted is not None:
            pooled = ~values.isin(self.admitted).to_numpy()
            self.pooled_rows += int(pooled.sum())
            values = values.to_numpy(dtype=object)
            values[pooled] = OTHER
            return values
        known = values.isin(self.rows.keys()).to_numpy()
        if known.all():
            return values.to_numpy(dtype=object)
        room = max(MAX_TRACKED - len(self.rows), 0)
        admitted = pd.unique(values[~known])[:room]
        pooled = ~known & ~values.isin(admitted).to_numpy()
        values = values.to_numpy(dtype=object)
        values[pooled] = OTHER
        self.pooled_rows += int(pooled.sum())
        return values

    def add(self, values: np.ndarray, versions: np.ndarray, predicted: np.ndarray,
            confidence: np.ndarray, proba: np.ndarray | None, classes: tuple[str, ...],
            threshold_of: Callable[[str], Threshold | None]) -> None:
        """Fold in one chunk's usable rows (``values``: from :meth:`values_of`), one group of
        rows per (value, version) found by sorting once, not by a scan per value."""
        if not len(values):
            return
        value_codes, value_names = pd.factorize(values)
        version_codes, version_names = pd.factorize(versions)
        self.rows.update(dict(zip(value_names, np.bincount(value_codes).tolist())))
        codes = value_codes * len(version_names) + version_codes
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for rows in np.split(order, bounds):
            first = rows[0]
            key = (str(values[first]), str(versions[first]))
            version = key[1]
            if key not in self.expected:
                self.expected[key] = EstimateSums(threshold=threshold_of(str(version)))
            self.expected[key].add(predicted[rows], confidence[rows],
                                   proba[rows] if proba is not None else None, classes or None)

    def merge(self, other: "SliceSums") -> None:
        """Add another part's sums (its values were admitted by the same rule)."""
        self.rows.update(other.rows)
        for value, pairs in other.tallies.items():
            self.tallies.setdefault(value, Counter()).update(pairs)
        for key, sums in other.expected.items():
            if key in self.expected:
                self.expected[key].combine(sums)
            else:
                self.expected[key] = sums
        self.pooled_rows += other.pooled_rows

    def add_labelled(self, values: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> None:
        """Fold in the labelled rows' (truth, prediction) pairs."""
        pairs = pd.DataFrame({"value": values, "truth": truth, "predicted": predicted})
        for (value, true, guess), n in pairs.value_counts(sort=False).items():
            self.tallies.setdefault(str(value), Counter())[(true, guess)] += int(n)


def _grouped(sums: SliceSums, top: int) -> dict[str, list[str]]:
    """Reported slice -> the tracked values it holds: the ``top`` values by rows one by one
    (ties by name), the rest (and what was pooled while streaming) as OTHER."""
    ranked = sorted((v for v in sums.rows if v != OTHER), key=lambda v: (-sums.rows[v], v))
    groups = {value: [value] for value in ranked[:top]}
    rest = ranked[top:] + ([OTHER] if OTHER in sums.rows else [])
    if rest:
        groups[OTHER] = rest
    return groups


def _merged_estimate(sums: SliceSums, values: list[str],
                     reference: ReferenceProfile | None) -> tuple[float, tuple[float, float]] | None:
    total = EstimateSums()
    for (value, _), part in sums.expected.items():
        if value in values:
            total.merge(part)
    found = version_estimate(total, reference) if total.rows else None
    return (found.accuracy, found.accuracy_interval) if found else None


def report(sums: SliceSums, column: str, top: int, min_rows: int,
           reference: ReferenceProfile | None, classes: list[str],
           max_relative_drop: float,
           sample_of: Callable[[list[str]], SampleEstimate | None] | None = None
           ) -> SliceReport:
    """Each reported slice's figures and verdict (``reference``: the main version's profile,
    whose test accuracy at training is the level a slice is compared with; ``sample_of``: the
    labelled sample's estimate for the rows of some slice values, with --labels)."""
    groups = _grouped(sums, top)
    base = reference.accuracy if reference else None
    line = (1.0 - max_relative_drop) * base if base is not None else None
    rows_of = {name: sum(sums.rows[v] for v in values) for name, values in groups.items()}
    pairs_of = {name: align_labels(sum((sums.tallies.get(v, Counter()) for v in values),
                                       Counter()), classes) for name, values in groups.items()}
    checked = [name for name in groups if rows_of[name] >= min_rows]
    level = FAMILY_ALPHA / len(checked) if checked and line is not None else None
    figures = []
    for name, values in groups.items():
        pairs = pairs_of[name]
        labelled = performance(pairs) if pairs else None
        estimate = _merged_estimate(sums, values, reference)
        sample = sample_of(values) if sample_of is not None else None
        alert = ""
        if name in checked and level is not None:
            alert = _verdict(name, column, labelled, sample, estimate, line, base, level)
        figures.append(SliceFigures(
            name, rows_of[name], labelled.rows if labelled else 0,
            labelled.accuracy if labelled else None, labelled.macro_f1 if labelled else None,
            estimate[0] if estimate else None, estimate[1] if estimate else None,
            name in checked, alert, sample))
    note = ""
    if sums.pooled_rows:
        note = (f"{column!r} has more than {MAX_TRACKED} distinct values: {sums.pooled_rows} rows "
                f"of later values were pooled into {OTHER} (a slice column should have few values)")
    if line is None:
        note = "; ".join(filter(None, [note, "no test accuracy at training for this version: "
                                       "slices reported, not judged"]))
    return SliceReport(column, top, min_rows, line, level, figures, note)


def _verdict(name: str, column: str, labelled: Any, sample: SampleEstimate | None,
             estimate: Any, line: float, base: float, level: float) -> str:
    """The alert line for one slice ("" when it holds): labelled rows judge when there are
    any, else the labelled sample's rows of the slice, else the label-free estimate."""
    where = f"slice {column}={name}"
    if labelled is not None and labelled.rows:
        right = int(round(labelled.accuracy * labelled.rows))
        chance = float(binom.cdf(right, labelled.rows, line))  # P(this few right | accuracy line)
        if labelled.accuracy < line and chance < level:
            return (f"{where}: accuracy {labelled.accuracy:.4f} on {labelled.rows} labelled rows, "
                    f"more than {1 - line / base:.0%} below the test accuracy at training "
                    f"{base:.4f} (binomial p={chance:.2g} < {level:.2g}, the level shared by the "
                    f"slices checked)")
        return ""
    if sample is not None:
        what = (f"accuracy {sample.accuracy:.4f} from {sample.labelled_rows} rows of the "
                f"labelled sample")
        return _interval_verdict(where, what, sample.accuracy, sample.accuracy_interval[1],
                                 line, base, level)
    if estimate is None:
        return ""
    accuracy, (_, high) = estimate
    return _interval_verdict(where, f"estimated accuracy {accuracy:.4f} (no labels)", accuracy,
                             high, line, base, level)


def _interval_verdict(where: str, what: str, accuracy: float, high: float, line: float,
                      base: float, level: float) -> str:
    """The alert when even the top of a 90 % interval, widened to ``level``, is below the line."""
    upper = accuracy + (high - accuracy) * float(norm.isf(level)) / INTERVAL_Z
    if upper >= line:
        return ""
    return (f"{where}: {what}, more than {1 - line / base:.0%} below the test accuracy at "
            f"training {base:.4f} even at the top of its interval widened to the level shared by "
            f"the slices checked ({upper:.4f})")
