"""The URLs of `[storage]`: which database (`database_url`) and where file bodies live
(`blob_url`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from openai_ocr.settings import StorageSettings


def database_url_of(settings: StorageSettings) -> str:
    """`[storage] database_url`, its secret revealed."""
    return settings.database_url.get_secret_value()


def database_kind(database_url: str) -> str:
    """"sqlite" or "postgresql" for a `[storage] database_url` (empty: sqlite)."""
    scheme = urlparse(database_url).scheme if database_url else "sqlite"
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"storage.database_url: {scheme!r} is not a database this server uses; use "
                     "sqlite:///PATH (one machine) or postgresql://USER@HOST/DB (replicas)")


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL (None: the default in the store's folder)."""
    if not database_url:
        return None
    path = unquote(urlparse(database_url).path)  # sqlite:///abs/path, sqlite:relative/path
    if path.startswith("/"):
        path = "/" + path.lstrip("/")  # (sqlite:////abs/path too, SQLAlchemy's form)
    return Path(path).expanduser() if path.strip("/") else None


def local_blob_dir(blob_url: str) -> Path | None:
    """The folder a directory `blob_url` names (None: empty, or not a directory)."""
    if not blob_url:
        return None
    parsed = urlparse(blob_url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).expanduser()
    if parsed.scheme and len(parsed.scheme) > 1:  # s3:// (a Windows drive letter is no scheme)
        return None
    return Path(blob_url).expanduser()
