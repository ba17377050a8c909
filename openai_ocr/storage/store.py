"""The durable store of files and batches: one SQLite database (WAL) plus file bodies on disk.

A batch line's answer is written in the same transaction that counts it, so a crash (even
SIGKILL) at any point loses no finished line and never counts one twice; the runner takes up
the lines still pending after a restart. Quota and retention are enforced here.

The quota is a bound, also for several processes sharing one folder: a file's bytes are
reserved in the database (its row, in state `writing`, inserted in the transaction that checks
the quota) before its body is written, and the row turns `ready` once the body is in place;
a batch line's answer is counted in the transaction that checks the quota for it. A
reservation whose writer died (its process is gone, or its lease ran out) is removed, with
its partial body, at the next start and by the retention sweep.

A damaged database (it cannot be read, `PRAGMA quick_check` fails, or it is missing or empty
while stored bodies remain) is found at `open`: the store then stays closed, `problem` says
why, and every call answers 503 (`Unavailable`) instead of failing deeper down. A database
error at run time is a 503 as well; corruption found then closes the store the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from openai_ocr.errors import Conflict, InsufficientStorage, NotFound, PayloadTooLarge, Unavailable, excerpt
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.blobs import LocalBlobs, put_body
from openai_ocr.storage.urls import database_url_of, local_blob_dir, sqlite_path

logger = logging.getLogger(__name__)

DB_NAME = "state.sqlite3"
RESULTS_PAGE = 256
"""Batch answers read from the database at a time when a batch's files are written."""


def body_size(body: bytes | Path) -> int:
    """The size of a file body given as bytes or as the path of a file holding it."""
    return body.stat().st_size if isinstance(body, Path) else len(body)
"""Bytes copied at a time when a body comes from a file."""

TABLES = (
    """CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
        bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER,
        state TEXT NOT NULL DEFAULT 'ready', writer TEXT, lease_until REAL)""",
    "CREATE INDEX IF NOT EXISTS files_owner ON files(owner, created_at)",
    """CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, finished_at INTEGER,
        result_bytes INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS batches_owner ON batches(owner, created_at)",
    """CREATE TABLE IF NOT EXISTS lines (
        batch_id TEXT NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL,
        offset INTEGER NOT NULL, length INTEGER NOT NULL, status_code INTEGER,
        result TEXT, PRIMARY KEY (batch_id, idx))""",
    # usage per API key (`usage` above is the quota's byte count): counters per UTC day, key
    # id (a hash of the key, never the key), route and model, incremented by upserts
    """CREATE TABLE IF NOT EXISTS key_usage (
        day TEXT NOT NULL, key_id TEXT NOT NULL, route TEXT NOT NULL, model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0,
        images INTEGER NOT NULL DEFAULT 0, image_tokens INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
        engine_seconds REAL NOT NULL DEFAULT 0, PRIMARY KEY (day, key_id, route, model))""",
)
USAGE_COUNTS = ("requests", "pages", "images", "image_tokens", "prompt_tokens",
                "completion_tokens", "engine_seconds")
"""The counters of a `key_usage` row."""
USAGE_KEY = ("day", "key_id", "route", "model")
_USAGE_UPSERT = (
    f"INSERT INTO key_usage ({', '.join(USAGE_KEY + USAGE_COUNTS)}) VALUES "
    f"({', '.join('?' * (len(USAGE_KEY) + len(USAGE_COUNTS)))}) ON CONFLICT ({', '.join(USAGE_KEY)}) "
    f"DO UPDATE SET {', '.join(f'{c} = {c} + excluded.{c}' for c in USAGE_COUNTS)}")
COLUMNS = {  # added to the tables of a database made by an older version
    "files": (("state", "TEXT NOT NULL DEFAULT 'ready'"), ("writer", "TEXT"), ("lease_until", "REAL")),
    "batches": (("result_bytes", "INTEGER NOT NULL DEFAULT 0"),),
}
DERIVED = (
    # the bytes of every file row (reservations included), kept by triggers: the quota check
    # reads one row instead of summing the table on every upload and batch line
    "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    """CREATE TRIGGER IF NOT EXISTS files_usage_insert AFTER INSERT ON files
       BEGIN UPDATE usage SET bytes = bytes + NEW.bytes WHERE id = 0; END""",
    """CREATE TRIGGER IF NOT EXISTS files_usage_delete AFTER DELETE ON files
       BEGIN UPDATE usage SET bytes = bytes - OLD.bytes WHERE id = 0; END""",
    """CREATE TRIGGER IF NOT EXISTS files_usage_update AFTER UPDATE OF bytes ON files
       BEGIN UPDATE usage SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 0; END""",
    "CREATE INDEX IF NOT EXISTS files_writing ON files(id) WHERE state = 'writing'",
    "CREATE INDEX IF NOT EXISTS batches_unfinished ON batches(id) WHERE finished_at IS NULL",
)
FILE_COLUMNS = "id, owner, purpose, filename, bytes, created_at, expires_at"

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
"""Batch statuses the runner still has work for."""
_ACTIVE_MARKS = ",".join("?" * len(ACTIVE))
_ACTIVE_INPUTS = (f"SELECT json_extract(data, '$.input_file_id') FROM batches WHERE status IN "
                  f"({_ACTIVE_MARKS}) AND json_extract(data, '$.input_file_id') IS NOT NULL")

_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
"""Primary result codes that mean the database file itself is damaged."""
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
"""Primary result codes of another connection holding a lock: wait, nothing is wrong."""
OPEN_WAIT_S = 60.0
"""How long `open` waits for other processes' locks (their own start-up) before it fails."""


def _code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of an error (0 when it has none)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


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


# -- who writes a file ----------------------------------------------------------------------
_HOST = socket.gethostname().replace(" ", "_") or "localhost"


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` (Linux: clock ticks since boot), which tells it from a
    later process given the same pid; None when there is no such process or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def writer_id() -> str:
    """This process, as recorded on the reservations it makes: host, pid, start time."""
    pid = os.getpid()
    return f"{_HOST} {pid} {_process_start(pid) or '-'}"


def writer_alive(writer: str | None) -> bool | None:
    """Whether the process that made a reservation still runs; None where this machine cannot
    tell (another host: its lease decides)."""
    parts = (writer or "").split(" ")
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return None
    pid, start = int(parts[1]), parts[2]
    if start != "-" and Path("/proc").is_dir():
        return _process_start(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


class Store:
    """Thread-safe; every method is short and synchronous (callers use `asyncio.to_thread`).

    Built without touching the disk; `open` (at the server's start) creates the folder,
    connects, checks the database and removes what dead writers left half-written. A folder
    that cannot be created fails the start; a damaged database does not: the store stays
    closed and `problem` says why (the server starts, not ready).
    """

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.root = Path(settings.dir).expanduser() if settings.dir else default_dir()
        # `[storage] blob_url` (a folder) and `database_url` (sqlite:///PATH) may move them
        self.files_dir = local_blob_dir(settings.blob_url) or self.root / "files"
        #: the bodies, written and read as the PostgreSQL store's folder of blobs is
        self.blobs = LocalBlobs(self.files_dir)
        self.db_path = sqlite_path(database_url_of(settings)) or self.root / DB_NAME
        #: why the store cannot serve (a damaged database), for clients and /ready; None when fine
        self.problem: str | None = None
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    # -- opening and checking -----------------------------------------------------------------
    def open(self) -> Store:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.problem = None
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:  # processes starting together (workers) wait for each other's set-up
            try:
                damage, db = self._open_once()
                break
            except sqlite3.OperationalError as exc:
                if _code(exc) not in _BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if damage is not None or db is None:
            self._mark_damaged(damage or "cannot be opened")
            return self
        with self._lock:
            self._db = db
        try:
            removed = self.recover()
        except Unavailable:
            return self  # damage found while recovering: already reported
        if removed:
            logger.info("storage: removed %d partial uploads left by stopped writers", removed)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _open_once(self) -> tuple[str | None, sqlite3.Connection | None]:
        """(damage, None) for a damaged database, (None, connection) for a sound one; raises
        what is not damage (busy, a folder that cannot be opened)."""
        damage = self._lost_database()
        if damage is not None:
            return damage, None
        try:
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            if _code(exc) in _CORRUPT:
                return f"is damaged ({exc})", None
            raise
        try:
            damage = self._check(db)
            if damage is None:
                self._migrate(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            if _code(exc) in _CORRUPT:
                return f"is damaged ({exc})", None
            raise
        except BaseException:
            db.close()
            raise
        if damage is not None:
            db.close()
            return damage, None
        return None, db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a process crash loses nothing committed
        except BaseException:
            db.close()
            raise
        return db

    def _lost_database(self) -> str | None:
        """A missing or empty database beside stored bodies: the state of those files is lost,
        and starting afresh would orphan them (never counted, never deleted)."""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        if self.db_path.exists() and self.db_path.stat().st_size > 0:
            return None
        if wal.exists() and wal.stat().st_size > 0:
            return None  # what there is lives in the WAL: the check decides
        stored = sum(1 for p in self.files_dir.iterdir() if p.is_file() and not p.name.endswith(".part"))
        if not stored:
            return None  # a new store
        what = "missing" if not self.db_path.exists() else "empty (0 bytes)"
        return f"is {what} while {stored} stored files remain in files/"

    @staticmethod
    def _check(db: sqlite3.Connection) -> str | None:
        rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
        return None if rows == ["ok"] else f"is damaged (quick_check: {'; '.join(rows[:3])})"

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create what is missing, add the columns older versions lacked, recount the usage;
        in one transaction, so processes starting together do it once."""
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in TABLES:
                db.execute(statement)
            for table, columns in COLUMNS.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for name, declaration in columns:
                    if name not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
                        if name == "result_bytes":
                            db.execute("UPDATE batches SET result_bytes = (SELECT COALESCE(SUM("
                                       "LENGTH(CAST(result AS BLOB)) + 1), 0) FROM lines WHERE "
                                       "lines.batch_id = batches.id AND result IS NOT NULL)")
            for statement in DERIVED:
                db.execute(statement)
            db.execute("INSERT OR REPLACE INTO usage (id, bytes) VALUES "
                       "(0, (SELECT COALESCE(SUM(bytes), 0) FROM files))")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _mark_damaged(self, damage: str) -> None:
        self.problem = (f"file storage is unavailable: its database ({DB_NAME}) {damage}; the "
                        "server's log names the file")
        logger.error("storage: the database %s %s. The server runs without files and batches "
                     "(/ready answers 503, /v1/files and /v1/batches 503) until it is restored "
                     "from a backup or moved away together with %s", self.db_path, damage,
                     self.files_dir)

    def _failure(self, exc: sqlite3.DatabaseError) -> Unavailable:
        """A 503 for a database error at run time; corruption closes the store."""
        if _code(exc) in _CORRUPT:
            if self.problem is None:
                self._mark_damaged(f"is damaged ({exc})")
            with contextlib.suppress(sqlite3.Error):
                self.close()
            return Unavailable(self.problem or "file storage is unavailable")
        logger.warning("storage: database error on %s: %s", self.db_path, exc)
        return Unavailable(f"file storage failed ({exc}); try again", headers={"Retry-After": "1"})

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise Unavailable(self.problem or "file storage is not open")
        return self._db

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            yield self._conn()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- usage per API key --------------------------------------------------------------------
    def add_usage(self, rows: list[dict[str, Any]]) -> None:
        """Add counters (each row: `date`, `key_id`, `route`, `model` and the USAGE_COUNTS) to
        their day's bucket, in one transaction (several processes add up)."""
        with self._tx() as db:
            db.executemany(_USAGE_UPSERT, [
                (row["date"], row["key_id"], row["route"], row["model"], *(row[c] for c in USAGE_COUNTS))
                for row in rows])

    def usage(self, start: str, end: str, key_id: str | None = None) -> list[dict[str, Any]]:
        """The buckets of the days `start`..`end` (YYYY-MM-DD, both included) of one key id
        (None: every key), by day, key id, route and model."""
        where, args = "day >= ? AND day <= ?", [start, end]
        if key_id is not None:
            where, args = where + " AND key_id = ?", [*args, key_id]
        with self._read() as db:
            rows = db.execute(f"SELECT {', '.join(USAGE_KEY + USAGE_COUNTS)} FROM key_usage "
                              f"WHERE {where} ORDER BY day, key_id, route, model", args).fetchall()
        return [{"date": row["day"], **{k: row[k] for k in row.keys() if k != "day"}} for row in rows]

    # -- quota ------------------------------------------------------------------------------
    @staticmethod
    def _used(db: sqlite3.Connection) -> int:
        files = db.execute("SELECT bytes FROM usage WHERE id = 0").fetchone()
        results = db.execute(  # finished batches' results live in their output files
            "SELECT COALESCE(SUM(result_bytes), 0) FROM batches WHERE finished_at IS NULL").fetchone()[0]
        return int(files[0] if files else 0) + int(results)

    def usage_bytes(self) -> int:
        """Bytes counted against the quota: every file (reservations included) plus the
        answers of unfinished batches."""
        with self._read() as db:
            return self._used(db)

    def _room(self, db: sqlite3.Connection, size: int, credit: int = 0) -> None:
        used = self._used(db) - credit
        if used + size > self.settings.quota_bytes:
            raise InsufficientStorage(f"storage quota of {self.settings.quota_bytes} bytes is used up "
                                      f"({used} bytes in use, {size} more needed); delete files or "
                                      "wait for retention")

    def check_room(self, size: int, limit: int | None = None, param: str = "file") -> None:
        """413 when one object is over `limit`, 507 when the store's quota has no room for it
        (a look, not a reservation: `add_file` reserves)."""
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"file is larger than {limit} bytes", param=param)
        with self._read() as db:
            self._room(db, size)

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def _drop(db: sqlite3.Connection, file_ids: list[str]) -> None:
        """Delete the rows of these ids (a fixed id written again)."""
        db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])

    def _reserve(self, db: sqlite3.Connection, stored: StoredFile) -> None:
        db.execute("INSERT INTO files (id, owner, purpose, filename, bytes, created_at, expires_at, "
                   "state, writer, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, 'writing', ?, ?)",
                   (stored.id, stored.owner, stored.purpose, stored.filename, stored.bytes,
                    stored.created_at, stored.expires_at, writer_id(),
                    time.time() + self.settings.write_lease_s))

    @staticmethod
    def _make_ready(db: sqlite3.Connection, file_ids: list[str]) -> None:
        for file_id in file_ids:
            if not db.execute("UPDATE files SET state = 'ready', writer = NULL, lease_until = NULL "
                              "WHERE id = ? AND state = 'writing'", (file_id,)).rowcount:
                raise Unavailable("the write was interrupted (its reservation was given up as "
                                  "abandoned); send it again")

    def _abandon(self, file_ids: list[str]) -> None:
        """Undo reservations whose write failed (best effort: a dead writer's are swept)."""
        try:
            with self._tx() as db:
                for file_id in file_ids:
                    db.execute("DELETE FROM files WHERE id = ? AND state = 'writing'", (file_id,))
        except Exception:  # noqa: BLE001 - the original error matters more
            logger.warning("storage: could not undo reservations %s", file_ids, exc_info=True)
            return
        for file_id in file_ids:
            self.blobs.delete(file_id)

    def add_file(self, owner: str, purpose: str, filename: str, data: bytes,
                 file_id: str | None = None, check_quota: bool = True) -> StoredFile:
        """Reserve the bytes (413 over the upload limit, 507 without room), write the body,
        then make the row ready; a body never exists without its reservation."""
        if check_quota and len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(f"file is larger than {self.settings.max_upload_bytes} bytes",
                                  param="file")
        now = int(time.time())
        stored = StoredFile(file_id or new_id("file-"), owner, purpose, filename, len(data), now,
                            now + int(self.settings.retention_s))
        with self._tx() as db:
            self._drop(db, [stored.id])  # the triggers take its bytes off the usage
            if check_quota:
                self._room(db, stored.bytes)
            self._reserve(db, stored)
        try:
            self.blobs.put(stored.id, data)  # fsynced, then renamed into place (507: disk full)
            with self._tx() as db:
                self._make_ready(db, [stored.id])
        except BaseException:
            self._abandon([stored.id])
            raise
        return stored

    def add_file_from_path(self, owner: str, purpose: str, filename: str, path: str | Path) -> StoredFile:
        """`add_file` for a body on disk (a batch line's archival file): reserved against the
        quota (507 without room; no upload limit), then copied in by chunks, never held in
        memory whole."""
        now = int(time.time())
        stored = StoredFile(new_id("file-"), owner, purpose, filename, os.path.getsize(path), now,
                            now + int(self.settings.retention_s))
        with self._tx() as db:
            self._room(db, stored.bytes)
            self._reserve(db, stored)
        try:
            self.blobs.put_path(stored.id, path)
            with self._tx() as db:
                self._make_ready(db, [stored.id])
        except BaseException:
            self._abandon([stored.id])
            raise
        return stored

    def get_file(self, file_id: str, owner: str) -> StoredFile:
        with self._read() as db:
            row = db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = ? AND owner = ? "
                             "AND state = 'ready'", (file_id, owner)).fetchone()
        if row is None:
            raise NotFound(f"no file with id {excerpt(file_id)}", param="file_id")
        return StoredFile(**dict(row))

    def read_file(self, file_id: str, owner: str) -> bytes:
        with self.open_file(file_id, owner) as body:
            return body.read()

    def open_file(self, file_id: str, owner: str) -> IO[bytes]:
        """A file's body to read by chunks (a batch's output may run to gigabytes); the
        caller closes it."""
        self.get_file(file_id, owner)
        try:
            return self.blobs.reader(file_id)
        except FileNotFoundError:
            raise NotFound(f"the content of file {excerpt(file_id)} is gone from the store",
                           param="file_id") from None

    def read_range(self, file_id: str, offset: int, length: int) -> bytes:
        return self.read_ranges(file_id, [(offset, length)])[0]

    def read_ranges(self, file_id: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Byte ranges of a file's body (FileNotFoundError when it is gone)."""
        return self.blobs.get_ranges(file_id, ranges)

    def list_files(self, owner: str, purpose: str | None = None, after: str | None = None,
                   limit: int = 100) -> tuple[list[StoredFile], bool]:
        """Newest first, OpenAI's cursor paging: `after` is the last id of the previous page."""
        query, args = f"SELECT {FILE_COLUMNS} FROM files WHERE owner = ? AND state = 'ready'", [owner]
        if purpose:
            query, args = query + " AND purpose = ?", [*args, purpose]
        if after:
            query += " AND rowid < (SELECT rowid FROM files WHERE id = ?)"
            args.append(after)
        with self._read() as db:
            rows = db.execute(query + " ORDER BY rowid DESC LIMIT ?", [*args, limit + 1]).fetchall()
        return [StoredFile(**dict(r)) for r in rows[:limit]], len(rows) > limit

    def delete_file(self, file_id: str, owner: str) -> None:
        """404 for anybody else's file; 409 for the input of a batch that still runs."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM files WHERE id = ? AND owner = ? AND state = 'ready'",
                          (file_id, owner)).fetchone() is None:
                raise NotFound(f"no file with id {excerpt(file_id)}", param="file_id")
            user = db.execute(f"SELECT id, status FROM batches WHERE status IN ({_ACTIVE_MARKS}) "
                              "AND json_extract(data, '$.input_file_id') = ? LIMIT 1",
                              (*ACTIVE, file_id)).fetchone()
            if user is not None:
                raise Conflict(f"file {file_id} is the input of batch {user[0]}, which is "
                               f"{user[1]}; cancel the batch or wait until it ends, then delete "
                               "the file", param="file_id")
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        self.blobs.delete(file_id)

    # -- batches ----------------------------------------------------------------------------
    def add_batch(self, owner: str, data: dict[str, Any], lines: list[PendingLine]) -> StoredBatch:
        """The batch row and all its pending lines, in one transaction (404 if its input file
        was deleted meanwhile)."""
        with self._tx() as db:
            input_id = data.get("input_file_id")
            if input_id and db.execute("SELECT 1 FROM files WHERE id = ? AND state = 'ready'",
                                       (input_id,)).fetchone() is None:
                raise NotFound(f"no file with id {excerpt(input_id)}", param="input_file_id")
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
        with self._read() as db:
            row = db.execute(query, args).fetchone()
        if row is None:
            raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
        return self._batch(row)

    def list_batches(self, owner: str, after: str | None = None,
                     limit: int = 20) -> tuple[list[StoredBatch], bool]:
        query, args = "SELECT * FROM batches WHERE owner = ?", [owner]
        if after:
            query += " AND rowid < (SELECT rowid FROM batches WHERE id = ?)"
            args.append(after)
        with self._read() as db:
            rows = db.execute(query + " ORDER BY rowid DESC LIMIT ?", [*args, limit + 1]).fetchall()
        return [self._batch(r) for r in rows[:limit]], len(rows) > limit

    def active_batches(self) -> list[StoredBatch]:
        with self._read() as db:
            rows = db.execute(f"SELECT * FROM batches WHERE status IN ({_ACTIVE_MARKS}) "
                              "ORDER BY rowid", ACTIVE).fetchall()
        return [self._batch(r) for r in rows]

    @staticmethod
    def _update(db: sqlite3.Connection, batch_id: str, status: str | None, only_from: tuple[str, ...],
                finished: bool, fields: dict[str, Any]) -> None:
        row = db.execute("SELECT status, data FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
        if only_from and row["status"] not in only_from:
            return
        data = {**json.loads(row["data"]), **fields}
        new_status = status or row["status"]
        data["status"] = new_status
        db.execute("UPDATE batches SET status = ?, data = ?, finished_at = ? WHERE id = ?",
                   (new_status, json.dumps(data), int(time.time()) if finished else None, batch_id))

    def update_batch(self, batch_id: str, status: str | None = None, *, only_from: tuple[str, ...] = (),
                     finished: bool = False, **fields: Any) -> StoredBatch:
        """Set the status and fields of the batch's OpenAI object; `only_from` guards the move."""
        with self._tx() as db:
            self._update(db, batch_id, status, only_from, finished, fields)
        return self.get_batch(batch_id)

    def publish_batch(self, batch_id: str, status: str, outputs: list[tuple[str, str, bytes | Path]],
                      **fields: Any) -> StoredBatch:
        """A batch's result files `(file id, filename, body or the path of a file holding it)`
        and its final status, within the
        quota: the files are reserved against it in place of the batch's stored answers (507 if
        they need more room than those took), written, then made ready in the transaction that
        finishes the batch. Safe to redo after a crash (fixed file ids replace their rows)."""
        now = int(time.time())
        with self._tx() as db:
            row = db.execute("SELECT owner, result_bytes, finished_at FROM batches WHERE id = ?",
                             (batch_id,)).fetchone()
            if row is None:
                raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
            files = [StoredFile(file_id, row["owner"], "batch_output", filename, body_size(body), now,
                                now + int(self.settings.retention_s))
                     for file_id, filename, body in outputs]
            self._drop(db, [f.id for f in files])  # left by a finalization that crashed
            # the answers already counted move into the files: only what they add needs room
            extra = sum(f.bytes for f in files) - (
                0 if row["finished_at"] is not None else int(row["result_bytes"]))
            if extra > 0:
                self._room(db, extra)
            for stored in files:
                self._reserve(db, stored)
        ids = [f.id for f in files]
        try:
            for file_id, _, body in outputs:
                put_body(self.blobs, file_id, body)
            with self._tx() as db:
                self._make_ready(db, ids)
                self._update(db, batch_id, status, (), True, fields)
                # the answers now live in the files (counted there): not kept twice on disk
                db.execute("UPDATE lines SET result = NULL WHERE batch_id = ?", (batch_id,))
        except BaseException:
            self._abandon(ids)
            raise
        return self.get_batch(batch_id)

    def pending_lines(self, batch_id: str) -> list[PendingLine]:
        with self._read() as db:
            rows = db.execute("SELECT idx, custom_id, offset, length FROM lines "
                              "WHERE batch_id = ? AND status_code IS NULL ORDER BY idx",
                              (batch_id,)).fetchall()
        return [PendingLine(*r) for r in rows]

    def finish_line(self, batch_id: str, idx: int, status_code: int, result: dict[str, Any]) -> bool:
        """Record a line's answer and count it, atomically, within the quota (507 when the
        answer does not fit: nothing is recorded); False if it was already recorded."""
        ok = 200 <= status_code < 300
        text = json.dumps(result)
        size = len(text.encode()) + 1  # its line in the output file
        with self._tx() as db:
            row = db.execute("SELECT status_code FROM lines WHERE batch_id = ? AND idx = ?",
                             (batch_id, idx)).fetchone()
            if row is None or row[0] is not None:
                return False
            self._room(db, size)
            db.execute("UPDATE lines SET status_code = ?, result = ? WHERE batch_id = ? AND idx = ?",
                       (status_code, text, batch_id, idx))
            db.execute(f"UPDATE batches SET {'completed' if ok else 'failed'} = "
                       f"{'completed' if ok else 'failed'} + 1, result_bytes = result_bytes + ? "
                       "WHERE id = ?", (size, batch_id))
        return True

    def finished_results(self, batch_id: str, page: int = RESULTS_PAGE) -> Iterator[tuple[int, str]]:
        """(status_code, output line as stored) of every recorded line, in input order, read
        `page` lines at a time (a batch's answers may run to gigabytes): the bytes the quota
        counted for it, less the newline."""
        after = -1
        while True:
            with self._read() as db:
                rows = db.execute("SELECT idx, status_code, result FROM lines WHERE batch_id = ? AND "
                                  "status_code IS NOT NULL AND idx > ? ORDER BY idx LIMIT ?",
                                  (batch_id, after, page)).fetchall()
            yield from ((int(code), str(text)) for _, code, text in rows)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def count_by_status(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def pending_total(self) -> int:
        with self._read() as db:
            return int(db.execute(
                f"SELECT COALESCE(SUM(total - completed - failed), 0) FROM batches "
                f"WHERE status IN ({_ACTIVE_MARKS})", ACTIVE).fetchone()[0])

    # -- retention and recovery ---------------------------------------------------------------
    def recover(self, now: float | None = None) -> int:
        """Remove what dead writers left: reservations whose process is gone or whose lease ran
        out (with their partial bodies), and `.part` files without a reservation (older
        versions wrote those without a row). The number removed."""
        now = time.time() if now is None else now
        with self._read() as db:
            writing = db.execute("SELECT id, writer, lease_until FROM files "
                                 "WHERE state = 'writing'").fetchall()
        stale = [r["id"] for r in writing
                 if (r["lease_until"] or 0) <= now or writer_alive(r["writer"]) is False]
        removed: list[str] = []
        if stale:
            with self._tx() as db:
                removed = [i for i in stale if db.execute(
                    "DELETE FROM files WHERE id = ? AND state = 'writing'", (i,)).rowcount]
        for file_id in removed:
            self.blobs.delete(file_id)
        # a .part seen here had its reservation committed before it was created, so a live
        # one shows in the rows read after this listing
        partials = self.blobs.partials()
        if partials:
            with self._read() as db:
                live = {r[0] for r in db.execute("SELECT id FROM files WHERE state = 'writing'")}
            for key in partials:
                if key not in live:
                    self.blobs.discard_partial(key)
                    removed.append(key)
        return len(removed)

    def sweep(self, now: float | None = None) -> tuple[int, int]:
        """Delete expired files (not the input of a running batch), batches finished longer
        ago than the retention, and what dead writers left; (files, batches)."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.retention_s
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM files WHERE state = 'ready' AND expires_at IS NOT NULL AND "
                f"expires_at <= ? AND id NOT IN ({_ACTIVE_INPUTS})", (now, *ACTIVE))]
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
            batches = [r[0] for r in db.execute("SELECT id FROM batches WHERE finished_at IS NOT NULL "
                                                "AND finished_at <= ?", (cutoff,))]
            db.executemany("DELETE FROM lines WHERE batch_id = ?", [(b,) for b in batches])
            db.executemany("DELETE FROM batches WHERE id = ?", [(b,) for b in batches])
        for file_id in ids:
            self.blobs.delete(file_id)
        return len(ids) + self.recover(now), len(batches)
