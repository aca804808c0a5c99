"""Column names, declared once: the roles of the input's columns (:class:`Columns`, resolved at
the entry point and carried in every job, like Evidently's column mapping) and the output
columns of predict.py (and of the pyfunc flavor, for the first three), which every module that
writes or reads a predictions file names from here. The model's own columns live in
``textprep`` (registered models import only that module)."""
from __future__ import annotations

from dataclasses import dataclass

from textprep import PREDICTION, PROBA_PREFIX, PROBABILITY

# the label column monitor.py and the rows-to-label files fall back to when the configured one
# is absent (without --label-column)
FALLBACK_LABEL = "label"


@dataclass(frozen=True, kw_only=True)
class Columns:
    """What each input column is for, by name."""

    text: str  # the text the model reads
    label: str  # the class label (train.py: required; monitor.py: when present)
    ids: tuple[str, ...] = ()  # identify a row: copied to predict.py's output, to_label, --labels
    features: tuple[str, ...] = ()  # side columns the model reads beside the text (none yet)
    slices: tuple[str, ...] = ()  # columns monitored slice by slice (none yet)

    @property
    def label_candidates(self) -> tuple[str, ...]:
        """The label column, then the fallback name (when they differ)."""
        return tuple(dict.fromkeys((self.label, FALLBACK_LABEL)))

MODEL_VERSION = "model_version"  # the registered version that scored the row
TOP_TOKENS = "top_tokens"  # predict.py --explain N

# the decimals predict.py writes probabilities with: readers of its files (monitor.py's ATC
# threshold, the confidence check, the rows to label) round their own values alike
PROBABILITY_DECIMALS = 6
FLOAT_FORMAT = f"%.{PROBABILITY_DECIMALS}f"

# what predict.py adds after the id columns; an id column may not take one of these names
OUTPUT_COLUMNS = (PREDICTION, PROBABILITY, MODEL_VERSION, TOP_TOKENS)

__all__ = ["Columns", "FALLBACK_LABEL", "PREDICTION", "PROBABILITY", "PROBA_PREFIX", "MODEL_VERSION", "TOP_TOKENS",
           "OUTPUT_COLUMNS", "PROBABILITY_DECIMALS", "FLOAT_FORMAT"]
