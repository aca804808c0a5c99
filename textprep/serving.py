"""Loading a logged model folder safely (skops, never pickle), the prediction rule and the
python_function flavor that pyfunc, ``mlflow models serve`` and ``spark_udf`` call."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
import yaml

# --------------------------------------------------------------------------------------------
# Loading a logged model, and the python_function flavor: what `mlflow.pyfunc.load_model`,
# `mlflow models serve` and `mlflow.pyfunc.spark_udf` call. The MLmodel's python_function flavor
# names the package as its loader (``textprep._load_pyfunc``, re-exported there); the sklearn
# flavor (mlflow.sklearn.load_model) is unchanged.
# --------------------------------------------------------------------------------------------
class UnsafeModelError(ValueError):
    """The model folder is not a skops-serialised sklearn model (e.g. a pickle)."""

    __module__ = "textprep"  # its name in saved models, as when textprep was one module


def load_model_folder(folder: str | os.PathLike[str]) -> Any:
    """The one model loader (predict.py, monitor.py, batch workers, pyfunc): a logged MLflow
    sklearn model folder, loaded with skops and only the trusted types its MLmodel lists.

    textops never unpickles a model: unpickling runs whatever code the file names. MLflow is not
    imported (a worker needs ~220 MB less). The ``code/`` folder logged with the model is put on
    ``sys.path`` last, so the running project's modules win over the copies shipped with it.
    """
    folder = Path(folder)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"].get("sklearn", {})
    fmt = flavor.get("serialization_format", "pickle" if flavor else "none")
    if fmt != "skops":
        raise UnsafeModelError(
            f"is stored as {fmt!r}, not skops: textops does not unpickle models (that would run "
            f"any code the file names); retrain it with train.py or pass another --model")
    code = folder / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.append(str(code))
    return sio.load(folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types", []))


# The model's output columns (pyfunc, predict.py), declared once (textops.columns re-exports them).
PREDICTION = "prediction"  # the arg-max label
PROBABILITY = "probability"  # its (calibrated) probability
PROBA_PREFIX = "proba_"  # one output column per class: proba_<class>


def top_class(proba: np.ndarray, classes: Any) -> tuple[np.ndarray, np.ndarray]:
    """The prediction rule, once: each row's arg-max class (as text) and its probability."""
    best = np.argmax(proba, axis=1)
    return np.asarray(classes).astype(str)[best], proba[np.arange(len(best)), best]


def predictions_frame(pipeline: Any, texts: Any) -> pd.DataFrame:
    """One row per input row: ``prediction`` (label), ``probability`` (of that label) and one
    ``proba_<class>`` column per class, in the order of ``pipeline.classes_``. ``texts``: what
    the pipeline takes (a frame holding its text column, a Series or a list of texts)."""
    classes = np.asarray(pipeline.classes_).astype(str)
    proba = np.asarray(pipeline.predict_proba(texts), dtype=np.float64)
    labels, probability = top_class(proba, classes)
    out = pd.DataFrame({PREDICTION: labels, PROBABILITY: probability})
    for j, label in enumerate(classes):
        out[PROBA_PREFIX + label] = proba[:, j]
    return out


class PyfuncModel:
    """The registered pipeline seen through pyfunc: labels and probabilities in one frame."""

    __module__ = "textprep"  # its name in saved models, as when textprep was one module

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def get_raw_model(self) -> Any:
        """The scikit-learn Pipeline itself (``predict_proba``, ``classes_`` ...)."""
        return self.pipeline

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame({self.pipeline.steps[0][1].column: list(data)})
        return predictions_frame(self.pipeline, data)


def _load_pyfunc(path: str) -> PyfuncModel:
    """pyfunc loader: ``path`` is the serialized pipeline inside the model folder."""
    return PyfuncModel(load_model_folder(os.path.dirname(path) if os.path.isfile(path) else path))
