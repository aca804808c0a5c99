"""Validating and splitting labelled text data (reading it is ``textops.inputs``'s job): the
blank-text rule, the label-spelling rule (labels spelled ``True``/``TRUE``/``true`` are one
class), the stable split by text hash. Everything here either copes or raises
:class:`BadInputError` with one line that names the problem and the fix.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from textops.errors import BadInputError
from textops.inputs import require_columns

log = logging.getLogger(__name__)

PARTS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------------
# Labels and texts
# --------------------------------------------------------------------------------------------
def clean_text(series: pd.Series) -> pd.Series:
    """Missing text becomes an empty string; everything is a ``str``."""
    return series.fillna("").astype(str)


def is_blank(series: pd.Series) -> np.ndarray:
    """The blank-text rule, everywhere: a text that is missing or only white space is blank.
    Blank rows are never trained on and never scored (their prediction stays empty)."""
    return (clean_text(series).str.strip() == "").to_numpy()


def spelled_as(classes: Sequence[Any]) -> Callable[[Any], str]:
    """The label-spelling rule against a model's classes: a label that differs from a class
    only in case (and surrounding spaces) is that class (``TRUE`` and ``true`` are ``True``, as
    :func:`canonical_labels` merges them at training); any other label is kept as it is."""
    by_key = {str(c).strip().casefold(): str(c) for c in classes}

    def spell(label: Any) -> str:
        text = str(label)
        return by_key.get(text.strip().casefold(), text)

    return spell


def canonical_labels(labels: pd.Series) -> tuple[pd.Series, dict[str, list[str]]]:
    """Merge spellings that differ only in case or surrounding spaces (``True``/``TRUE``/``true``).

    Each group takes its most frequent spelling. Returns the new labels and the merges made
    (canonical spelling -> the other spellings), for logging.
    """
    stripped = labels.astype(str).str.strip()
    mapping, merges = label_mapping(stripped.value_counts())
    return stripped.map(mapping), merges


def label_mapping(counts: pd.Series) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The label-spelling rule on the counts of each stripped spelling, most frequent first
    (ties: first seen), as ``value_counts`` gives them: spelling -> canonical spelling, and the
    merges made (canonical -> the other spellings)."""
    by_key: dict[str, list[str]] = {}
    for spelling in counts.index:  # most frequent first
        by_key.setdefault(spelling.casefold(), []).append(spelling)
    mapping: dict[str, str] = {}
    merges: dict[str, list[str]] = {}
    for spellings in by_key.values():
        canonical = spellings[0]
        for spelling in spellings:
            mapping[spelling] = canonical
        if len(spellings) > 1:
            merges[canonical] = spellings[1:]
    return mapping, merges


def usable_rows(text: pd.Series, label: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows a training keeps (a text and a label), and the blank-text and missing-label
    rows it drops (a row with neither counts as blank)."""
    missing_label = (label.isna() | (label.astype(str).str.strip() == "")).to_numpy()
    blank = is_blank(text)
    return ~missing_label & ~blank, blank, missing_label & ~blank


@dataclass
class LabelledData:
    texts: pd.Series
    labels: pd.Series
    dropped_blank_text: int
    dropped_missing_label: int
    label_merges: dict[str, list[str]]
    side: pd.DataFrame | None = None  # the side columns of the kept rows (None: text only)

    @property
    def class_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.labels.value_counts().sort_index().items()}


def prepare_labelled(frame: pd.DataFrame, text_column: str, label_column: str,
                     path: Path, side_columns: tuple[str, ...] = ()) -> LabelledData:
    """Select, clean and validate the text and label columns of a training/monitoring table
    (and keep the ``side_columns`` of the rows kept, as they are)."""
    require_columns(frame.columns, {text_column: "--text-column", label_column: "--label-column"}, path)
    if len(frame) == 0:
        raise BadInputError(f"{path} has a header but no data rows")
    text = clean_text(frame[text_column])
    label = frame[label_column]
    keep, blank, missing_label = usable_rows(text, label)
    if not keep.any():
        raise BadInputError(
            f"{path} has no usable rows: every row has an empty {text_column!r} or a missing "
            f"{label_column!r}; check --text-column and --label-column"
        )
    labels, merges = canonical_labels(label[keep])
    return LabelledData(
        texts=text[keep].reset_index(drop=True),
        labels=labels.reset_index(drop=True),
        dropped_blank_text=int(blank.sum()),
        dropped_missing_label=int(missing_label.sum()),
        label_merges=merges,
        side=frame.loc[keep, list(side_columns)].reset_index(drop=True) if side_columns else None,
    )


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------
@dataclass
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_val: pd.DataFrame | None
    y_val: pd.Series | None
    x_test: pd.DataFrame
    y_test: pd.Series

    def training_rows(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Training + validation rows: what a refitted model (and the baseline) learns from."""
        if self.x_val is None:
            return self.x_train, np.asarray(self.y_train)
        return (pd.concat([self.x_train, self.x_val], ignore_index=True),
                np.concatenate([np.asarray(self.y_train), np.asarray(self.y_val)]))

    def bounded(self, limit: int, seed: int, test_limit: int = 0) -> "Split":
        """This split with its training and validation rows cut to about ``limit`` together,
        and its test rows to ``test_limit`` (seeded, per class, see ``sample_plan``); 0 keeps
        all."""
        parts = {"train": (self.x_train, self.y_train), "validation": (self.x_val, self.y_val),
                 "test": (self.x_test, self.y_test)}
        plan = sample_plan({part: {} if y is None else label_counts(y)
                            for part, (_, y) in parts.items()}, limit, seed, test_limit)
        if all(picks is None for picks in plan.values()):
            return self
        cut = {}
        for part, (x, y) in parts.items():
            if y is None or plan[part] is None:
                cut[part] = (x, y)
                continue
            keep = picked_positions(y, plan[part])
            cut[part] = (x.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True))
        return Split(*cut["train"], *cut["validation"], *cut["test"])

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.y_train),
            "validation": 0 if self.y_val is None else len(self.y_val),
            "test": len(self.y_test),
        }


def stratified_sample(labels: pd.Series | np.ndarray, size: int, seed: int,
                      floor: int = 3) -> np.ndarray:
    """Sorted positions of a seeded sample of about ``size`` rows in which every class keeps its
    share, and at least ``floor`` rows (all of them when it has fewer); all rows when there
    are no more than ``size``."""
    picks = stratified_picks(label_counts(labels), size, seed, floor)
    return np.arange(len(labels)) if picks is None else picked_positions(labels, picks)


def label_counts(labels: pd.Series | np.ndarray) -> dict[str, int]:
    """Rows per class (labels as strings)."""
    classes, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    return {str(c): int(k) for c, k in zip(classes, counts)}


def picked_positions(labels: pd.Series | np.ndarray, picks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sorted positions of the rows a plan picked (per class: the ordinals of its rows)."""
    labels = np.asarray(labels, dtype=object).astype(str)
    return np.sort(np.concatenate([np.flatnonzero(labels == label)[ordinals]
                                   for label, ordinals in picks.items()]))


def stratified_picks(counts: Mapping[str, int], size: int, seed: int,
                     floor: int = 3) -> dict[str, np.ndarray] | None:
    """:func:`stratified_sample` from the class counts alone: per class, the sorted ordinals
    (0 = its first row) of the rows drawn; None when there are no more than ``size`` rows.
    The same draws as on the rows themselves, so a streamed table gets the same sample."""
    n = sum(counts.values())
    if n <= size:
        return None
    rng = np.random.default_rng(seed)
    picks = {}
    for label in sorted(c for c, k in counts.items() if k > 0):
        count = int(counts[label])
        quota = min(count, max(floor, round(count * size / n)))
        picks[label] = np.sort(rng.choice(count, size=quota, replace=False))
    return picks


def sample_plan(counts: Mapping[str, Mapping[str, int]], limit: int, seed: int,
                test_limit: int = 0) -> dict[str, dict[str, np.ndarray] | None]:
    """What :meth:`Split.bounded` keeps of each part (per class, see :func:`stratified_picks`;
    None: all of it), from the class counts of each part (``counts[part][label]``)."""
    sizes = {part: sum(counts.get(part, {}).values()) for part in PARTS}
    total = sizes["train"] + sizes["validation"]
    share = limit / total if limit and total > limit else 1.0
    wanted = {"train": (sizes["train"] * share, 0), "validation": (sizes["validation"] * share, 1),
              "test": (test_limit or sizes["test"], 2)}
    plan: dict[str, dict[str, np.ndarray] | None] = {}
    for part, (size, salt) in wanted.items():
        plan[part] = None if size >= sizes[part] else stratified_picks(
            counts[part], max(1, round(size)), seed + salt)
    return plan


def validate_for_split(labels: pd.Series, label_column: str, test_size: float,
                       validation_size: float) -> None:
    """Fail early, with the fix, when a stratified train/validation/test split is impossible."""
    validate_class_counts(labels.value_counts(), label_column, test_size, validation_size)


def validate_class_counts(counts: pd.Series, label_column: str, test_size: float,
                          validation_size: float) -> None:
    """:func:`validate_for_split` on the rows per class (most frequent first)."""
    if not 0 < test_size < 1 or not 0 <= validation_size < 1 or test_size + validation_size >= 1:
        raise BadInputError(
            f"test size {test_size} and validation size {validation_size} must be fractions "
            f"whose sum is below 1"
        )
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "?"
        raise BadInputError(
            f"label column {label_column!r} has a single class ({only!r}); a classifier needs at "
            f"least two classes: check --label-column or add rows of the other classes"
        )
    needed = 3 if validation_size > 0 else 2
    rare = counts[counts < needed]
    if len(rare):
        shown = ", ".join(f"{k!r} ({v})" for k, v in rare.head(10).items())
        raise BadInputError(
            f"too few rows per class for a stratified split: {shown}; every class needs at least "
            f"{needed} rows: add rows or remove those classes"
        )
    n, k = int(counts.sum()), len(counts)
    if int(n * test_size) < k or (validation_size > 0 and int(n * validation_size) < k):
        raise BadInputError(
            f"{n} rows are too few to hold out every one of the {k} classes in the test/validation "
            f"split; add rows or raise the test/validation sizes (TEXTOPS_DATA_TEST_SIZE, "
            f"TEXTOPS_DATA_VALIDATION_SIZE)"
        )


def stable_fractions(texts: pd.Series, seed: int) -> np.ndarray:
    """A number in [0, 1) per row that depends only on the row's text and the seed."""
    salt, blake2b = f"{seed}\x1f".encode(), hashlib.blake2b
    values = texts.astype(str).tolist()  # a list: iterating an Arrow-backed column is slow
    return np.fromiter(
        (int.from_bytes(blake2b(salt + t.encode("utf-8", "surrogatepass"),
                                digest_size=8).digest(), "big") / 2.0**64
         for t in values),
        dtype=float, count=len(values),
    )


def base_partitions(fractions: np.ndarray, test_size: float,
                    validation_size: float) -> np.ndarray:
    """'test' / 'validation' / 'train' per row from its stable fraction alone."""
    return np.where(fractions < test_size, "test",
                    np.where(fractions < test_size + validation_size, "validation",
                             "train")).astype(object)


def assign_partitions(fractions: np.ndarray, labels: np.ndarray, test_size: float,
                      validation_size: float) -> np.ndarray:
    """'test' / 'validation' / 'train' per row from its stable fraction.

    A row's partition depends on its own text only, so it never moves when rows are added to the
    file, and duplicate texts always land together: a test row never reaches any registered
    model, and champion comparisons in later runs stay fair. Each class is guaranteed a row in
    every partition (taken by smallest fraction), which only matters for tiny classes.
    """
    part = base_partitions(fractions, test_size, validation_size)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        counts = {p: int((part[rows] == p).sum()) for p in PARTS}
        for row, target in class_moves(rows, part[rows], fractions[rows], counts,
                                       validation_size > 0):
            part[row] = target
    return part


def class_moves(rows: np.ndarray, parts: np.ndarray, fractions: np.ndarray,
                counts: Mapping[str, int], validation: bool) -> list[tuple[int, str]]:
    """The moves (row, partition) that give one class a row in every partition: the test and
    validation rows it lacks are taken by smallest fraction, a lacking training row by largest,
    from partitions that keep one. ``rows`` (in input order) may be only the few smallest and
    largest fractions of each partition (a streamed table keeps no more), ``counts`` are the
    class's rows per partition."""
    parts, counts, moves = parts.copy(), dict(counts), []
    for target in (["test", "validation"] if validation else ["test"]) + ["train"]:
        if counts.get(target, 0) > 0:
            continue
        donors = [i for i in range(len(rows)) if counts[parts[i]] > 1]
        if not donors:
            continue
        pick = min(donors, key=lambda i: fractions[i]) if target != "train" \
            else max(donors, key=lambda i: fractions[i])
        counts[parts[pick]] -= 1
        counts[target] = counts.get(target, 0) + 1
        parts[pick] = target
        moves.append((int(rows[pick]), target))
    return moves


def split_dataset(texts: pd.Series, labels: pd.Series, text_column: str, test_size: float,
                  validation_size: float, seed: int, side: pd.DataFrame | None = None) -> Split:
    """Train / validation / test split by a stable hash of each text (see assign_partitions).

    Shares follow ``test_size`` and ``validation_size`` per class up to hashing noise; row order
    inside each part follows the input. ``side``: columns kept beside the text in the
    ``x_*`` frames.
    """
    labels = pd.Series(np.asarray(labels, dtype=object)).reset_index(drop=True)
    texts = pd.Series(np.asarray(texts, dtype=object)).reset_index(drop=True)
    part = assign_partitions(stable_fractions(texts, seed), labels.to_numpy(), test_size,
                             validation_size)
    frame = pd.DataFrame({text_column: texts})
    if side is not None:  # side columns ride along; the split still depends on the text only
        frame = pd.concat([frame, side.reset_index(drop=True)], axis=1)

    def take(name: str):
        mask = part == name
        return frame[mask].reset_index(drop=True), labels[mask].reset_index(drop=True)

    x_train, y_train = take("train")
    x_test, y_test = take("test")
    x_val = y_val = None
    if validation_size > 0:
        x_val, y_val = take("validation")
    return Split(x_train, y_train, x_val, y_val, x_test, y_test)
