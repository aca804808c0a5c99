"""The reference profile of a model version: computed by train.py on the version's test split
(rows it never trained on), logged as ``reference/reference.json`` in its run (tag
``textops.reference`` on the version), and read back by monitor.py. Everything about it is here."""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from textops.monitoring.classmix import test_confusion
from textops.monitoring.drift import distribution, oov_rates, sample_indices, word_vocabulary
from textops.monitoring.profile import FORMAT, ReferenceProfile, fit_threshold
from textops.monitoring.sideprofile import SideProfile

log = logging.getLogger(__name__)

REFERENCE_DIR = "reference"
REFERENCE_FILE = "reference.json"
REFERENCE_PATH = f"{REFERENCE_DIR}/{REFERENCE_FILE}"


def build_reference(pipeline: Any, texts: Sequence[str], predicted: Sequence[str],
                    confidence: Sequence[float], train_labels: Sequence[str],
                    metrics: dict[str, Any], sample_size: int = 2000, text_sample: int = 1000,
                    text_chars: int = 1000, seed: int = 0, oov_rows: int = 0,
                    test_labels: Sequence[str] | None = None,
                    side: dict[str, SideProfile] | None = None) -> ReferenceProfile:
    """The reference profile of a model version: computed on its test split (rows it never
    trained on), plus the training class priors and the test metrics. The out-of-vocabulary
    rate (per word, in Python) is measured on a seeded sample of ``oov_rows`` texts (0 = all).
    With the test rows' ``test_labels``, their confusion counts (monitor.py's BBSE class mix);
    with ``side``, the side columns' profiles (``sidecolumns.profile_side``)."""
    classes = [str(c) for c in pipeline.classes_]
    texts = [str(t) for t in texts]
    lengths = np.array([len(t) for t in texts], dtype=float)
    vocabulary, stop_words, preprocess = word_vocabulary(pipeline)
    probe = sample_indices(len(texts), oov_rows or len(texts), seed + 2)
    oov = oov_rates([texts[i] for i in probe], vocabulary, stop_words, preprocess)
    keep = sample_indices(len(texts), sample_size, seed)
    keep_texts = sample_indices(len(texts), text_sample, seed + 1) if text_sample > 0 else []
    return ReferenceProfile(
        format=FORMAT, rows=len(texts), classes=classes,
        class_priors=distribution(train_labels, classes),
        predicted_distribution=distribution(predicted, classes), metrics=metrics,
        # monitor.py's ATC / DoC estimates: the threshold fitted on every test row
        atc=fit_threshold(confidence, metrics["accuracy"]).to_dict(),
        confidence_mean=float(np.mean(confidence)),
        confidence_sample=[float(v) for v in np.asarray(confidence)[keep]],
        length_mean=float(lengths.mean()), length_median=float(np.median(lengths)),
        length_sample=[int(v) for v in lengths[keep]],
        oov_rate=float(np.nanmean(oov)) if np.isfinite(oov).any() else 0.0, oov_rows=len(probe),
        texts=[texts[i][:text_chars] for i in keep_texts], text_chars=text_chars,
        test_confusion=(test_confusion(predicted, test_labels, classes)
                        if test_labels is not None else None), side=side or {})


def write_reference(reference: ReferenceProfile, folder: Path) -> Path:
    """Write the profile into ``folder`` (logged as the run's artifacts) at REFERENCE_PATH."""
    path = folder / REFERENCE_DIR / REFERENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reference.to_dict(), ensure_ascii=False), encoding="utf-8")
    return path


def load_reference(client: Any, name: str, version: str) -> ReferenceProfile | None:
    """The version's reference profile saved by train.py (None when it has none, or when it
    cannot be read)."""
    try:
        run_id = client.get_model_version(name, version).run_id
    except Exception as exc:  # noqa: BLE001 - e.g. a version typed by hand in a predictions file
        log.warning("model %s v%s not found in the registry: %s", name, version, exc)
        return None
    with tempfile.TemporaryDirectory(prefix="textops-ref-") as tmp:
        try:
            path = client.download_artifacts(run_id, REFERENCE_PATH, tmp)
            return ReferenceProfile.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except Exception as exc:  # noqa: BLE001 - older versions have no reference
            log.info("no reference profile for %s v%s: %s", name, version, exc)
            return None
