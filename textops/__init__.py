"""textops' libraries, one module per stage; the scripts at the project root are thin entry points.

settings    the configuration resolved once into typed, frozen objects (read by the entry points)
data        validating and splitting labelled tables (the blank-text and spelling rules)
inputs      reading input, in one place: what a file is (CSV, compressed CSV, Parquet file or
            folder), its CSV dialect, header and SHA-256; open_input() checks it once
model       stop words, the TF-IDF + CatBoost pipeline, training, evaluation
metrics     the one macro-F1
diagnostics the linear baseline, token importance, leakage guard, per-row explanations
tuning      seeded random search over model settings
training    what train.py does: fit, evaluate, log, register, promote
registry    the MLflow store, registered versions and aliases, logging and loading models
calibration calibration error, Brier score, reliability table
plots       every chart textops draws (matplotlib, headless, imported only to draw)
promotion   the champion/challenger rule and the alias history
columns     predict.py's output column names, declared once
scoring     what predict.py does: check the input, resolve the version, run an engine
batch       chunked, parallel, resumable batch scoring and output formats (predict.py)
spark       predict.py --engine spark (mlflow.pyfunc.spark_udf, written by the executors)
locking     one train.py per model, one predict.py per output, at a time
errors      exit codes and the expected failures that map to them; the walk along causes
redaction   secrets in URIs and the environment, masked wherever text is shown
interrupts  Ctrl-C / SIGTERM as an exception, and again where a finalizer swallowed it
files       output files checked first and written atomically
timing      Stopwatch
monitoring  monitor.py: stream, reference, drift, estimation, labelling, alerts, report

The estimators that travel inside every logged model live in the top-level ``textprep`` package,
whose name (and its classes' ``textprep.<Class>`` names) must never change: registered models
import them by those names.
"""
