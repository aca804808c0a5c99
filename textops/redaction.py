"""Secrets: a password or token in a tracking URI never reaches the console, a log, a report
or MLflow. The secrets are learnt once at start (the environment's tracking settings, any URI
given) and masked wherever text is shown."""
from __future__ import annotations

import os
import re
from typing import Any, Mapping
from urllib.parse import quote, unquote

MASK = "***"
SECRET_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # URIs that may carry one
SECRET_VALUES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")  # secrets themselves
_MIN_SECRET = 4  # shorter values would mask ordinary words; URI patterns still mask them
_SECRETS: set[str] = set()
# scheme://user:password@host -- the password up to the first "@" (known secrets, which may
# hold "@" or "/", are replaced before this pattern runs)
_URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"<>]*):"
                           r"(?P<secret>[^\s@/'\"<>]+)@")


# a secret in a URI's query string: ?token=..., &password=..., &sig=... (any such parameter)
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:[A-Za-z0-9_.\-]*(?:token|password|passwd|pwd|secret|"
                           r"key|sig|signature|credential)[A-Za-z0-9_.\-]*)=)"
                           r"(?P<secret>[^&;#\s'\"<>]+)", re.IGNORECASE)


def uri_query_secrets(uri: str) -> list[str]:
    """The values of a URI's query parameters that name a secret (``?token=...``)."""
    uri = str(uri)
    return [m["secret"] for m in _QUERY_SECRET.finditer(uri)] if "://" in uri else []


def learn_uri_secrets(uri: str) -> None:
    """Mask, from now on, a URI's password and the secrets of its query string."""
    add_secret(uri_password(uri))
    for secret in uri_query_secrets(uri):
        add_secret(secret)


def uri_password(uri: str) -> str | None:
    """The password (or token) of a URI's user info: ``http://user:PW@host``,
    ``http://:TOKEN@host``; the user info ends at the last "@" before the host, so a password
    may hold "@", ":" or "/"."""
    scheme, sep, rest = str(uri).strip().partition("://")
    if not sep:
        return None
    for at in [i for i, ch in enumerate(rest) if ch == "@"][::-1]:
        if re.match(r"[A-Za-z0-9.\-_\[\]:%]+(?:[/?#]|$)", rest[at + 1:]):
            if re.match(r"[^/@:]*:\d+/", rest[:at]):  # host:port/path@...: no user info
                return None
            user, colon, password = rest[:at].partition(":")
            return password if colon and password else None
    return None


def add_secret(value: str | None) -> None:
    """Mask ``value`` (as written, percent-decoded and percent-encoded) wherever text is shown."""
    if not value:
        return
    for form in {value, unquote(value), quote(value, safe="")}:
        if len(form) >= _MIN_SECRET:
            _SECRETS.add(form)


def collect_secrets(environ: Mapping[str, str] | None = None, *uris: str) -> None:
    """Learn the secrets of the environment's (and ``uris``') tracking settings."""
    env = os.environ if environ is None else environ
    for name in SECRET_VALUES:
        add_secret(env.get(name))
    for uri in [env.get(name, "") for name in SECRET_VARIABLES] + list(uris):
        learn_uri_secrets(uri or "")


def redact(text: Any) -> str:
    """``text`` with every known secret and every URI password replaced by ``***``."""
    text = str(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text and "://" in text:
        text = _URI_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    if "=" in text and "://" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)
    return text
