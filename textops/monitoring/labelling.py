"""A small labelling budget that closes the label-free estimate's blind spot.

No label-free estimator sees every shift (a thread of brands tweeting at each other, classified
as customers with confidence above 0.99, fools them all). A few hundred labelled rows do, when
they are chosen well and weighted back:

- **Sampling.** Rows are split into confidence strata (edges from the version's reference
  confidences and its ATC threshold, so errors below the threshold and the rare confident
  errors above it each get their stratum). While the file streams by, each stratum keeps a
  seeded uniform reservoir and running counts; at the end the budget is allocated across strata
  by Neyman's rule (``n_h`` proportional to ``N_h * sd_h``, with ``sd_h`` from the stratum's
  mean confidence, floored so confident strata still get labels) and ``n_h`` rows are drawn
  from each reservoir. Every row carries its stratum, the stratum's size and its inclusion
  probability ``n_h / N_h``. Memory: the budget times the number of strata.
- **Estimating.** With the labels back, the stratified (Horvitz-Thompson) estimator
  ``sum_h (N_h / N) * mean_h(right)`` is unbiased for the night's accuracy; its variance
  ``sum_h (N_h / N)^2 * s_h^2 / n_h * (1 - n_h / N_h)``, each ``s_h`` from Agresti and
  Coull's adjusted rate (z^2 / 2 rows of each outcome added), so a stratum whose labelled rows
  were all right still counts its uncertainty. A simple random sample is the one-stratum case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from textops.columns import MODEL_VERSION, PREDICTION, PROBABILITY
from textops.monitoring.estimation import Z90, Threshold
from textops.monitoring.result import SampleEstimate

SD_FLOOR = 0.25  # a stratum's assumed error spread is never below this (confident errors hide)
MIN_PER_STRATUM = 2  # labelled rows a non-empty stratum gets at least (for its variance)
SMOOTH = Z90 ** 2 / 2  # rows of each outcome added to a stratum's variance (Agresti-Coull)


def strata_edges(reference_confidence: Sequence[float], threshold: Threshold | None) -> list[float]:
    """Inner edges of the confidence strata: the ATC threshold and the reference confidences'
    5, 15, 30 and 50 % quantiles (ties at 1.0 collapse, so there are at most five edges)."""
    values = np.asarray(reference_confidence, dtype=float)
    edges = set(np.round(np.quantile(values, [0.05, 0.15, 0.3, 0.5]), 6)) if len(values) else set()
    if threshold is not None:
        edges.add(round(threshold.value, 6))
    return sorted(e for e in edges if 0.0 < e < 1.0)


def stratum_of(confidence: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Stratum index of each confidence: 0 below the first edge, ..., len(edges) at the top."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(confidence, dtype=float),
                           side="right")


@dataclass
class _Stratum:
    rows: int = 0
    confidence_sum: float = 0.0
    items: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0


class Sampler:
    """Streams rows into per-stratum reservoirs (seeded); :meth:`draw` allocates the budget."""

    def __init__(self, budget: int, edges: Sequence[float], seed: int):
        self.budget, self.edges = int(budget), list(edges)
        self.strata = [_Stratum() for _ in range(len(self.edges) + 1)]
        self._rng = np.random.default_rng(seed)
        self._seed = seed

    def add(self, records: pd.DataFrame, confidence: np.ndarray) -> None:
        """Fold in rows (``records``: the columns to write, one row each) with their confidence."""
        which = stratum_of(confidence, self.edges)
        for h in np.unique(which):
            mine = np.flatnonzero(which == h)
            stratum = self.strata[int(h)]
            stratum.rows += len(mine)
            stratum.confidence_sum += float(np.sum(confidence[mine]))
            room = max(self.budget - len(stratum.items), 0)  # algorithm R, per stratum
            stratum.items.extend(records.iloc[mine[:room]].to_dict("records"))
            rest = mine[room:]
            positions = stratum.seen + room + np.arange(1, len(rest) + 1)
            slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
            for i, slot in zip(rest[slots < self.budget], slots[slots < self.budget]):
                stratum.items[int(slot)] = records.iloc[int(i)].to_dict()
            stratum.seen += len(mine)

    def allocation(self) -> list[int]:
        """Labels per stratum: Neyman allocation of the budget, at least MIN_PER_STRATUM (or the
        whole stratum when smaller), never more than the stratum holds."""
        sizes = np.array([s.rows for s in self.strata], dtype=float)
        if sizes.sum() == 0:
            return [0] * len(self.strata)
        mean = np.divide([s.confidence_sum for s in self.strata], np.maximum(sizes, 1))
        spread = np.maximum(np.sqrt(mean * (1 - mean)), SD_FLOOR) * (sizes > 0)
        budget = min(self.budget, int(sizes.sum()))
        floor = np.minimum(sizes, MIN_PER_STRATUM)
        share = sizes * spread
        wanted = floor + (budget - floor.sum()) * share / max(share.sum(), 1e-12)
        counts = np.minimum(np.floor(np.maximum(wanted, floor)), sizes).astype(int)
        while counts.sum() < budget:  # hand out what rounding left, largest remainder first
            room = (sizes - counts) > 0
            gap = np.where(room, wanted - counts, -np.inf)
            counts[int(np.argmax(gap))] += 1
        return counts.tolist()

    def draw(self) -> pd.DataFrame:
        """The sample: each stratum's ``n_h`` rows drawn uniformly from its reservoir (so
        uniformly from the stratum), with the design columns."""
        rng = np.random.default_rng(self._seed + 1)
        rows = []
        for h, (stratum, n) in enumerate(zip(self.strata, self.allocation())):
            if n == 0:
                continue
            picked = rng.choice(len(stratum.items), size=n, replace=False)
            for i in sorted(picked):
                rows.append({**stratum.items[int(i)], "stratum": h, "stratum_rows": stratum.rows,
                             "inclusion_probability": n / stratum.rows,
                             "weight": stratum.rows / n})
        return pd.DataFrame(rows)


def stratified_accuracy(right: np.ndarray, stratum: np.ndarray,
                        stratum_rows: np.ndarray) -> SampleEstimate:
    """The stratified estimate of the accuracy of all rows from labelled rows: each with whether
    the prediction was right, its stratum and its stratum's size. Unbiased whatever the
    allocation; the interval is 90 %."""
    right = np.asarray(right, dtype=float)
    stratum = np.asarray(stratum)
    sizes = {}
    for h, size in zip(stratum, np.asarray(stratum_rows, dtype=float)):
        sizes[h] = size
    total = float(sum(sizes.values()))
    estimate, variance = 0.0, 0.0
    for h, size in sizes.items():
        mine = right[stratum == h]
        n = len(mine)
        share = size / total
        estimate += share * float(mine.mean())
        hits = float(mine.sum())
        rate = (hits + SMOOTH) / (n + 2 * SMOOTH)  # Agresti-Coull: all right is not sure
        sample_variance = rate * (1 - rate) * (n / (n - 1) if n > 1 else 1.0)
        variance += share ** 2 * sample_variance / n * max(1 - n / size, 0.0)
    half = Z90 * float(np.sqrt(variance))
    return SampleEstimate(estimate, (max(estimate - half, 0.0), min(estimate + half, 1.0)),
                          labelled_rows=int(len(right)), rows=int(total), strata=len(sizes))


def row_keys(chunk: pd.DataFrame, id_columns: Sequence[str]) -> pd.Series:
    """How a row is found again in a labels file: its id columns' values (as text), or its
    1-based row number in the monitored file."""
    if not id_columns:
        return pd.Series((chunk.index + 1).astype(str), index=chunk.index)
    key = chunk[id_columns[0]].fillna("").astype(str)
    for column in id_columns[1:]:
        key = key + "\x1f" + chunk[column].fillna("").astype(str)
    return key


@dataclass
class Labels:
    """A labels file that came back: each key's label, stratum and stratum size."""

    by_key: dict[str, tuple[str, int, int]]
    predictions: dict[str, str] = field(default_factory=dict)  # filled while the data streams by


class Collector:
    """What monitor.py keeps from the stream for labelling: the sample to label (drawn at the
    end) and, when a labels file came back, the predictions of its rows (joined on the keys)."""

    def __init__(self, budget: int, seed: int, id_columns: Sequence[str], text_column: str | None,
                 edges_for: Any, labels: Labels | None = None):
        self.budget, self.seed = int(budget), int(seed)
        self.id_columns, self.text_column = list(id_columns), text_column
        self.edges_for, self.labels = edges_for, labels
        self.sampler: Sampler | None = None

    def add(self, chunk: pd.DataFrame, predicted: np.ndarray, confidence: np.ndarray,
            versions: np.ndarray) -> None:
        keys = row_keys(chunk, self.id_columns)
        if self.labels is not None:
            wanted = keys.isin(self.labels.by_key.keys()).to_numpy()
            self.labels.predictions.update(zip(keys[wanted], np.asarray(predicted)[wanted]))
        if self.budget <= 0 or not len(chunk):
            return
        if self.sampler is None:
            self.sampler = Sampler(self.budget, self.edges_for(str(versions[0])), self.seed)
        records = pd.DataFrame({"row": chunk.index + 1}, index=chunk.index)
        for column in self.id_columns:
            records[column] = chunk[column].to_numpy()
        if self.text_column is not None:
            records[self.text_column] = chunk[self.text_column].to_numpy()
        records[PREDICTION] = predicted
        records[PROBABILITY] = np.round(np.asarray(confidence, dtype=float), 6)
        records[MODEL_VERSION] = versions
        self.sampler.add(records.reset_index(drop=True),
                         np.nan_to_num(np.asarray(confidence, dtype=float), nan=0.0))

    def to_label(self, label_column: str) -> pd.DataFrame:
        """The drawn rows with their design columns and an empty label column to fill."""
        drawn = self.sampler.draw() if self.sampler is not None else pd.DataFrame()
        drawn[label_column] = ""
        return drawn

    def sample_estimate(self, align: Any) -> SampleEstimate | None:
        """The night's accuracy from the labels file (``align``: a label spelled as the model
        spells it); None without one."""
        if self.labels is None:
            return None
        missing = [k for k in self.labels.by_key if k not in self.labels.predictions]
        if missing:
            raise ValueError(f"{len(missing)} labelled row(s) of the labels file are not in the "
                             f"monitored data (first: {missing[0]!r})")
        keys = list(self.labels.by_key)
        right = np.array([align(self.labels.by_key[k][0]) == str(self.labels.predictions[k])
                          for k in keys], dtype=float)
        stratum = np.array([self.labels.by_key[k][1] for k in keys])
        sizes = np.array([self.labels.by_key[k][2] for k in keys])
        return stratified_accuracy(right, stratum, sizes)


def read_labels(frame: pd.DataFrame, id_columns: Sequence[str], label_column: str) -> Labels:
    """The labelled rows of a labels file (``to_label.csv`` with its label column filled);
    rows left unlabelled are ignored. Raises ValueError naming what is missing."""
    keys = list(id_columns) or ["row"]
    needed = [*keys, label_column, "stratum", "stratum_rows"]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"the labels file has no column {absent[0]!r} (it needs {needed}: the "
                         f"to_label.csv monitor.py wrote, with {label_column!r} filled in)")
    frame = frame.copy()
    frame.index = pd.RangeIndex(len(frame))
    labelled = frame[label_column].notna() & (frame[label_column].astype(str).str.strip() != "")
    frame = frame[labelled]
    if frame.empty:
        raise ValueError(f"no row of the labels file has a label in {label_column!r}")
    if id_columns:
        key = row_keys(frame, id_columns)
    else:
        key = frame["row"].astype(str).str.strip()
    try:
        by_key = {k: (str(label).strip(), int(float(h)), int(float(n))) for k, label, h, n in
                  zip(key, frame[label_column], frame["stratum"], frame["stratum_rows"])}
    except ValueError:
        raise ValueError("the labels file's stratum / stratum_rows columns are not numbers: "
                         "keep them as monitor.py wrote them") from None
    return Labels(by_key)
