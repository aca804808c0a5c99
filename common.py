"""The scripts' shared helper: start-up, the command line built from CONFIG, logging (console
and ``logs/``, secrets masked), and ``run_main``, which maps every failure to its exit code.

What the package itself needs (exit codes and errors, secret redaction, interrupts, atomic
output files) lives in ``textops`` (errors, redaction, interrupts, files, timing); its names
are imported here too, so the scripts and their users keep finding them in ``common``.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import io
import logging.handlers
import os
import re
import signal
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import config as cfg
from textops.errors import (EXIT_CODE_HELP, EXIT_CODES, BadInputError,  # noqa: F401 - re-exported
                            EngineUnavailableError, ExitCode, Interrupted, ModelNotFoundError,
                            TextopsError, TrackingUnavailableError, causes, first_line)
from textops.files import (atomic_output, current_umask, prepare_output,  # noqa: F401
                           refuse_overwriting, same_file)
from textops.interrupts import (_quiet_swallowed_interrupt, _raise_interrupted,  # noqa: F401
                                interrupt_from, raise_if_interrupted)
from textops.redaction import (MASK, SECRET_VALUES, SECRET_VARIABLES,  # noqa: F401
                               add_secret, collect_secrets, learn_uri_secrets, redact,
                               uri_password, uri_query_secrets)
from textops.paths import is_uri
from textops.settings import LoggingSettings, Settings, resolve
from textops.timing import Stopwatch  # noqa: F401


# --------------------------------------------------------------------------------------------
# Secrets on the standard streams and in log records (the masking itself: textops.redaction)
# --------------------------------------------------------------------------------------------
class _RedactingStream(io.TextIOBase):
    """sys.stdout / sys.stderr through :func:`redact`: whatever a library prints (MLflow's
    "View run ... at: http://user:password@...") is masked too."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_standard_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _RedactingStream):
            setattr(sys, name, _RedactingStream(stream))


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------
# Libraries whose records go to the log file only: their warnings are multi-line (SQL, stack
# traces, retries) and the failure they lead to is reported in one line by run_main.
THIRD_PARTY = ("mlflow", "alembic", "sqlalchemy", "urllib3", "git", "matplotlib", "skops",
               "numexpr", "py4j", "pyspark")


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in THIRD_PARTY:
            return False
        return not getattr(record, "file_only", False)


class _FileOnly(logging.Filter):
    """Marks a logger's records for the log file only (Python warnings: multi-line, and
    nothing a nightly job's reader can act on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.file_only = True
        return True


_LOG_FILE: list[Path] = []  # the log file setup_logging opened (none: console only)


def traceback_place(exc_text: str) -> str:
    """Where the traceback of a bug can be read: the log file, or (when none could be opened)
    a file written for it in the temporary folder."""
    if _LOG_FILE:
        return f"the log file {_LOG_FILE[0]}"
    try:
        fd, name = tempfile.mkstemp(prefix="textops-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(redact(exc_text))
        return name
    except OSError:
        return "nowhere: no file could be written; rerun with a writable logs/ folder"


def setup_logging(name: str, settings: LoggingSettings, quiet: bool = False) -> logging.Logger:
    """Log to stderr and to a rotating ``logs/<name>.log``; returns the script's logger."""
    level = getattr(logging, str(settings.level).upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else level)
    console.setFormatter(fmt)
    console.addFilter(_ConsoleFilter())
    root.addHandler(console)

    log_dir = settings.dir or cfg.resolve_path(cfg.CONFIG["logging"]["dir"].default)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / f"{name}.log",
            maxBytes=settings.max_bytes,
            backupCount=settings.backup_count,
            encoding="utf-8",
        )
        file_handler.setLevel(level)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
        _LOG_FILE[:] = [log_dir / f"{name}.log"]
    except OSError as exc:  # a read-only checkout must not stop a nightly job
        _LOG_FILE.clear()
        logging.getLogger(name).warning("cannot write the log file in %s (%s); logging to the "
                                        "console only", log_dir, exc.strerror or exc)

    logging.captureWarnings(True)  # library warnings go to the log file, not to stderr
    warnings_logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, _FileOnly) for f in warnings_logger.filters):
        warnings_logger.addFilter(_FileOnly())
    # Third-party chatter stays in the file at WARNING and above.
    for noisy in THIRD_PARTY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return logging.getLogger(name)


def quiet_third_party_warnings() -> None:
    """Silence library warnings that are noise for a nightly job (they say nothing actionable)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*stop_words may be inconsistent.*")
    warnings.filterwarnings("ignore", message=".*Hint: Inferred schema contains integer.*")
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", module="pydantic")


# --------------------------------------------------------------------------------------------
# Running a main()
# --------------------------------------------------------------------------------------------
def _loaded_types(*qualified: str) -> tuple[type, ...]:
    """The exception classes named ``module.Class`` whose modules this process has imported
    (an exception of a library never imported cannot be raised here, so none is imported)."""
    found = []
    for name in qualified:
        module, _, attribute = name.rpartition(".")
        kind = getattr(sys.modules.get(module), attribute, None)
        if isinstance(kind, type):
            found.append(kind)
    return tuple(found)


# What a tracking server that stopped answering raises, by type: the socket's own errors and
# those of the HTTP stack MLflow talks through.
CONNECTION_ERRORS = ("builtins.ConnectionRefusedError", "builtins.ConnectionResetError",
                     "http.client.RemoteDisconnected",
                     "requests.exceptions.ConnectionError", "requests.exceptions.Timeout",
                     "urllib3.exceptions.MaxRetryError", "urllib3.exceptions.NewConnectionError")
# The store's database refusing, by type (SQLite directly or through SQLAlchemy).
DATABASE_ERRORS = ("sqlite3.DatabaseError", "sqlalchemy.exc.DatabaseError")


def _lost_connection(exc: BaseException) -> bool:
    """Does ``exc`` (or its cause / context) come from a tracking server that stopped answering?"""
    connection = _loaded_types(*CONNECTION_ERRORS)
    mlflow_error = _loaded_types("mlflow.exceptions.MlflowException")
    for exc in causes(exc):
        text = str(exc)
        if isinstance(exc, connection):
            return True
        if isinstance(exc, mlflow_error) and ("Max retries exceeded" in text
                                              or "Connection refused" in text
                                              or "API request to" in text and "failed" in text):
            return True
    return False


def _server_error_status(exc: BaseException) -> str | None:
    """The HTTP 5xx status a reachable server kept answering with (its database down), if any."""
    found = re.search(r"too many (5\d\d) error responses", str(exc))
    return found.group(1) if found else None


_STORE_READ_ONLY = ("attempt to write a readonly database", "readonly database")
_STORE_BROKEN = ("file is not a database", "database disk image is malformed", "disk i/o error",
                 "unable to open database file", "no such table")


def environment_failure(exc: BaseException) -> tuple[ExitCode, str] | None:
    """(exit code, one line) for a failure of the machine, not of textops: a full disk, a
    read-only folder, a corrupted or unreadable MLflow store; None for anything else."""
    for exc in causes(exc):
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {exc.filename}" if exc.filename else ""
            return ExitCode.INFRASTRUCTURE, (f"no space left on the device{where} "
                                             f"({exc.strerror}); nothing was published: free "
                                             f"space and rerun")
        if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            where = f" {exc.filename}" if exc.filename else ""
            return ExitCode.BAD_INPUT, (f"cannot write{where} ({exc.strerror}); choose a writable "
                                        f"path or fix its permissions")
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return ExitCode.BAD_INPUT, (f"{exc.filename or 'a path'} is a loop of symbolic links; "
                                        f"give the path of a real file")
        text = str(exc).lower()
        if any(needle in text for needle in _STORE_READ_ONLY):
            return ExitCode.INFRASTRUCTURE, (
                "the MLflow store cannot be written (attempt to write a readonly database): "
                "give this user write access to the store's file and its folder, or point "
                "MLFLOW_TRACKING_URI at a writable store")
        if isinstance(exc, _loaded_types(*DATABASE_ERRORS)) and any(
                needle in text for needle in _STORE_BROKEN):
            return ExitCode.INFRASTRUCTURE, (
                f"the MLflow store cannot be read ({first_line(exc, 120)}): it is corrupted or "
                f"not an MLflow database; restore it from a backup, or point MLFLOW_TRACKING_URI "
                f"at a working store")
    return None


def run_main(script: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main`` and map failures to exit codes: one line on stderr, no traceback for
    expected failures; the full traceback of unexpected ones goes to the log file."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # our handlers, our format
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not in cron mail
    # MLflow's "View run ... at: <tracking URI>" lines: noise in cron mail, and the URI may hold
    # a password (masked anyway: the standard streams go through redact())
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    collect_secrets()
    redact_standard_streams()
    with contextlib.suppress(ValueError):  # not in the main thread (tests calling main())
        signal.signal(signal.SIGTERM, _raise_interrupted)
        signal.signal(signal.SIGINT, _raise_interrupted)  # recorded too, like SIGTERM
    sys.unraisablehook = _quiet_swallowed_interrupt
    log = logging.getLogger(script)
    try:
        return int(main(argv))
    except TextopsError as exc:
        log.error("%s", exc, extra={"file_only": True})
        print(redact(f"{script}: error: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except cfg.ConfigError as exc:
        print(redact(f"{script}: error: {exc}"), file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    except (KeyboardInterrupt, Interrupted) as exc:
        log.error("interrupted (%s)", exc or "SIGINT", extra={"file_only": True})
        print(f"{script}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - last-resort mapping of bugs to exit code 70
        if interrupt_from(exc) is not None:  # a signal that landed in compiled code (numba's
            # "returned a result with an exception set") surfaces as that code's own error
            log.error("interrupted (%s)", first_line(exc), extra={"file_only": True})
            print(f"{script}: interrupted", file=sys.stderr)
            return int(ExitCode.INTERRUPTED)
        failure = environment_failure(exc)
        if failure is not None:
            log.error("%s\n%s", failure[1], traceback.format_exc(), extra={"file_only": True})
            print(redact(f"{script}: error: {failure[1]}"), file=sys.stderr)
            return int(failure[0])
        if _lost_connection(exc):  # the tracking server went away in the middle of the work
            log.error("tracking server lost: %s\n%s", exc, traceback.format_exc(),
                      extra={"file_only": True})
            status = _server_error_status(exc)
            what = (f"the MLflow tracking server kept answering HTTP {status} mid-run (is its "
                    "backend database up?)" if status else
                    "lost the connection to the MLflow tracking server mid-run")
            print(f"{script}: error: {what} ({type(exc).__name__}); nothing was promoted; check "
                  "the server and rerun", file=sys.stderr)
            return int(ExitCode.INFRASTRUCTURE)
        trace = traceback.format_exc()
        log.error("unexpected error: %s\n%s", exc, trace, extra={"file_only": True})
        print(redact(f"{script}: internal error: {type(exc).__name__}: {first_line(exc)} "
                     f"(a bug; the traceback is in {traceback_place(trace)})"), file=sys.stderr)
        return int(ExitCode.INTERNAL)


# --------------------------------------------------------------------------------------------
# Command line: flags are derived from config.CONFIG and override the configuration one way
# --------------------------------------------------------------------------------------------
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (which already include .env / environment overrides) and keeps epilogs."""


def cli_path(value: str) -> str:
    """A path given on the command line is relative to the current directory, as users expect."""
    return str(Path(os.path.expanduser(value)).absolute())


def _flag_type(setting: cfg.Setting) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        if setting.path and raw and not (setting.remote and is_uri(raw)):  # a URI stays a URI
            return cli_path(raw)
        if setting.uri:
            return cfg.absolute_sqlite_uri(raw, Path.cwd())
        try:
            return cfg.parse_value(setting, raw)
        except cfg.OutOfRange as exc:  # argparse shows this message, not "invalid int value"
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = setting.type.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def add_setting_flags(parser: argparse.ArgumentParser, config: dict[str, Any], script: str,
                      groups: Mapping[str, Any] | None = None) -> None:
    """The flags of ``script`` declared in CONFIG, defaulting to the resolved configuration.

    Each flag's destination is its setting (``"predict.data"``); :func:`apply_flags` writes
    the parsed values back into the configuration. ``groups`` puts a setting's flag into an
    argument group (key: ``"section.key"``).
    """
    for section, key, setting in cfg.settings():
        if script not in cfg.flag_scripts(section, setting):
            continue
        dest = f"{section}.{key}"
        default = config[section][key]  # argparse passes a str default through the flag's type,
        if setting.path and default and not (setting.remote and is_uri(default)):  # argparse
            default = str(cfg.resolve_path(default))  # reads paths against the current directory
        elif setting.uri:
            default = cfg.absolute_sqlite_uri(default, cfg.PROJECT_ROOT)
        names = [cfg.env_name(section, key)] + cfg.aliases_of(section, key)[:1]
        text = f"{setting.help} [{', '.join(names)}]"
        target = (groups or {}).get(dest, parser)
        if setting.type is bool:
            target.add_argument(setting.flag, dest=dest, default=default, help=text,
                                action=argparse.BooleanOptionalAction)
        else:
            target.add_argument(setting.flag, dest=dest, default=default, help=text,
                                type=_flag_type(setting), choices=setting.choices,
                                metavar=setting.metavar or ("PATH" if setting.path else key.upper()))


def apply_flags(config: dict[str, Any], args: argparse.Namespace) -> None:
    """Write every parsed setting flag into ``config``: the code reads the configuration only."""
    for dest, value in vars(args).items():
        section, _, key = dest.partition(".")
        if key and section in config and key in config[section]:
            config[section][key] = value


def make_parser(script: str, config: dict[str, Any], description: str, epilog: str = "",
                groups: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """A script's parser: its setting flags (``groups``: ``"section.key"`` -> group title),
    ``--quiet``, and the exit-code table in the epilog."""
    parser = argparse.ArgumentParser(
        prog=f"{script}.py", description=description,
        epilog=(epilog + "\n\n" if epilog else "") + EXIT_CODE_HELP,
        formatter_class=HelpFormatter,
    )
    titles = {title: parser.add_argument_group(title) for title in dict.fromkeys((groups or {}).values())}
    add_setting_flags(parser, config, script,
                      {dest: titles[title] for dest, title in (groups or {}).items()})
    parser.add_argument("--quiet", action="store_true", help="console shows warnings and errors only")
    return parser


def start(script: str, build_parser: Callable[[dict[str, Any]], argparse.ArgumentParser],
          argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    """The prologue of every entry point: .env, CONFIG + environment, flags, logging.

    Returns the settings, resolved once (flags applied, paths against the project folder), and
    the parsed arguments.
    """
    cfg.load_dotenv_file()
    config = cfg.load_config()
    args = build_parser(config).parse_args(argv)
    apply_flags(config, args)
    resolved = resolve(config, cfg.PROJECT_ROOT)
    setup_logging(script, resolved.logging, quiet=args.quiet)
    quiet_third_party_warnings()
    check_variable_names(os.environ, strict=resolved.logging.strict)
    return resolved, args


def check_variable_names(environ: Mapping[str, str], strict: bool) -> None:
    """Warn, one line each, about TEXTOPS_* variables no setting reads (with the closest
    setting's name); with TEXTOPS_STRICT=true the first one is an error (exit 2)."""
    for name, near in cfg.unknown_variables(environ):
        problem = (f"environment variable {name} is not a textops setting" +
                   (f" (did you mean {near}?)" if near else "") +
                   "; see .env.example for the names")
        if strict:
            raise cfg.ConfigError(problem + " (TEXTOPS_STRICT=true)")
        logging.getLogger("config").warning("%s; ignored", problem)

