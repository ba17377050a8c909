"""The state store on PostgreSQL, its file bodies in a blob store (a directory or S3): any
number of gateway replicas, on any machines, serve every file and batch.

Chosen by `[storage] database_url = "postgresql://..."` (`storage.base.make_store`). The same
methods and guarantees as the SQLite store (`storage.store.Store`):

- **Quota across replicas**: a file's bytes are reserved in the transaction that checks the
  quota (its row in state `writing`), then its body is written, then the row turns `ready`;
  a batch answer is counted in the transaction that checks room for it. The quota row
  (`quota_usage`, kept by a trigger) is locked by every check, so replicas take turns.
- **Batch lines with leases**: a replica claims pending lines (`SELECT ... FOR UPDATE SKIP
  LOCKED`), each with a lease on the database's clock that it renews while it runs them; a
  replica that dies (SIGKILL included) loses nothing: its lines' leases run out and another
  replica claims them. An answer is recorded once (the first to arrive), in the transaction
  that counts it, and only while the batch still runs: once a batch is finalizing, cancelled
  or expired no answer is added, so its output files and counts always agree.
- **One finalizer**: the output files of a batch are written by the replica holding the
  batch's finalization lease; another takes over when it runs out.
- **Migrations**: numbered SQL files (`migrations/NNNN_name.sql`) applied at `open` in order,
  each in its own transaction, recorded in `schema_migrations`, under an advisory lock so
  replicas starting together apply each once.

A database that cannot be reached is a 503 (`Unavailable`, `Retry-After`), never a 500.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from openai_ocr.errors import Conflict, InsufficientStorage, NotFound, PayloadTooLarge, Unavailable, excerpt
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.blobs import BlobStore, blob_store, put_body
from openai_ocr.storage.store import (
    ACTIVE,
    RESULTS_PAGE,
    USAGE_COUNTS,
    USAGE_KEY,
    PendingLine,
    StoredBatch,
    StoredFile,
    body_size,
    default_dir,
    new_id,
    writer_alive,
    writer_id,
)
from openai_ocr.storage.urls import database_url_of

logger = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6F63722D6D6967  # "ocr-mig": the advisory lock of schema migrations
OPEN_WAIT_S = 60.0
"""How long `open` waits for the database to answer (replicas started before it) before the
start fails."""
POOL_WAIT_S = 10.0
"""How long a call waits for a free connection (or for the database to come back) before it
answers 503."""
RECORDING = ("validating", "in_progress")
"""Batch statuses in which a line's answer is still recorded."""
TERMINAL = ("completed", "failed", "expired", "cancelled")
FILE_COLUMNS = "id, owner, purpose, filename, bytes, created_at, expires_at"
_MIGRATION_NAME = re.compile(r"(\d{4})_(\w+)\.sql")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("openai_ocr.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


def redacted(url: str) -> str:
    """A database URL without its password, for logs and messages."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return urlunparse(parsed._replace(netloc=netloc))


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations `conn`'s database lacks (an autocommit connection); the versions
    applied. Replicas starting together wait for each other on the advisory lock."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        rows = conn.cursor(row_factory=tuple_row).execute("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in rows}
        known = migrations()
        newer = sorted(done - {version for version, _, _ in known})
        if newer:
            logger.warning("storage: the database has schema versions %s that this version does not "
                           "know (a newer server migrated it)", newer)
        applied = []
        for version, name, text in known:
            if version in done:
                continue
            with conn.transaction():
                conn.execute(text.encode())  # no parameters: several statements in one go
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (version, name))
            applied.append(version)
            logger.info("storage: applied schema migration %04d_%s", version, name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


Cursor = psycopg.Cursor[dict[str, Any]]


class PostgresStore:
    """Thread-safe (a connection pool); every method is short and synchronous (callers use
    `asyncio.to_thread`). Built without I/O; `open` connects, migrates and recovers."""

    def __init__(self, settings: StorageSettings, database_url: str | None = None,
                 blobs: BlobStore | None = None, worker: str | None = None) -> None:
        self.settings = settings
        self.url = database_url or database_url_of(settings)
        self.root = Path(settings.dir).expanduser() if settings.dir else default_dir()
        self.blobs: BlobStore = blobs or blob_store(
            settings.blob_url, self.root / "files", settings.s3_endpoint_url)
        #: why the store cannot serve; None when fine (a database that is down is a 503 per call)
        self.problem: str | None = None
        #: this replica, as recorded on the leases it holds
        self.worker = worker or f"{writer_id()} {uuid.uuid4().hex[:8]}"
        self.lease_s = settings.lease_s
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] | None = None

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> PostgresStore:
        pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            self.url, min_size=1, max_size=self.settings.pool_size, timeout=POOL_WAIT_S,
            kwargs={"row_factory": dict_row}, open=False, name="openai-ocr-store")
        try:
            pool.open(wait=True, timeout=OPEN_WAIT_S)
        except PoolTimeout as exc:
            pool.close()
            raise RuntimeError(f"storage: the database {redacted(self.url)} did not answer within "
                               f"{OPEN_WAIT_S:g} s") from exc
        try:
            with pool.connection() as conn:
                conn.autocommit = True
                try:
                    migrate(conn)
                finally:
                    conn.autocommit = False
            self.blobs.open()
        except BaseException:
            pool.close()
            raise
        self._pool = pool
        removed = self.recover()
        if removed:
            logger.info("storage: removed %d partial uploads left by stopped writers", removed)
        logger.info("storage: PostgreSQL %s, bodies in %s", redacted(self.url), self.blobs.where)
        return self

    def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception), self._tx(wait_s=2) as cur:  # others take them at once
                cur.execute("UPDATE lines SET leased_by = NULL, lease_until = NULL WHERE leased_by = %s "
                            "AND status_code IS NULL", (self.worker,))
            self._pool.close()
            self._pool = None

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def _tx(self, wait_s: float | None = None) -> Iterator[Cursor]:
        """A cursor in one transaction (committed at the end of the block, rolled back on an
        error); a database that cannot be reached is a 503 (after `wait_s` for a connection:
        the pool's time-out by default)."""
        if self._pool is None:
            raise Unavailable(self.problem or "file storage is not open")
        try:
            with self._pool.connection(timeout=wait_s) as conn, conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, PoolTimeout) as exc:
            logger.warning("storage: database error on %s: %s", redacted(self.url), exc)
            raise Unavailable(f"file storage failed ({type(exc).__name__}); try again",
                              headers={"Retry-After": "1"}) from exc

    _read = _tx

    @contextmanager
    def _blob_errors(self) -> Iterator[None]:
        """A blob store that fails (not a missing body) is a 503."""
        try:
            yield
        except (FileNotFoundError, InsufficientStorage):
            raise
        except Exception as exc:
            if not _is_storage_error(exc):
                raise
            logger.warning("storage: blob store %s failed: %s", self.blobs.where, exc)
            raise Unavailable(f"file storage failed ({type(exc).__name__}); try again",
                              headers={"Retry-After": "1"}) from exc

    # -- usage per API key --------------------------------------------------------------------
    def add_usage(self, rows: list[dict[str, Any]]) -> None:
        columns = USAGE_KEY + USAGE_COUNTS
        statement = sql.SQL("INSERT INTO key_usage ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            sql.SQL(", ").join(map(sql.Identifier, USAGE_KEY)),
            sql.SQL(", ").join(sql.SQL("{0} = key_usage.{0} + excluded.{0}").format(sql.Identifier(c))
                               for c in USAGE_COUNTS))
        with self._tx() as cur:
            cur.executemany(statement, [
                (row["date"], row["key_id"], row["route"], row["model"], *(row[c] for c in USAGE_COUNTS))
                for row in rows])

    def usage(self, start: str, end: str, key_id: str | None = None) -> list[dict[str, Any]]:
        where, args = "day >= %s AND day <= %s", [start, end]
        if key_id is not None:
            where, args = where + " AND key_id = %s", [*args, key_id]
        with self._read() as cur:
            rows = cur.execute(f"SELECT {', '.join(USAGE_KEY + USAGE_COUNTS)} FROM key_usage "
                               f"WHERE {where} ORDER BY day, key_id, route, model", args).fetchall()
        return [{"date": row["day"], **{k: (float(v) if k == "engine_seconds" else v)
                                        for k, v in row.items() if k != "day"}} for row in rows]

    # -- quota --------------------------------------------------------------------------------
    @staticmethod
    def _used(cur: Cursor, lock: bool) -> int:
        files = cur.execute("SELECT bytes FROM quota_usage WHERE id = 0" + (" FOR UPDATE" if lock else "")
                            ).fetchone()
        results = cur.execute("SELECT COALESCE(SUM(result_bytes), 0) AS n FROM batches "
                              "WHERE finished_at IS NULL").fetchone()
        return int(files["bytes"] if files else 0) + int(results["n"] if results else 0)

    def usage_bytes(self) -> int:
        with self._read() as cur:
            return self._used(cur, lock=False)

    def _room(self, cur: Cursor, size: int, lock: bool = True) -> None:
        used = self._used(cur, lock)
        if used + size > self.settings.quota_bytes:
            raise InsufficientStorage(f"storage quota of {self.settings.quota_bytes} bytes is used up "
                                      f"({used} bytes in use, {size} more needed); delete files or "
                                      "wait for retention")

    def check_room(self, size: int, limit: int | None = None, param: str = "file") -> None:
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"file is larger than {limit} bytes", param=param)
        with self._read() as cur:
            self._room(cur, size, lock=False)

    # -- files --------------------------------------------------------------------------------
    def _reserve(self, cur: Cursor, stored: StoredFile) -> None:
        cur.execute("INSERT INTO files (id, owner, purpose, filename, bytes, created_at, expires_at, "
                    "state, writer, lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s, 'writing', %s, %s)",
                    (stored.id, stored.owner, stored.purpose, stored.filename, stored.bytes,
                     stored.created_at, stored.expires_at, writer_id(),
                     time.time() + self.settings.write_lease_s))

    @staticmethod
    def _make_ready(cur: Cursor, file_ids: list[str]) -> None:
        for file_id in file_ids:
            if not cur.execute("UPDATE files SET state = 'ready', writer = NULL, lease_until = NULL "
                               "WHERE id = %s AND state = 'writing'", (file_id,)).rowcount:
                raise Unavailable("the write was interrupted (its reservation was given up as "
                                  "abandoned); send it again")

    def _abandon(self, file_ids: list[str]) -> None:
        try:
            with self._tx() as cur:
                for file_id in file_ids:
                    cur.execute("DELETE FROM files WHERE id = %s AND state = 'writing'", (file_id,))
            for file_id in file_ids:
                self.blobs.delete(file_id)
        except Exception:  # noqa: BLE001 - the original error matters more
            logger.warning("storage: could not undo reservations %s", file_ids, exc_info=True)

    def _new_file(self, owner: str, purpose: str, filename: str, size: int,
                  file_id: str | None = None) -> StoredFile:
        now = int(time.time())
        return StoredFile(file_id or new_id("file-"), owner, purpose, filename, size, now,
                          now + int(self.settings.retention_s))

    def _add(self, stored: StoredFile, check_quota: bool, write: Any) -> StoredFile:
        with self._tx() as cur:
            cur.execute("DELETE FROM files WHERE id = %s", (stored.id,))  # a fixed id written again
            if check_quota:
                self._room(cur, stored.bytes)
            self._reserve(cur, stored)
        try:
            with self._blob_errors():
                write()
            with self._tx() as cur:
                self._make_ready(cur, [stored.id])
        except BaseException:
            self._abandon([stored.id])
            raise
        return stored

    def add_file(self, owner: str, purpose: str, filename: str, data: bytes,
                 file_id: str | None = None, check_quota: bool = True) -> StoredFile:
        if check_quota and len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(f"file is larger than {self.settings.max_upload_bytes} bytes",
                                  param="file")
        stored = self._new_file(owner, purpose, filename, len(data), file_id)
        return self._add(stored, check_quota, lambda: self.blobs.put(stored.id, data))

    def add_file_from_path(self, owner: str, purpose: str, filename: str, path: str | Path) -> StoredFile:
        stored = self._new_file(owner, purpose, filename, Path(path).stat().st_size)
        return self._add(stored, True, lambda: self.blobs.put_path(stored.id, path))

    def get_file(self, file_id: str, owner: str) -> StoredFile:
        with self._read() as cur:
            row = cur.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE id = %s AND owner = %s "
                              "AND state = 'ready'", (file_id, owner)).fetchone()
        if row is None:
            raise NotFound(f"no file with id {excerpt(file_id)}", param="file_id")
        return StoredFile(**row)

    def read_file(self, file_id: str, owner: str) -> bytes:
        with self.open_file(file_id, owner) as body, self._blob_errors():
            return body.read()

    def open_file(self, file_id: str, owner: str) -> IO[bytes]:
        self.get_file(file_id, owner)
        try:
            with self._blob_errors():
                return self.blobs.reader(file_id)
        except FileNotFoundError:
            raise NotFound(f"the content of file {excerpt(file_id)} is gone from the store",
                           param="file_id") from None

    def read_range(self, file_id: str, offset: int, length: int) -> bytes:
        return self.read_ranges(file_id, [(offset, length)])[0]

    def read_ranges(self, file_id: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Byte ranges of a file's body (FileNotFoundError when it is gone)."""
        with self._blob_errors():
            return self.blobs.get_ranges(file_id, ranges)

    def list_files(self, owner: str, purpose: str | None = None, after: str | None = None,
                   limit: int = 100) -> tuple[list[StoredFile], bool]:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE owner = %s AND state = 'ready'"
        args: list[Any] = [owner]
        if purpose:
            query, args = query + " AND purpose = %s", [*args, purpose]
        if after:
            query += " AND seq < (SELECT seq FROM files WHERE id = %s)"
            args.append(after)
        with self._read() as cur:
            rows = cur.execute(query + " ORDER BY seq DESC LIMIT %s", [*args, limit + 1]).fetchall()
        return [StoredFile(**r) for r in rows[:limit]], len(rows) > limit

    def delete_file(self, file_id: str, owner: str) -> None:
        with self._tx() as cur:
            if cur.execute("SELECT 1 FROM files WHERE id = %s AND owner = %s AND state = 'ready' "
                           "FOR UPDATE", (file_id, owner)).fetchone() is None:
                raise NotFound(f"no file with id {excerpt(file_id)}", param="file_id")
            user = cur.execute("SELECT id, status FROM batches WHERE finished_at IS NULL AND "
                               "status = ANY(%s) AND data ->> 'input_file_id' = %s LIMIT 1",
                               (list(ACTIVE), file_id)).fetchone()
            if user is not None:
                raise Conflict(f"file {file_id} is the input of batch {user['id']}, which is "
                               f"{user['status']}; cancel the batch or wait until it ends, then "
                               "delete the file", param="file_id")
            cur.execute("DELETE FROM files WHERE id = %s", (file_id,))
        with self._blob_errors():
            self.blobs.delete(file_id)

    # -- batches ------------------------------------------------------------------------------
    def add_batch(self, owner: str, data: dict[str, Any], lines: list[PendingLine]) -> StoredBatch:
        with self._tx() as cur:
            input_id = data.get("input_file_id")
            if input_id and cur.execute("SELECT 1 FROM files WHERE id = %s AND state = 'ready' "
                                        "FOR SHARE", (input_id,)).fetchone() is None:
                raise NotFound(f"no file with id {excerpt(input_id)}", param="input_file_id")
            cur.execute("INSERT INTO batches (id, owner, status, data, total, created_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (data["id"], owner, data["status"], Jsonb(data), len(lines), data["created_at"]))
            with cur.copy("COPY lines (batch_id, idx, custom_id, byte_offset, length) FROM STDIN") as copy:
                for line in lines:
                    copy.write_row((data["id"], line.idx, line.custom_id, line.offset, line.length))
        return self.get_batch(data["id"])

    @staticmethod
    def _batch(row: dict[str, Any]) -> StoredBatch:
        data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
        return StoredBatch(row["id"], row["owner"], row["status"], data, row["total"],
                           row["completed"], row["failed"])

    def get_batch(self, batch_id: str, owner: str | None = None) -> StoredBatch:
        query, args = "SELECT * FROM batches WHERE id = %s", [batch_id]
        if owner is not None:
            query, args = query + " AND owner = %s", [*args, owner]
        with self._read() as cur:
            row = cur.execute(query, args).fetchone()
        if row is None:
            raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
        return self._batch(row)

    def list_batches(self, owner: str, after: str | None = None,
                     limit: int = 20) -> tuple[list[StoredBatch], bool]:
        query, args = "SELECT * FROM batches WHERE owner = %s", [owner]
        if after:
            query += " AND seq < (SELECT seq FROM batches WHERE id = %s)"
            args.append(after)
        with self._read() as cur:
            rows = cur.execute(query + " ORDER BY seq DESC LIMIT %s", [*args, limit + 1]).fetchall()
        return [self._batch(r) for r in rows[:limit]], len(rows) > limit

    def active_batches(self) -> list[StoredBatch]:
        with self._read() as cur:
            rows = cur.execute("SELECT * FROM batches WHERE finished_at IS NULL AND status = ANY(%s) "
                               "ORDER BY seq", (list(ACTIVE),)).fetchall()
        return [self._batch(r) for r in rows]

    @staticmethod
    def _update(cur: Cursor, batch_id: str, status: str | None, only_from: tuple[str, ...],
                finished: bool, fields: dict[str, Any]) -> None:
        row = cur.execute("SELECT status, data FROM batches WHERE id = %s FOR UPDATE", (batch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
        if only_from and row["status"] not in only_from:
            return
        new_status = status or row["status"]
        data = {**row["data"], **fields, "status": new_status}
        cur.execute("UPDATE batches SET status = %s, data = %s, finished_at = %s WHERE id = %s",
                    (new_status, Jsonb(data), int(time.time()) if finished else None, batch_id))

    def update_batch(self, batch_id: str, status: str | None = None, *, only_from: tuple[str, ...] = (),
                     finished: bool = False, **fields: Any) -> StoredBatch:
        with self._tx() as cur:
            self._update(cur, batch_id, status, only_from, finished, fields)
        return self.get_batch(batch_id)

    def publish_batch(self, batch_id: str, status: str, outputs: list[tuple[str, str, bytes | Path]],
                      **fields: Any) -> StoredBatch:
        """As the SQLite store's, by the one replica holding the batch's finalization lease
        (another's call returns the batch as it is); safe to redo after a crash."""
        now = int(time.time())
        with self._tx() as cur:
            row = cur.execute(
                "UPDATE batches SET finalizer = %s, finalize_until = now() + make_interval(secs => %s) "
                "WHERE id = %s AND finished_at IS NULL AND (finalizer IS NULL OR finalizer = %s OR "
                "finalize_until < now()) RETURNING owner, result_bytes",
                (self.worker, self.lease_s, batch_id, self.worker)).fetchone()
            if row is None:
                if cur.execute("SELECT 1 FROM batches WHERE id = %s", (batch_id,)).fetchone() is None:
                    raise NotFound(f"no batch with id {excerpt(batch_id)}", param="batch_id")
                return self.get_batch(batch_id)  # finished, or another replica finalizes it
            files = [StoredFile(file_id, row["owner"], "batch_output", filename, body_size(body), now,
                                now + int(self.settings.retention_s))
                     for file_id, filename, body in outputs]
            cur.execute("DELETE FROM files WHERE id = ANY(%s)", ([f.id for f in files],))
            extra = sum(f.bytes for f in files) - int(row["result_bytes"])
            if extra > 0:
                self._room(cur, extra)
            for stored in files:
                self._reserve(cur, stored)
        ids = [f.id for f in files]
        try:
            with self._blob_errors():
                for file_id, _, body in outputs:
                    put_body(self.blobs, file_id, body)
            with self._tx() as cur:
                if cur.execute("SELECT 1 FROM batches WHERE id = %s AND finished_at IS NULL AND "
                               "finalizer = %s FOR UPDATE", (batch_id, self.worker)).fetchone() is None:
                    raise Unavailable("another replica took over the batch's finalization; try again")
                self._make_ready(cur, ids)
                self._update(cur, batch_id, status, (), True, fields)
                cur.execute("UPDATE batches SET finalizer = NULL, finalize_until = NULL WHERE id = %s",
                            (batch_id,))
                cur.execute("UPDATE lines SET result = NULL, leased_by = NULL, lease_until = NULL "
                            "WHERE batch_id = %s", (batch_id,))
        except BaseException:
            self._abandon(ids)
            raise
        return self.get_batch(batch_id)

    def pending_lines(self, batch_id: str) -> list[PendingLine]:
        with self._read() as cur:
            rows = cur.execute("SELECT idx, custom_id, byte_offset, length FROM lines "
                               "WHERE batch_id = %s AND status_code IS NULL ORDER BY idx",
                               (batch_id,)).fetchall()
        return [PendingLine(r["idx"], r["custom_id"], r["byte_offset"], r["length"]) for r in rows]

    def finish_line(self, batch_id: str, idx: int, status_code: int, result: dict[str, Any]) -> bool:
        """Record a line's answer and count it, atomically, within the quota (507 when the
        answer does not fit); False if it was recorded already, or the batch no longer runs."""
        ok = 200 <= status_code < 300
        text = json.dumps(result)
        size = len(text.encode()) + 1
        with self._tx() as cur:
            batch = cur.execute("SELECT status FROM batches WHERE id = %s AND finished_at IS NULL "
                                "FOR UPDATE", (batch_id,)).fetchone()
            if batch is None or batch["status"] not in RECORDING:
                return False
            line = cur.execute("SELECT status_code FROM lines WHERE batch_id = %s AND idx = %s",
                               (batch_id, idx)).fetchone()
            if line is None or line["status_code"] is not None:
                return False
            self._room(cur, size)
            cur.execute("UPDATE lines SET status_code = %s, result = %s, leased_by = NULL, "
                        "lease_until = NULL, answered_by = %s WHERE batch_id = %s AND idx = %s",
                        (status_code, text, self.worker, batch_id, idx))
            counter = sql.Identifier("completed" if ok else "failed")
            cur.execute(sql.SQL("UPDATE batches SET {0} = {0} + 1, result_bytes = result_bytes + %s "
                                "WHERE id = %s").format(counter), (size, batch_id))
        return True

    def finished_results(self, batch_id: str, page: int = RESULTS_PAGE) -> Iterator[tuple[int, str]]:
        after = -1
        while True:
            with self._read() as cur:
                rows = cur.execute("SELECT idx, status_code, result FROM lines WHERE batch_id = %s AND "
                                   "status_code IS NOT NULL AND idx > %s ORDER BY idx LIMIT %s",
                                   (batch_id, after, page)).fetchall()
            yield from ((int(r["status_code"]), str(r["result"])) for r in rows)
            if len(rows) < page:
                return
            after = rows[-1]["idx"]

    def count_by_status(self) -> dict[str, int]:
        with self._read() as cur:
            rows = cur.execute("SELECT status, COUNT(*) AS n FROM batches GROUP BY status").fetchall()
        return {r["status"]: int(r["n"]) for r in rows}

    def pending_total(self) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT COALESCE(SUM(total - completed - failed), 0) AS n FROM batches "
                              "WHERE finished_at IS NULL AND status = ANY(%s)", (list(ACTIVE),)).fetchone()
        return int(row["n"]) if row else 0

    # -- leases of batch lines ----------------------------------------------------------------
    def claim_lines(self, batch_id: str, limit: int) -> list[PendingLine]:
        with self._tx() as cur:
            rows = cur.execute(
                "UPDATE lines SET leased_by = %s, lease_until = now() + make_interval(secs => %s) "
                "WHERE batch_id = %s AND idx IN (SELECT idx FROM lines WHERE batch_id = %s AND "
                "status_code IS NULL AND (lease_until IS NULL OR lease_until < now()) AND EXISTS "
                "(SELECT 1 FROM batches WHERE id = %s AND status IN ('validating', 'in_progress')) "
                "ORDER BY idx LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING idx, custom_id, byte_offset, length",
                (self.worker, self.lease_s, batch_id, batch_id, batch_id, limit)).fetchall()
        return sorted((PendingLine(r["idx"], r["custom_id"], r["byte_offset"], r["length"]) for r in rows),
                      key=lambda line: line.idx)

    def renew_leases(self, batch_id: str) -> int:
        with self._tx() as cur:
            return int(cur.execute(
                "UPDATE lines SET lease_until = now() + make_interval(secs => %s) WHERE batch_id = %s "
                "AND leased_by = %s AND status_code IS NULL", (self.lease_s, batch_id, self.worker)).rowcount)

    def release_leases(self, batch_id: str | None = None) -> int:
        query, args = ("UPDATE lines SET leased_by = NULL, lease_until = NULL WHERE leased_by = %s "
                       "AND status_code IS NULL", [self.worker])
        if batch_id is not None:
            query, args = query + " AND batch_id = %s", [*args, batch_id]
        with self._tx() as cur:
            return int(cur.execute(query, args).rowcount)

    def leased_lines(self, batch_id: str) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT COUNT(*) AS n FROM lines WHERE batch_id = %s AND status_code IS NULL "
                              "AND lease_until > now()", (batch_id,)).fetchone()
        return int(row["n"]) if row else 0

    def unfinished_lines(self, batch_id: str) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT COUNT(*) AS n FROM lines WHERE batch_id = %s AND status_code IS NULL",
                              (batch_id,)).fetchone()
        return int(row["n"]) if row else 0

    # -- retention and recovery ---------------------------------------------------------------
    def recover(self, now: float | None = None) -> int:
        """Remove reservations whose writer is gone or whose lease ran out (with whatever of
        their bodies was written), and half-written bodies without a reservation."""
        now = time.time() if now is None else now
        with self._read() as cur:
            writing = cur.execute("SELECT id, writer, lease_until FROM files WHERE state = 'writing'"
                                  ).fetchall()
        stale = [r["id"] for r in writing
                 if (r["lease_until"] or 0) <= now or writer_alive(r["writer"]) is False]
        removed: list[str] = []
        if stale:
            with self._tx() as cur:
                removed = [r["id"] for r in cur.execute(
                    "DELETE FROM files WHERE id = ANY(%s) AND state = 'writing' RETURNING id",
                    (stale,)).fetchall()]
        with self._blob_errors():
            for file_id in removed:
                self.blobs.delete(file_id)
            partials = self.blobs.partials()
            if partials:  # a partial seen here had its reservation committed before it was made
                with self._read() as cur:
                    live = {r["id"] for r in cur.execute("SELECT id FROM files WHERE state = 'writing'")}
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
        with self._tx() as cur:
            ids = [r["id"] for r in cur.execute(
                "DELETE FROM files WHERE state = 'ready' AND expires_at IS NOT NULL AND expires_at <= %s "
                "AND id NOT IN (SELECT data ->> 'input_file_id' FROM batches WHERE finished_at IS NULL "
                "AND status = ANY(%s) AND data ->> 'input_file_id' IS NOT NULL) RETURNING id",
                (now, list(ACTIVE))).fetchall()]
        with self._tx() as cur:  # lines go with their batch (ON DELETE CASCADE)
            batches = cur.execute("DELETE FROM batches WHERE finished_at IS NOT NULL AND finished_at <= %s "
                                  "RETURNING id", (cutoff,)).fetchall()
        with self._blob_errors():
            for file_id in ids:
                self.blobs.delete(file_id)
        return len(ids) + self.recover(now), len(batches)


def _is_storage_error(exc: Exception) -> bool:
    """An error of the blob store's I/O (a disk, an object store's client)."""
    if isinstance(exc, OSError):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore", "boto3", "s3transfer", "urllib3"))
