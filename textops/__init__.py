"""textops' libraries, one module per stage; the scripts at the project root are thin entry points.

data        reading, validating and splitting labelled CSV files (the blank-text rule)
model       stop words, the TF-IDF + CatBoost pipeline, training, evaluation
diagnostics the linear baseline, token importance, leakage guard, per-row explanations
tuning      seeded random search over model settings
training    what train.py does: fit, evaluate, log, register, promote
registry    the MLflow store, registered versions and aliases, logging and loading models
promotion   the champion/challenger rule and the alias history
batch       chunked, parallel, resumable batch scoring and output formats (predict.py)
spark       predict.py --engine spark (mlflow.pyfunc.spark_udf)
locking     one train.py per model at a time
monitoring  monitor.py: stream, reference, drift, alerts, report

The estimators that travel inside every logged model live in the top-level ``textprep.py``, whose
name must never change: registered models import it by that name.
"""
