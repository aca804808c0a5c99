"""Hardening, unit level: each class of defect an adversarial pass found, as a rule that holds.

The end-to-end rows (the scripts run as a user would) are in test_production.py's tables."""
from __future__ import annotations

import errno
import re
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textops import inputs
from textops.columns import Columns

import common
import config as cfg
from common import BadInputError
from textops import batch, locking, model, promotion, redaction
from textops.monitoring import check, drift, stream


# ------------------------------------------------------------------------------------------
# Secrets: a password in a tracking URI is masked however it is spelled
# ------------------------------------------------------------------------------------------
PASSWORDS = ["p@ss-w0rd", "pa/ss-w0rd", "pa:ss-w0rd", "p%40ss-w0rd"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_uri_password_is_found_and_masked_however_it_is_spelled(password, monkeypatch):
    monkeypatch.setattr(redaction, "_SECRETS", set())
    uri = f"http://alice:{password}@127.0.0.1:5000/x"
    assert common.uri_password(uri) == password
    common.add_secret(common.uri_password(uri))
    shown = common.redact(f"error talking to {uri}: refused")
    assert password not in shown and "alice:***@127.0.0.1:5000/x" in shown
    from urllib.parse import unquote
    assert unquote(password) not in common.redact(f"password was {unquote(password)}")


def test_a_token_only_uri_and_a_uri_without_user_info():
    assert common.uri_password("http://:t0ken-abc@host:5000") == "t0ken-abc"
    assert common.uri_password("http://host:5000/models/x@champion") is None
    assert common.uri_password("sqlite:////srv/mlflow.db") is None
    assert common.redact("http://:t0ken-xyz@host:5000") == "http://:***@host:5000"
    assert common.redact("models:/name@champion") == "models:/name@champion"


def test_known_secrets_are_masked_in_every_stream_and_log_line(monkeypatch):
    monkeypatch.setattr(redaction, "_SECRETS", set())
    common.collect_secrets({"MLFLOW_TRACKING_URI": "http://bob:s3@cr/et-7@srv:80",
                            "MLFLOW_TRACKING_TOKEN": "tok-123456"})
    sink = io.StringIO()
    stream_ = common._RedactingStream(sink)
    print("View run at: http://bob:s3@cr/et-7@srv:80/#/runs/1 with tok-123456", file=stream_)
    assert "s3@cr/et-7" not in sink.getvalue() and "tok-123456" not in sink.getvalue()
    assert "http://bob:***@srv:80/#/runs/1" in sink.getvalue()
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "lost %s", ("s3@cr/et-7",), None)
    assert "s3@cr/et-7" not in common._RedactingFormatter("%(message)s").format(record)


# ------------------------------------------------------------------------------------------
# Concurrency: one writer per output; a lock file removed on release is still safe
# ------------------------------------------------------------------------------------------
def _prescored(n: int, version: str = "1") -> pd.DataFrame:
    return pd.DataFrame({"id": [str(i) for i in range(n)], "prediction": ["a"] * n,
                         "probability": np.full(n, 0.9), "model_version": version})


def _write(output: Path, chunks, run=batch.Execution()):
    job = batch.ScoringSpec(model_path="", columns=Columns(text="text", label="label", ids=("id",)), model_version="1",
                            proba_columns=False, explain=0, format=batch.output_format(output))
    manifest = batch.Manifest("in.csv", 1, 1, "m", "1", 10, {})
    return batch.write_predictions(chunks, output, job, manifest, run, prescored=True)


def test_a_second_writer_of_the_same_output_is_refused_naming_the_holder(tmp_path):
    output = tmp_path / "out.csv"
    with locking.exclusive(batch.lock_path(output), 0, "test", remove=True):
        with pytest.raises(locking.BusyError, match=f"pid {os.getpid()}"):
            _write(output, [_prescored(5)])
    assert not output.exists() and not batch.partial_paths(output)[0].exists()
    assert _write(output, [_prescored(5)]) == (5, 0)  # free again
    assert not batch.lock_path(output).exists()  # no lock file left beside the output


def test_a_writer_waits_its_turn_with_lock_wait(tmp_path):
    output = tmp_path / "out.csv"
    released = threading.Event()

    def hold():
        with locking.exclusive(batch.lock_path(output), 0, "test", remove=True):
            ready.set()
            time.sleep(1.0)
        released.set()

    ready = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait()
    rows, _ = _write(output, [_prescored(7)], batch.Execution(lock_wait=30))
    holder.join()
    assert released.is_set() and rows == 7 and len(pd.read_csv(output)) == 7


def test_a_removed_lock_file_cannot_give_two_holders(tmp_path):
    path = tmp_path / "x.lock"
    inside, order = [], []

    def worker(i):
        with locking.exclusive(path, 30, "test", remove=True):
            inside.append(i)
            assert len(inside) == 1, inside  # never two at once
            time.sleep(0.05)
            order.append(i)
            inside.remove(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(order) == list(range(6)) and not path.exists()


def test_a_partial_file_this_run_did_not_write_is_never_published(tmp_path):
    output = tmp_path / "out.csv"

    def chunks():
        yield _prescored(3)
        partial = batch.partial_paths(output)[0]
        partial.unlink()  # what an earlier release's second run did: start its own partial file
        partial.write_bytes(b"id,prediction,probability,model_version\n9,b,0.5,1\n")
        yield _prescored(3)

    with pytest.raises(RuntimeError, match="another process wrote to it"):
        _write(output, chunks())
    assert not output.exists()


# ------------------------------------------------------------------------------------------
# Settings: ranges and names are refused where they are declared, before anything runs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variable, value, words", [
    ("TEXTOPS_CATBOOST_ITERATIONS", "0", "at least 1"),
    ("TEXTOPS_DATA_RANDOM_SEED", "-1", "at least 0"),
    ("TEXTOPS_TRAIN_MAX_FIT_ROWS", "-1", "at least 0"),
    ("TEXTOPS_PREDICT_CHUNK_SIZE", "0", "at least 1"),
    ("TEXTOPS_MONITOR_MIN_ACCURACY", "1.5", "at most 1"),
    ("TEXTOPS_CATBOOST_CALIBRATION_FOLDS", "1", "at least 2 folds"),
    ("TEXTOPS_MLFLOW_MODEL_NAME", "../../../../x", "'/'"),
    ("TEXTOPS_MLFLOW_MODEL_NAME", "..", "resolve"),
    ("TEXTOPS_MLFLOW_MODEL_NAME", "a:b", "':'"),
    ("TEXTOPS_MLFLOW_MODEL_NAME", "a\x01b", "control"),
])
def test_out_of_range_settings_and_unsafe_model_names_are_refused(variable, value, words):
    with pytest.raises(cfg.ConfigError, match=words):
        cfg.load_config({variable: value})


def test_every_default_is_within_its_own_declared_range():
    for section, key, setting in cfg.settings():
        assert setting.problem(setting.default) is None, (section, key)


def test_metric_keys_are_valid_for_mlflow_and_distinct_for_any_label():
    from mlflow.utils.validation import _validate_metric_name

    labels = ["a//b", "x/", "/lead", "a/b", "a_b", ".", "..", "émoji 😀", ""]
    keys = model.metric_keys(labels)
    assert len(set(keys.values())) == len(labels)
    for key in keys.values():
        _validate_metric_name(f"recall.{key}")


# ------------------------------------------------------------------------------------------
# Alias history: a long reason never corrupts it, an unreadable record is never skipped
# ------------------------------------------------------------------------------------------
def test_a_long_reason_is_cut_before_serialising_so_the_record_stays_valid_json():
    event = {"alias": "champion", "from": "1", "to": "2", "kind": "manual", "by": "me",
             "why": "é" * 20_000, "at": "now"}
    text = promotion.event_json(event)
    assert len(text) <= promotion.MAX_TAG
    assert json.loads(text)["why"].startswith("é" * 100) and "cut" in json.loads(text)["why"]


class _Registry:
    def __init__(self, tags, champion="3"):
        self.tags, self.champion = tags, champion

    def get_registered_model(self, name):
        return type("M", (), {"tags": self.tags, "aliases": {"champion": self.champion}})()

    def get_model_version(self, name, version):
        return version


WRONG_SHAPES = [  # round three: records of the wrong shape crashed champion.py (exit 70)
    '{"alias": "champion", "from": "2", "wh',  # cut mid-JSON by an earlier release
    '{"alias": "champion", "from": ["7"], "to": "3"}',  # rollback crashed
    '{"from": "2", "to": "3", "kind": "manual"}',  # no alias: history crashed, rollback skipped it
    '{"alias": "champion", "from": 7, "to": "3"}',  # an int: rollback went back where it came from
    '{"alias": "challenger", "from": "2", "to": "3"}',  # not the alias its key names
    '{"alias": "champion", "from": "2", "to": null}',
    '["champion", "2", "3"]',
]


@pytest.mark.parametrize("record", WRONG_SHAPES)
def test_an_unreadable_alias_record_is_reported_and_blocks_an_unsure_rollback(monkeypatch, record):
    monkeypatch.setattr(promotion, "model_exists", lambda client, name: True)
    monkeypatch.setattr(promotion, "aliases_of", lambda client, name: {"champion": "3"})
    good = json.dumps({"alias": "champion", "from": "1", "to": "2", "kind": "training"})
    tags = {"textops.alias_event.0000000000001.champion": good,
            "textops.alias_event.0000000000002.champion": record}
    events = promotion.alias_history(_Registry(tags), "m")
    assert len(events) == 2 and events[1]["unreadable"] and events[1]["alias"] == "champion"
    assert not events[0].get("unreadable")
    with pytest.raises(BadInputError, match="unreadable"):
        promotion.previous_champion(_Registry(tags), "m")


# ------------------------------------------------------------------------------------------
# Input files
# ------------------------------------------------------------------------------------------
def test_line_endings_are_decided_by_the_data_not_the_first_line(tmp_path):
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"id,text\n" + b"".join(b"%d,text %d\r\n" % (i, i) for i in range(50)))
    frame = inputs.read_table(mixed)
    assert len(frame) == 50 and not frame["text"].str.contains("\r").any()
    twcs_like = tmp_path / "twcs.csv"  # LF rows, a bare CR inside a text: one row, CR kept
    twcs_like.write_bytes(b"id,text\n1,a\rb\n2,c\n")
    assert inputs.read_table(twcs_like)["text"].tolist() == ["a\rb", "c"]
    odd = tmp_path / "odd.csv"  # LF rows and one CRLF row: its CR is not data
    odd.write_bytes(b"id,text\n1,a\n2,b\r\n3,c\n4,d\n")
    assert inputs.read_table(odd)["text"].tolist() == ["a", "b", "c", "d"]


def test_pipes_symlink_loops_and_unreadable_paths_get_one_clear_line(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        inputs.check_readable_file(fifo)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(BadInputError, match="symbolic links"):
        inputs.check_readable_file(tmp_path / "a")


@pytest.mark.parametrize("inputs, outputs, words", [
    ({"--data": "d.csv"}, {"--report": "d.csv", "--html": "r.html"}, "--report .* is the input"),
    ({"--data": "d.csv"}, {"--report": "r.json", "--html": "link.csv"}, "--html .* is the input"),
    ({"--data": "d.csv"}, {"--report": "r.json", "--html": "r.json"}, "the same file"),
    ({"--data": "d.csv"}, {"--output": "sub/../d.csv"}, "is the input"),
])
def test_no_output_may_be_an_input_or_another_output(tmp_path, inputs, outputs, words):
    (tmp_path / "d.csv").write_text("text\nhi\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "d.csv")
    with pytest.raises(BadInputError, match=words):
        common.refuse_overwriting({k: tmp_path / v for k, v in inputs.items()},
                                  {k: tmp_path / v for k, v in outputs.items()})


def test_reports_respect_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with common.atomic_output(tmp_path / "r.json") as handle:
            handle.write("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------------------
# The machine failing is not a bug: exit 4 or 2, one line
# ------------------------------------------------------------------------------------------
def _raises(exc):
    def main(argv):
        raise exc
    return main


def _store_error():
    """A missing table as MLflow's SQLAlchemy store raises it (wrapping sqlite3's error)."""
    import sqlalchemy.exc

    try:
        sqlite3.connect(":memory:").execute("select * from nowhere")
    except sqlite3.OperationalError as exc:
        return sqlalchemy.exc.OperationalError("select * from nowhere", {}, exc)


def _sqlalchemy(kind: str, message: str) -> Exception:
    import sqlalchemy.exc

    return getattr(sqlalchemy.exc, kind)("INSERT ...", {}, sqlite3.DatabaseError(message))


@pytest.mark.parametrize("exc, code, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"), 4, "no space left"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/r.json"), 2, "cannot write /ro/r.json"),
    (_sqlalchemy("DatabaseError", "file is not a database"), 4, "mlflow store cannot be read"),
    (sqlite3.DatabaseError("database disk image is malformed"), 4, "mlflow store cannot be read"),
    (_store_error(), 4, "mlflow store cannot be read"),
    # round three: a read-only project folder's store (monitor.py used to exit 70, 68 SQL lines)
    (sqlite3.OperationalError("attempt to write a readonly database"), 4, "cannot be written"),
    (_sqlalchemy("OperationalError", "attempt to write a readonly database"), 4,
     "cannot be written"),
])
def test_environment_failures_are_one_line_with_their_code(capsys, exc, code, words):
    assert common.run_main("x.py", _raises(exc), []) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err.lower() and "bug" not in err


def test_failures_are_classified_by_their_type_not_by_their_class_name(capsys):
    """Issue 28: a class that merely shares a name with a database or connection error is a
    bug (exit 70), the real types are the machine's failures."""
    import requests
    import urllib3

    impostor = type("DatabaseError", (Exception,), {})("file is not a database")
    assert common.run_main("x.py", _raises(impostor), []) == 70
    assert common.run_main("x.py", _raises(type("ConnectionError", (Exception,), {})()), []) == 70
    for lost in (ConnectionRefusedError(111, "Connection refused"),
                 requests.exceptions.ConnectTimeout("timed out"),
                 requests.exceptions.ReadTimeout("read timed out"),
                 urllib3.exceptions.MaxRetryError(None, "http://127.0.0.1:1/api")):
        assert common.run_main("x.py", _raises(lost), []) == 4, lost
        assert "lost the connection to the MLflow tracking server" in capsys.readouterr().err


def test_a_bug_with_a_multi_line_message_still_prints_one_line(capsys):
    assert common.run_main("x.py", _raises(ValueError("first\nsecond\nthird")), []) == 70
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_an_interruption_inside_a_reader_is_an_interruption_not_bad_input():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Calling read(nbytes) on source failed")
    except ValueError as exc:
        translated = inputs._translate_error(exc, Path("x.csv"), inputs.CsvFormat("utf-8", ",", None))
    assert isinstance(translated, KeyboardInterrupt)


# ------------------------------------------------------------------------------------------
# Monitoring: garbage is refused, not passed as healthy; two rows do not drift
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [["0.9", "2.5"], ["0.9", "-0.1"], ["0.9", "high"]])
def test_recorded_probabilities_outside_0_1_or_not_numbers_are_refused(values):
    with pytest.raises(BadInputError, match="not probabilities"):
        stream.probabilities(pd.Series(values + [None, ""], name="probability", dtype=object))


def test_labels_none_of_which_the_model_knows_are_a_format_mismatch():
    from textops.monitoring import alerts
    from textops.settings import Thresholds

    _, perf = alerts.evaluate_versions({"1": Counter({("0.0", "0"): 5, ("1.0", "1"): 5})}, {},
                                       ["0", "1"], Thresholds.defaults(), 0)
    with pytest.raises(BadInputError, match="none of the labels"):
        check._refuse_foreign_labels(perf, ["0", "1"], "label")
    _, some = alerts.evaluate_versions({"1": Counter({("0", "0"): 5, ("2", "1"): 5})}, {},
                                       ["0", "1"], Thresholds.defaults(), 0)
    check._refuse_foreign_labels(some, ["0", "1"], "label")  # one unknown class: an error count


def test_predicted_class_psi_needs_significance_two_rows_never_drift():
    reference = {"a": 0.5, "b": 0.5}
    assert drift.psi_pvalue(reference, {"a": 2, "b": 0}, drift.psi(reference, {"a": 1.0})) > 0.1
    big = {"a": 7000, "b": 3000}
    assert drift.psi_pvalue(reference, big, drift.psi(reference, {"a": 0.7, "b": 0.3})) < 0.01


# ------------------------------------------------------------------------------------------
# Worker processes die with their parent
# ------------------------------------------------------------------------------------------
def test_a_pool_worker_exits_when_its_parent_is_killed(tmp_path):
    code = ("import os, sys, time; sys.path.insert(0, sys.argv[1])\n"
            "from concurrent.futures import ProcessPoolExecutor\n"
            "from textops import workers\n"
            "pool = ProcessPoolExecutor(2, initializer=workers.die_with_parent, "
            "initargs=(os.getpid(),))\n"
            "print(*[pool.submit(os.getpid).result() for _ in range(4)], flush=True)\n"
            "time.sleep(600)\n")
    from conftest import PROJECT_ROOT

    parent = subprocess.Popen([sys.executable, "-c", code, str(PROJECT_ROOT)],
                              stdout=subprocess.PIPE, text=True)
    workers = {int(p) for p in parent.stdout.readline().split()}
    assert workers and parent.pid not in workers
    parent.kill()  # kill -9: no cleanup code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# ------------------------------------------------------------------------------------------
# Spreadsheets
# ------------------------------------------------------------------------------------------
def test_excel_safe_prefixes_formula_cells_and_leaves_the_rest_byte_true():
    frame = pd.DataFrame({"id": ["=1+1", "+33", "-5", "@SUM(A1)", "\tx", "plain", None],
                          "prediction": ["a"] * 7,
                          "probability": [0.5, -0.5, 0.1, 0.2, 0.3, 0.4, np.nan]})
    safe = batch.excel_safe(frame)
    assert safe["id"].tolist()[:6] == ["'=1+1", "'+33", "'-5", "'@SUM(A1)", "'\tx", "plain"]
    assert pd.isna(safe["id"].iloc[6]) and safe["probability"].equals(frame["probability"])
    job = batch.ScoringSpec(model_path="", columns=Columns(text="text", label="label", ids=("id",)), model_version="1",
                            proba_columns=False, explain=0)
    assert b"=1+1" in batch.render_chunk(frame, job, True)[0]  # default: untouched


# ------------------------------------------------------------------------------------------
# Hardening, round three (issue 29): one rule per class of defect; the scripts' rows are in
# test_production.py's tables, the Spark writer's in test_spark_commit.py
# ------------------------------------------------------------------------------------------
SPARK_OUTPUT = [("_SUCCESS", False), ("._SUCCESS.crc", False), ("part-00000-a.snappy.parquet", False),
                (".part-00000-a.snappy.parquet.crc", False), ("_committed_123", False)]


@pytest.mark.parametrize("listing, foreign", [
    (SPARK_OUTPUT, []),  # an earlier output: replaced
    ([], []),  # an empty folder: nothing to lose
    ([("_SUCCESS", False), ("prediction=a", True), ("prediction=a/part-1.csv", False),
      ("prediction=a/store=007", True), ("prediction=a/store=007/part-2.csv", False)], []),
    ([("notes.txt", False), ("sub", True), ("sub/keep.csv", False)],  # a user's folder
     ["no _SUCCESS file", "notes.txt", "sub"]),
    ([("part-00000.parquet", False)], ["no _SUCCESS file", "part-00000.parquet"]),  # uncommitted
    (SPARK_OUTPUT + [("notes.txt", False)], ["notes.txt"]),  # a user's file among the parts
    (SPARK_OUTPUT + [("sub", True), ("sub/keep.csv", False)], ["sub/", "sub/keep.csv"]),
    (SPARK_OUTPUT + [("prediction=a", True), ("prediction=a/keep.csv", False)],
     ["prediction=a/keep.csv"]),
    (SPARK_OUTPUT + [("prediction=a/_SUCCESS", False)], ["prediction=a/_SUCCESS"]),
])
def test_the_spark_engine_replaces_only_an_earlier_committed_output(listing, foreign):
    from textops import spark

    assert spark.foreign_entries(listing) == foreign


@pytest.mark.parametrize("message, code, words", [
    ("[USER_RAISED_EXCEPTION] textops-refused: --partition-by prediction: a value is too long "
     "SQLSTATE: P0001\n\tat org.apache...", 2, "--partition-by prediction: a value is too long"),
    ("org.apache.spark.SparkException: Task failed\nCaused by: java.io.IOException: File name "
     "too long\n\tat java.io...", 2, "too long to name a folder"),
    ("An error occurred while calling o60.save.\n: java.lang.OutOfMemoryError: Java heap "
     "space\n\tat x", 4, "the spark job writing out failed"),
])
def test_a_failed_spark_write_is_one_line_with_its_code(message, code, words):
    from textops import spark

    error = spark.writer_failure(RuntimeError(message), "out")
    assert error.exit_code == code and words in str(error).lower()
    assert len(str(error).splitlines()) == 1 and "\tat " not in str(error)


def _parquet_folder(root, parts):
    """A folder of Parquet parts as a Spark job commits it (with _SUCCESS)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir()
    for name, table in parts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), root / name)
    (root / "_SUCCESS").touch()
    return root


def test_hive_partition_values_keep_their_exact_spelling(tmp_path):
    folder = _parquet_folder(tmp_path / "scored", {
        "store=007/day=0101/part-0.parquet": {"text": ["a", "b"]},
        "store=010/day=0102/part-0.parquet": {"text": ["c"]},
        "store=1e3/day=0103/part-0.parquet": {"text": ["d"]}})
    frame = pd.concat(inputs.iter_table(folder, inputs.CsvFormat("utf-8", ",", None, "parquet"), 10))
    assert frame["store"].tolist() == ["007", "007", "010", "1e3"]
    assert frame["day"].tolist() == ["0101", "0101", "0102", "0103"]


@pytest.mark.parametrize("parts, columns, words", [
    ({"a.parquet": {"text": [["a", "b"], ["c"]]}}, ["text"], "list<"),
    ({"a.parquet": {"text": ["x"], "id": [{"k": 1}]}}, ["text", "id"], "struct<"),
    ({"a.parquet": {"text": ["x"], "id": [[1, 2]]}}, ["text", "id"], "'id'"),
    ({"part-0.parquet": {"text": ["x"] * 3}, "part-1.parquet": {"body": ["y"] * 1000}}, ["text"],
     "part-1.parquet of"),  # was: 1,000 blank texts scored, exit 0
    ({"part-0.parquet": {"text": ["x"]}, "part-1.parquet": {"text": [1]}}, ["text"],
     "disagree on column 'text'"),
])
def test_parquet_columns_that_cannot_be_read_as_text_are_named(tmp_path, parts, columns, words):
    path = _parquet_folder(tmp_path / "in", parts)
    if len(parts) == 1:
        path = path / next(iter(parts))
    with pytest.raises(BadInputError, match=re.escape(words)):
        list(inputs.iter_table(path, inputs.CsvFormat("utf-8", ",", None, "parquet"), 100, columns))


def test_a_first_part_with_an_all_null_text_column_joins_the_others_type(tmp_path):
    import pyarrow as pa

    folder = _parquet_folder(tmp_path / "in", {
        "part-0.parquet": {"text": pa.array([None, None], pa.null()), "id": ["1", "2"]},
        "part-1.parquet": {"text": ["hello", "there"], "id": ["3", "4"]}})
    frame = pd.concat(inputs.iter_table(folder, inputs.CsvFormat("utf-8", ",", None, "parquet"), 10))
    assert frame["text"].tolist()[2:] == ["hello", "there"] and frame["text"].isna().sum() == 2


def _scoring_job(**predict):
    from textops import scoring, settings

    config = cfg.load_config({})
    config["predict"].update({"data": "in.csv", "output": "out.csv", **predict})
    return scoring.make_job(settings.resolve(config, cfg.PROJECT_ROOT), resume=False)


@pytest.mark.parametrize("ids", ["proba_True", "id,proba_x", "top_tokens", "prediction",
                                 "model_version", "probability"])
def test_id_columns_that_an_output_column_would_overwrite_are_refused(ids):
    with pytest.raises(BadInputError, match="would be overwritten by"):
        _scoring_job(id_columns=ids)
    assert _scoring_job(id_columns="id,probable,proba").columns.ids == ("id", "probable", "proba")


def test_unknown_textops_variables_are_named_with_the_closest_setting(caplog):
    environ = {"TEXTOPS_MONITOR_MIN_ACURACY": "0.999", "TEXTOPS_MLFLOW_TRACKING_URI": "http://x",
               "TEXTOPS_PREDICT_WORKER": "2", "TEXTOPS_NO_SUCH_THING": "1",
               "TEXTOPS_MONITOR_MIN_ACCURACY": "0.9", "TEXTOPS_TEXT_COLUMN": "body",  # an alias
               "TEXTOPS_STRICT": "true", "TEXTOPS_SHARED_DATA": "/data", "OTHER": "x"}
    assert dict(cfg.unknown_variables(environ)) == {
        "TEXTOPS_MONITOR_MIN_ACURACY": "TEXTOPS_MONITOR_MIN_ACCURACY",
        "TEXTOPS_MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
        "TEXTOPS_PREDICT_WORKER": "TEXTOPS_PREDICT_WORKERS", "TEXTOPS_NO_SUCH_THING": None}
    with caplog.at_level(logging.WARNING):
        common.check_variable_names(environ, strict=False)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all(len(line.splitlines()) == 1 for line in lines)
    assert any("did you mean TEXTOPS_MONITOR_MIN_ACCURACY?" in line for line in lines)
    with pytest.raises(cfg.ConfigError, match="TEXTOPS_STRICT"):
        common.check_variable_names(environ, strict=True)
    assert cfg.load_config({"TEXTOPS_STRICT": "true"})["logging"]["strict"] is True


@pytest.mark.parametrize("uri, error, words", [
    ("http//127.0.0.1:5000", BadInputError, "not a URI"),
    ("htp://127.0.0.1:5000", BadInputError, "did you mean http://"),
    ("postgress://u@127.0.0.1/db", BadInputError, "did you mean postgresql://"),
    ("mysql+pymysql://u:pw@127.0.0.1:1/mlflow", BadInputError, "pip install 'pymysql'"),
    ("postgresql+nosuchdriver://u@127.0.0.1:1/db", BadInputError, "not a database URI"),
    ("postgresql://postgres@127.0.0.1:1/mlflow", common.TrackingUnavailableError,
     "127.0.0.1:1 (postgresql://postgres@127.0.0.1:1/mlflow) is unreachable"),
])
def test_tracking_uris_that_are_not_http_are_checked_at_start(uri, error, words):
    from textops import registry

    tracking = type("T", (), {"uri": uri, "connect_timeout": 2.0})
    started = time.monotonic()
    with pytest.raises(error, match=re.escape(words)):
        registry.connect(tracking)
    assert time.monotonic() - started < 10  # not MLflow's 104 s of retries


def test_a_password_in_a_database_uri_never_reaches_the_message():
    from textops import registry

    tracking = type("T", (), {"uri": "postgresql://me:s3cret-pw@127.0.0.1:1/db",
                              "connect_timeout": 1.0})
    with pytest.raises(common.TrackingUnavailableError) as caught:
        registry.connect(tracking)
    assert "s3cret-pw" not in common.redact(str(caught.value))


@pytest.mark.parametrize("value, base, expected", [
    ("sqlite:///rel/store.db", "/proj", "sqlite:////proj/rel/store.db"),
    ("sqlite:////abs/store.db", "/proj", "sqlite:////abs/store.db"),
    ("sqlite:///:memory:", "/proj", "sqlite:///:memory:"),
    ("http://host:5000", "/proj", "http://host:5000"),
    ("", "/proj", ""),
])
def test_a_relative_sqlite_uri_is_resolved_against_a_base(value, base, expected):
    assert cfg.absolute_sqlite_uri(value, Path(base)) == expected


def test_a_relative_sqlite_uri_in_the_environment_is_the_projects_and_as_a_flag_the_cwds(
        tmp_path, monkeypatch):
    from textops import settings

    config = cfg.load_config({"MLFLOW_TRACKING_URI": "sqlite:///rel/store.db"})
    assert settings.resolve(config, cfg.PROJECT_ROOT).tracking.uri == f"sqlite:///{cfg.PROJECT_ROOT}/rel/store.db"
    monkeypatch.chdir(tmp_path)
    parser = common.make_parser("predict", config, "")
    args = parser.parse_args(["--tracking-uri", "sqlite:///rel/store.db"])
    assert getattr(args, "mlflow.tracking_uri") == f"sqlite:///{tmp_path}/rel/store.db"
    # without the flag, the configured value stays the project's (argparse passes a string
    # default through the flag's type, which reads against the current directory)
    assert getattr(parser.parse_args([]), "mlflow.tracking_uri") == \
        f"sqlite:///{cfg.PROJECT_ROOT}/rel/store.db"


def test_configured_paths_are_the_projects_wherever_the_script_starts(tmp_path, monkeypatch):
    config = cfg.load_config({"TEXTOPS_PREDICT_OUTPUT": "scored/today.csv"})
    monkeypatch.chdir(tmp_path)
    args = common.make_parser("predict", config, "").parse_args([])
    assert getattr(args, "predict.output") == str(cfg.PROJECT_ROOT / "scored" / "today.csv")
    assert getattr(args, "predict.data") == str(cfg.PROJECT_ROOT / "data" / "demo" / "recent.csv")
    flagged = common.make_parser("predict", config, "").parse_args(["--output", "x.csv"])
    assert getattr(flagged, "predict.output") == str(tmp_path / "x.csv")


def test_an_alias_moved_while_training_withdraws_the_promotion():
    promote = promotion.Decision("champion", "beats champion v1")
    assert promotion.still_valid(promote, "1", "1") is promote
    assert promotion.still_valid(promote, None, None) is promote
    moved = promotion.still_valid(promote, "1", "2")
    assert moved.alias == "challenger" and "moved from v1 to v2" in moved.reason
    assert promotion.still_valid(promotion.Decision("challenger", "x"), "1", "2").alias == "challenger"
    assert promotion.still_valid(promote, None, "2").alias == "challenger"


class _AliasRegistry:
    """An in-memory registry whose alias reads and writes are slow (a remote server)."""

    def __init__(self):
        self.aliases, self.tags = {"champion": "1"}, {}

    def get_registered_model(self, name):
        time.sleep(0.05)
        return type("M", (), {"aliases": dict(self.aliases), "tags": dict(self.tags)})()

    def set_registered_model_alias(self, name, alias, version):
        time.sleep(0.05)
        self.aliases[alias] = version

    def set_registered_model_tag(self, name, key, value):
        self.tags[key] = value


def test_concurrent_alias_moves_under_the_lock_record_what_really_happened(tmp_path, monkeypatch):
    from textops import registry

    monkeypatch.setattr(registry, "model_exists", lambda client, name: True)
    client = _AliasRegistry()
    said = []

    def move(version):
        with promotion.alias_lock(tmp_path, "m", wait=30):
            current = registry.aliases_of(client, "m").get("champion")
            if current == version:
                said.append(f"already v{version}")
                return
            promotion.move_alias(client, "m", "champion", version, "why", "me", kind="manual")

    threads = [threading.Thread(target=move, args=(v,)) for v in ("2", "3", "2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = [json.loads(v) for _, v in sorted(client.tags.items())]
    assert all(e["from"] != e["to"] for e in events)  # never "v2 -> v2"
    assert [e["from"] for e in events[1:]] == [e["to"] for e in events[:-1]]  # a chain
    assert events[-1]["to"] == client.aliases["champion"]
    assert len(events) + len(said) == 4


@pytest.mark.slow
def test_a_new_embedded_store_opened_by_five_jobs_at_once_works_for_all(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path\n"
            "from textops import registry\n"
            "t = type('T', (), {'uri': 'sqlite:///' + sys.argv[1], 'connect_timeout': 5.0})\n"
            "c = registry.connect(t)\n"
            "print(len(c.search_experiments()), len(c.search_registered_models()))\n")
    from conftest import PROJECT_ROOT, clean_env

    db = tmp_path / "mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(PROJECT_ROOT)],
                              env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(5)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 5, results[0][2][-2000:]
    with sqlite3.connect(db) as store:
        tables = [r[0] for r in store.execute("select name from sqlite_master where type='table'")]
    assert not [t for t in tables if t.startswith("_alembic_tmp")] and "experiments" in tables


@pytest.mark.parametrize("compress", ["gzip", "bz2"])
def test_a_damaged_compressed_file_is_named_as_damaged_not_as_encoding_or_columns(
        tmp_path, compress):
    import bz2
    import gzip
    import random

    rows = "text,label\n" + "".join(f"words number {i} and some more,{'ab'[i % 2]}\n"
                                     for i in range(50_000))
    raw = bytearray((gzip if compress == "gzip" else bz2).compress(rows.encode()))
    rng = random.Random(1)
    for k in range(len(raw) // 3, len(raw) // 3 + 40):
        raw[k] = rng.randrange(256)
    path = tmp_path / f"in.csv.{'gz' if compress == 'gzip' else 'bz2'}"
    path.write_bytes(bytes(raw))
    with pytest.raises(BadInputError, match="damaged") as caught:
        inputs.read_table(path, usecols=["text", "label"])
    assert "--encoding" not in str(caught.value) and "not found" not in str(caught.value)


def test_a_huge_text_is_cut_before_the_word_checks():
    spec = stream.StreamSpec(Columns(text="text", label="label"), has_text=True, has_labels=False, recorded=True)
    chunk = pd.DataFrame({"text": ["word " * 1_000_000, "short one"], "prediction": ["a", "b"],
                          "model_version": ["1", "1"], "probability": ["0.9", "0.8"]})
    seen = stream.accumulate([chunk], spec, score=None)
    assert max(len(t) for t in seen.texts.items) == stream.SAMPLE_TEXT_CHARS
    assert max(seen.lengths.items) == 5_000_000  # the length check still sees the whole text


@pytest.mark.parametrize("query", ["?token=s3cr3t-abc", "?x=1&access_token=s3cr3t-abc",
                                   "?sig=s3cr3t-abc&x=1", ";password=s3cr3t-abc"])
def test_a_credential_in_a_uris_query_string_is_masked(query):
    uri = f"https://mlflow.example.com/api{query}"
    assert "s3cr3t-abc" not in common.redact(f"tracking at {uri} failed")
    assert common.uri_query_secrets(uri) == ["s3cr3t-abc"]


def test_the_summary_line_names_every_headline_estimator_cleanly():
    from textops.monitoring import result

    for method, short in result.METHOD_ABBREVIATIONS.items():
        assert method in result.METHOD_NAMES and short.isalpha()
    assert set(result.METHOD_ABBREVIATIONS) == set(result.METHOD_NAMES)


def test_a_bug_without_a_log_file_names_where_its_traceback_went(capsys, monkeypatch):
    monkeypatch.setattr(common, "_LOG_FILE", [])
    assert common.run_main("x.py", _raises(ValueError("boom")), []) == 70
    err = capsys.readouterr().err.strip()
    place = err.rsplit("the traceback is in ", 1)[1].rstrip(")")
    assert len(err.splitlines()) == 1 and "ValueError" in Path(place).read_text()
    Path(place).unlink()


# ------------------------------------------------------------------------------------------
# The labelling round trip (issue 25: the wrong answers it gave, each a rule that holds)
# ------------------------------------------------------------------------------------------
def _labels_frame(n=6, label="inbound", **extra):
    frame = pd.DataFrame({"row": [str(i + 1) for i in range(n)],
                          "tweet_id": [f"t{i}" for i in range(n)],
                          "text": [f"text {i}" for i in range(n)],
                          "prediction": ["True", "False"] * (n // 2), "probability": "0.9",
                          "model_version": "1", "stratum": [str(i % 2) for i in range(n)],
                          "stratum_rows": [("100", "50")[i % 2] for i in range(n)],
                          "sample_id": "s", "data_sha256": "a" * 64,
                          label: ["True", "True", "False", "", "", ""][:n]})
    return frame.assign(**extra)


@pytest.mark.parametrize("label, candidates, explicit, found", [
    ("inbound", ["inbound", "label"], False, "inbound"),  # the model's label column
    ("label", ["inbound", "label"], False, "label"),  # a file of an earlier release
    ("gold", ["inbound", "label"], False, "gold"),  # the one column the sample did not write
    ("gold", ["gold"], True, "gold"),  # --label-column names the labels file's column
])
def test_the_labels_column_is_found_by_the_models_name_label_or_the_flag(
        label, candidates, explicit, found):
    from textops.monitoring import labelling

    labels = labelling.read_labels(_labels_frame(label=label), ("tweet_id",), candidates,
                                   explicit, "text")
    assert labels.label_column == found and set(labels.by_key) == {"t0", "t1", "t2"}
    assert labels.unlabelled_strata == [] and labels.data_sha256 == "a" * 64


def test_a_labels_column_that_cannot_be_told_is_refused():
    from textops.monitoring import labelling

    with pytest.raises(ValueError, match="--label-column"):
        labelling.read_labels(_labels_frame(label="gold"), ("tweet_id",), ["inbound"], True, "text")
    two = _labels_frame(label="gold", note=["x"] * 6)
    with pytest.raises(ValueError, match="no label column"):
        labelling.read_labels(two, ("tweet_id",), ["inbound", "label"], False, "text")


def test_labelled_rows_sharing_a_key_are_refused():
    from textops.monitoring import labelling

    frame = _labels_frame(tweet_id=["t0", "t0", "t1", "t2", "t3", "t4"])
    with pytest.raises(ValueError, match="repeat a key"):
        labelling.read_labels(frame, ("tweet_id",), ["inbound"], False, "text")


def _streamed(labels, rows):
    """A Collector that saw ``rows`` (key -> (prediction, text)) of tonight's data."""
    from textops.monitoring import labelling

    collector = labelling.Collector(0, 1, ("tweet_id",), "text", lambda v: [], labels)
    chunk = pd.DataFrame({"tweet_id": [k for k, _ in rows], "text": [t for _, (_, t) in rows]})
    collector.add(chunk, np.array([p for _, (p, _) in rows]), np.full(len(rows), 0.9),
                  np.array(["1"] * len(rows)))
    return collector


TONIGHT = [("t0", ("True", "text 0")), ("t1", ("False", "text 1")), ("t2", ("True", "text 2"))]


@pytest.mark.parametrize("case, frame, rows, sha, words", [
    ("another night's data", _labels_frame(), TONIGHT, "b" * 64, "labels of another night"),
    ("keys not in the data", _labels_frame(), TONIGHT[:1], "a" * 64, "2 labelled row(s) are not"),
    ("keys found twice", _labels_frame(), TONIGHT + TONIGHT[:1], "a" * 64, "match several rows"),
    ("another prediction", _labels_frame(), [TONIGHT[0], ("t1", ("True", "text 1")), TONIGHT[2]],
     "a" * 64, "the prediction of 1"),
    ("another text", _labels_frame(), [TONIGHT[0], TONIGHT[1], ("t2", ("True", "other"))],
     "a" * 64, "the text of 1"),
    ("a stratum left unlabelled (the first rows only)",
     _labels_frame(inbound=["True", "", "False", "", "", ""]), TONIGHT, "a" * 64,
     "stratum/strata [1] have no labelled row"),
])
def test_labels_that_are_not_tonights_sample_are_refused(case, frame, rows, sha, words):
    from textops.monitoring import labelling

    labels = labelling.read_labels(frame, ("tweet_id",), ["inbound"], False, "text")
    with pytest.raises(ValueError, match=re.escape(words)):
        _streamed(labels, rows).sample_estimate(str, ["False", "True"], sha)


def test_tonights_labels_re_saved_by_a_spreadsheet_are_accepted():
    from textops.monitoring import labelling

    frame = _labels_frame(prediction=["TRUE", "FALSE"] * 3, text=["text  0", "TEXT 1\r\n", "text 2",
                                                                "x", "y", "z"])
    labels = labelling.read_labels(frame, ("tweet_id",), ["inbound"], False, "text")
    found = _streamed(labels, TONIGHT).sample_estimate(str, ["False", "True"], "a" * 64)
    assert found.labelled_rows == 3 and found.accuracy == pytest.approx(
        (100 * 0.5 + 50 * 0.0) / 150)  # stratum 0: t0 right, t2 wrong; stratum 1: t1 wrong


def test_labels_none_of_which_the_model_knows_are_refused_naming_them():
    from textops.monitoring import labelling

    frame = _labels_frame(inbound=["yes", "no", "yes", "", "", ""])
    labels = labelling.read_labels(frame, ("tweet_id",), ["inbound"], False, "text")
    with pytest.raises(ValueError, match="none of its labels \\('no', 'yes'\\)"):
        _streamed(labels, TONIGHT).sample_estimate(str, ["False", "True"], "a" * 64)


@pytest.mark.parametrize("budget", [1, 2, 3, 7])
def test_a_tiny_budget_still_draws_a_sample(budget):
    from textops.monitoring import labelling

    rng = np.random.default_rng(0)
    sampler = labelling.Sampler(budget, [0.5, 0.7, 0.9], seed=3)
    confidence = rng.uniform(0.3, 1.0, 500)
    sampler.add(pd.DataFrame({"row": np.arange(500)}), confidence)
    drawn = sampler.draw()
    assert len(drawn) == budget and drawn["row"].is_unique


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_the_budgets_uniform_share_mixes_a_simple_random_sample_with_neyman(share):
    from textops.monitoring import labelling

    sampler = labelling.Sampler(200, [0.5, 0.9], seed=3, uniform_share=share)
    confidence = np.r_[np.full(400, 0.45), np.full(1600, 0.99)]  # uncertain 20 %, confident 80 %
    sampler.add(pd.DataFrame({"row": np.arange(2000)}), confidence)
    low, _, high = sampler.allocation()
    # Neyman gives the uncertain stratum most (spread 0.5 against the 0.25 floor); the uniform
    # share gives each stratum its share of the rows
    neyman_low = 200 * 400 * 0.5 / (400 * 0.5 + 1600 * 0.25)
    assert abs(low - (share * 40 + (1 - share) * neyman_low)) <= 1 and low + high == 200
    drawn = sampler.draw()
    assert np.allclose(drawn["inclusion_probability"] * drawn["weight"], 1.0)


def test_the_uniform_share_default_agrees_in_config_and_the_sampler():
    import config as cfg
    from textops.monitoring import labelling

    assert cfg.CONFIG["monitor"]["label_uniform_share"].default == labelling.UNIFORM_SHARE
    with pytest.raises(ValueError, match="uniform_share"):
        labelling.Sampler(10, [], seed=0, uniform_share=1.5)


def test_the_sample_file_is_in_random_order_so_its_first_rows_cover_every_stratum():
    from textops.monitoring import labelling

    sampler = labelling.Sampler(200, [0.5, 0.7, 0.9], seed=3)
    sampler.add(pd.DataFrame({"row": np.arange(5000)}),
                np.random.default_rng(1).uniform(0.3, 1.0, 5000))
    drawn = sampler.draw()
    assert not drawn["stratum"].is_monotonic_increasing
    assert drawn["stratum"].iloc[:100].nunique() == drawn["stratum"].nunique()


@pytest.mark.parametrize("ids", ["weight", "tweet_id,stratum", "stratum_rows",
                                 "inclusion_probability", "label", "sample_id"])
def test_id_columns_the_to_label_file_would_overwrite_are_refused(ids):
    with pytest.raises(BadInputError, match="would be overwritten"):
        check.refuse_design_clash(tuple(ids.split(",")), "inbound")


def test_a_labels_file_re_saved_by_a_spreadsheet_is_read_on_its_own_terms(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_bytes("\ufefftweet_id;text;inbound\r\n1;caf\u00e9 ol\u00e9;\"True\"\r\n"
                     .encode("cp1252", errors="ignore").replace(b"\xef\xbb\xbf", b""))
    frame = check.read_spreadsheet_csv(path)
    assert list(frame.columns) == ["tweet_id", "text", "inbound"]
    assert frame["text"].tolist() == ["caf\u00e9 ol\u00e9"] and frame["inbound"].tolist() == ["True"]


def test_a_to_label_file_with_labels_filled_in_is_never_written_over(tmp_path):
    filled = tmp_path / "filled.csv"
    _labels_frame().to_csv(filled, index=False)
    assert "labels were filled in" in check._kept_as_it_is(filled, False, "inbound")
    empty = tmp_path / "empty.csv"
    _labels_frame(inbound="").to_csv(empty, index=False)
    assert check._kept_as_it_is(empty, False, "inbound") == ""  # a --to-label file: replaced
    assert "same seeded sample" in check._kept_as_it_is(empty, True, "inbound")
    assert check._kept_as_it_is(tmp_path / "new.csv", True, "inbound") == ""


def _ledger_rows(sample_id, labels, texts=None):
    return [{"sample_id": sample_id, "row_key": str(i), "text": (texts or {}).get(i, f"text {i}"),
             "label": label, "ids": json.dumps({"id": str(i)}), "model_name": "m",
             "model_version": "1", "prediction": "a", "probability": 0.9, "stratum": i % 2,
             "stratum_rows": 50, "inclusion_probability": 0.1, "weight": 10.0,
             "data_sha256": "f" * 64, "night": "2026-12-06", "labeller": "me@host",
             "labelled_at": f"2026-12-06T00:00:{i % 60:02d}"} for i, label in enumerate(labels)]


def test_the_labels_ledger_keeps_each_row_once_and_both_sides_of_a_conflict(tmp_path):
    from textops.monitoring import ledger

    path = tmp_path / "data" / "labels_ledger.db"
    first = ledger.append(path, _ledger_rows("night-1", ["a"] * 40))
    assert (first.added, first.already, first.conflicts) == (40, 0, 0)
    again = ledger.append(path, _ledger_rows("night-1", ["a"] * 40))  # the same file twice
    assert (again.added, again.already) == (0, 40)
    relabelled = ledger.append(path, _ledger_rows("night-2", ["b"] * 3))  # texts seen before
    assert (relabelled.added, relabelled.conflicts) == (3, 3)
    rows = ledger.read(path)
    assert len(rows) == 43 and rows[0]["ids"] == {"id": "0"} and rows[0]["probability"] == 0.9
    audit = [r for r in rows if r["sample_id"] == "night-1" and r["audit"]]
    assert 0 < len(audit) < 20  # a seeded uniform share (0.2) of the batch, the same every time
    assert all(ledger.in_audit("night-1", r["row_key"]) for r in audit)


def test_a_damaged_ledger_is_never_rewritten(tmp_path):
    from textops.monitoring import ledger

    path = tmp_path / "labels_ledger.db"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(common.TrackingUnavailableError, match="left as it is"):
        ledger.append(path, _ledger_rows("night-1", ["a"] * 3))
    assert path.read_bytes() == b"not a database " * 100


def test_two_appends_at_once_both_land_without_duplicates(tmp_path):
    from textops.monitoring import ledger

    path = tmp_path / "labels_ledger.db"
    batches = [_ledger_rows(f"night-{n}", ["a"] * 200) for n in range(4)] * 2
    threads = [threading.Thread(target=ledger.append, args=(path, rows)) for rows in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.read(path)) == 800
