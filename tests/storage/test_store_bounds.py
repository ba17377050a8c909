"""The store's bounds: the quota reserved before writing (also across connections and
processes), batch answers inside the quota, what a dead writer left removed, a damaged
database found at open and at run time, the input of a running batch kept.

Each test drives the store alone; the API-level counterparts are in
tests/api/test_batch_isolation.py and tests/api/test_storage_bounds.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import openai_ocr.storage.store as store_module
from openai_ocr.errors import Conflict, InsufficientStorage, NotFound, Unavailable
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.store import PendingLine, Store
from tests.helpers import wait_until
from tests.store_helpers import bodies_on_disk, damaged_page, writer

OLD_SCHEMA = """
CREATE TABLE files (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER);
CREATE TABLE batches (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, finished_at INTEGER);
CREATE TABLE lines (
    batch_id TEXT NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, status_code INTEGER,
    result TEXT, PRIMARY KEY (batch_id, idx));
"""
"""The schema of the version before reservations (a database it left must keep working)."""

def store_in(path: Path, **settings: Any) -> Store:
    return Store(StorageSettings(dir=str(path), **settings)).open()


def add_batch(store: Store, lines: int = 3, input_file_id: str | None = None) -> str:
    data: dict[str, Any] = {"id": f"batch_{time.monotonic_ns()}", "status": "in_progress",
                            "created_at": int(time.time())}
    if input_file_id:
        data["input_file_id"] = input_file_id
    store.add_batch("me", data, [PendingLine(i, f"c{i}", i * 10, 10) for i in range(lines)])
    return str(data["id"])


# -- 5: the quota is reserved before writing ------------------------------------------------------

@pytest.mark.parametrize("connections", [1, 2])
def test_concurrent_uploads_cannot_overshoot_the_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       connections: int) -> None:
    """12 uploads of 100 kB into a 1 MB quota, every write held open until each upload has
    either reached its write or been refused: with the room checked before writing and not
    reserved, all 12 pass the check (1.2 MB stored). Two connections stand for two processes
    (each its own SQLite connection, the reservation lives in the database)."""
    quota, size, uploads = 1_000_000, 100_000, 12
    stores = [store_in(tmp_path, quota_bytes=quota) for _ in range(connections)]
    arrived = refused = 0
    turn = threading.Condition()
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:
        nonlocal arrived
        with turn:
            arrived += 1
            turn.notify_all()
            turn.wait_for(lambda: arrived + refused == uploads, timeout=30)
        real_fsync(fd)

    def upload(i: int) -> bool:
        nonlocal refused
        try:
            stores[i % connections].add_file("me", "user", f"f{i}", b"x" * size)
            return True
        except InsufficientStorage:
            with turn:
                refused += 1
                turn.notify_all()
            return False

    monkeypatch.setattr(os, "fsync", held_fsync)
    with ThreadPoolExecutor(uploads) as pool:
        stored = sum(pool.map(upload, range(uploads)))
    assert (stored, refused) == (10, 2)
    assert stores[0].usage_bytes() == stored * size <= quota
    assert bodies_on_disk(tmp_path) == stored * size
    assert len(stores[-1].list_files("me")[0]) == stored


def test_a_batch_answer_that_does_not_fit_is_not_recorded(tmp_path: Path) -> None:
    store = store_in(tmp_path, quota_bytes=1000)
    batch_id = add_batch(store)
    answer = {"text": "y" * 600}
    assert store.finish_line(batch_id, 0, 200, answer)
    with pytest.raises(InsufficientStorage):
        store.finish_line(batch_id, 1, 200, answer)
    assert [line.idx for line in store.pending_lines(batch_id)] == [1, 2]  # not recorded, not counted
    assert store.get_batch(batch_id).completed == 1
    assert store.usage_bytes() == len(json.dumps(answer)) + 1 <= 1000


def test_a_batch_output_replaces_its_answers_in_the_quota(tmp_path: Path) -> None:
    """The answers counted line by line become the output file without needing room twice."""
    store = store_in(tmp_path, quota_bytes=1000)
    batch_id = add_batch(store, lines=2)
    for idx in range(2):
        assert store.finish_line(batch_id, idx, 200, {"text": "y" * 400})
    used = store.usage_bytes()
    texts = [text for _, text in store.finished_results(batch_id)]
    body = ("\n".join(texts) + "\n").encode()
    done = store.publish_batch(batch_id, "completed", [("file-out", "out.jsonl", body)],
                               output_file_id="file-out")
    assert done.status == "completed" and done.data["output_file_id"] == "file-out"
    assert store.usage_bytes() == used == len(body)
    assert store.read_file("file-out", "me") == body
    with pytest.raises(InsufficientStorage):  # room past the answers' is still checked
        store.publish_batch(add_batch(store), "completed", [("file-more", "more", b"z" * 500)])


# -- 7: nothing half-written survives -------------------------------------------------------------

def test_a_writer_killed_mid_write_leaves_nothing_after_a_restart(tmp_path: Path) -> None:
    """SIGKILL while an upload's body is being written: the next open removes the partial
    body and its reservation (before, the .part stayed forever, counted by nothing)."""
    proc = writer(tmp_path, 300_000, 10_000_000, "die")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    parts = list((tmp_path / "files").glob("*.part"))
    assert [p.stat().st_size for p in parts] == [300_000]
    store = store_in(tmp_path, quota_bytes=10_000_000)
    assert list((tmp_path / "files").iterdir()) == []
    assert store.usage_bytes() == 0
    assert store.list_files("anonymous") == ([], False)


def test_a_part_file_without_a_row_is_removed_at_open(tmp_path: Path) -> None:
    """What older versions left (a .part file and no row) is removed; stored files stay."""
    store = store_in(tmp_path)
    kept = store.add_file("me", "user", "a", b"kept")
    store.close()
    (tmp_path / "files" / "file-0123456789abcdef01234567.part").write_bytes(b"x" * 1000)
    store = store_in(tmp_path)
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [kept.id]
    assert store.read_file(kept.id, "me") == b"kept"


def test_a_write_in_progress_is_counted_until_its_writer_dies(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    quota, size = 1_000_000, 700_000
    proc = writer(tmp_path, size, quota, "hold")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        store = store_in(tmp_path, quota_bytes=quota)  # opened meanwhile: the live write is kept
        assert store.usage_bytes() == size
        with pytest.raises(InsufficientStorage):
            store.add_file("me", "user", "b", b"x" * 400_000)
        assert store.sweep() == (0, 0)  # a live writer's reservation survives the sweep
        proc.kill()
        proc.wait(timeout=30)
        assert store.sweep() == (1, 0)  # its process is gone: removed with its partial body
        assert not list((tmp_path / "files").glob("*.part")) and store.usage_bytes() == 0
        store.add_file("me", "user", "b", b"x" * 400_000)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_reservation_another_machine_made_ends_with_its_lease(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    proc = writer(tmp_path, 1000, 1_000_000, "hold")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        monkeypatch.setattr(store_module, "_HOST", "another-machine")  # its pid says nothing here
        store = store_in(tmp_path, write_lease_s=900)
        assert store.usage_bytes() == 1000
        assert store.recover(now=time.time() + 100) == 0
        assert store.recover(now=time.time() + 901) == 1
        assert store.usage_bytes() == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)


# -- 1: the input of a running batch ---------------------------------------------------------------

def test_the_input_of_a_running_batch_is_neither_deleted_nor_swept(tmp_path: Path) -> None:
    store = store_in(tmp_path, retention_s=100)
    source = store.add_file("me", "batch", "in.jsonl", b"{}\n")
    batch_id = add_batch(store, input_file_id=source.id)
    with pytest.raises(Conflict) as refused:
        store.delete_file(source.id, "me")
    assert refused.value.status_code == 409 and batch_id in refused.value.message
    assert store.sweep(now=time.time() + 101) == (0, 0)  # expired, but still needed
    store.update_batch(batch_id, "completed", finished=True)
    store.delete_file(source.id, "me")
    with pytest.raises(NotFound):
        store.get_file(source.id, "me")


# -- 8: a damaged database ----------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "missing", "page"])
def test_a_damaged_database_is_found_at_open(tmp_path: Path, damage: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    store = store_in(tmp_path)
    stored = store.add_file("me", "user", "a", b"body")
    store.close()
    db_path = tmp_path / "state.sqlite3"
    if damage == "page":
        damaged_page(db_path)
    else:
        for leftover in (db_path, tmp_path / "state.sqlite3-wal", tmp_path / "state.sqlite3-shm"):
            leftover.unlink(missing_ok=True)
        if damage == "empty":
            db_path.write_bytes(b"")
    with caplog.at_level(logging.ERROR, logger="openai_ocr.storage.store"):
        store = store_in(tmp_path)
    assert store.problem is not None and "state.sqlite3" in store.problem
    assert {"empty": "empty", "missing": "missing", "page": "damaged"}[damage] in store.problem
    assert any(str(db_path) in r.getMessage() for r in caplog.records), caplog.text
    for call in (lambda: store.list_files("me"), lambda: store.get_file(stored.id, "me"),
                 lambda: store.add_file("me", "user", "b", b"x"), store.active_batches):
        with pytest.raises(Unavailable) as answer:
            call()
        assert answer.value.status_code == 503 and "state.sqlite3" in answer.value.message
    assert (tmp_path / "files" / stored.id).read_bytes() == b"body"  # nothing deleted
    if damage != "page":
        assert not db_path.exists() or db_path.stat().st_size == 0  # nothing written over it


def test_a_new_store_is_not_mistaken_for_a_lost_one(tmp_path: Path) -> None:
    assert store_in(tmp_path).problem is None
    assert store_in(tmp_path / "again").problem is None


def test_corruption_found_at_run_time_is_a_503_and_closes_the_store(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    for i in range(40):
        store.add_file("me", "user", f"f{i}", b"x")
    damaged_page(tmp_path / "state.sqlite3")
    with pytest.raises(Unavailable) as answer:
        store.list_files("me")
    assert "damaged" in answer.value.message and store.problem == answer.value.message
    with pytest.raises(Unavailable):
        store.usage_bytes()


# -- upgrades --------------------------------------------------------------------------------------

def test_a_database_of_the_previous_version_is_upgraded(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "file-old").write_bytes(b"z" * 50)
    now = int(time.time())
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO files VALUES ('file-old', 'me', 'user', 'old', 50, ?, ?)", (now, now + 999))
        db.execute("INSERT INTO batches (id, owner, status, data, total, created_at) VALUES "
                   "('batch_old', 'me', 'in_progress', ?, 2, ?)",
                   (json.dumps({"id": "batch_old", "status": "in_progress", "created_at": now}), now))
        db.execute("INSERT INTO lines VALUES ('batch_old', 0, 'c0', 0, 10, 200, ?)", (json.dumps({"a": 1}),))
        db.execute("INSERT INTO lines VALUES ('batch_old', 1, 'c1', 10, 10, NULL, NULL)")
    db.close()
    store = store_in(tmp_path)
    assert store.problem is None
    assert store.usage_bytes() == 50 + len(json.dumps({"a": 1})) + 1
    assert [f.id for f in store.list_files("me")[0]] == ["file-old"]
    assert store.read_file("file-old", "me") == b"z" * 50
    assert [line.idx for line in store.pending_lines("batch_old")] == [1]
    store.close()
    assert store_in(tmp_path).usage_bytes() == 50 + len(json.dumps({"a": 1})) + 1  # opened twice: same


def test_two_stores_opening_together_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: store_in(tmp_path), range(4)))
    stores[0].add_file("me", "user", "a", b"x" * 10)
    wait_until(lambda: all(s.usage_bytes() == 10 for s in stores), 5, "every store seeing the file")
