"""Shared plumbing for the three scripts: exit codes, errors, logging, CLI helpers, atomic files.

Data handling lives in ``dataio.py``, the model in ``modeling.py`` / ``textprep.py`` and MLflow in
``tracking.py``; this module only holds what every entry point needs.
"""
from __future__ import annotations

import argparse
import contextlib
import enum
import logging
import logging.handlers
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import config as cfg


class ExitCode(enum.IntEnum):
    """Process exit codes shared by train.py, predict.py and monitor.py."""

    OK = 0
    ALERT = 1  # monitor.py: a performance threshold was breached
    BAD_INPUT = 2  # bad flags, configuration or input data; fix the input and rerun
    DRIFT = 3  # monitor.py: drift alert (and no performance alert)
    INFRASTRUCTURE = 4  # tracking server unreachable, no such model/alias, unloadable model
    BUSY = 5  # train.py: another training of the same model holds the lock (run skipped)
    INTERNAL = 70  # a bug: unexpected exception (traceback in the log file)
    INTERRUPTED = 130  # SIGINT / SIGTERM


EXIT_CODE_HELP = """exit codes:
  0   success (monitor.py: healthy)
  1   monitor.py: performance alert on labelled data (wins over drift)
  3   monitor.py: drift alert (no performance alert)
  2   bad input: wrong flags/configuration, missing or unreadable file, missing column,
      empty data, single class, undecodable text
  4   infrastructure: tracking server unreachable, model or alias not found, model not loadable
  5   train.py: another training of the same model is running (lock held); this run skipped
  70  unexpected internal error (a bug: the traceback is in the log file)
  130 interrupted (Ctrl-C / SIGTERM)"""


class TextopsError(Exception):
    """An expected failure: reported as one line on stderr, mapped to an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL


class BadInputError(TextopsError):
    exit_code = ExitCode.BAD_INPUT


class ModelNotFoundError(TextopsError):
    exit_code = ExitCode.INFRASTRUCTURE


class TrackingUnavailableError(TextopsError):
    exit_code = ExitCode.INFRASTRUCTURE


class EngineUnavailableError(TextopsError):
    """The compute engine (e.g. a Spark session) could not be started."""

    exit_code = ExitCode.INFRASTRUCTURE


class Interrupted(Exception):
    """Raised from a signal handler so that ``finally`` blocks and MLflow run cleanup run."""


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------
class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def setup_logging(name: str, config: dict[str, Any], quiet: bool = False) -> logging.Logger:
    """Log to stderr and to a rotating ``logs/<name>.log``; returns the script's logger."""
    level = getattr(logging, str(config["logging"]["level"]).upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else level)
    console.setFormatter(fmt)
    console.addFilter(_ConsoleFilter())
    root.addHandler(console)

    log_dir = cfg.resolve_path(config["logging"]["dir"])
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / f"{name}.log",
            maxBytes=int(config["logging"]["max_bytes"]),
            backupCount=int(config["logging"]["backup_count"]),
            encoding="utf-8",
        )
        file_handler.setLevel(level)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    except OSError as exc:  # a read-only checkout must not stop a nightly job
        logging.getLogger(name).warning("cannot write log file in %s (%s); console only", log_dir, exc)

    # Third-party chatter stays in the file at WARNING and above.
    for noisy in ("mlflow", "alembic", "urllib3", "git", "matplotlib", "skops", "numexpr"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return logging.getLogger(name)


def quiet_third_party_warnings() -> None:
    """Silence library warnings that are noise for a nightly job (they say nothing actionable)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*stop_words may be inconsistent.*")
    warnings.filterwarnings("ignore", message=".*Hint: Inferred schema contains integer.*")
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", module="pydantic")


# --------------------------------------------------------------------------------------------
# Running a main()
# --------------------------------------------------------------------------------------------
def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def _lost_connection(exc: BaseException) -> bool:
    """Does ``exc`` (or its cause / context) come from a tracking server that stopped answering?"""
    seen = 0
    while exc is not None and seen < 10:
        name = type(exc).__name__
        text = str(exc)
        if name in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "MaxRetryError",
                    "NewConnectionError", "RemoteDisconnected", "ConnectionRefusedError"):
            return True
        if name == "MlflowException" and ("Max retries exceeded" in text
                                          or "Connection refused" in text
                                          or "API request to" in text and "failed" in text):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def run_main(script: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main`` and map failures to exit codes: one line on stderr, no traceback for
    expected failures; the full traceback of unexpected ones goes to the log file."""
    import signal

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # our handlers, our format
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not in cron mail
    with contextlib.suppress(ValueError):  # not in the main thread (tests calling main())
        signal.signal(signal.SIGTERM, _raise_interrupted)
    log = logging.getLogger(script)
    try:
        return int(main(argv))
    except TextopsError as exc:
        log.error("%s", exc, extra={"file_only": True})
        print(f"{script}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except cfg.ConfigError as exc:
        print(f"{script}: error: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    except (KeyboardInterrupt, Interrupted) as exc:
        log.error("interrupted (%s)", exc or "SIGINT", extra={"file_only": True})
        print(f"{script}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - last-resort mapping of bugs to exit code 70
        if _lost_connection(exc):  # the tracking server went away in the middle of the work
            log.error("tracking server lost: %s\n%s", exc, traceback.format_exc(),
                      extra={"file_only": True})
            print(f"{script}: error: lost the connection to the MLflow tracking server mid-run "
                  f"({type(exc).__name__}); nothing was promoted; check the server and rerun",
                  file=sys.stderr)
            return int(ExitCode.INFRASTRUCTURE)
        log.error("unexpected error: %s\n%s", exc, traceback.format_exc(), extra={"file_only": True})
        print(
            f"{script}: internal error: {type(exc).__name__}: {exc} "
            "(a bug; the traceback is in the log file under logs/)",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (which already include .env / environment overrides) and keeps epilogs."""


def make_parser(description: str, epilog: str = "") -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        description=description,
        epilog=(epilog + "\n\n" if epilog else "") + EXIT_CODE_HELP,
        formatter_class=HelpFormatter,
    )


def add_common_arguments(parser: argparse.ArgumentParser, config: dict[str, Any]) -> None:
    """Flags shared by every script; their defaults come from the resolved configuration."""
    data = config["data"]
    parser.add_argument("--text-column", default=data["text_column"],
                        help="column holding the text [TEXTOPS_TEXT_COLUMN]")
    parser.add_argument("--model-name", default=config["mlflow"]["model_name"],
                        help="registered model name in the MLflow registry [TEXTOPS_MODEL_NAME]")
    parser.add_argument("--encoding", default=data["encoding"],
                        help="input file encoding; a byte-order mark wins [TEXTOPS_ENCODING]")
    parser.add_argument("--delimiter", default=data["delimiter"],
                        help="input field delimiter, e.g. ',' or '\\t' [TEXTOPS_DELIMITER]")
    parser.add_argument("--tracking-uri", default=config["mlflow"]["tracking_uri"],
                        help="MLflow tracking URI; empty = embedded SQLite store in the project "
                             "[MLFLOW_TRACKING_URI]")
    parser.add_argument("--quiet", action="store_true", help="console shows warnings and errors only")


def apply_common_arguments(config: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the shared flags back into ``config`` (flags beat environment beat defaults)."""
    config["data"]["text_column"] = args.text_column
    config["data"]["encoding"] = args.encoding
    config["data"]["delimiter"] = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    config["mlflow"]["model_name"] = args.model_name
    config["mlflow"]["tracking_uri"] = args.tracking_uri


def start(script: str, parse_args: Callable[[list[str] | None, dict[str, Any]], argparse.Namespace],
          argv: list[str] | None, apply: Callable[[dict[str, Any], argparse.Namespace], None] | None = None,
          ) -> tuple[dict[str, Any], argparse.Namespace]:
    """The prologue of every entry point: .env, CONFIG + environment, flags, logging.

    Returns the resolved configuration (flags applied by ``apply``, default: the common ones)
    and the parsed arguments.
    """
    cfg.load_dotenv_file()
    config = cfg.load_config()
    args = parse_args(argv, config)
    (apply or apply_common_arguments)(config, args)
    setup_logging(script, config, quiet=args.quiet)
    quiet_third_party_warnings()
    return config, args


def cli_path(value: str) -> Path:
    """A path given on the command line is relative to the current directory, as users expect."""
    return Path(os.path.expanduser(value)).absolute()


def config_path(value: str | os.PathLike[str] | None) -> Path | None:
    """A path from CONFIG / the environment is relative to the project root."""
    return None if value in (None, "") else cfg.resolve_path(value)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_output(final_path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Write to a temporary file beside ``final_path`` and rename it into place on success.

    On any failure (or interruption) the temporary file is removed and ``final_path`` is left as
    it was: a reader never sees a half-written file under the final name.
    """
    final_path = Path(final_path)
    directory = final_path.parent
    if not directory.is_dir():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"cannot create output folder {directory}: {exc.strerror}") from None
    if final_path.is_dir():
        raise BadInputError(f"output path {final_path} is a directory; give a file name")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise BadInputError(f"cannot write to output folder {directory}: {exc.strerror}") from None
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start
