"""Hardening, unit level: each class of defect an adversarial pass found, as a rule that holds.

The end-to-end rows (the scripts run as a user would) are in test_production.py's tables."""
from __future__ import annotations

import errno
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

import common
import config as cfg
from common import BadInputError
from textops import batch, data, locking, model, promotion
from textops.monitoring import check, drift, stream


# ------------------------------------------------------------------------------------------
# Secrets: a password in a tracking URI is masked however it is spelled
# ------------------------------------------------------------------------------------------
PASSWORDS = ["p@ss-w0rd", "pa/ss-w0rd", "pa:ss-w0rd", "p%40ss-w0rd"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_uri_password_is_found_and_masked_however_it_is_spelled(password, monkeypatch):
    monkeypatch.setattr(common, "_SECRETS", set())
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
    monkeypatch.setattr(common, "_SECRETS", set())
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
    job = batch.Job("", "text", ("id",), "1", False, 0, format=batch.output_format(output))
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


def test_an_unreadable_alias_record_is_reported_and_blocks_an_unsure_rollback(monkeypatch):
    monkeypatch.setattr(promotion, "model_exists", lambda client, name: True)
    monkeypatch.setattr(promotion, "aliases_of", lambda client, name: {"champion": "3"})
    good = json.dumps({"alias": "champion", "from": "1", "to": "2", "kind": "training"})
    tags = {"textops.alias_event.0000000000001.champion": good,
            "textops.alias_event.0000000000002.champion": '{"alias": "champion", "from": "2", "wh'}
    events = promotion.alias_history(_Registry(tags), "m")
    assert len(events) == 2 and events[1]["unreadable"]
    with pytest.raises(BadInputError, match="unreadable"):
        promotion.previous_champion(_Registry(tags), "m")


# ------------------------------------------------------------------------------------------
# Input files
# ------------------------------------------------------------------------------------------
def test_line_endings_are_decided_by_the_data_not_the_first_line(tmp_path):
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"id,text\n" + b"".join(b"%d,text %d\r\n" % (i, i) for i in range(50)))
    frame = data.read_table(mixed)
    assert len(frame) == 50 and not frame["text"].str.contains("\r").any()
    twcs_like = tmp_path / "twcs.csv"  # LF rows, a bare CR inside a text: one row, CR kept
    twcs_like.write_bytes(b"id,text\n1,a\rb\n2,c\n")
    assert data.read_table(twcs_like)["text"].tolist() == ["a\rb", "c"]
    odd = tmp_path / "odd.csv"  # LF rows and one CRLF row: its CR is not data
    odd.write_bytes(b"id,text\n1,a\n2,b\r\n3,c\n4,d\n")
    assert data.read_table(odd)["text"].tolist() == ["a", "b", "c", "d"]


def test_pipes_symlink_loops_and_unreadable_paths_get_one_clear_line(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        data.check_readable_file(fifo)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(BadInputError, match="symbolic links"):
        data.check_readable_file(tmp_path / "a")


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
    try:
        sqlite3.connect(":memory:").execute("select * from nowhere")
    except sqlite3.OperationalError as exc:
        error = type("OperationalError", (Exception,), {})(f"(sqlite3.OperationalError) {exc}")
        return error


@pytest.mark.parametrize("exc, code, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"), 4, "no space left"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/r.json"), 2, "cannot write /ro/r.json"),
    (type("DatabaseError", (Exception,), {})("(sqlite3.DatabaseError) file is not a database\n"
                                             "[SQL: x]\n(Background on this error)"), 4,
     "mlflow store cannot be read"),
    (_store_error(), 4, "mlflow store cannot be read"),
])
def test_environment_failures_are_one_line_with_their_code(capsys, exc, code, words):
    assert common.run_main("x.py", _raises(exc), []) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err.lower() and "bug" not in err


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
        translated = data._translate_error(exc, Path("x.csv"), data.CsvFormat("utf-8", ",", None))
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
            "from textops import batch\n"
            "pool = ProcessPoolExecutor(2, initializer=batch._die_with_parent, "
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
    job = batch.Job("", "text", ("id",), "1", False, 0)
    assert b"=1+1" in batch.render_chunk(frame, job, True)[0]  # default: untouched
