"""What the services need of the state store, as an interface, and the store a configuration
chooses.

Two implementations: `store.Store` (SQLite in WAL mode plus a directory: one machine, its
processes coordinated by the database and one batch runner per folder) and
`postgres.PostgresStore` (PostgreSQL plus a directory or an S3 bucket: any number of replicas
on any machines, batch lines claimed with leases). Every method is synchronous and short;
callers use `asyncio.to_thread`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

from openai_ocr.settings import StorageSettings
from openai_ocr.storage.store import PendingLine, StoredBatch, StoredFile
from openai_ocr.storage.urls import database_kind, database_url_of, sqlite_path

__all__ = ["LeasedLines", "StateStore", "database_kind", "database_url_of", "make_store", "sqlite_path"]


class StateStore(Protocol):
    """Files, batches, their lines and the usage counters, with the quota and retention."""

    settings: StorageSettings
    #: the local folder of the store (the runner's lock of a folder store lives there)
    root: Path
    #: why the store cannot serve, for clients and /ready; None when fine
    problem: str | None

    def open(self) -> StateStore: ...
    def close(self) -> None: ...

    def add_usage(self, rows: list[dict[str, Any]]) -> None: ...
    def usage(self, start: str, end: str, key_id: str | None = None) -> list[dict[str, Any]]: ...

    def usage_bytes(self) -> int: ...
    def check_room(self, size: int, limit: int | None = None, param: str = "file") -> None: ...

    def add_file(self, owner: str, purpose: str, filename: str, data: bytes,
                 file_id: str | None = None, check_quota: bool = True) -> StoredFile: ...
    def add_file_from_path(self, owner: str, purpose: str, filename: str, path: str | Path) -> StoredFile: ...
    def get_file(self, file_id: str, owner: str) -> StoredFile: ...
    def read_file(self, file_id: str, owner: str) -> bytes: ...
    def open_file(self, file_id: str, owner: str) -> IO[bytes]: ...
    def read_range(self, file_id: str, offset: int, length: int) -> bytes: ...
    def read_ranges(self, file_id: str, ranges: list[tuple[int, int]]) -> list[bytes]: ...
    def list_files(self, owner: str, purpose: str | None = None, after: str | None = None,
                   limit: int = 100) -> tuple[list[StoredFile], bool]: ...
    def delete_file(self, file_id: str, owner: str) -> None: ...

    def add_batch(self, owner: str, data: dict[str, Any], lines: list[PendingLine]) -> StoredBatch: ...
    def get_batch(self, batch_id: str, owner: str | None = None) -> StoredBatch: ...
    def list_batches(self, owner: str, after: str | None = None,
                     limit: int = 20) -> tuple[list[StoredBatch], bool]: ...
    def active_batches(self) -> list[StoredBatch]: ...
    def update_batch(self, batch_id: str, status: str | None = None, *, only_from: tuple[str, ...] = (),
                     finished: bool = False, **fields: Any) -> StoredBatch: ...
    def publish_batch(self, batch_id: str, status: str, outputs: list[tuple[str, str, bytes | Path]],
                      **fields: Any) -> StoredBatch: ...
    def pending_lines(self, batch_id: str) -> list[PendingLine]: ...
    def finish_line(self, batch_id: str, idx: int, status_code: int, result: dict[str, Any]) -> bool: ...
    def finished_results(self, batch_id: str, page: int = ...) -> Iterator[tuple[int, str]]: ...
    def count_by_status(self) -> dict[str, int]: ...
    def pending_total(self) -> int: ...

    def recover(self, now: float | None = None) -> int: ...
    def sweep(self, now: float | None = None) -> tuple[int, int]: ...


@runtime_checkable
class LeasedLines(Protocol):
    """A store shared by replicas: each claims batch lines with a lease it renews while it
    runs them; a line whose lease ran out (its replica died) is claimed again by another."""

    def claim_lines(self, batch_id: str, limit: int) -> list[PendingLine]:
        """Up to `limit` pending lines of the batch that nobody holds, leased to this store;
        none once the batch is no longer running (a cancel stops every replica's claims)."""

    def renew_leases(self, batch_id: str) -> int:
        """Extend the leases this store holds on the batch's unfinished lines; how many."""

    def release_leases(self, batch_id: str | None = None) -> int:
        """Give up this store's leases (of one batch, or all) so others claim them at once."""

    def unfinished_lines(self, batch_id: str) -> int:
        """Lines of the batch without a recorded answer (leased by anyone, or not)."""

    def leased_lines(self, batch_id: str) -> int:
        """Unfinished lines of the batch that a replica holds now (its lease not run out)."""


def make_store(settings: StorageSettings) -> StateStore:
    """The store `settings` name, built without I/O (`open` connects)."""
    database_url = database_url_of(settings)
    blob_url = settings.blob_url
    if database_kind(database_url) == "postgresql":
        from openai_ocr.storage.postgres import PostgresStore

        return PostgresStore(settings)
    if urlparse(blob_url).scheme == "s3":
        raise ValueError("storage.blob_url s3://... needs storage.database_url postgresql://...: "
                         "the SQLite database is for one machine, whose files stay beside it")
    from openai_ocr.storage.store import Store

    return Store(settings)
