"""Reading the monitored data once, in chunks, into a bounded summary: counts per model version,
confusion counts of labelled rows, the running sums that estimate performance without labels,
and fixed-size uniform samples of confidences, text lengths and texts. Memory does not grow with
the file."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from textops.errors import BadInputError
from textops.columns import MODEL_VERSION, PREDICTION, PROBA_PREFIX, PROBABILITY, Columns
from textops.data import clean_text, is_blank
from textops.monitoring.classmix import KeyedProbaSample, ProbaSample
from textops.monitoring.estimation import EstimateSums
from textops.monitoring.profile import Threshold
from textops.monitoring.sampling import Reservoir, sample_maker  # noqa: F401 - Reservoir re-exported
from textops.monitoring.sidedrift import SideSums
from textops.monitoring.slices import SliceSums
from textprep import top_class

SAMPLE_VALUES = 50_000  # confidences / text lengths kept for the KS tests
SAMPLE_TEXTS = 5_000  # texts kept for the out-of-vocabulary rate and the domain classifier
# each kept text is cut there (the default TEXTOPS_PREPROCESSING_MAX_CHARS, beyond which the
# model reads nothing either): one 100 MB cell must not cost gigabytes in the word checks
SAMPLE_TEXT_CHARS = 100_000

# Scores a frame of non-blank texts: its class probabilities (columns: the model's classes).
Scorer = Callable[[pd.Series], pd.DataFrame]  # texts -> class probabilities, indexed alike


@dataclass(frozen=True)
class StreamSpec:
    """What the input holds and how to read it."""

    roles: Columns  # what each input column is for (text, label, ids)
    has_text: bool
    has_labels: bool
    recorded: bool  # a predictions file (prediction, model_version[, probability])
    version: str | None = None  # the version scoring raw texts (recorded: None)
    seed: int = 0
    proba_classes: tuple[str, ...] = ()  # recorded with predict.py --proba all: their classes

    def columns(self, header: Iterable[str]) -> list[str]:
        wanted = list(self.roles.ids) + ([self.roles.text] if self.has_text else []) + \
            ([self.roles.label] if self.has_labels else []) + list(self.roles.slices) + \
            list(self.roles.features)
        if self.recorded:
            wanted += [PREDICTION, MODEL_VERSION, PROBABILITY]
            wanted += [PROBA_PREFIX + c for c in self.proba_classes]
        present = set(header)
        return [c for c in dict.fromkeys(wanted) if c in present]


def _no_threshold(version: str) -> None:
    """No version has an ATC threshold (the default)."""
    return None


@dataclass
class StreamTotals:
    """Everything kept from the stream: counts, confusion tallies and bounded samples."""

    seed: int = 0
    rows: int = 0
    scored: int = 0
    skipped: int = 0
    unlabelled: int = 0
    versions: Counter = field(default_factory=Counter)  # rows per model version
    predicted: dict[str, Counter] = field(default_factory=dict)  # per version
    tallies: dict[str, Counter] = field(default_factory=dict)  # per version: (true, predicted)
    confidence: dict[str, Reservoir] = field(default_factory=dict)  # per version
    expected: dict[str, EstimateSums] = field(default_factory=dict)  # per version: every row
    expected_labelled: dict[str, EstimateSums] = field(default_factory=dict)  # rows with a label
    proba: dict[str, ProbaSample] = field(default_factory=dict)  # per version: for the class mix
    lengths: Reservoir = None  # type: ignore[assignment]
    texts: Reservoir = None  # type: ignore[assignment]
    # each version's ATC threshold (from its reference profile), asked once per version
    threshold_of: Callable[[str], Threshold | None] = _no_threshold
    collector: Any = None  # labelling.Collector: the rows to label, the labels that came back
    slices: SliceSums | None = None  # --slice-by: sums per value of the slice column
    side: SideSums | None = None  # a model with side columns: their counts and samples
    part: int | None = None  # one part of many (a Spark partition): samples that merge

    def __post_init__(self) -> None:
        self.lengths = self.lengths or self.sample(SAMPLE_VALUES, self.seed + 1)
        self.texts = self.texts or self.sample(SAMPLE_TEXTS, self.seed + 2)

    def sample(self, size: int, seed: int) -> Any:
        """A seeded uniform sample of the stream (a part's: one that merges)."""
        return sample_maker(self.part)(size, seed)

    def proba_sample(self) -> ProbaSample | KeyedProbaSample:
        return ProbaSample(seed=self.seed + 3) if self.part is None else \
            KeyedProbaSample(seed=(self.seed + 3, self.part))

    def merge(self, other: "StreamTotals") -> None:
        """Add another part's totals (both folded with ``part`` set): counts and sums add up,
        samples merge into uniform samples of both parts."""
        for name in ("rows", "scored", "skipped", "unlabelled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.versions.update(other.versions)
        for mine, theirs in ((self.predicted, other.predicted), (self.tallies, other.tallies)):
            for version, counts in theirs.items():
                mine.setdefault(version, Counter()).update(counts)
        for mine, theirs in ((self.confidence, other.confidence), (self.proba, other.proba)):
            for version, sample in theirs.items():
                if version in mine:
                    mine[version].merge(sample)
                else:
                    mine[version] = sample
        for mine, theirs in ((self.expected, other.expected),
                             (self.expected_labelled, other.expected_labelled)):
            for version, sums in theirs.items():
                if version in mine:
                    mine[version].combine(sums)
                else:
                    mine[version] = sums
        self.lengths.merge(other.lengths)
        self.texts.merge(other.texts)
        for mine, theirs in ((self.collector, other.collector), (self.slices, other.slices),
                             (self.side, other.side)):
            if mine is not None and theirs is not None:
                mine.merge(theirs)

    def detached(self) -> "StreamTotals":
        """These totals without the callables only the process that folded them has (to be
        pickled and sent on; the merging side gives them back)."""
        self.threshold_of = _no_threshold
        if self.collector is not None:
            self.collector.edges_for = None
        return self

    @property
    def main_version(self) -> str:
        """The version behind most rows (the model-dependent drift checks use its rows)."""
        return self.versions.most_common(1)[0][0]

    def confidences(self, version: str) -> list[float]:
        reservoir = self.confidence.get(version)
        return reservoir.items if reservoir is not None else []


def proba_classes(header: Iterable[str]) -> tuple[str, ...]:
    """The classes of a predictions file's ``proba_<class>`` columns (predict.py --proba all)."""
    return tuple(c[len(PROBA_PREFIX):] for c in header
                 if c.startswith(PROBA_PREFIX) and len(c) > len(PROBA_PREFIX))


def probabilities(column: pd.Series) -> np.ndarray:
    """A recorded probability column as floats (empty cells: NaN). Anything else is refused
    (BadInputError): a text, or a number outside [0, 1], means the file is not predict.py's
    output (or was edited), and an estimate made from it would be garbage."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    present = column.notna().to_numpy() & (column.astype(str).str.strip() != "").to_numpy()
    bad = present & ~((values >= 0.0) & (values <= 1.0))  # NaN from a text fails both
    if bad.any():
        first = column[bad].iloc[0]
        raise BadInputError(
            f"column {column.name!r} holds {int(bad.sum())} value(s) that are not probabilities "
            f"in [0, 1] (first: {str(first)[:40]!r}); monitor predict.py's own output, or fix "
            f"the column")
    return values


@dataclass
class _Predicted:
    usable: np.ndarray  # rows with a prediction (recorded) or a non-blank text
    labels: np.ndarray
    confidence: np.ndarray
    versions: np.ndarray
    proba: np.ndarray | None = None  # whole probability vectors, when known
    classes: tuple[str, ...] = ()


def _predictions(chunk: pd.DataFrame, spec: StreamSpec, texts: pd.Series | None,
                 blank: np.ndarray | None, score: Scorer | None) -> _Predicted:
    """The predictions of one chunk's usable rows: read (recorded) or scored."""
    if spec.recorded:
        usable = chunk[PREDICTION].notna().to_numpy()
        kept = chunk[usable]
        confidence = (probabilities(kept[PROBABILITY]) if PROBABILITY in kept
                      else np.full(len(kept), np.nan))
        versions = kept[MODEL_VERSION].fillna("").astype(str).str.strip().to_numpy()
        proba = None
        if spec.proba_classes:
            proba = np.column_stack([probabilities(kept[PROBA_PREFIX + c])
                                     for c in spec.proba_classes])
        return _Predicted(usable, kept[PREDICTION].astype(str).to_numpy(), confidence,
                          versions, proba, spec.proba_classes)
    usable = ~blank
    kept = texts[usable]
    if len(kept):
        frame = score(kept)
        proba = frame.to_numpy(dtype=float)
        classes = tuple(str(c) for c in frame.columns)
        labels, confidence = top_class(proba, classes)
    else:
        proba, classes = None, ()
        labels, confidence = np.array([], dtype=str), np.array([])
    return _Predicted(usable, labels, confidence,
                      np.full(len(kept), str(spec.version), dtype=object), proba, classes)


def _add_expected(table: dict[str, EstimateSums], version: str, found: _Predicted,
                  mask: np.ndarray, threshold_of: Callable[[str], Threshold | None]) -> None:
    proba = found.proba[mask] if found.proba is not None else None
    if version not in table:
        table[version] = EstimateSums(threshold=threshold_of(version))
    table[version].add(found.labels[mask], found.confidence[mask], proba, found.classes or None)


def add_chunk(seen: StreamTotals, chunk: pd.DataFrame, spec: StreamSpec, score: Scorer | None) -> None:
    """Fold one chunk into ``seen``."""
    seen.rows += len(chunk)
    texts = clean_text(chunk[spec.roles.text]) if spec.has_text else None
    blank = is_blank(texts) if spec.has_text else None
    found = _predictions(chunk, spec, texts, blank, score)
    usable, predicted, confidence, versions = (found.usable, found.labels, found.confidence,
                                               found.versions)
    seen.skipped += int((~usable).sum())
    chunk = chunk[usable]
    if not len(chunk):
        return
    seen.scored += len(chunk)
    seen.versions.update(versions)
    if seen.side is not None:
        seen.side.add(chunk)
    slice_values = None
    if seen.slices is not None:
        slice_values = seen.slices.values_of(chunk[spec.roles.slices[0]])
        seen.slices.add(slice_values, versions, predicted, confidence, found.proba,
                        found.classes, seen.threshold_of)
    if seen.collector is not None:
        seen.collector.add(chunk, predicted, confidence, versions, slice_values)
    labelled = (chunk[spec.roles.label].notna().to_numpy() if spec.has_labels
                else np.zeros(len(chunk), dtype=bool))
    for v in np.unique(versions):  # model-dependent statistics are kept per version
        mask = versions == v
        seen.predicted.setdefault(str(v), Counter()).update(predicted[mask])
        values = confidence[mask]
        if np.isfinite(values).any():
            seen.confidence.setdefault(str(v), seen.sample(SAMPLE_VALUES, seen.seed)).add(
                values[np.isfinite(values)].tolist())
        _add_expected(seen.expected, str(v), found, mask, seen.threshold_of)
        if found.proba is not None:
            seen.proba.setdefault(str(v), seen.proba_sample()).add(
                found.proba[mask], found.classes)
        if spec.has_labels:
            _add_expected(seen.expected_labelled, str(v), found, mask & labelled, seen.threshold_of)
    if spec.has_text:
        kept = texts[usable]
        seen.lengths.add(kept.str.len().tolist())
        seen.texts.add(kept.str.slice(0, SAMPLE_TEXT_CHARS).tolist())
    if spec.has_labels:
        labels = chunk[spec.roles.label]
        seen.unlabelled += int((~labelled).sum())
        truth = labels[labelled].astype(str).str.strip().to_numpy()
        if slice_values is not None:
            seen.slices.add_labelled(slice_values[labelled], truth, predicted[labelled])
        for v in np.unique(versions[labelled]):
            mask = versions[labelled] == v
            seen.tallies.setdefault(str(v), Counter()).update(
                zip(truth[mask], predicted[labelled][mask]))


def _totals(spec: StreamSpec, threshold_of: Callable[[str], Threshold | None] | None,
            collector: Any, side: SideSums | None = None, part: int | None = None,
            admitted: frozenset[str] | None = None) -> StreamTotals:
    seen = StreamTotals(seed=spec.seed, collector=collector, part=part, side=side,
                        slices=SliceSums(admitted=admitted) if spec.roles.slices else None)
    if threshold_of is not None:
        seen.threshold_of = threshold_of
    return seen


def accumulate(chunks: Iterable[pd.DataFrame], spec: StreamSpec, score: Scorer | None,
               threshold_of: Callable[[str], Threshold | None] | None = None,
               collector: Any = None, side: SideSums | None = None, part: int | None = None,
               admitted: frozenset[str] | None = None) -> StreamTotals:
    """Read every chunk once into a bounded :class:`StreamTotals` (``score``: for raw texts;
    ``threshold_of``: a version's ATC threshold, asked when the version first appears;
    ``collector``: keeps the rows to label; ``side``: the side columns' sums; ``part``: one
    part of many, to :meth:`StreamTotals.merge`; ``admitted``: the slice values kept apart)."""
    seen = _totals(spec, threshold_of, collector, side, part, admitted)
    for chunk in chunks:
        add_chunk(seen, chunk, spec, score)
    return seen


def accumulate_scored(pairs: Iterable[tuple[pd.DataFrame, pd.DataFrame]], spec: StreamSpec,
                      threshold_of: Callable[[str], Threshold | None] | None = None,
                      collector: Any = None, side: SideSums | None = None,
                     part: int | None = None, admitted: frozenset[str] | None = None
                     ) -> StreamTotals:
    """As :func:`accumulate`, for chunks already scored (e.g. by worker processes): each chunk
    with its class probabilities, indexed like the chunk."""
    seen = _totals(spec, threshold_of, collector, side, part, admitted)
    for chunk, proba in pairs:
        add_chunk(seen, chunk, spec, lambda texts: proba.loc[texts.index])
    return seen
