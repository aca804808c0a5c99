"""Real tracking servers, and secrets: a basic-auth server, a server or its PostgreSQL dying
mid-training, and a
tracking password that, however spelled, reaches neither the console, the logs, MLflow nor the
reports. (Split from test_production.py so the two halves run side by side.)"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from common import ExitCode
from conftest import assert_clean_failure, clean_env, ok, registry, run_script, shared
from test_production import GOOD_ROWS, MODEL, train_args
from textops.registry import shown_uri


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


def _train_until_logging(project, env) -> subprocess.Popen:
    """train.py started in the background, returned once its MLflow run exists."""
    log = project / "logs" / "train.log"
    runs_before = log.read_text().count("MLflow run ")
    proc = subprocess.Popen([sys.executable, str(project / "train.py"), "--data",
                             str(shared("twcs", "twcs_head5k.csv")), "--label-column", "inbound"],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while log.read_text().count("MLflow run ") == runs_before:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    return proc


def _one_error_line(proc: subprocess.Popen) -> str:
    """The run's only error line, after checking it exited 4 without a traceback."""
    code = proc.wait(timeout=300)
    stderr = proc.stderr.read()
    assert code == int(ExitCode.INFRASTRUCTURE), stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    return errors[0]


@pytest.mark.slow
@pytest.mark.server
def test_the_database_or_the_server_dying_mid_training_fails_cleanly_and_moves_no_alias(
        project, tmp_path):
    """A server on PostgreSQL, as production runs it. First its database stops while train.py
    logs (the server answers 503), then the server itself is killed: each time one line, exit 4,
    and the registry shows no new version and no alias moved."""
    import signal

    from conftest import PostgresCluster, start_mlflow_server, stop_server

    cluster = PostgresCluster()
    base = tmp_path / "server"
    base.mkdir()
    server, uri = start_mlflow_server(base, store=cluster.uri)
    env = clean_env(MLFLOW_TRACKING_URI=uri)
    try:
        ok(run_script(project, "train.py", *train_args(), env=env))
        proc = _train_until_logging(project, env)
        cluster.stop("immediate")  # the database goes away; the server answers with errors
        error = _one_error_line(proc)
        assert "HTTP 503" in error and "backend database" in error, error
        cluster.start()
        proc = _train_until_logging(project, env)
        stop_server(server, signal.SIGKILL)  # the server and its workers die mid-training
        started = time.monotonic()
        assert "lost the connection" in _one_error_line(proc)
        assert time.monotonic() - started < 240
        client = registry(project, cluster.uri)  # the server's own store
        assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == \
            {"champion": "1"}
        assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]
    finally:
        if server.poll() is None:
            stop_server(server)
        cluster.remove()


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_never_reaches_the_console_or_logs(project, tmp_path):
    from conftest import free_port

    assert shown_uri("http://alice:s3cr3t@host:5000/x") == "http://alice:***@host:5000/x"
    assert shown_uri("sqlite:////srv/mlflow.db") == "sqlite:////srv/mlflow.db"
    uri = f"http://alice:s3cr3t-pw@127.0.0.1:{free_port()}"  # nothing listens there
    result = run_script(project, "predict.py", "--data", str(shared("twcs", "sample.csv")),
                        "--output", str(tmp_path / "out.csv"), env=clean_env(MLFLOW_TRACKING_URI=uri))
    assert_clean_failure(result, 4, "alice:***@127.0.0.1", "unreachable")
    logged = "".join(p.read_text() for p in (project / "logs").glob("*.log*"))
    assert "s3cr3t-pw" not in result.stderr + result.stdout + logged


@pytest.mark.slow
@pytest.mark.parametrize("userinfo, secret", [
    ("alice:p@ss-w0rd", "p@ss-w0rd"), ("alice:pa/ss-w0rd", "pa/ss-w0rd"),
    ("alice:pa:ss-w0rd", "pa:ss-w0rd"), ("alice:p%40ss-w0rd", "p%40ss-w0rd"),
    (":t0ken-only-123", "t0ken-only-123")])
def test_a_password_of_any_spelling_never_reaches_the_console_or_the_logs(project, tmp_path,
                                                                          userinfo, secret):
    from urllib.parse import unquote

    from conftest import free_port

    uri = f"http://{userinfo}@127.0.0.1:{free_port()}"  # nothing listens there
    for script, args in (("predict.py", ["--data", str(shared("twcs", "sample.csv")), "--output",
                                         str(tmp_path / "out.csv")]),
                         ("monitor.py", ["--data", str(shared("twcs", "sample.csv"))])):
        result = run_script(project, script, *args, env=clean_env(MLFLOW_TRACKING_URI=uri))
        assert_clean_failure(result, 4, ":***@127.0.0.1", "unreachable")
        logged = "".join(p.read_text() for p in (project / "logs").glob("*.log*"))
        for form in {secret, unquote(secret)}:
            assert form not in result.stderr + result.stdout + logged


@pytest.mark.slow
@pytest.mark.server
def test_a_password_in_the_uri_of_a_real_server_is_nowhere_and_a_task_change_needs_consent(
        project, mlflow_sqlite_server, tmp_path):
    """train -> monitor against a real server (SQLite backend: the small-team form; the other
    server tests use PostgreSQL) with ``user:p@ss:w0rd%40x@`` in the URI: not in the
    console (MLflow's own "View run" lines included), the logs, the run's params and tags, the
    reports. Then a training with another label set under the same name is refused (exit 2)
    until --allow-new-classes records why."""
    secret = "p@ss:w0rd%40x"
    uri = mlflow_sqlite_server.replace("http://", f"http://alice:{secret}@")
    env = clean_env(MLFLOW_TRACKING_URI=uri, TEXTOPS_MLFLOW_MODEL_NAME="secret-twcs")
    trained = ok(run_script(project, "train.py", *train_args(), "--quiet", env=env))
    assert "Warning" not in trained.stderr  # --quiet: Python warnings go to the log file only
    assert len(trained.stdout.strip().splitlines()) == 1  # the decision line only
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    monitored = run_script(project, "monitor.py", "--data", str(shared("twcs", "sample.csv")),
                           "--label-column", "inbound", "--report", str(report), "--html",
                           str(html), env=env)
    assert monitored.returncode in (0, 1, 3), monitored.stderr
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + GOOD_ROWS)
    refused = run_script(project, "train.py", "--data", str(other), "--threshold", "0.1", env=env)
    assert_clean_failure(refused, 2, "would change task", "'True'", "--allow-new-classes")
    allowed = ok(run_script(project, "train.py", "--data", str(other), "--threshold", "0.1",
                            "--no-leakage-check", "--allow-new-classes", "new routing labels",
                            env=env))
    seen = "".join(r.stdout + r.stderr for r in (trained, monitored, refused, allowed))
    seen += "".join(p.read_text() for p in (project / "logs").glob("*.log*"))
    seen += report.read_text() + html.read_text()
    client = registry(project, mlflow_sqlite_server)
    for experiment in ("textops", "textops-monitoring"):
        for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id]):
            seen += repr(run.data.params) + repr(run.data.tags)
    assert "data.sha256" in seen and "View run" not in seen
    for form in ("p@ss:w0rd", "p@ss:w0rd@x"):
        assert form not in seen
    version = client.get_model_version("secret-twcs", "2")
    assert client.get_registered_model("secret-twcs").aliases["champion"] == "2"
    run = client.get_run(version.run_id)
    assert "new routing labels" in run.data.tags["textops.new_classes_reason"]
    assert version.tags["textops.label_column"] == "label"
