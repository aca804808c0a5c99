"""Exit codes and the expected failures that map to them: the one table every script, its
--help and the README take their codes from, and the exception types the package raises.
Also the one walk along an exception's causes."""
from __future__ import annotations

import enum
from typing import Iterator

class ExitCode(enum.IntEnum):
    """Process exit codes shared by every script (the one table: see EXIT_CODES)."""

    OK = 0
    ALERT = 1  # monitor.py: a performance threshold was breached
    BAD_INPUT = 2  # bad flags, configuration or input data; fix the input and rerun
    DRIFT = 3  # monitor.py: drift alert (and no performance alert)
    INFRASTRUCTURE = 4  # tracking server unreachable, no such model/alias, unloadable model
    BUSY = 5  # train.py: another training of the same model holds the lock (run skipped)
    INTERNAL = 70  # a bug: unexpected exception (traceback in the log file)
    INTERRUPTED = 130  # SIGINT / SIGTERM


# code -> (meaning, what to do): --help, the README table and monitor's verdicts all come from it.
EXIT_CODES: dict[ExitCode, tuple[str, str]] = {
    ExitCode.OK: ("success; monitor.py: healthy", "-"),
    ExitCode.ALERT: ("monitor.py: performance alert on labelled data, or on the estimated "
                     "accuracy when there are no labels (wins when drift fires too)",
                     "look at the report; retrain or roll back"),
    ExitCode.BAD_INPUT: ("bad input: wrong flag or setting, missing/empty/unreadable file, missing "
                         "column, no data rows, single class, too few rows per class, undecodable "
                         "text", "fix the input or flags as the message says"),
    ExitCode.DRIFT: ("monitor.py: drift alert, no performance alert",
                     "look at the HTML report: what changed in the inputs; get labels for the new "
                     "data"),
    ExitCode.INFRASTRUCTURE: ("infrastructure: tracking server unreachable or refusing "
                              "credentials, no such model/alias/version, model artifact not "
                              "loadable", "start the server / fix MLFLOW_TRACKING_URI / run "
                              "train.py"),
    ExitCode.BUSY: ("train.py: another training of the same model is running; predict.py: "
                    "another run is writing the same output (lock held); this run was skipped, "
                    "nothing logged or written", "nothing, or raise --lock-wait"),
    ExitCode.INTERNAL: ("unexpected internal error (a bug)", "the traceback is in logs/<script>.log"),
    ExitCode.INTERRUPTED: ("interrupted (Ctrl-C, SIGTERM)", "rerun"),
}


def _exit_code_help() -> str:
    lines = ["exit codes:"]
    for code, (meaning, _) in EXIT_CODES.items():
        words, line = meaning.split(), f"  {int(code):<3} "
        for word in words:
            if len(line) + len(word) > 96:
                lines.append(line.rstrip())
                line = " " * 6
            line += word + " "
        lines.append(line.rstrip())
    return "\n".join(lines)


EXIT_CODE_HELP = _exit_code_help()


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), for the
    one-line errors users see."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


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


def causes(exc: BaseException | None, limit: int = 10) -> Iterator[BaseException]:
    """``exc`` and the exceptions behind it (``__cause__``, else ``__context__``), at most
    ``limit``: where a failure really came from (a signal inside a C reader, a lost connection
    inside MLflow's retries, a full disk under a library's own error)."""
    seen = 0
    while exc is not None and seen < limit:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
