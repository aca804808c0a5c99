"""Unattended runs: overlapping cron trainings are serialised by a lock that a dead holder
cannot leave behind."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from common import ExitCode
from conftest import assert_clean_failure, clean_env, ok, registry, run_script, shared
from textops import locking, promotion
from textops.registry import redact


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
# A tracking server with authentication
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.server
def test_basic_auth_server_works_with_credentials_and_refuses_wrong_ones_clearly(
        project, mlflow_auth_server, tmp_path):
    from conftest import AUTH_ADMIN

    user, password = AUTH_ADMIN
    good = clean_env(MLFLOW_TRACKING_URI=mlflow_auth_server, MLFLOW_TRACKING_USERNAME=user,
                     MLFLOW_TRACKING_PASSWORD=password, TEXTOPS_MODEL_NAME="auth-twcs")
    trained = run_script(project, "train.py", *train_args(), env=good)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "scored.csv"
    scored = run_script(project, "predict.py", "--data", str(shared("twcs", "sample.csv")),
                        "--output", str(out), env=good)
    assert scored.returncode == 0, scored.stderr
    for env, needle in ((dict(good, MLFLOW_TRACKING_PASSWORD="not-the-password"), "refused"),
                        ({k: v for k, v in good.items() if k not in (
                            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")},
                         "no credentials given")):
        target = tmp_path / f"denied-{needle[:2]}.csv"
        started = time.monotonic()
        denied = run_script(project, "predict.py", "--data", str(shared("twcs", "sample.csv")),
                            "--output", str(target), env=env)
        assert time.monotonic() - started < 60
        assert_clean_failure(denied, 4, needle, "MLFLOW_TRACKING_PASSWORD")
        assert not target.exists()
    # The password is never written anywhere: logs, console, MLflow params and tags.
    seen = trained.stdout + trained.stderr + scored.stdout + scored.stderr
    seen += "".join(p.read_text() for p in (project / "logs").glob("*.log*"))
    from mlflow.tracking import MlflowClient

    import os
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
    try:
        client = MlflowClient(tracking_uri=mlflow_auth_server, registry_uri=mlflow_auth_server)
        experiment = client.get_experiment_by_name("textops")
        for run in client.search_runs([experiment.experiment_id]):
            seen += repr(run.data.params) + repr(run.data.tags)
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert "data.sha256" in seen  # the params were really read
    assert password not in seen


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
    """A project with v1 @champion (twcs sample) and v2 whose model file is then corrupted."""
    from conftest import copy_project

    root = copy_project(tmp_path_factory.mktemp("matrix") / "project")
    for _ in range(2):
        result = run_script(root, "train.py", *train_args())
        assert result.returncode == 0, result.stderr
    client = registry(root)
    source = client.get_model_version(MODEL, "2").source
    run = client.get_model_version(MODEL, "2").run_id
    model_files = [p for p in (root / "mlartifacts").rglob("model.skops")]
    assert len(model_files) == 2 and source and run
    newest = max(model_files, key=lambda p: p.stat().st_mtime)
    newest.write_bytes(b"PK\x03\x04 this is not a model any more")
    _register_a_pickled_model(root)  # v3: what an attacker with registry access could plant
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
]


@pytest.mark.slow
@pytest.mark.parametrize("case, script, content, extra, code, needles", BAD_INPUT_CASES,
                         ids=[c[0] for c in BAD_INPUT_CASES])
def test_bad_input_matrix(champion_project, tmp_path, case, script, content, extra, code, needles):
    data = tmp_path / "input.csv"
    if content == "DIR":
        data.mkdir()
    elif content is not None:
        _write(data, content)
    args = ["--data", str(data)]
    if script == "predict.py" and "--output" not in extra:
        args += ["--output", str(tmp_path / "out" / "scored.csv")]
    if script == "monitor.py":
        args += ["--report", str(tmp_path / "out" / "r.json"), "--html", str(tmp_path / "out" / "r.html")]
    if script == "train.py":
        args += ["--threshold", "0.5", "--no-leakage-check", "--no-baseline"]
    args += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    versions_before = len(registry(champion_project).search_model_versions(f"name='{MODEL}'"))
    result = run_script(champion_project, script, *args)
    assert_clean_failure(result, code, *needles)
    leftovers = sorted(p.name for p in tmp_path.rglob("*") if p.name != "input.csv")
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


@pytest.mark.slow
@pytest.mark.server
def test_server_dying_mid_training_fails_cleanly_and_moves_no_alias(project, tmp_path):
    import signal

    from conftest import free_port, mlflow_server_command, start_server, stop_server

    base = tmp_path / "server"
    base.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(mlflow_server_command(base, port), base, uri + "/health")
    env = clean_env(MLFLOW_TRACKING_URI=uri)
    try:
        first = run_script(project, "train.py", *train_args(), env=env)
        assert first.returncode == 0, first.stderr
        log = project / "logs" / "train.log"
        runs_before = log.read_text().count("MLflow run ")
        proc = subprocess.Popen([sys.executable, str(project / "train.py"), "--data",
                                 str(shared("twcs", "twcs_head5k.csv")), "--label-column", "inbound"],
                                cwd=project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while log.read_text().count("MLflow run ") == runs_before:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        stop_server(server, signal.SIGKILL)  # the server and its workers die mid-training
        started = time.monotonic()
        code = proc.wait(timeout=300)
        stderr = proc.stderr.read()
        assert code == int(ExitCode.INFRASTRUCTURE), stderr
        assert "Traceback" not in stderr and "lost the connection" in stderr
        assert time.monotonic() - started < 240
    finally:
        if server.poll() is None:
            stop_server(server)
    client = registry(project, f"sqlite:///{base / 'server.db'}")  # the server's own store
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == {"champion": "1"}
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_never_reaches_the_console_or_logs(project, tmp_path):
    from conftest import free_port

    assert redact("http://alice:s3cr3t@host:5000/x") == "http://alice:***@host:5000/x"
    assert redact("sqlite:////srv/mlflow.db") == "sqlite:////srv/mlflow.db"
    uri = f"http://alice:s3cr3t-pw@127.0.0.1:{free_port()}"  # nothing listens there
    result = run_script(project, "predict.py", "--data", str(shared("twcs", "sample.csv")),
                        "--output", str(tmp_path / "out.csv"), env=clean_env(MLFLOW_TRACKING_URI=uri))
    assert_clean_failure(result, 4, "alice:***@127.0.0.1", "unreachable")
    logged = "".join(p.read_text() for p in (project / "logs").glob("*.log*"))
    assert "s3cr3t-pw" not in result.stderr + result.stdout + logged
