"""MLflow: where the tracking store is, the registry (versions and aliases), logging a model
and loading one back (one loader for every caller), and the model card shown in the MLflow UI.

Embedded default: ``sqlite:///<project>/mlflow.db`` with artifacts under ``<project>/mlartifacts``
(resolved from the project root, not the current directory). Any ``MLFLOW_TRACKING_URI`` (e.g. an
``http://`` tracking server) is used unchanged instead.
"""
from __future__ import annotations

import contextlib
import difflib
import errno
import io
import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Callable

import requests
import skops.io as sio
import yaml

import textprep
from textops.errors import (BadInputError, ModelNotFoundError, TrackingUnavailableError,
                            first_line)
from textops.locking import exclusive
from textops.redaction import learn_uri_secrets
from textops.redaction import redact as mask_secrets
from textops.settings import Tracking

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# Types our pipelines contain that skops does not trust by default; anything else is refused.
TRUSTED_TYPES = (
    "catboost.core.CatBoost",  # the stopping folds' trees averaged (textprep.mean_trees)
    "catboost.core.CatBoostClassifier",
    "textprep.CatBoostText",
    "textprep.HashedTfidf",
    "textprep.SideColumns",
    "textprep.TextAndSide",
    "textprep.TextColumn",
)
TEXTPREP_PATH = Path(textprep.__file__).resolve().parent  # shipped as the model's code


def shown_uri(uri: str) -> str:
    """``uri`` fit for logs and messages: a password in it (``http://user:pw@host``) is masked,
    however it is spelled (``@``, ``/``, ``:`` or percent escapes inside it, token only)."""
    learn_uri_secrets(str(uri))
    return mask_secrets(str(uri))


def _check_server(uri: str, timeout: float) -> None:
    """Reachable, healthy, and accepting our credentials (MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD or a token), all within ``timeout`` seconds per request."""
    shown = shown_uri(uri)
    base = uri.rstrip("/")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    auth = (user, password or "") if user else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(base + "/health", timeout=timeout)
        if response.status_code < 400:  # an authenticated call: are the credentials accepted?
            response = requests.get(base + "/api/2.0/mlflow/experiments/search",
                                    params={"max_results": 1}, auth=auth, headers=headers,
                                    timeout=timeout)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise TrackingUnavailableError(
            f"MLflow tracking server {shown} is unreachable ({reason}); start it or fix "
            f"MLFLOW_TRACKING_URI (unset it to use the embedded SQLite store)"
        ) from None
    if response.status_code in (401, 403):
        given = "the credentials given were refused" if (auth or token) else "no credentials given"
        raise TrackingUnavailableError(
            f"MLflow tracking server {shown} requires authentication: {given} (HTTP "
            f"{response.status_code}); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            f"(e.g. in .env)"
        )
    if response.status_code >= 500:
        raise TrackingUnavailableError(
            f"MLflow tracking server {shown} is unhealthy (HTTP {response.status_code})"
        )


def connect(tracking: Tracking):
    """Point MLflow at the configured store and return an ``MlflowClient``.

    Fails within ``connect_timeout`` seconds, with exit code 4, when a server or a database is
    unreachable; a URI that is not one (``http//host``, an unknown scheme, a database driver not
    installed) is exit 2. A SQLite store is created (or opened) under a file lock, so jobs that
    start together on a new machine do not race on its schema.
    """
    timeout = tracking.connect_timeout
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(int(timeout * 3), 30)))
    uri = tracking.uri
    shown_uri(uri)  # learns its secrets: --tracking-uri too, not only the environment's
    kind = store_kind(uri)
    if kind == "http":
        _check_server(uri, timeout)
    elif kind == "database":
        _check_database(uri, timeout)
    import mlflow  # heavy (~1.5 s): imported by the functions that talk to MLflow, never at start
    from mlflow.tracking import MlflowClient  # heavy: lazy

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if kind == "sqlite":
        return _open_sqlite_store(lambda: MlflowClient(tracking_uri=uri, registry_uri=uri),
                                  Path(uri[len("sqlite:///"):]))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


KNOWN_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks",
                 "databricks-uc", "uc", "file")
DATABASE_DRIVERS = {  # module SQLAlchemy misses -> what to install
    "psycopg": 'psycopg[binary]', "psycopg2": "psycopg2-binary", "pymysql": "pymysql",
    "MySQLdb": "mysqlclient", "pyodbc": "pyodbc", "pymssql": "pymssql"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def store_kind(uri: str) -> str:
    """``http``, ``sqlite``, ``database`` (PostgreSQL, MySQL, SQL Server) or ``other`` (Databricks,
    a plugin's scheme); BadInputError for a value that is no tracking URI at all."""
    scheme, sep, _ = uri.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if not sep:
        if uri.strip().lower() in ("databricks", "databricks-uc", "uc"):
            return "other"
        raise BadInputError(f"MLFLOW_TRACKING_URI {shown_uri(uri)!r} is not a URI (no 'scheme://'); "
                            f"e.g. http://host:5000, postgresql://user@host/db or "
                            f"sqlite:///path/mlflow.db, or unset it for the embedded store")
    if base in ("http", "https"):
        return "http"
    if base == "sqlite":
        return "sqlite"
    if base in DEFAULT_PORTS:
        return "database"
    if base not in KNOWN_SCHEMES and base not in _plugin_schemes():
        near = difflib.get_close_matches(base, KNOWN_SCHEMES, n=1)
        hint = f"did you mean {near[0]}://? " if near else ""
        raise BadInputError(f"MLFLOW_TRACKING_URI {shown_uri(uri)!r} has the unknown scheme "
                            f"{scheme!r}; {hint}use http(s)://, postgresql://, mysql://, "
                            f"sqlite:/// or databricks, or unset it for the embedded store")
    return "other"


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow plugins register for tracking stores."""
    return {entry.name for entry in entry_points(group="mlflow.tracking_store")}


def _check_database(uri: str, timeout: float) -> None:
    """A database store (``postgresql://``, ``mysql+pymysql://`` ...): its driver installed
    (else exit 2), the server answering and accepting the login within ``timeout`` seconds
    (else exit 4) -- MLflow itself would retry for minutes and print every attempt."""
    import sqlalchemy  # heavy: lazy (MLflow's own dependency)
    from sqlalchemy.engine import make_url

    shown = shown_uri(uri)
    try:
        url = make_url(uri)
        dialect = url.get_dialect()
        dialect.import_dbapi()
    except ImportError as exc:
        module = getattr(exc, "name", None) or str(exc)
        package = DATABASE_DRIVERS.get(module, module)
        raise BadInputError(f"MLFLOW_TRACKING_URI {shown} needs the database driver {module!r}, "
                            f"which is not installed; pip install '{package}' (or use "
                            f"another driver in the URI's scheme)") from None
    except Exception as exc:  # noqa: BLE001 - NoSuchModuleError, ArgumentError: not a DB URI
        raise BadInputError(f"MLFLOW_TRACKING_URI {shown} is not a database URI SQLAlchemy "
                            f"knows ({first_line(exc, 120)}); e.g. "
                            f"postgresql://user@host:5432/mlflow") from None
    if url.host and not url.host.startswith("/"):
        port = url.port or DEFAULT_PORTS.get(dialect.name, 0)
        try:
            socket.create_connection((url.host, port), timeout=timeout).close()
        except OSError as exc:
            raise TrackingUnavailableError(
                f"the MLflow store's database {url.host}:{port} ({shown}) is unreachable "
                f"({type(exc).__name__}); start it or fix MLFLOW_TRACKING_URI") from None
    connect_args = {"connect_timeout": max(int(timeout), 1)} if dialect.name in (
        "postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - refused login, no such database, a timeout
        raise TrackingUnavailableError(
            f"the MLflow store's database ({shown}) refused the connection "
            f"({first_line(getattr(exc, 'orig', None) or exc, 160)}); check the user, password "
            f"and database name in MLFLOW_TRACKING_URI") from None
    finally:
        engine.dispose()


def _open_sqlite_store(make_client: Callable[[], Any], db_path: Path):
    """The client of a SQLite store, created (or opened) under ``.<name>.lock`` beside it:
    MLflow's schema set-up races when several jobs open a new store at once ("table
    _alembic_tmp_experiments already exists"). A folder where no lock can be made (read-only)
    gets none: no store can be created there either."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingUnavailableError(f"cannot create {db_path.parent} for the MLflow store: "
                                       f"{exc.strerror}") from None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(db_path.with_name(f".{db_path.name}.lock"),
                                         STORE_LOCK_WAIT, "the set-up of this MLflow store",
                                         remove=True))
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            log.debug("no lock beside %s (%s): opening it without one", db_path, exc.strerror)
        return _first_use(make_client)


STORE_LOCK_WAIT = 300.0  # creating a store takes seconds; a job waits this long for another's


def _first_use(make_client: Callable[[], Any]):
    """The client, once its stores' schemas exist (created now for a new store). The store
    keeps SQLite's rollback journal: in WAL mode a store in a read-only folder could not even
    be read (measured), and MLflow already gives every session a busy timeout (20 s)."""
    client = make_client()
    client.search_experiments(max_results=1)  # the tracking store's schema, created if new
    client.search_registered_models(max_results=1)  # the registry's (same file)
    return client


def ensure_experiment(client, tracking: Tracking, name: str) -> str:
    """Experiment id for ``name``, creating it; local stores keep artifacts in
    TEXTOPS_MLFLOW_ARTIFACT_ROOT (default: mlartifacts/ in the project)."""
    from mlflow.exceptions import MlflowException  # heavy: lazy

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = None
    if not tracking.uri.startswith(("http://", "https://", "databricks")):
        # A local store (the embedded one or another SQLite file): artifacts go to the
        # configured folder, never to ./mlruns of whatever directory the job started in.
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        location = (tracking.artifact_root / slug).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently by another job
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# --------------------------------------------------------------------------------------------
# Registry look-ups
# --------------------------------------------------------------------------------------------
def model_exists(client, name: str) -> bool:
    from mlflow.exceptions import MlflowException  # heavy: lazy

    try:
        client.get_registered_model(name)
        return True
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: str
    run_id: str | None


def resolve_version(client, name: str, ref: str) -> ResolvedModel:
    """The model version an alias (``champion``), ``latest`` or a version number points at.

    The alias is resolved once, so a promotion during a long job cannot switch models mid-run.
    """
    found = _find_version(client, name, ref)
    return ResolvedModel(name, str(found.version), found.run_id)


def _find_version(client, name: str, ref: str):
    from mlflow.exceptions import MlflowException  # heavy: lazy

    ref = str(ref).strip()
    if not model_exists(client, name):
        raise ModelNotFoundError(
            f"no registered model named {name!r} in {shown_uri(client.tracking_uri)}; run train.py first "
            f"(or pass --model-name / set TEXTOPS_MLFLOW_MODEL_NAME)"
        )
    if ref.lower() == "latest":
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise ModelNotFoundError(f"registered model {name!r} has no versions; run train.py first")
        return max(versions, key=lambda v: int(v.version))
    ref = ref[1:] if re.fullmatch(r"[vV]\d+", ref) else ref
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        if ref.isdigit():
            raise ModelNotFoundError(f"model {name!r} has no version {ref}; pass an existing version, "
                                     f"an alias, or 'latest'") from None
        hint = ("run train.py until a version reaches the promotion threshold, or pass "
                "--model latest / --model VERSION") if ref == CHAMPION else \
            "pass --model champion, --model latest or --model VERSION"
        raise ModelNotFoundError(f"model {name!r} has no @{ref} alias; {hint}") from None


def require_versions(client, name: str, versions: list[str], where: str) -> None:
    """ModelNotFoundError (exit 4) unless every one of ``versions`` is a version of ``name``."""
    from mlflow.exceptions import MlflowException  # heavy: lazy

    missing = []
    for version in versions:
        if not re.fullmatch(r"\d+", version):
            missing.append(version)
            continue
        try:
            client.get_model_version(name, version)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") not in ("RESOURCE_DOES_NOT_EXIST",
                                                      "INVALID_PARAMETER_VALUE"):
                raise
            missing.append(version)
    if missing:
        shown = ", ".join(repr(v) for v in missing[:5])
        raise ModelNotFoundError(
            f"{where} names version(s) {shown} that model {name!r} does not have in "
            f"{shown_uri(client.tracking_uri)}; check --model-name and MLFLOW_TRACKING_URI, or "
            f"monitor the output of predict.py")


def aliases_of(client, name: str) -> dict[str, str]:
    """alias -> version of a registered model (empty when it does not exist yet)."""
    if not model_exists(client, name):
        return {}
    return {alias: str(v) for alias, v in (client.get_registered_model(name).aliases or {}).items()}


def load_pipeline(name: str, version: str, folder: str | None = None) -> Any:
    """A registered version as the raw scikit-learn Pipeline (``predict_proba`` included), from
    a downloaded copy at ``folder`` or downloaded now. Every caller (predict.py, monitor.py,
    batch workers, train.py's champion check) loads through here and ``textprep``'s loader."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="textops-model-") as tmp:
            return load_pipeline(name, version, download_model(name, version, tmp))
    shown = f"models:/{name}/{version}"
    try:
        return textprep.load_model_folder(folder)
    except textprep.UnsafeModelError as exc:
        raise ModelNotFoundError(f"model {shown} {exc}") from None
    except Exception as exc:  # noqa: BLE001 - missing MLmodel, corrupted file, untrusted types
        raise ModelNotFoundError(
            f"model {shown} could not be loaded ({type(exc).__name__}: {first_line(exc)}); "
            f"retrain with train.py or pass another --model") from None


def download_model(name: str, version: str, destination: str) -> str:
    """Copy a registered version's files to ``destination`` (worker processes load it from
    there instead of each asking the tracking server); returns the local model folder."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

    uri = f"models:/{name}/{version}"
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=destination)
    except Exception as exc:  # noqa: BLE001 - missing artifacts, server errors
        raise ModelNotFoundError(f"model {uri} could not be loaded nor downloaded "
                                 f"({first_line(exc)}); retrain with train.py or pass another "
                                 f"--model") from None


# --------------------------------------------------------------------------------------------
# Logging a model
# --------------------------------------------------------------------------------------------
def skops_trusted_types(pipeline: Any) -> list[str]:
    """The non-default types skops must trust to load ``pipeline``; refuses unknown ones."""
    untrusted = sio.get_untrusted_types(data=sio.dumps(pipeline))
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise RuntimeError(f"pipeline contains types outside the trusted list: {unexpected}")
    return sorted(untrusted)


def pip_requirements() -> list[str]:
    """Pinned requirements recorded with the model (explicit: inference would cost 5-8 s)."""
    return [f"{pkg}=={installed_version(pkg)}" for pkg in
            ("mlflow", "catboost", "scikit-learn", "pandas", "numpy", "scipy", "skops",
             "numba")]


class _SklearnWithScores:
    """An MLflow flavor module for ``Model.log``: mlflow.sklearn's own saving (sklearn flavor,
    skops, code, environment files), with the python_function flavor loaded by
    ``textprep._load_pyfunc`` (the same loader) so that pyfunc, the scoring server and spark_udf return
    prediction, probability and proba_<class> columns instead of bare labels."""

    __name__ = "mlflow.sklearn"

    @staticmethod
    def save_model(path: str, mlflow_model, **kwargs) -> None:
        import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers

        mlflow.sklearn.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        pyfunc_conf = mlflow_model.flavors["python_function"]
        pyfunc_conf["loader_module"] = "textprep"
        pyfunc_conf.pop("predict_fn", None)
        mlflow_model.save(os.path.join(path, "MLmodel"))


MODEL_METADATA = "textops"  # the MLmodel metadata key of a model reading side columns


@dataclass(frozen=True)
class ModelInputs:
    """The columns a logged model reads: its text column and its side columns with their kinds
    (recorded in the MLmodel's metadata; a text-only model records nothing and reads the text
    under any column name)."""

    text: str = ""
    side: dict[str, str] = field(default_factory=dict)  # side column -> categorical / numeric

    def to_metadata(self) -> dict[str, Any]:
        return {MODEL_METADATA: {"text_column": self.text, "side_columns": dict(self.side)}}


def model_inputs(folder: str | Path) -> ModelInputs:
    """What the model folder's MLmodel says the model reads (text-only when it says nothing)."""
    meta = yaml.safe_load((Path(folder) / "MLmodel").read_text(encoding="utf-8")) or {}
    recorded = (meta.get("metadata") or {}).get(MODEL_METADATA) or {}
    return ModelInputs(str(recorded.get("text_column") or ""),
                       {str(k): str(v) for k, v in (recorded.get("side_columns") or {}).items()})


def log_and_register(pipeline, name: str, input_example, reads: ModelInputs | None = None) -> Any:
    """Log the pipeline in the active run (skops, signature, input example) and register it;
    ``reads``: a model reading side columns records them (and their kinds) in its MLmodel."""
    import mlflow  # heavy (~1.5 s): lazy, for a fast --help and lean workers
    from mlflow.models import Model, infer_signature  # heavy: lazy

    signature = infer_signature(input_example, textprep.predictions_frame(pipeline, input_example))
    chatter = io.StringIO()  # MLflow prints registration notices straight to stderr
    with contextlib.redirect_stderr(chatter):
        info = Model.log(
            artifact_path=None,
            flavor=_SklearnWithScores,
            sk_model=pipeline,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=skops_trusted_types(pipeline),
            code_paths=[str(TEXTPREP_PATH)],
            pip_requirements=pip_requirements(),
            signature=signature,
            input_example=input_example,
            registered_model_name=name,
            **({"metadata": reads.to_metadata()} if reads is not None and reads.side else {}),
        )
    for line in chatter.getvalue().splitlines():
        if line.strip():
            log.info("mlflow: %s", line.strip())
    return info


# --------------------------------------------------------------------------------------------
# The model card: descriptions shown in the MLflow UI
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCard:
    model: str  # the registered model's description: what it classifies, from what data
    version: str  # the version's: test metrics, baseline, promotion decision, leakage verdict


def describe(client: Any, name: str, version: str, card: ModelCard) -> None:
    """Write the card's descriptions on the registered model and on the version."""
    client.update_registered_model(name, description=card.model)
    client.update_model_version(name, version, description=card.version)
