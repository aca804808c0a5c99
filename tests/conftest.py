"""Shared fixtures: real datasets from ../shared/data, throw-away project copies, script runners."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

SHARED_DATA = Path(os.environ.get("TEXTOPS_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
# Small, fast model settings for end-to-end runs; the model's quality is benchmarked elsewhere.
FAST_MODEL_ENV = {
    "TEXTOPS_CATBOOST_ITERATIONS": "60",
    "TEXTOPS_CATBOOST_CV_FOLDS": "3",
    "TEXTOPS_TFIDF_MAX_FEATURES": "5000",
    "TEXTOPS_TFIDF_CHAR_MAX_FEATURES": "5000",
}


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path} not available")
    return path


def copy_project(root: Path) -> Path:
    """A fresh copy of the project at ``root``: its Python modules and shipped stop words; no
    .env, no registry, no logs."""
    root.mkdir(parents=True)
    for module in PROJECT_ROOT.glob("*.py"):
        shutil.copy2(module, root / module.name)
    shutil.copytree(PROJECT_ROOT / "nltk_data", root / "nltk_data")
    return root


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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (SQLite backend, artifact destination) on a loopback port."""
    import requests

    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{base / 'server.db'}",
           "--artifacts-destination", str(base / "artifacts"), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(base))
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(base / 'server.log').read_text()[-2000:]}")
        try:
            if requests.get(uri + "/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    else:
        proc.terminate()
        raise RuntimeError("mlflow server did not become ready in 90 s")
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
