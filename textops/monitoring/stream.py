"""Reading the monitored data once, in chunks, into a bounded summary: counts per model version,
confusion counts of labelled rows, and fixed-size uniform samples of confidences, text lengths
and texts. Memory does not grow with the file."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from textops.data import clean_text, is_blank

SAMPLE_VALUES = 50_000  # confidences / text lengths kept for the KS tests
SAMPLE_TEXTS = 5_000  # texts kept for the out-of-vocabulary rate and the domain classifier

# Scores a frame of non-blank texts: (predicted labels, confidence of each).
Scorer = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream of chunks (algorithm R, seeded):
    memory stays at ``size`` items whatever the stream's length."""

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.seen = 0
        self.items: list[Any] = []
        self._rng = np.random.default_rng(seed)

    def add(self, values: Iterable[Any]) -> None:
        values = list(values)
        room = max(self.size - len(self.items), 0)
        self.items.extend(values[:room])
        self.seen += min(room, len(values))
        rest = values[room:]
        if not rest or self.size == 0:
            self.seen += len(rest)
            return
        positions = self.seen + np.arange(1, len(rest) + 1)  # 1-based stream positions
        slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
        for value, slot in zip(rest, slots):
            if slot < self.size:
                self.items[slot] = value
        self.seen += len(rest)


@dataclass(frozen=True)
class StreamSpec:
    """What the input holds and how to read it."""

    text_column: str
    label_column: str
    has_text: bool
    has_labels: bool
    recorded: bool  # a predictions file (prediction, model_version[, probability])
    version: str | None = None  # the version scoring raw texts (recorded: None)
    seed: int = 0

    def columns(self, header: Iterable[str]) -> list[str]:
        wanted = ([self.text_column] if self.has_text else []) + \
            ([self.label_column] if self.has_labels else [])
        if self.recorded:
            wanted += ["prediction", "model_version", "probability"]
        present = set(header)
        return [c for c in dict.fromkeys(wanted) if c in present]


@dataclass
class Seen:
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
    lengths: Reservoir = None  # type: ignore[assignment]
    texts: Reservoir = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.lengths = self.lengths or Reservoir(SAMPLE_VALUES, self.seed + 1)
        self.texts = self.texts or Reservoir(SAMPLE_TEXTS, self.seed + 2)

    @property
    def main_version(self) -> str:
        """The version behind most rows (the model-dependent drift checks use its rows)."""
        return self.versions.most_common(1)[0][0]

    def confidences(self, version: str) -> list[float]:
        reservoir = self.confidence.get(version)
        return reservoir.items if reservoir is not None else []


def _predictions(chunk: pd.DataFrame, spec: StreamSpec, blank: np.ndarray | None,
                 score: Scorer | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(usable rows mask, predicted labels, confidences, versions) of one chunk."""
    if spec.recorded:
        usable = chunk["prediction"].notna().to_numpy()
        kept = chunk[usable]
        confidence = (pd.to_numeric(kept["probability"], errors="coerce").to_numpy()
                      if "probability" in kept else np.array([]))
        versions = kept["model_version"].fillna("").astype(str).str.strip().to_numpy()
        return usable, kept["prediction"].astype(str).to_numpy(), confidence, versions
    usable = ~blank
    kept = chunk[usable]
    if len(kept):
        predicted, confidence = score(kept[[spec.text_column]])
        predicted = np.asarray(predicted).astype(str)
    else:
        predicted, confidence = np.array([], dtype=str), np.array([])
    return usable, predicted, confidence, np.full(len(kept), str(spec.version), dtype=object)


def add_chunk(seen: Seen, chunk: pd.DataFrame, spec: StreamSpec, score: Scorer | None) -> None:
    """Fold one chunk into ``seen``."""
    seen.rows += len(chunk)
    texts = clean_text(chunk[spec.text_column]) if spec.has_text else None
    blank = is_blank(texts) if spec.has_text else None
    usable, predicted, confidence, versions = _predictions(chunk, spec, blank, score)
    seen.skipped += int((~usable).sum())
    chunk = chunk[usable]
    if not len(chunk):
        return
    seen.scored += len(chunk)
    seen.versions.update(versions)
    for v in np.unique(versions):  # model-dependent statistics are kept per version
        mask = versions == v
        seen.predicted.setdefault(str(v), Counter()).update(predicted[mask])
        if len(confidence):
            values = confidence[mask]
            seen.confidence.setdefault(str(v), Reservoir(SAMPLE_VALUES, seen.seed)).add(
                values[np.isfinite(values)].tolist())
    if spec.has_text:
        kept = texts[usable]
        seen.lengths.add(kept.str.len().tolist())
        seen.texts.add(kept.tolist())
    if spec.has_labels:
        labels = chunk[spec.label_column]
        labelled = labels.notna().to_numpy()
        seen.unlabelled += int((~labelled).sum())
        truth = labels[labelled].astype(str).str.strip().to_numpy()
        for v in np.unique(versions[labelled]):
            mask = versions[labelled] == v
            seen.tallies.setdefault(str(v), Counter()).update(
                zip(truth[mask], predicted[labelled][mask]))


def accumulate(chunks: Iterable[pd.DataFrame], spec: StreamSpec, score: Scorer | None) -> Seen:
    """Read every chunk once into a bounded :class:`Seen` (``score``: for raw texts)."""
    seen = Seen(seed=spec.seed)
    for chunk in chunks:
        add_chunk(seen, chunk, spec, score)
    return seen


def accumulate_scored(pairs: Iterable[tuple[pd.DataFrame, tuple[pd.Series, pd.Series]]],
                      spec: StreamSpec) -> Seen:
    """As :func:`accumulate`, for chunks already scored (e.g. by worker processes): each chunk
    with its predicted labels and confidences, indexed like the chunk."""
    seen = Seen(seed=spec.seed)
    for chunk, (labels, confidence) in pairs:
        add_chunk(seen, chunk, spec,
                  lambda frame: (labels.loc[frame.index].to_numpy(),
                                 confidence.loc[frame.index].to_numpy()))
    return seen
