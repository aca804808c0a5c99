"""Unattended runs: overlapping cron trainings are serialised by a lock that a dead holder
cannot leave behind."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from common import ExitCode
from conftest import assert_clean_failure, clean_env, ok, registry, run_script, shared
from textops import locking, promotion


MODEL = "textops-classifier"
TRAIN = ("--data", "twcs/sample.csv", "--label-column", "inbound", "--threshold", "0.5",
         "--no-leakage-check", "--no-baseline")


def train_args():
    return ["--data", str(shared("twcs", "sample.csv"))] + list(TRAIN[2:])


@pytest.mark.slow
def test_a_held_lock_makes_train_skip_with_exit_5_naming_the_holder(project):
    lock = project / ".locks" / f"train-{MODEL}.lock"
    with locking.exclusive(lock, 0, "test"):
        started = time.monotonic()
        result = run_script(project, "train.py", *train_args())
        assert time.monotonic() - started < 30
    assert_clean_failure(result, int(ExitCode.BUSY), "another train.py", "--lock-wait")
    assert "pid" in result.stderr
    assert not (project / "mlflow.db").exists()  # skipped before touching the registry


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "train.lock"
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from textops import locking\n"
            "with locking.exclusive(__import__('pathlib').Path(sys.argv[1]), 0, 'holder'):\n"
            "    print('locked', flush=True); time.sleep(600)\n")
    from conftest import PROJECT_ROOT

    holder = subprocess.Popen([sys.executable, "-c", code, str(lock), str(PROJECT_ROOT)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(locking.BusyError, match=f"pid {holder.pid}"):
        with locking.exclusive(lock, 0.5, "train.py"):
            pass
    holder.kill()  # kill -9: no cleanup code runs
    holder.wait()
    with locking.exclusive(lock, 0, "train.py"):  # the kernel released it with the process
        assert str(__import__("os").getpid()) in lock.read_text()


@pytest.mark.slow
def test_overlapping_trainings_never_both_promote_and_every_alias_change_can_be_rolled_back(project):
    env = clean_env()
    procs = [subprocess.Popen([sys.executable, str(project / "train.py"), *train_args()],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, int(ExitCode.BUSY)], results
    client = registry(project)
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    # With --lock-wait the second one waits its turn instead, and is compared with the first.
    procs = [subprocess.Popen([sys.executable, str(project / "train.py"), *train_args(),
                               "--lock-wait", "300"], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=900), p.stdout.read()) for p in procs]
    assert [code for code, _ in outs] == [0, 0], outs
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 3
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases["champion"] == "1"  # identical data and settings: later ties stay challengers
    # Every alias change is recorded; champion.py moves @champion and rolls it back, recorded too.
    ok(run_script(project, "champion.py", "set", "3", "--reason", "canary looked good"))
    ok(run_script(project, "champion.py", "set", "2", "--reason", "v2 on the new data"))
    rolled = run_script(project, "champion.py", "rollback", "--reason", "v2 misroutes refunds")
    ok(rolled)
    assert "v2 -> v3" in rolled.stdout
    again = run_script(project, "champion.py", "rollback", "--reason", "v3 too")
    ok(again)
    assert "v3 -> v1" in again.stdout  # skips v2: a rollback already moved away from it
    assert_clean_failure(run_script(project, "champion.py", "rollback", "--reason", "x"), 2,
                         "no earlier champion")
    assert_clean_failure(run_script(project, "champion.py", "rollback"), 2, "--reason")
    history = run_script(project, "champion.py", "history")
    ok(history)
    lines = [line for line in history.stdout.splitlines() if "@champion" in line]
    assert [re.search(r"v\S+ -> v\S+", line).group(0) for line in lines] == [
        "v- -> v1", "v1 -> v3", "v3 -> v2", "v2 -> v3", "v3 -> v1"]
    assert "[rollback]" in lines[-1] and "v3 too" in lines[-1] and "champion.py" in lines[-1]
    events = [e for e in promotion.alias_history(client, MODEL)]
    assert {e["alias"] for e in events} == {"champion", "challenger"}
    assert all(e["by"] and e["at"] for e in events)
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}["champion"] == "1"


# ------------------------------------------------------------------------------------------
# Signals
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_during_training_ends_the_run_killed_keeps_aliases_and_frees_the_lock(project):
    import signal

    first = run_script(project, "train.py", *train_args())
    assert first.returncode == 0, first.stderr
    log = project / "logs" / "train.log"
    runs_before = log.read_text().count("MLflow run ")
    proc = subprocess.Popen([sys.executable, str(project / "train.py"), "--data",
                             str(shared("twcs", "twcs_head5k.csv")), "--label-column", "inbound"],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while log.read_text().count("MLflow run ") == runs_before:  # wait until it is training
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    stderr = proc.stderr.read()
    assert code == int(ExitCode.INTERRUPTED), stderr
    assert "Traceback" not in stderr
    client = registry(project)
    experiment = client.get_experiment_by_name("textops")
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "KILLED"
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == {"champion": "1"}
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    with locking.exclusive(project / ".locks" / f"train-{MODEL}.lock", 0, "test"):
        pass  # released


# ------------------------------------------------------------------------------------------
# Bad input: one table, every case a clean failure with the documented code and no output
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def champion_project(tmp_path_factory):
    """A project with v1 @champion (twcs sample), v2 a copy of it whose model file is
    corrupted, v3 a pickled model, v4 a copy of v1 tagged as another task (classes a/b): one
    training, the other versions registered from copies."""
    import shutil

    from conftest import copy_project

    root = copy_project(tmp_path_factory.mktemp("matrix") / "project")
    result = run_script(root, "train.py", *train_args())
    assert result.returncode == 0, result.stderr
    client = registry(root)
    [trained] = [p.parent for p in (root / "mlartifacts").rglob("model.skops")]
    copies = {name: shutil.copytree(trained, root / "copies" / name) for name in ("broken", "task")}
    (copies["broken"] / "model.skops").write_bytes(b"PK\x03\x04 this is not a model any more")
    client.create_model_version(MODEL, source=str(copies["broken"]))  # v2
    _register_a_pickled_model(root)  # v3: what an attacker with registry access could plant
    other = client.create_model_version(MODEL, source=str(copies["task"]))  # v4
    client.set_model_version_tag(MODEL, other.version, "textops.classes", '["a", "b"]')
    client.set_model_version_tag(MODEL, other.version, "textops.label_column", "label")
    assert str(other.version) == "4"
    return root


PICKLED = """
import sys, mlflow
from sklearn.dummy import DummyClassifier
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("textops").experiment_id):
    mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], ["a", "b"]), name="model",
                             serialization_format="cloudpickle", registered_model_name=sys.argv[2],
                             pip_requirements=["scikit-learn"])
"""


def _register_a_pickled_model(root):
    """In its own process: MLflow's tracking and registry URIs are process-wide state."""
    subprocess.run([sys.executable, "-c", PICKLED, f"sqlite:///{root / 'mlflow.db'}", MODEL],
                   env=clean_env(), check=True, capture_output=True)


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


GOOD_ROWS = "".join(f"some words number {i},{'ab'[i % 2]}\n" for i in range(40))


def _parquet_bytes(table: dict) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(table), sink)
    return sink.getvalue()


def _damaged_gzip() -> bytes:
    import gzip
    import random

    raw = bytearray(gzip.compress(("text,id\n" + "".join(f"words {i} and more,{i}\n"
                                                        for i in range(20_000))).encode()))
    rng = random.Random(7)
    for k in range(len(raw) // 2, len(raw) // 2 + 40):
        raw[k] = rng.randrange(256)
    return bytes(raw)
BAD_INPUT_CASES = [
    # id, script, input file content (None: no file), extra args, exit code, words in the error
    ("missing file", "predict.py", None, [], 2, ["does not exist"]),
    ("directory instead of file", "predict.py", "DIR", [], 2, ["directory"]),
    ("empty file", "train.py", b"", [], 2, ["is empty"]),
    ("header only", "train.py", "text,label\n", [], 2, ["no data rows"]),
    ("missing text column", "predict.py", "body,label\nhello,a\n", [], 2, ["--text-column"]),
    ("missing label column", "train.py", "text,category\nhi,a\n", [], 2, ["--label-column"]),
    ("single-class labels", "train.py", "text,label\n" + "".join(f"t {i},spam\n" for i in range(30)),
     [], 2, ["single class"]),
    ("all texts empty", "train.py", "text,label\n" + ",a\n,b\n" * 20, [], 2, ["text"]),
    ("Latin-1 without --encoding", "train.py",
     ("text,label\n" + "".join(f"niño {i},{'ab'[i % 2]}\n" for i in range(30))).encode("latin-1"),
     [], 2, ["--encoding"]),
    ("UTF-16 without a byte-order mark", "predict.py",
     "text,id\nhello,1\nthere,2\n".encode("utf-16-le"), [], 2, ["--encoding"]),
    ("ragged rows", "train.py", "text,label\n" + GOOD_ROWS + "a,b,c,d\n", [], 2, ["well-formed"]),
    ("unbalanced quotes", "predict.py", 'text,id\n"never closed,1\nnext,2\n', [], 2, ["quote"]),
    ("negative chunk size", "predict.py", "text\nhi\n", ["--chunk-size", "-5"], 2, ["--chunk-size"]),
    ("unknown output format", "predict.py", "text\nhi\n", ["--output", "{tmp}/out.xlsx"], 2,
     [".parquet"]),
    ("unwritable output folder", "predict.py", "text\nhi\n", ["--output", "/proc/textops/out.csv"],
     2, ["output folder"]),
    ("unknown alias", "predict.py", "text\nhi\n", ["--model", "no-such-alias"], 4, ["@no-such-alias"]),
    ("unknown version", "monitor.py", "text\nhi\n", ["--model", "99"], 4, ["no version 99"]),
    ("corrupted model artifact", "predict.py", "text\nhi\n", ["--model", "2"], 4,
     ["could not be loaded"]),
    ("a pickled model in the registry", "predict.py", "text\nhi\n", ["--model", "3"], 4,
     ["not skops", "does not unpickle"]),
    ("a pickled model, monitored", "monitor.py", "text\nhi\n", ["--model", "3"], 4, ["not skops"]),
    ("label column asked for but absent", "monitor.py", "text\nhi\n", ["--label-column", "gold"],
     2, ["--label-column"]),
    ("resume with the Spark engine", "predict.py", "text\nhi\n",
     ["--engine", "spark", "--resume"], 2, ["--engine local only"]),
    # hardening, round two: every one of these used to pass, run, or fail as "a bug"
    ("model name escaping the lock folder", "train.py", "text,label\n" + GOOD_ROWS,
     ["--model-name", "../../../../x"], 2, ["--model-name", "'/'"]),
    ("zero iterations", "train.py", "text,label\n" + GOOD_ROWS, ["--iterations", "0"], 2,
     ["--iterations", "at least 1"]),
    ("negative seed", "train.py", "text,label\n" + GOOD_ROWS, ["--seed", "-1"], 2, ["--seed"]),
    ("negative max-fit-rows", "train.py", "text,label\n" + GOOD_ROWS, ["--max-fit-rows", "-1"], 2,
     ["--max-fit-rows"]),
    ("text column is the label column", "train.py", "text,label\n" + GOOD_ROWS,
     ["--label-column", "text"], 2, ["both 'text'"]),
    ("more classes than allowed", "train.py",
     "text,label\n" + "".join(f"words {i},c{i % 6}\n" for i in range(60)),
     ["ENV:TEXTOPS_TRAIN_MAX_CLASSES=3"], 2, ["6 classes", "TEXTOPS_TRAIN_MAX_CLASSES"]),
    ("another task's labels under the champion's name", "train.py", "text,label\n" + GOOD_ROWS,
     [], 2, ["would change task", "--allow-new-classes"]),
    ("report is the input", "monitor.py", "text\nhi\n", ["--report", "{data}"], 2,
     ["--report", "is the input"]),
    ("html report is the input", "monitor.py", "text\nhi\n", ["--html", "{data}"], 2,
     ["--html", "is the input"]),
    ("predictions of an unregistered version", "monitor.py",
     "prediction,probability,model_version\nTrue,0.9,99\nFalse,0.8,99\n", [], 4, ["'99'"]),
    ("predictions with an empty version", "monitor.py",
     "prediction,probability,model_version\nTrue,0.9,\n", [], 4, ["version"]),
    ("probability above 1", "monitor.py",
     "prediction,probability,model_version\nTrue,0.9,1\nFalse,1.7,1\n", [], 2,
     ["not probabilities"]),
    ("labels the model never knew", "monitor.py", "text,inbound\nhello,0.0\nthanks,1.0\n",
     ["--label-column", "inbound"], 2, ["none of the labels", "'False'"]),
    ("a named pipe", "predict.py", "FIFO", [], 2, ["not a regular file"]),
    ("a symlink loop", "predict.py", "LOOP", [], 2, ["symbolic links"]),
    ("a 5,000-character rollback reason", "champion.py", None,
     ["rollback", "--reason", "x" * 5000], 2, ["at most 1000"]),
    ("a champion that cannot load", "champion.py", None, ["set", "2", "--reason", "canary"], 4,
     ["could not be loaded"]),
    # hardening, round three (issue 29)
    ("an id column an output column would overwrite", "predict.py", "text,proba_True\nhi,1\n",
     ["--id-columns", "proba_True"], 2, ["proba_True", "would be overwritten"]),
    ("a Parquet text column of lists", "predict.py", _parquet_bytes({"text": [["a", "b"], ["c"]]}),
     [], 2, ["'text'", "list<"]),
    ("a damaged gzip", "predict.py", _damaged_gzip(), [], 2, ["damaged gzip"]),
    ("a misspelt setting under TEXTOPS_STRICT", "monitor.py", "text\nhi\n",
     ["ENV:TEXTOPS_STRICT=true", "ENV:TEXTOPS_MONITOR_MIN_ACURACY=0.999"], 2,
     ["TEXTOPS_MONITOR_MIN_ACURACY", "did you mean TEXTOPS_MONITOR_MIN_ACCURACY"]),
    ("a tracking URI with a misspelt scheme", "predict.py", "text\nhi\n",
     ["ENV:MLFLOW_TRACKING_URI=htp://127.0.0.1:5000"], 2, ["did you mean http://"]),
    ("a database store that is down", "train.py", "text,label\n" + GOOD_ROWS,
     ["ENV:MLFLOW_TRACKING_URI=postgresql://postgres:pw-s3cret@127.0.0.1:1/mlflow"], 4,
     ["127.0.0.1:1", "unreachable"]),
    ("a database driver not installed", "monitor.py", "text\nhi\n",
     ["ENV:MLFLOW_TRACKING_URI=mysql+pymysql://u@127.0.0.1:1/mlflow"], 2, ["pip install 'pymysql'"]),
    ("a champion of another task", "champion.py", None, ["set", "4", "--reason", "canary"], 2,
     ["would change task", "--allow-new-classes"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, script, content, extra, code, needles", BAD_INPUT_CASES,
                         ids=[c[0] for c in BAD_INPUT_CASES])
def test_bad_input_matrix(champion_project, tmp_path, case, script, content, extra, code, needles):
    data = tmp_path / "input.csv"
    if content == "DIR":
        data.mkdir()
    elif content == "FIFO":
        os.mkfifo(data)
    elif content == "LOOP":
        data.symlink_to(tmp_path / "loop.csv")
        (tmp_path / "loop.csv").symlink_to(data)
    elif content is not None:
        _write(data, content)
    env = clean_env(**dict(a[4:].split("=", 1) for a in extra if a.startswith("ENV:")))
    extra = [a for a in extra if not a.startswith("ENV:")]
    args = [] if script == "champion.py" else ["--data", str(data)]
    if script == "predict.py" and "--output" not in extra:
        args += ["--output", str(tmp_path / "out" / "scored.csv")]
    if script == "monitor.py":
        args += ["--report", str(tmp_path / "out" / "r.json"), "--html", str(tmp_path / "out" / "r.html")]
    if script == "train.py":
        args += ["--threshold", "0.5", "--no-leakage-check", "--no-baseline"]
    args += [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(data)) for a in extra]
    client = registry(champion_project)
    versions_before = len(client.search_model_versions(f"name='{MODEL}'"))
    aliases_before = client.get_registered_model(MODEL).aliases
    data_before = data.read_bytes() if content not in (None, "DIR", "FIFO", "LOOP") else None
    result = run_script(champion_project, script, *args, env=env)
    assert_clean_failure(result, code, *needles)
    assert "s3cret" not in result.stderr + result.stdout  # a password in a URI stays masked
    if data_before is not None:
        assert data.read_bytes() == data_before  # the input is never overwritten
    assert client.get_registered_model(MODEL).aliases == aliases_before
    assert not (champion_project / ".locks" / "train-..").exists()  # no path from a bad name
    leftovers = sorted(p.name for p in tmp_path.rglob("*")
                       if p.name not in ("input.csv", "loop.csv"))
    assert leftovers in ([], ["out"]), leftovers  # no output, no partial or temporary file
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert len(registry(champion_project).search_model_versions(f"name='{MODEL}'")) == versions_before


@pytest.mark.slow
def test_a_10_mb_text_is_scored_without_blowing_up(champion_project, tmp_path):
    data = tmp_path / "huge.csv"
    data.write_text("id,text\n1,hello there\n2," + "spam " * 2_000_000 + "\n3,thanks\n")
    out = tmp_path / "scored.csv"
    result = run_script(champion_project, "predict.py", "--data", str(data), "--output", str(out),
                        "--id-columns", "id")
    assert result.returncode == 0, result.stderr
    scored = __import__("pandas").read_csv(out, dtype=str)
    assert scored["id"].tolist() == ["1", "2", "3"] and scored["prediction"].notna().all()


# ------------------------------------------------------------------------------------------
# Overlapping predict.py runs on one output, and a run killed with SIGKILL
# ------------------------------------------------------------------------------------------
def _big_input(path, rows: int):
    import pandas as pd

    texts = pd.read_csv(shared("twcs", "twcs_head5k.csv"), dtype=str)["text"]
    frame = pd.DataFrame({"id": range(rows), "text": texts.iloc[[i % len(texts) for i in range(rows)]].to_numpy()})
    frame.to_csv(path, index=False)
    return path


def _predict(root, data, out, *extra):
    return subprocess.Popen([sys.executable, str(root / "predict.py"), "--data", str(data),
                             "--output", str(out), "--id-columns", "id", "--workers", "2", *extra],
                            cwd=root, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


@pytest.mark.slow
def test_overlapping_predictions_on_one_output_lose_nothing_and_a_killed_run_resumes(
        champion_project, tmp_path):
    import pandas as pd

    rows = 300_000
    data = _big_input(tmp_path / "big.csv", rows)
    out = tmp_path / "scored" / "today.csv"
    lock = out.with_name(".today.csv.lock")
    first = _predict(champion_project, data, out, "--workers", "1")  # ~20 s holding the output
    _wait_for(lock, first)
    second = _predict(champion_project, data, out)
    code, _, err = second.wait(timeout=300), *second.communicate()
    assert code == int(ExitCode.BUSY), err
    assert f"pid {first.pid}" in err and "--lock-wait" in err and "Traceback" not in err
    waiting = _predict(champion_project, data, out, "--lock-wait", "300")
    assert first.wait(timeout=300) == 0, first.communicate()
    assert waiting.wait(timeout=300) == 0, waiting.communicate()
    scored = pd.read_csv(out, dtype=str)
    assert scored["id"].tolist() == [str(i) for i in range(rows)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["today.csv"]  # no lock, no partial
    # kill -9 (what the OOM killer does): its workers exit, the lock dies with it, --resume works
    out.unlink()
    killed = _predict(champion_project, data, out)
    _wait_for(out.with_name(".today.csv.partial.json"), killed)
    workers = _children(killed.pid)
    assert len(workers) >= 2, workers
    killed.kill()
    killed.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "workers outlived their parent"
    assert not out.exists()
    resumed = run_script(champion_project, "predict.py", "--data", str(data), "--output", str(out),
                         "--id-columns", "id", "--resume")
    ok(resumed)
    assert pd.read_csv(out, dtype=str)["id"].tolist() == [str(i) for i in range(rows)]


# ------------------------------------------------------------------------------------------
# A full disk is the machine's failure: exit 4, one line, nothing published
# ------------------------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_exit_4_in_one_line_and_publishes_nothing(champion_project, full_disk):
    data = shared("twcs", "twcs_head5k.csv")
    out = full_disk / "scored.csv"
    result = run_script(champion_project, "predict.py", "--data", str(data), "--output", str(out))
    assert_clean_failure(result, 4, "no space left", "nothing was published")
    assert not out.exists()  # its partial file stays for --resume once there is room
    report = full_disk / "r.json"
    result = run_script(champion_project, "monitor.py", "--data", str(data), "--label-column",
                        "inbound", "--report", str(report), "--html", str(full_disk / "r.html"))
    assert_clean_failure(result, 4, "no space left")
    assert not report.exists()


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_a_corrupted_store_is_exit_4_in_one_line(project, tmp_path, script):
    (project / "mlflow.db").write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    args = {"train.py": train_args(),
            "predict.py": ["--data", str(shared("twcs", "sample.csv")), "--output",
                           str(tmp_path / "out.csv")]}[script]
    result = run_script(project, script, *args)
    assert_clean_failure(result, 4, "mlflow store cannot be read", "backup")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_a_relative_sqlite_uri_in_env_is_the_projects_from_any_directory(project, tmp_path):
    """Issue 29: MLFLOW_TRACKING_URI=sqlite:///rel/store.db in .env resolves against the
    project, like every other .env path, wherever cron starts the job; an unknown TEXTOPS_*
    name in .env is named in one warning line."""
    (project / ".env").write_text("MLFLOW_TRACKING_URI=sqlite:///stores/textops.db\n"
                                  "TEXTOPS_MONITOR_MIN_ACURACY=0.999\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_script(project, "champion.py", "history", cwd=elsewhere)
    ok(result)
    assert (project / "stores" / "textops.db").is_file() and not list(elsewhere.iterdir())
    warnings = [line for line in result.stderr.splitlines() if "TEXTOPS_MONITOR_MIN_ACURACY" in line]
    assert len(warnings) == 1 and "did you mean TEXTOPS_MONITOR_MIN_ACCURACY?" in warnings[0]
