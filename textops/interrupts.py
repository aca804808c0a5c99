"""Ctrl-C and SIGTERM: a signal becomes :class:`~textops.errors.Interrupted`, raised where the
program is, so ``finally`` blocks and MLflow's run clean-up run; one swallowed by a finalizer
is raised again before every step that cannot be undone."""
from __future__ import annotations

import sys
from typing import Any

from textops.errors import Interrupted, causes

_SIGNALS_RECEIVED: list[int] = []


def _raise_interrupted(signum: int, _frame: Any) -> None:
    _SIGNALS_RECEIVED.append(signum)
    raise Interrupted(f"signal {signum}")


def _quiet_swallowed_interrupt(unraisable: Any) -> None:
    """sys.unraisablehook: a SIGTERM that landed in a finalizer is not an error to print (its
    traceback would reach cron mail); :func:`raise_if_interrupted` acts on it. Anything else
    goes to Python's default hook."""
    if isinstance(unraisable.exc_value, Interrupted):
        return
    sys.__unraisablehook__(unraisable)


def interrupt_from(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM behind ``exc``, if one is: a signal landing inside a C reader
    (pandas' CSV parser) comes back as that reader's own error ("Calling read(nbytes) on
    source failed"), which must not be reported as bad input."""
    for cause in causes(exc):
        if isinstance(cause, (KeyboardInterrupt, Interrupted)):
            return cause
    if _SIGNALS_RECEIVED:
        return Interrupted(f"signal {_SIGNALS_RECEIVED[-1]}")
    return None


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` again if SIGTERM came and its exception was swallowed: a
    signal can land while Python runs a garbage-collection or weakref callback, where exceptions
    are printed and ignored. Called before every step that cannot be undone (registering a
    version, moving an alias)."""
    if _SIGNALS_RECEIVED:
        raise Interrupted(f"signal {_SIGNALS_RECEIVED[-1]}")
