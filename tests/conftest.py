"""Shared fixtures: real datasets from ../shared/data, throw-away project copies, script runners."""
from __future__ import annotations

import contextlib
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = Path(os.environ.get("TEXTOPS_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
# Small, fast model settings for end-to-end runs; the model's quality is benchmarked elsewhere.
FAST_MODEL_ENV = {
    "TEXTOPS_CATBOOST_ITERATIONS": "60",
    "TEXTOPS_CATBOOST_CV_FOLDS": "3",
    "TEXTOPS_CATBOOST_CALIBRATION_FOLDS": "2",  # still cross-fitted, half the copies' work
    "TEXTOPS_TFIDF_MAX_FEATURES": "5000",
    "TEXTOPS_TFIDF_CHAR_MAX_FEATURES": "5000",
}


SHARED_SKIP = "shared dataset not available"  # the reason every such skip starts with


def in_ci(environ: dict[str, str] | None = None) -> bool:
    """Running in CI (``CI=true``, as .ci/run and most CI services set it)."""
    return (environ if environ is not None else os.environ).get("CI", "").strip().lower() in (
        "1", "true", "yes")


def shared(*parts: str) -> Path:
    """A real dataset from ../shared/data. Missing: the test fails in CI (a CI without the data
    must not pass by skipping), and is skipped on a developer's machine (one summary line)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if in_ci():
            pytest.fail(f"{path} is missing: CI needs ../shared/data beside the project (or "
                        f"TEXTOPS_SHARED_DATA)", pytrace=False)
        pytest.skip(f"{SHARED_SKIP}: {path}")
    return path


# The slowest modules first (their tests' seconds on a full run, 2026-12-06: test_e2e.py ~5 min,
# the next ones 1-3 min): with two workers each taking the next file when it is done
# (pytest.ini: loadfile, no reordering by test count), a long module left for the end would
# run alone while the other worker idles.
SLOWEST_FIRST = ("test_e2e.py", "test_e2e_datasets.py", "test_servers.py", "test_production.py",
                 "test_e2e_side_columns.py", "test_monitoring.py", "test_formats.py",
                 "test_loop.py", "test_shift_estimation.py", "test_hardening.py",
                 "test_e2e_spark_monitor.py")


@pytest.fixture(autouse=True)
def sys_path_restored():
    """Loading a model folder in process appends its ``code/`` folder to ``sys.path``
    (textprep.serving); a worker process a later test starts (joblib's loky) would then import
    the legacy fixture's single-file ``textprep.py`` from there instead of the package."""
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def pytest_collection_modifyitems(items: list[Any]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line for every test skipped for want of ../shared/data, instead of silence."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if SHARED_SKIP in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped: {SHARED_SKIP} ({SHARED_DATA}); put the shared "
            f"datasets there or set TEXTOPS_SHARED_DATA")


def copy_project(root: Path) -> Path:
    """A fresh copy of the project at ``root``: its scripts, the textops and textprep packages and
    the shipped stop words; no .env, no registry, no logs. The packages' caches come along
    (sources keep their times, so the caches stay valid): a copy's first training would
    otherwise compile the n-gram kernel again (about 8 s each; :func:`compiled_kernel`)."""
    root.mkdir(parents=True)
    for module in PROJECT_ROOT.glob("*.py"):
        shutil.copy2(module, root / module.name)
    for package in ("textops", "textprep"):  # with __pycache__: bytecode and numba's compiled
        shutil.copytree(PROJECT_ROOT / package, root / package)  # n-gram kernel (see below)
    shutil.copytree(PROJECT_ROOT / "nltk_data", root / "nltk_data")
    return root


@pytest.fixture(scope="session", autouse=True)
def compiled_kernel() -> None:
    """Compile textprep's n-gram kernel once into the project's own cache (numba, cache=True)
    before any test copies the project: every copy then loads it instead of compiling it."""
    import textprep

    texts = pd.Series(["warm up the compiled kernel", "and its character n-grams"] * 3)
    textprep.HashedTfidf(min_df=1).fit(texts).transform(texts)


@pytest.fixture(scope="session")
def spark_local():
    """A local Spark session (2 threads) for the in-process Spark tests (skipped without the
    optional PySpark extra): one per test process, shared by the modules that run there."""
    pytest.importorskip("pyspark")
    from textops import spark

    active = spark.spark_session("local[2]")
    yield active
    active.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any textops/MLflow settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TEXTOPS_", "MLFLOW_")) and k not in ("NLTK_DATA",)}
    env.update(FAST_MODEL_ENV)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(extra)
    return env


def run_script(root: Path, script: str, *args: str, env: dict[str, str] | None = None,
               cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python <root>/<script> args`` as a user would and capture its output."""
    return subprocess.run(
        [sys.executable, str(root / script), *map(str, args)],
        cwd=str(cwd or root), env=env if env is not None else clean_env(),
        capture_output=True, text=True, timeout=timeout,
    )


def registry(root: Path, uri: str | None = None):
    """An MlflowClient on a project's embedded store (or ``uri``)."""
    from mlflow.tracking import MlflowClient

    uri = uri or f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_folder(root: Path, model: str, version: str, destination: Path) -> str:
    """A registered version's model folder, downloaded through the project's own store (no
    global MLflow URI: other tests in this process may have set one)."""
    import mlflow

    return mlflow.artifacts.download_artifacts(
        artifact_uri=registry(root).get_model_version_download_uri(model, version),
        dst_path=str(destination))


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """A run that succeeded: exit 0 and no traceback."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """Expected failures: the documented code, one readable error line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), errors[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cmd: list[str], base: Path, ready_url: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.Popen:
    """Start a server process (its output in base/server.log) and wait until ``ready_url``
    answers below HTTP 500."""
    import requests

    env = dict(env or clean_env())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(base),
                            start_new_session=True)  # its own process group: workers included
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited: {(base / 'server.log').read_text()[-2000:]}")
        try:
            if requests.get(ready_url, timeout=2).status_code < 500:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"{cmd[:3]} did not become ready in {timeout:.0f} s: "
                       f"{(base / 'server.log').read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM) to the server's process group, SIGKILL if it does not stop."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def mlflow_server_command(base: Path, port: int, *extra: str, store: str | None = None) -> list[str]:
    """``mlflow server`` as production runs it: the given backend store (default: SQLite in
    ``base``), artifacts proxied to ``base/artifacts``, on a loopback port."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    return [str(mlflow_bin), "server", "--backend-store-uri", store or f"sqlite:///{base / 'server.db'}",
            "--artifacts-destination", str(base / "artifacts"), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", *extra]


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (initdb, pg_ctl, createdb), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a loopback port (initdb into a temporary folder,
    ``pg_ctl start``; ``stop()`` shuts it down, ``remove()`` also deletes it). Run as the
    ``postgres`` user when the tests run as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        import tempfile

        self.bin = postgres_bin()
        if self.bin is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="textops-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self.start()
        self.uri = self.database("mlflow")

    def database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URI (SQLAlchemy's psycopg 3 dialect)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, cwd=self.folder,
                       capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for this test session (one per xdist worker that asks for it)."""
    cluster = PostgresCluster()
    yield cluster
    cluster.remove()


def start_mlflow_server(base: Path, *extra: str, store: str | None = None,
                        env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A real ``mlflow server`` on a free loopback port; returns (process, URI)."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    return start_server(mlflow_server_command(base, port, *extra, store=store), base,
                        uri + "/health", env=env), uri


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, postgres):
    """A real ``mlflow server`` as production runs it: PostgreSQL backend store (psycopg 3),
    proxied artifacts, on a loopback port."""
    base = tmp_path_factory.mktemp("mlflow-server")
    proc, uri = start_mlflow_server(base, store=postgres.uri)
    yield uri
    stop_server(proc)


@pytest.fixture(scope="session")
def mlflow_sqlite_server(tmp_path_factory):
    """A real ``mlflow server`` on a SQLite backend store (the small-team form)."""
    base = tmp_path_factory.mktemp("mlflow-sqlite-server")
    proc, uri = start_mlflow_server(base)
    yield uri
    stop_server(proc)


AUTH_ADMIN = ("admin", "textops-admin-pw-7Qx")


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory, postgres):
    """A real ``mlflow server --app-name basic-auth`` (needs mlflow[auth]) on a loopback port,
    its tracking and user stores in PostgreSQL; yields its URI; the admin's credentials are
    AUTH_ADMIN."""
    pytest.importorskip("flask_wtf", reason="mlflow[auth] is not installed")
    base = tmp_path_factory.mktemp("mlflow-auth-server")
    ini = base / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = {postgres.database('mlflow_auth')}\n"
                   f"admin_username = {AUTH_ADMIN[0]}\nadmin_password = {AUTH_ADMIN[1]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = clean_env(MLFLOW_AUTH_CONFIG_PATH=str(ini),
                    MLFLOW_FLASK_SERVER_SECRET_KEY="textops-tests-secret-key")
    proc, uri = start_mlflow_server(base, "--app-name", "basic-auth",
                                    store=postgres.database("mlflow_tracking_auth"), env=env)
    yield uri
    stop_server(proc)
