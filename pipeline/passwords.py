"""Passwords never go into a URL that params.yaml, dvc.lock or MLflow records: how to tell that
a storage URL carries one, and where the password goes instead."""

from __future__ import annotations

# Where a storage password goes instead of tune.storage (read when the storage is opened).
STORAGE_PASSWORD_VARIABLE = "BLADE_STORAGE_PASSWORD"
STORAGE_PASSWORD_HELP = (f"PostgreSQL reads PGPASSWORD or ~/.pgpass; any database: "
                         f"the environment variable {STORAGE_PASSWORD_VARIABLE}")
PASSWORD_QUERY_KEYS = {"password", "passwd", "pwd", "pass"}


def url_password(url: str) -> bool:
    """Whether a SQLAlchemy URL holds a password: ``user:pw@host`` (any characters in pw, ``/``
    and ``@`` included) or a query parameter such as ``?password=...``."""
    from urllib.parse import parse_qsl

    scheme, separator, rest = str(url).partition("://")
    if not separator:
        return False
    location, _, query = rest.partition("?")
    if any(key.lower() in PASSWORD_QUERY_KEYS for key, _ in parse_qsl(query, keep_blank_values=True)):
        return True
    if scheme.startswith("sqlite"):
        return False  # a file path: '@' and ':' are only characters of it
    credentials, at, _ = location.rpartition("@")
    return bool(at) and ":" in credentials
