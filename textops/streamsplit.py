"""The train / validation / test split of a labelled table of any size, in bounded memory.

train.py never holds its whole input. It streams the table in chunks, twice:

1. the census: each chunk cleaned and filtered as ``data.prepare_labelled`` does, each row's
   partition decided by its stable text hash (``data.base_partitions``), the rows counted per
   label spelling and partition, and the few rows per class and partition with the smallest and
   largest hashes kept, which is all the tiny-class guarantee (``data.class_moves``) can move;
2. the collection: with every count known, ``data.sample_plan`` draws the same seeded per-class
   samples that ``data.Split.bounded`` draws in memory (same generator, same quotas), and the
   rows it picked are kept as they pass.

So the split is, row for row and in the same order, the one ``data.split_dataset`` +
``Split.bounded`` make of the whole table in memory, at any size; memory holds the samples
(``max_fit_rows`` + ``max_test_rows``) and a tally per class, never a row per input row. Once the
model is fitted, :func:`test_chunks` streams the test rows a third time, to score all of them.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from textops import data, testscore
from textops.errors import BadInputError
from textops.inputs import Input

EXTREMES = 4  # rows kept per class, partition and end: class_moves moves at most 3 rows a class


@dataclass(frozen=True)
class LabelledTable:
    """A labelled table to stream: its input, columns and split rule, and the rows a labels
    ledger adds after the table's (``extra``, read last) and takes out of it (``left_out``:
    the texts it labels)."""

    source: Input | str  # a location string: read by Spark (sparktrain), never streamed here
    text: str
    label: str
    seed: int
    test_size: float
    validation_size: float
    side: tuple[str, ...] = ()
    chunk_size: int = 50_000
    extra: pd.DataFrame | None = None
    left_out: frozenset[str] = frozenset()


@dataclass
class Chunk:
    """The usable rows of one chunk: cleaned texts, stripped label spellings, side columns."""

    start: int  # ordinal of its first usable row in the whole table
    texts: pd.Series
    spellings: np.ndarray
    side: pd.DataFrame | None
    read: int = 0
    blank: int = 0
    missing: int = 0
    left_out: int = 0

    def frame(self, text: str, rows: np.ndarray) -> pd.DataFrame:
        """The model input of ``rows`` (positions in the chunk): the text, then side columns."""
        frame = pd.DataFrame({text: self.texts.to_numpy(dtype=object)[rows]})
        if self.side is not None:
            frame = pd.concat([frame, self.side.iloc[rows].reset_index(drop=True)], axis=1)
        return frame


@dataclass(frozen=True)
class Census:
    """What the first pass counted: the rows read, kept and dropped, the label spellings'
    rule, the rows per partition and class, and the tiny-class moves (usable-row ordinal ->
    partition)."""

    rows_read: int
    usable: int
    dropped_blank_text: int
    dropped_missing_label: int
    left_out: int
    mapping: dict[str, str]
    label_merges: dict[str, list[str]]
    counts: dict[str, dict[str, int]]
    moves: dict[int, str] = field(default_factory=dict)
    by_frequency: tuple[tuple[str, int], ...] = ()  # classes, most frequent first

    @property
    def class_counts(self) -> dict[str, int]:
        """Rows per class, by class name (as ``LabelledData.class_counts``)."""
        return dict(sorted(self.by_frequency))

    @property
    def sizes(self) -> dict[str, int]:
        return {part: sum(self.counts[part].values()) for part in data.PARTS}

    def frequencies(self) -> pd.Series:
        """Rows per class, most frequent first (ties: first seen), as ``value_counts`` gives."""
        return pd.Series(dict(self.by_frequency), dtype="int64")


def chunks(table: LabelledTable) -> Iterator[Chunk]:
    """The table's usable rows, chunk by chunk (the ledger's rows last, as one chunk)."""
    columns = [table.text, table.label, *table.side]
    extra = [] if table.extra is None or not len(table.extra) else [table.extra]
    start, n_table = 0, None
    for i, frame in enumerate(itertools.chain(table.source.chunks(table.chunk_size, columns),
                                              [None], extra)):
        if frame is None:  # the end of the table: what follows is the ledger's
            n_table = i
            continue
        text = data.clean_text(frame[table.text])
        left_out = 0
        if table.left_out and n_table is None:
            drop = text.isin(table.left_out).to_numpy()
            left_out = int(drop.sum())
            frame, text = frame[~drop], text[~drop]
        keep, blank, missing = data.usable_rows(text, frame[table.label])
        labels = frame[table.label][keep].astype(str).str.strip()
        yield Chunk(start, text[keep].reset_index(drop=True), labels.to_numpy(dtype=object),
                    frame.loc[keep, list(table.side)].reset_index(drop=True) if table.side else None,
                    len(frame) + left_out, int(blank.sum()), int(missing.sum()), left_out)
        start += int(keep.sum())


def extremes(rows: pd.DataFrame) -> pd.DataFrame:
    """Per spelling and partition, the EXTREMES rows of smallest and of largest fraction (ties:
    first row), which are all the candidates the tiny-class moves pick from."""
    keys = ["spelling", "part"]
    low = rows.sort_values(["fraction", "ordinal"], kind="stable").groupby(keys, sort=False).head(EXTREMES)
    high = rows.sort_values(["fraction", "ordinal"], ascending=[False, True],
                            kind="stable").groupby(keys, sort=False).head(EXTREMES)
    return pd.concat([low, high]).drop_duplicates("ordinal")


def take_census(table: LabelledTable) -> Census:
    """The first pass (see the module's docstring); BadInputError when nothing is usable."""
    tally: dict[tuple[str, str], int] = {}
    seen: dict[str, int] = {}  # spelling -> rows, in the order first seen
    candidates = pd.DataFrame({"spelling": [], "part": [], "fraction": [], "ordinal": []})
    read = blank = missing = left_out = 0
    for chunk in chunks(table):
        read, blank, missing = read + chunk.read, blank + chunk.blank, missing + chunk.missing
        left_out += chunk.left_out
        if not len(chunk.texts):
            continue
        fractions = data.stable_fractions(chunk.texts, table.seed)
        rows = pd.DataFrame({"spelling": chunk.spellings,
                             "part": data.base_partitions(fractions, table.test_size,
                                                          table.validation_size),
                             "fraction": fractions,
                             "ordinal": np.arange(chunk.start, chunk.start + len(fractions))})
        for (spelling, part), n in rows.groupby(["spelling", "part"], sort=False).size().items():
            tally[spelling, part] = tally.get((spelling, part), 0) + int(n)
        for spelling in pd.unique(chunk.spellings):
            seen.setdefault(spelling, 0)
        for spelling, n in rows["spelling"].value_counts(sort=False).items():
            seen[spelling] += int(n)
        candidates = extremes(pd.concat([candidates, rows], ignore_index=True)
                               if len(candidates) else rows)
    return census_from(tally, seen, candidates, table, read, blank, missing, left_out)


def census_from(tally: Mapping[tuple[str, str], int], seen: Mapping[str, int],
                candidates: pd.DataFrame, table: LabelledTable, read: int, blank: int,
                missing: int, left_out: int) -> Census:
    """The census from what a pass counted (any engine): rows per (spelling, partition), rows
    per spelling in the order first seen, the candidate rows of the tiny-class moves (spelling,
    part, fraction, ordinal: any increasing row key), and the rows read and dropped;
    BadInputError when nothing is usable."""
    usable = sum(tally.values())
    where = getattr(table.source, "path", table.source)
    if read == 0:
        raise BadInputError(f"{where} has a header but no data rows")
    if usable == 0:
        raise BadInputError(
            f"{where} has no usable rows: every row has an empty {table.text!r} or a missing "
            f"{table.label!r}; check --text-column and --label-column")
    spellings = pd.Series(dict(seen), dtype="int64").sort_values(ascending=False, kind="stable")
    mapping, merges = data.label_mapping(spellings)
    counts: dict[str, dict[str, int]] = {part: {} for part in data.PARTS}
    for (spelling, part), n in tally.items():
        label = mapping[spelling]
        counts[part][label] = counts[part].get(label, 0) + n
    by_class: dict[str, int] = {}
    for spelling, n in spellings.items():
        by_class[mapping[spelling]] = by_class.get(mapping[spelling], 0) + int(n)
    frequency = tuple(sorted(by_class.items(), key=lambda item: -item[1]))  # stable: first seen
    moves = _moves(candidates, mapping, counts, table.validation_size > 0)
    return Census(read, usable, blank, missing, left_out, mapping, merges, counts, moves, frequency)


def _moves(candidates: pd.DataFrame, mapping: Mapping[str, str],
           counts: dict[str, dict[str, int]], validation: bool) -> dict[int, str]:
    """The tiny-class moves, from the candidates; ``counts`` updated to match."""
    if not len(candidates):
        return {}
    candidates = candidates.assign(label=candidates["spelling"].map(mapping)).sort_values("ordinal")
    moves: dict[int, str] = {}
    for label, rows in candidates.groupby("label", sort=True):
        held = {part: counts[part].get(label, 0) for part in data.PARTS}
        needed = (["test", "validation"] if validation else ["test"]) + ["train"]
        if all(held[part] > 0 for part in needed):
            continue
        parts = rows["part"].to_numpy(dtype=object)
        for ordinal, target in data.class_moves(rows["ordinal"].to_numpy(dtype=np.int64), parts,
                                                rows["fraction"].to_numpy(), held, validation):
            source = parts[rows["ordinal"].to_numpy() == ordinal][0]
            counts[source][label] -= 1
            counts[target][label] = counts[target].get(label, 0) + 1
            moves[ordinal] = target
    return moves


def labelled_chunks(table: LabelledTable, census: Census
                    ) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray]]:
    """The table again, chunk by chunk, with each row's class and partition (the census's
    moves applied)."""
    for chunk in chunks(table):
        if not len(chunk.texts):
            continue
        labels = pd.Series(chunk.spellings).map(census.mapping).to_numpy(dtype=object)
        parts = data.base_partitions(data.stable_fractions(chunk.texts, table.seed),
                                     table.test_size, table.validation_size)
        end = chunk.start + len(parts)
        for ordinal, target in census.moves.items():
            if chunk.start <= ordinal < end:
                parts[ordinal - chunk.start] = target
        yield chunk, labels, parts


def collect(table: LabelledTable, census: Census,
            plan: Mapping[str, Mapping[str, np.ndarray] | None]) -> data.Split:
    """The second pass: the rows ``plan`` (see ``data.sample_plan``) picks of each partition,
    in input order, as a Split."""
    seen: dict[str, dict[str, int]] = {part: {} for part in data.PARTS}
    kept: dict[str, list[tuple[pd.DataFrame, np.ndarray]]] = {part: [] for part in data.PARTS}
    for chunk, labels, parts in labelled_chunks(table, census):
        for part in data.PARTS:
            rows = np.flatnonzero(parts == part)
            if not len(rows):
                continue
            keep = rows if plan[part] is None else rows[_picked(labels[rows], seen[part],
                                                                plan[part])]
            for label, n in zip(*np.unique(labels[rows].astype(str), return_counts=True)):
                seen[part][label] = seen[part].get(label, 0) + int(n)
            if len(keep):
                kept[part].append((chunk.frame(table.text, keep), labels[keep]))
    split = {part: _joined(kept[part], table) for part in data.PARTS}
    if table.validation_size <= 0:
        split["validation"] = (None, None)
    return data.Split(*split["train"], *split["validation"], *split["test"])


def _picked(labels: np.ndarray, seen: Mapping[str, int],
            picks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which of these rows (of one partition, in order) the plan picked: a row's ordinal in its
    class is the rows of that class seen before plus its rank here."""
    labels = labels.astype(str)
    hit = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        chosen = picks.get(label)
        if chosen is None or not len(chosen):
            continue
        ordinals = seen.get(label, 0) + np.arange(len(where))
        at = np.minimum(np.searchsorted(chosen, ordinals), len(chosen) - 1)
        hit[where] = chosen[at] == ordinals
    return hit


def _joined(pieces: list[tuple[pd.DataFrame, np.ndarray]],
            table: LabelledTable) -> tuple[pd.DataFrame, pd.Series]:
    if not pieces:
        empty = pd.DataFrame({table.text: pd.Series([], dtype=object)})
        for column in table.side:
            empty[column] = pd.Series([], dtype=object)
        return empty, pd.Series([], dtype=object)
    x = pd.concat([frame for frame, _ in pieces], ignore_index=True)
    y = pd.Series(np.concatenate([labels for _, labels in pieces]).astype(object))
    return x, y


def test_chunks(table: LabelledTable, census: Census) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The third pass: every test row, chunk by chunk (model input, true labels)."""
    for chunk, labels, parts in labelled_chunks(table, census):
        rows = np.flatnonzero(parts == "test")
        if len(rows):
            yield chunk.frame(table.text, rows), labels[rows]


@dataclass
class TestRows:
    """A streamed table's census, its samples and every test row, for the local engine (the
    same interface as ``sparktrain.SparkSplit``)."""

    __test__ = False  # not a pytest class

    table: LabelledTable
    census: Census

    def sample(self, plan: Mapping[str, Mapping[str, np.ndarray] | None]) -> data.Split:
        return collect(self.table, self.census, plan)

    def score(self, pipeline: Any, temperature: float) -> tuple[Any, dict[str, float], int]:
        """Every test row, streamed once more, scored in chunks into running sums (in one
        worker process per core when there are more than two chunks of them); the input must
        not have changed since the census (the rows scored are the rows it counted)."""
        many = self.census.sizes["test"] > 2 * self.table.chunk_size  # worth starting workers
        result = testscore.score_test_rows(pipeline, test_chunks(self.table, self.census),
                                           temperature, (os.cpu_count() or 1) if many else 1)
        self.table.source.require_unchanged()
        return result

    def close(self) -> None:
        """Nothing to release (a Spark session is, in the Spark engine)."""
