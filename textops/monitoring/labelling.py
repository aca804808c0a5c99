"""A small labelling budget that closes the label-free estimate's blind spot.

No label-free estimator sees every shift (a thread of brands tweeting at each other, classified
as customers with confidence above 0.99, fools them all). A few hundred labelled rows do, when
they are chosen well and weighted back:

- **Sampling.** Rows are split into confidence strata (edges from the version's reference
  confidences and its ATC threshold, so errors below the threshold and the rare confident
  errors above it each get their stratum). While the file streams by, each stratum keeps a
  seeded uniform reservoir and running counts; at the end the budget is allocated across strata
  in two parts: a **uniform share** (``uniform_share`` of the budget, proportional to the
  strata's sizes, as a simple random sample would) and the rest by Neyman's rule (``n_h``
  proportional to ``N_h * sd_h``, with ``sd_h`` from the stratum's mean confidence, floored so
  confident strata still get labels), so uncertain rows get more labels and no region gets
  none; ``n_h`` rows are then drawn from each reservoir. Every row carries its stratum, the stratum's size and its inclusion
  probability ``n_h / N_h``. Memory: the budget times the number of strata.
- **Estimating.** With the labels back, the stratified (Horvitz-Thompson) estimator
  ``sum_h (N_h / N) * mean_h(right)`` is unbiased for the night's accuracy; its variance
  ``sum_h (N_h / N)^2 * s_h^2 / n_h * (1 - n_h / N_h)``, each ``s_h`` from Agresti and
  Coull's adjusted rate (z^2 / 2 rows of each outcome added), so a stratum whose labelled rows
  were all right still counts its uncertainty. A simple random sample is the one-stratum case.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from textops.columns import (FALLBACK_LABEL, MODEL_VERSION, PREDICTION, PROBABILITY,
                             PROBABILITY_DECIMALS)
from textops.monitoring.estimation import Z90
from textops.monitoring.profile import Threshold
from textops.monitoring.result import SampleEstimate
from textops.monitoring.sampling import KeyedSample

SD_FLOOR = 0.25  # a stratum's assumed error spread is never below this (confident errors hide)
MIN_PER_STRATUM = 2  # labelled rows a non-empty stratum gets at least (for its variance)
UNIFORM_SHARE = 0.5  # of the budget allocated as a simple random sample would (bench/loop_bench.py)
SMOOTH = Z90 ** 2 / 2  # rows of each outcome added to a stratum's variance (Agresti-Coull)


def strata_edges(reference_confidence: Sequence[float], threshold: Threshold | None) -> list[float]:
    """Inner edges of the confidence strata: the ATC threshold and the reference confidences'
    5, 15, 30 and 50 % quantiles (ties at 1.0 collapse, so there are at most five edges)."""
    values = np.asarray(reference_confidence, dtype=float)
    edges = set(np.round(np.quantile(values, [0.05, 0.15, 0.3, 0.5]), PROBABILITY_DECIMALS)) if len(values) else set()
    if threshold is not None:
        edges.add(round(threshold.value, PROBABILITY_DECIMALS))
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
    keyed: KeyedSample | None = None  # a part of many (Spark): a mergeable sample instead

    @property
    def kept(self) -> list[dict[str, Any]]:
        """The stratum's sampled rows (from whichever sample it keeps)."""
        return self.keyed.items if self.keyed is not None else self.items


class Sampler:
    """Streams rows into per-stratum reservoirs (seeded); :meth:`draw` allocates the budget.
    ``part`` (a Spark partition's number): mergeable per-stratum samples (:meth:`merge`)."""

    def __init__(self, budget: int, edges: Sequence[float], seed: int,
                 uniform_share: float = UNIFORM_SHARE, part: int | None = None):
        if not 0.0 <= uniform_share <= 1.0:
            raise ValueError(f"uniform_share must be between 0 and 1, not {uniform_share}")
        self.budget, self.edges = int(budget), list(edges)
        self.uniform_share = float(uniform_share)
        self.strata = [_Stratum(keyed=None if part is None else
                                KeyedSample(self.budget, (int(seed), int(part), h)))
                       for h in range(len(self.edges) + 1)]
        self._rng = np.random.default_rng(seed)
        self._seed = seed

    def merge(self, other: "Sampler") -> None:
        """Add another part's strata (both made with ``part``)."""
        for mine, theirs in zip(self.strata, other.strata):
            mine.rows += theirs.rows
            mine.confidence_sum += theirs.confidence_sum
            mine.seen += theirs.seen
            mine.keyed.merge(theirs.keyed)

    def add(self, records: pd.DataFrame, confidence: np.ndarray) -> None:
        """Fold in rows (``records``: the columns to write, one row each) with their confidence."""
        which = stratum_of(confidence, self.edges)
        for h in np.unique(which):
            mine = np.flatnonzero(which == h)
            stratum = self.strata[int(h)]
            stratum.rows += len(mine)
            stratum.confidence_sum += float(np.sum(confidence[mine]))
            if stratum.keyed is not None:
                stratum.keyed.offer(len(mine), lambda positions: records.iloc[
                    mine[positions]].to_dict("records"))
                stratum.seen += len(mine)
                continue
            room = max(self.budget - len(stratum.items), 0)  # algorithm R, per stratum
            stratum.items.extend(records.iloc[mine[:room]].to_dict("records"))
            rest = mine[room:]
            positions = stratum.seen + room + np.arange(1, len(rest) + 1)
            slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
            for i, slot in zip(rest[slots < self.budget], slots[slots < self.budget]):
                stratum.items[int(slot)] = records.iloc[int(i)].to_dict()
            stratum.seen += len(mine)

    def allocation(self) -> list[int]:
        """Labels per stratum: ``uniform_share`` of the budget in proportion to the strata's
        sizes, the rest by Neyman's rule; at least MIN_PER_STRATUM (or the whole stratum when
        smaller), never more than the stratum holds."""
        sizes = np.array([s.rows for s in self.strata], dtype=float)
        if sizes.sum() == 0:
            return [0] * len(self.strata)
        mean = np.divide([s.confidence_sum for s in self.strata], np.maximum(sizes, 1))
        spread = np.maximum(np.sqrt(mean * (1 - mean)), SD_FLOOR) * (sizes > 0)
        budget = min(self.budget, int(sizes.sum()))
        floor = np.minimum(sizes, MIN_PER_STRATUM)
        if floor.sum() > budget:  # a budget smaller than the floors (--label-sample 1): Neyman only
            floor = np.zeros_like(floor)
        neyman = sizes * spread / max(float(np.sum(sizes * spread)), 1e-12)
        share = self.uniform_share * sizes / sizes.sum() + (1 - self.uniform_share) * neyman
        wanted = floor + (budget - floor.sum()) * share / max(share.sum(), 1e-12)
        counts = np.minimum(np.floor(np.maximum(wanted, floor)), sizes).astype(int)
        while counts.sum() < budget:  # hand out what rounding left, largest remainder first
            room = (sizes - counts) > 0
            gap = np.where(room, wanted - counts, -np.inf)
            counts[int(np.argmax(gap))] += 1
        return counts.tolist()

    def draw(self) -> pd.DataFrame:
        """The sample: each stratum's ``n_h`` rows drawn uniformly from its reservoir (so
        uniformly from the stratum), with the design columns, in a seeded random order (so that
        labelling the first rows of the file is still a fair sample of every stratum)."""
        rng = np.random.default_rng(self._seed + 1)
        rows = []
        for h, (stratum, n) in enumerate(zip(self.strata, self.allocation())):
            if n == 0:
                continue
            picked = rng.choice(len(stratum.kept), size=n, replace=False)
            for i in sorted(picked):
                rows.append({**stratum.kept[int(i)], "stratum": h, "stratum_rows": stratum.rows,
                             "inclusion_probability": n / stratum.rows,
                             "weight": stratum.rows / n})
        order = rng.permutation(len(rows))
        return pd.DataFrame([rows[i] for i in order])


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


def domain_accuracy(right: np.ndarray, stratum: np.ndarray, stratum_rows: np.ndarray,
                    inside: np.ndarray) -> SampleEstimate | None:
    """The accuracy of the rows of one domain (a slice) from the whole stratified sample: the
    ratio of the weighted right rows in the domain to its weighted rows (Hajek), its variance by
    linearisation over every stratum, never below an Agresti-Coull binomial variance of the
    domain's own labelled rows (a small domain all right is not sure). None without a labelled
    row in the domain."""
    right = np.asarray(right, dtype=float)
    stratum, inside = np.asarray(stratum), np.asarray(inside, dtype=bool)
    sizes = dict(zip(stratum, np.asarray(stratum_rows, dtype=float)))
    n_of = {h: int(np.sum(stratum == h)) for h in sizes}
    weight = np.array([sizes[h] / n_of[h] for h in stratum])
    if not inside.any():
        return None
    rows = float(np.sum(weight * inside))
    estimate = float(np.sum(weight * inside * right) / rows)
    z = inside * (right - estimate) / rows  # each row's share of the ratio's error
    variance = 0.0
    for h, size in sizes.items():
        mine = z[stratum == h]
        n = len(mine)
        if n > 1:
            variance += size ** 2 * float(np.var(mine, ddof=1)) / n * max(1 - n / size, 0.0)
    labelled = int(inside.sum())
    rate = (float(right[inside].sum()) + SMOOTH) / (labelled + 2 * SMOOTH)
    variance = max(variance, rate * (1 - rate) / labelled * max(1 - labelled / rows, 0.0))
    half = Z90 * float(np.sqrt(variance))
    return SampleEstimate(estimate, (max(estimate - half, 0.0), min(estimate + half, 1.0)),
                          labelled_rows=labelled, rows=int(round(rows)),
                          strata=len({h for h, i in zip(stratum, inside) if i}))


def row_keys(chunk: pd.DataFrame, id_columns: Sequence[str]) -> pd.Series:
    """How a row is found again in a labels file: its id columns' values (as text), or its
    1-based row number in the monitored file."""
    if not id_columns:
        return pd.Series((chunk.index + 1).astype(str), index=chunk.index)
    key = chunk[id_columns[0]].fillna("").astype(str)
    for column in id_columns[1:]:
        key = key + "\x1f" + chunk[column].fillna("").astype(str)
    return key


NIGHT = re.compile(r"\d{4}-\d{2}-\d{2}")  # a sample id starts with the night it was drawn
# the columns to_label.csv carries besides the id columns, the text, the prediction and the
# label: an id column of one of these names would be overwritten
DESIGN_COLUMNS = ("row", "stratum", "stratum_rows", "inclusion_probability", "weight", "sample_id",
                  "data_sha256")


@dataclass
class Labels:
    """A labels file that came back: each labelled key's label, stratum and stratum size, what
    the file says of it (prediction, text) and of itself (data hash, strata left unlabelled)."""

    by_key: dict[str, tuple[str, int, int]]
    label_column: str = FALLBACK_LABEL
    shown: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # key: (pred, text)
    data_sha256: str | None = None  # the data the sample was drawn from (files of this release on)
    unlabelled_strata: list[int] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # key: the row as given
    # filled while the data streams by: each key's prediction, text and rows found
    predictions: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    slice_of: dict[str, str] = field(default_factory=dict)  # --slice-by: each key's slice value
    found: Counter = field(default_factory=Counter)

    def other_data(self, data_sha256: str) -> str | None:
        """Why the sample is not of the data whose SHA-256 is given (None: it is, or the file
        predates the record)."""
        if self.data_sha256 and self.data_sha256 != data_sha256:
            return (f"it was drawn from other data (sha256 {self.data_sha256[:12]}..., tonight's "
                    f"--data is {data_sha256[:12]}...): labels of another night")
        return None

    def problems(self, data_sha256: str, check_texts: bool) -> list[str]:
        """What makes these labels not tonight's sample's (empty: nothing): another night's
        data, keys not in the data or in it twice, predictions or texts that differ, strata
        left unlabelled."""
        found = [problem for problem in [self.other_data(data_sha256)] if problem]
        missing = [k for k in self.by_key if not self.found[k]]
        if missing:
            found.append(f"{len(missing)} labelled row(s) are not in the monitored data (first: "
                         f"{missing[0]!r})")
        twice = [k for k in self.by_key if self.found[k] > 1]
        if twice:
            found.append(f"{len(twice)} labelled key(s) match several rows of the data (first: "
                         f"{twice[0]!r}): --id-columns must identify one row each")
        for what, index, seen in (("prediction", 0, self.predictions), ("text", 1, self.texts)):
            if what == "text" and not check_texts:
                continue
            differ = [k for k, given in self.shown.items() if given[index] is not None
                      and k in seen and not same_value(seen[k], given[index])]
            if differ:
                found.append(f"the {what} of {len(differ)} labelled row(s) differs from "
                             f"tonight's (first: {differ[0]!r}): labels of another night or model")
        if self.unlabelled_strata:
            found.append(f"stratum/strata {self.unlabelled_strata} have no labelled row, so the "
                         f"night's accuracy cannot be estimated from this part of the sample; "
                         f"label at least one row of each (the rows are in random order: "
                         f"label from the top)")
        return found


class Collector:
    """What monitor.py keeps from the stream for labelling: the sample to label (drawn at the
    end) and, when a labels file came back, the predictions of its rows (joined on the keys)."""

    def __init__(self, budget: int, seed: int, id_columns: Sequence[str], text_column: str | None,
                 edges_for: Any, labels: Labels | None = None,
                 uniform_share: float = UNIFORM_SHARE, part: int | None = None):
        self.budget, self.seed = int(budget), int(seed)
        self.uniform_share = uniform_share
        self.id_columns, self.text_column = list(id_columns), text_column
        self.edges_for, self.labels = edges_for, labels
        self.sampler: Sampler | None = None
        self.part = part  # a Spark partition's part: rows known by their ids, samples merge

    def for_part(self, part: int, edges: Sequence[float]) -> "Collector":
        """An empty collector for one part of the stream (a Spark partition), to
        :meth:`merge` back: the same budget and seed, the strata of ``edges``, a copy of the
        labels file's keys to look for."""
        labels = None if self.labels is None else replace(
            self.labels, found=Counter(), predictions={}, slice_of={}, texts={})
        return Collector(self.budget, self.seed, self.id_columns, self.text_column,
                         lambda version: edges, labels, self.uniform_share, part)

    def merge(self, other: "Collector") -> None:
        """Fold in a part's rows to label and the labelled rows it found."""
        if other.labels is not None:
            self.labels.found.update(other.labels.found)
            self.labels.predictions.update(other.labels.predictions)
            self.labels.slice_of.update(other.labels.slice_of)
            self.labels.texts.update(other.labels.texts)
        if other.sampler is None:
            return
        if self.sampler is None:
            self.sampler = other.sampler
        else:
            self.sampler.merge(other.sampler)

    def add(self, chunk: pd.DataFrame, predicted: np.ndarray, confidence: np.ndarray,
            versions: np.ndarray, slice_values: np.ndarray | None = None) -> None:
        keys = row_keys(chunk, self.id_columns)
        if self.labels is not None:
            wanted = keys.isin(self.labels.by_key.keys()).to_numpy()
            self.labels.found.update(keys[wanted])
            self.labels.predictions.update(zip(keys[wanted], np.asarray(predicted)[wanted]))
            if slice_values is not None:
                self.labels.slice_of.update(zip(keys[wanted], slice_values[wanted]))
            if self.text_column is not None:
                self.labels.texts.update(zip(keys[wanted], chunk[self.text_column][wanted]))
        if self.budget <= 0 or not len(chunk):
            return
        if self.sampler is None:
            self.sampler = Sampler(self.budget, self.edges_for(str(versions[0])), self.seed,
                                   self.uniform_share, self.part)
        # a part of many knows its rows by their ids only (no row number across the parts)
        records = pd.DataFrame({"row": chunk.index + 1} if self.part is None else {},
                               index=chunk.index)
        for column in self.id_columns:
            records[column] = chunk[column].to_numpy()
        if self.text_column is not None:
            records[self.text_column] = chunk[self.text_column].to_numpy()
        records[PREDICTION] = predicted
        records[PROBABILITY] = np.round(np.asarray(confidence, dtype=float), PROBABILITY_DECIMALS)
        records[MODEL_VERSION] = versions
        self.sampler.add(records.reset_index(drop=True),
                         np.nan_to_num(np.asarray(confidence, dtype=float), nan=0.0))

    def to_label(self, label_column: str, sample_id: str, data_sha256: str) -> pd.DataFrame:
        """The drawn rows with their design columns, what they were drawn from (the sample's id
        and the data's SHA-256, checked when the labels come back) and an empty label column."""
        drawn = self.sampler.draw() if self.sampler is not None else pd.DataFrame()
        drawn["sample_id"] = sample_id
        drawn["data_sha256"] = data_sha256
        drawn[label_column] = ""
        return drawn

    def sample_estimate(self, align: Any, classes: Sequence[str],
                        data_sha256: str) -> SampleEstimate | None:
        """The night's accuracy from the labels file (``align``: a label spelled as the model
        spells it); None without one. ValueError when the labels are not tonight's sample's
        (:meth:`Labels.problems`) or none of them is one of the model's ``classes``."""
        if self.labels is None:
            return None
        problems = self.labels.problems(data_sha256, self.text_column is not None)
        if problems:
            raise ValueError("; ".join(problems))
        keys = list(self.labels.by_key)
        given = [align(self.labels.by_key[k][0]) for k in keys]
        if classes and not set(given) & set(classes):
            unknown = sorted(set(given))[:10]
            raise ValueError(f"none of its labels ({', '.join(map(repr, unknown))}) is a class of "
                             f"the model ({', '.join(map(repr, list(classes)[:10]))}): wrong "
                             f"column, or labels spelled otherwise")
        right, stratum, sizes = self._design(keys, given)
        return stratified_accuracy(right, stratum, sizes)

    def _design(self, keys: list[str], given: list[str]) -> tuple[np.ndarray, ...]:
        right = np.array([label == str(self.labels.predictions[k]) for k, label in
                          zip(keys, given)], dtype=float)
        stratum = np.array([self.labels.by_key[k][1] for k in keys])
        sizes = np.array([self.labels.by_key[k][2] for k in keys])
        return right, stratum, sizes

    def slice_estimate(self, align: Any, values: Sequence[str]) -> SampleEstimate | None:
        """--slice-by: the labelled sample's estimate for the rows whose slice value is one of
        ``values`` (call after :meth:`sample_estimate` has checked the labels)."""
        if self.labels is None or not self.labels.by_key:
            return None
        keys = list(self.labels.by_key)
        given = [align(self.labels.by_key[k][0]) for k in keys]
        right, stratum, sizes = self._design(keys, given)
        wanted = set(values)
        inside = np.array([self.labels.slice_of.get(k) in wanted for k in keys])
        return domain_accuracy(right, stratum, sizes, inside)


def read_labels(frame: pd.DataFrame, id_columns: Sequence[str], label_columns: Sequence[str],
                explicit: bool = False, text_column: str | None = None) -> Labels:
    """The labelled rows of a labels file (a to_label file with its label column filled); rows
    left unlabelled are ignored. The label column is the first of ``label_columns`` the file
    has (``explicit``: only the first), else the one column the sample did not write. Raises
    ValueError naming what is missing or ambiguous."""
    label_column = _label_column(frame, [*id_columns, *([text_column] if text_column else [])],
                                 label_columns, explicit)
    keys = list(id_columns) or ["row"]
    needed = [*keys, label_column, "stratum", "stratum_rows"]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"the labels file has no column {absent[0]!r} (it needs {needed}: the "
                         f"to_label file monitor.py wrote, with {label_column!r} filled in)")
    frame = frame.copy()
    frame.index = pd.RangeIndex(len(frame))
    labelled = frame[label_column].notna() & (frame[label_column].astype(str).str.strip() != "")
    strata = pd.to_numeric(frame["stratum"], errors="coerce")
    if strata.isna().any() or pd.to_numeric(frame["stratum_rows"], errors="coerce").isna().any():
        raise ValueError("the labels file's stratum / stratum_rows columns are not numbers: "
                         "keep them as monitor.py wrote them")
    unlabelled = sorted(set(strata.astype(int)) - set(strata[labelled].astype(int)))
    frame = frame[labelled]
    if frame.empty:
        raise ValueError(f"no row of the labels file has a label in {label_column!r}")
    key = row_keys(frame, id_columns) if id_columns else frame["row"].astype(str).str.strip()
    repeated = key[key.duplicated()]
    if len(repeated):
        raise ValueError(f"{len(repeated)} labelled row(s) repeat a key (first: "
                         f"{repeated.iloc[0]!r}): --id-columns must identify one row each")
    by_key = {k: (str(label).strip(), int(float(h)), int(float(n))) for k, label, h, n in
              zip(key, frame[label_column], frame["stratum"], frame["stratum_rows"])}
    records = dict(zip(key, frame.to_dict("records")))
    return Labels(by_key, label_column, _shown(frame, key, text_column), _one_hash(frame),
                  unlabelled, records)


def _label_column(frame: pd.DataFrame, id_columns: Sequence[str], candidates: Sequence[str],
                  explicit: bool) -> str:
    """The labels file's label column (``id_columns``: the id and text columns it carries)."""
    for name in (candidates[:1] if explicit else candidates):
        if name in frame.columns:
            return name
    if not explicit:
        written = {*DESIGN_COLUMNS, *id_columns, PREDICTION, PROBABILITY, MODEL_VERSION}
        others = [c for c in frame.columns if c not in written and not frame[c].isna().all()
                  and (frame[c].astype(str).str.strip() != "").any()]
        if len(others) == 1:
            return others[0]
    raise ValueError(f"no label column {' or '.join(map(repr, candidates))} in the labels file "
                     f"(columns: {', '.join(map(str, frame.columns[:20]))}); name it with "
                     f"--label-column")


def _shown(frame: pd.DataFrame, key: pd.Series,
           text_column: str | None) -> dict[str, tuple[str | None, str | None]]:
    """Per key, the prediction and text the labels file shows (None: no such column)."""
    none = [None] * len(frame)
    prediction = frame[PREDICTION].fillna("").astype(str).tolist() if PREDICTION in frame else none
    text = (frame[text_column].fillna("").astype(str).tolist()
            if text_column and text_column in frame else none)
    return {k: (p, t) for k, p, t in zip(key, prediction, text)}


def ledger_rows(labels: Labels, id_columns: Sequence[str], text_column: str | None,
                model_name: str, labeller: str, labelled_at: str) -> list[dict[str, Any]]:
    """The labelled rows as the labels ledger keeps them (``textops.monitoring.ledger``): the
    text as tonight's data holds it (else as the file shows it), the design and provenance."""
    rows = []
    for key, (label, stratum, stratum_rows) in labels.by_key.items():
        given = labels.records.get(key, {})
        text = labels.texts.get(key, given.get(text_column) if text_column else None)
        sample_id = str(given.get("sample_id") or f"data-{(labels.data_sha256 or '')[:12]}")
        rows.append({
            "sample_id": sample_id, "row_key": key, "label": label,
            "text": None if text is None or text != text else str(text),
            "ids": json.dumps({c: str(given.get(c, "")) for c in id_columns} if id_columns
                              else {"row": str(given.get("row", key))}, ensure_ascii=False),
            "model_name": model_name, "model_version": str(given.get(MODEL_VERSION, "")),
            "prediction": str(labels.predictions.get(key, given.get(PREDICTION, ""))),
            "probability": _number(given.get(PROBABILITY)), "stratum": stratum,
            "stratum_rows": stratum_rows,
            "inclusion_probability": _number(given.get("inclusion_probability")),
            "weight": _number(given.get("weight")), "data_sha256": labels.data_sha256,
            "night": sample_id[:10] if NIGHT.match(sample_id) else labelled_at[:10],
            "labeller": labeller, "labelled_at": labelled_at})
    return rows


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def same_value(a: Any, b: Any) -> bool:
    """Equal once re-saving by a spreadsheet is undone: whitespace runs (CRLF) and case (a
    spreadsheet writes TRUE for True)."""
    return " ".join(str(a).split()).casefold() == " ".join(str(b).split()).casefold()


def _one_hash(frame: pd.DataFrame) -> str | None:
    if "data_sha256" not in frame:
        return None
    hashes = {h for h in frame["data_sha256"].astype(str).str.strip() if h and h != "nan"}
    if len(hashes) > 1:
        raise ValueError(f"the labels file mixes {len(hashes)} samples (data_sha256 differs); "
                         f"give one night's file at a time")
    return hashes.pop() if hashes else None
