"""The output columns of predict.py (and of the pyfunc flavor, for the first three), declared
once: every module that writes or reads a predictions file names them from here. The model's
own columns live in ``textprep`` (registered models import only that module)."""
from __future__ import annotations

from textprep import PREDICTION, PROBA_PREFIX, PROBABILITY

MODEL_VERSION = "model_version"  # the registered version that scored the row
TOP_TOKENS = "top_tokens"  # predict.py --explain N

# the decimals predict.py writes probabilities with: readers of its files (monitor.py's ATC
# threshold, the confidence check, the rows to label) round their own values alike
PROBABILITY_DECIMALS = 6
FLOAT_FORMAT = f"%.{PROBABILITY_DECIMALS}f"

# what predict.py adds after the id columns; an id column may not take one of these names
OUTPUT_COLUMNS = (PREDICTION, PROBABILITY, MODEL_VERSION, TOP_TOKENS)

__all__ = ["PREDICTION", "PROBABILITY", "PROBA_PREFIX", "MODEL_VERSION", "TOP_TOKENS",
           "OUTPUT_COLUMNS", "PROBABILITY_DECIMALS", "FLOAT_FORMAT"]
