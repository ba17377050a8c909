"""The durable store of files and batches: one SQLite database (WAL) plus file bodies on disk.

A batch line's answer is written in the same transaction that counts it, so a crash (even
SIGKILL) at any point loses no finished line and never counts one twice; the runner takes up
the lines still pending after a restart. Quota and retention are enforced here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai_ocr.errors import InsufficientStorage, NotFound, PayloadTooLarge
from openai_ocr.settings import StorageSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER);
CREATE INDEX IF NOT EXISTS files_owner ON files(owner, created_at);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS batches_owner ON batches(owner, created_at);
CREATE TABLE IF NOT EXISTS lines (
    batch_id TEXT NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, status_code INTEGER,
    result TEXT, PRIMARY KEY (batch_id, idx));
"""

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
"""Batch statuses the runner still has work for."""


def default_dir() -> Path:
    """The user's data directory, as platformdirs would name it, without the dependency."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "openai-ocr"


@dataclass(frozen=True)
class StoredFile:
    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    created_at: int
    expires_at: int | None


@dataclass(frozen=True)
class StoredBatch:
    id: str
    owner: str
    status: str
    data: dict[str, Any]
    total: int
    completed: int
    failed: int


@dataclass(frozen=True)
class PendingLine:
    idx: int
    custom_id: str
    offset: int
    length: int


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


class Store:
    """Thread-safe; every method is short and synchronous (callers use `asyncio.to_thread`).

    Built without touching the disk; `open` (at the server's start) creates the folder and
    connects, so a broken store fails the start, not the import or the app's assembly.
    """

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.root = Path(settings.dir).expanduser() if settings.dir else default_dir()
        self.files_dir = self.root / "files"
        self._lock = threading.RLock()
        self._db: sqlite3.Connection

    def open(self) -> Store:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / "state.sqlite3", check_same_thread=False,
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a process crash loses nothing committed
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(SCHEMA)
        with self._lock:
            self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if hasattr(self, "_db"):
                self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- quota ------------------------------------------------------------------------------
    def usage_bytes(self) -> int:
        with self._lock:
            files = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM files").fetchone()[0]
            results = self._db.execute(  # finished batches' results live in their output files
                "SELECT COALESCE(SUM(LENGTH(result)), 0) FROM lines WHERE batch_id IN "
                "(SELECT id FROM batches WHERE finished_at IS NULL)").fetchone()[0]
        return int(files) + int(results)

    def check_room(self, size: int, limit: int | None = None, param: str = "file") -> None:
        """413 when one object is over `limit`, 507 when the store's quota has no room for it."""
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"file is larger than {limit} bytes", param=param)
        used = self.usage_bytes()
        if used + size > self.settings.quota_bytes:
            raise InsufficientStorage(f"storage quota of {self.settings.quota_bytes} bytes is used up "
                                      f"({used} bytes in use); delete files or wait for retention")

    # -- files ------------------------------------------------------------------------------
    def _path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def add_file(self, owner: str, purpose: str, filename: str, data: bytes,
                 file_id: str | None = None, check_quota: bool = True) -> StoredFile:
        """Write the body (fsynced, then renamed into place), then the row."""
        if check_quota:
            self.check_room(len(data), self.settings.max_upload_bytes)
        file_id = file_id or new_id("file-")
        tmp = self._path(file_id).with_suffix(".part")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._path(file_id))
        now = int(time.time())
        stored = StoredFile(file_id, owner, purpose, filename, len(data), now,
                            now + int(self.settings.retention_s))
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (stored.id, owner, purpose, filename, stored.bytes, now, stored.expires_at))
        return stored

    def get_file(self, file_id: str, owner: str) -> StoredFile:
        with self._lock:
            row = self._db.execute("SELECT * FROM files WHERE id = ? AND owner = ?",
                                   (file_id, owner)).fetchone()
        if row is None:
            raise NotFound(f"no file with id {file_id!r}", param="file_id")
        return StoredFile(**dict(row))

    def read_file(self, file_id: str, owner: str) -> bytes:
        self.get_file(file_id, owner)
        return self._path(file_id).read_bytes()

    def read_range(self, file_id: str, offset: int, length: int) -> bytes:
        with open(self._path(file_id), "rb") as src:
            src.seek(offset)
            return src.read(length)

    def list_files(self, owner: str, purpose: str | None = None, after: str | None = None,
                   limit: int = 100) -> tuple[list[StoredFile], bool]:
        """Newest first, OpenAI's cursor paging: `after` is the last id of the previous page."""
        query, args = "SELECT * FROM files WHERE owner = ?", [owner]
        if purpose:
            query, args = query + " AND purpose = ?", [*args, purpose]
        if after:
            query += " AND rowid < (SELECT rowid FROM files WHERE id = ?)"
            args.append(after)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY rowid DESC LIMIT ?", [*args, limit + 1]).fetchall()
        return [StoredFile(**dict(r)) for r in rows[:limit]], len(rows) > limit

    def delete_file(self, file_id: str, owner: str) -> None:
        self.get_file(file_id, owner)
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        self._path(file_id).unlink(missing_ok=True)

    # -- batches ----------------------------------------------------------------------------
    def add_batch(self, owner: str, data: dict[str, Any], lines: list[PendingLine]) -> StoredBatch:
        """The batch row and all its pending lines, in one transaction."""
        with self._tx() as db:
            db.execute("INSERT INTO batches (id, owner, status, data, total, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (data["id"], owner, data["status"],
                                                     json.dumps(data), len(lines), data["created_at"]))
            db.executemany("INSERT INTO lines (batch_id, idx, custom_id, offset, length) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(data["id"], ln.idx, ln.custom_id, ln.offset, ln.length) for ln in lines])
        return self.get_batch(data["id"])

    @staticmethod
    def _batch(row: sqlite3.Row) -> StoredBatch:
        return StoredBatch(row["id"], row["owner"], row["status"], json.loads(row["data"]),
                           row["total"], row["completed"], row["failed"])

    def get_batch(self, batch_id: str, owner: str | None = None) -> StoredBatch:
        query, args = "SELECT * FROM batches WHERE id = ?", [batch_id]
        if owner is not None:
            query, args = query + " AND owner = ?", [*args, owner]
        with self._lock:
            row = self._db.execute(query, args).fetchone()
        if row is None:
            raise NotFound(f"no batch with id {batch_id!r}", param="batch_id")
        return self._batch(row)

    def list_batches(self, owner: str, after: str | None = None,
                     limit: int = 20) -> tuple[list[StoredBatch], bool]:
        query, args = "SELECT * FROM batches WHERE owner = ?", [owner]
        if after:
            query += " AND rowid < (SELECT rowid FROM batches WHERE id = ?)"
            args.append(after)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY rowid DESC LIMIT ?", [*args, limit + 1]).fetchall()
        return [self._batch(r) for r in rows[:limit]], len(rows) > limit

    def active_batches(self) -> list[StoredBatch]:
        marks = ",".join("?" * len(ACTIVE))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM batches WHERE status IN ({marks}) "
                                    "ORDER BY rowid", ACTIVE).fetchall()
        return [self._batch(r) for r in rows]

    def update_batch(self, batch_id: str, status: str | None = None, *, only_from: tuple[str, ...] = (),
                     finished: bool = False, **fields: Any) -> StoredBatch:
        """Set the status and fields of the batch's OpenAI object; `only_from` guards the move."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                raise NotFound(f"no batch with id {batch_id!r}", param="batch_id")
            if only_from and row["status"] not in only_from:
                return self._batch(row)
            data = {**json.loads(row["data"]), **fields}
            new_status = status or row["status"]
            data["status"] = new_status
            db.execute("UPDATE batches SET status = ?, data = ?, finished_at = ? WHERE id = ?",
                       (new_status, json.dumps(data), int(time.time()) if finished else None, batch_id))
        return self.get_batch(batch_id)

    def pending_lines(self, batch_id: str) -> list[PendingLine]:
        with self._lock:
            rows = self._db.execute("SELECT idx, custom_id, offset, length FROM lines "
                                    "WHERE batch_id = ? AND status_code IS NULL ORDER BY idx",
                                    (batch_id,)).fetchall()
        return [PendingLine(*r) for r in rows]

    def finish_line(self, batch_id: str, idx: int, status_code: int, result: dict[str, Any]) -> bool:
        """Record a line's answer and count it, atomically; False if it was already recorded."""
        ok = 200 <= status_code < 300
        with self._tx() as db:
            changed = db.execute("UPDATE lines SET status_code = ?, result = ? WHERE batch_id = ? "
                                 "AND idx = ? AND status_code IS NULL",
                                 (status_code, json.dumps(result), batch_id, idx)).rowcount
            if changed:
                db.execute(f"UPDATE batches SET {'completed' if ok else 'failed'} = "
                           f"{'completed' if ok else 'failed'} + 1 WHERE id = ?", (batch_id,))
        return bool(changed)

    def finished_lines(self, batch_id: str) -> Iterator[tuple[int, str, int, dict[str, Any]]]:
        """(idx, custom_id, status_code, result) of every recorded line, in input order."""
        with self._lock:
            rows = self._db.execute("SELECT idx, custom_id, status_code, result FROM lines "
                                    "WHERE batch_id = ? AND status_code IS NOT NULL ORDER BY idx",
                                    (batch_id,)).fetchall()
        for idx, custom_id, status_code, result in rows:
            yield idx, custom_id, status_code, json.loads(result)

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def pending_total(self) -> int:
        marks = ",".join("?" * len(ACTIVE))
        with self._lock:
            return int(self._db.execute(
                f"SELECT COALESCE(SUM(total - completed - failed), 0) FROM batches "
                f"WHERE status IN ({marks})", ACTIVE).fetchone()[0])

    # -- retention --------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> tuple[int, int]:
        """Delete expired files and batches finished longer ago than the retention; (files, batches)."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.retention_s
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM files WHERE expires_at IS NOT NULL "
                                            "AND expires_at <= ?", (now,))]
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
            batches = [r[0] for r in db.execute("SELECT id FROM batches WHERE finished_at IS NOT NULL "
                                                "AND finished_at <= ?", (cutoff,))]
            db.executemany("DELETE FROM lines WHERE batch_id = ?", [(b,) for b in batches])
            db.executemany("DELETE FROM batches WHERE id = ?", [(b,) for b in batches])
        for file_id in ids:
            self._path(file_id).unlink(missing_ok=True)
        return len(ids), len(batches)
