"""The store alone: exactly-once line results, retention, quota, ownership, paging."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from openai_ocr.errors import InsufficientStorage, NotFound, PayloadTooLarge
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.store import PendingLine, Store


def store_in(path: Path, **settings: object) -> Store:
    return Store(StorageSettings(dir=str(path), **settings)).open()  # type: ignore[arg-type]


def batch(store: Store, owner: str = "me", lines: int = 3) -> str:
    data = {"id": f"batch_{time.monotonic_ns()}", "status": "in_progress", "created_at": int(time.time())}
    store.add_batch(owner, data, [PendingLine(i, f"c{i}", i * 10, 10) for i in range(lines)])
    return data["id"]


def test_a_line_is_counted_once_and_survives_a_reopen(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    batch_id = batch(store)
    assert store.finish_line(batch_id, 1, 200, {"custom_id": "c1"})
    assert not store.finish_line(batch_id, 1, 200, {"custom_id": "c1"})  # a second answer is dropped
    assert store.finish_line(batch_id, 2, 400, {"custom_id": "c2"})
    store.close()
    reopened = store_in(tmp_path)
    again = reopened.get_batch(batch_id)
    assert (again.total, again.completed, again.failed) == (3, 1, 1)
    assert [line.custom_id for line in reopened.pending_lines(batch_id)] == ["c0"]
    assert [(code, json.loads(text)["custom_id"]) for code, text in reopened.finished_results(batch_id)] \
        == [(200, "c1"), (400, "c2")]
    assert reopened.pending_total() == 1


def test_retention_deletes_expired_files_and_old_finished_batches(tmp_path: Path) -> None:
    store = store_in(tmp_path, retention_s=100)
    stored = store.add_file("me", "user", "a.png", b"x" * 10)
    finished, running = batch(store), batch(store)
    store.update_batch(finished, "completed", finished=True)
    assert store.sweep(now=time.time() + 50) == (0, 0)  # nothing is old enough yet
    assert store.sweep(now=time.time() + 101) == (1, 1)
    with pytest.raises(NotFound):
        store.get_file(stored.id, "me")
    assert not (tmp_path / "files" / stored.id).exists()
    with pytest.raises(NotFound):
        store.get_batch(finished)
    assert store.get_batch(running).status == "in_progress"  # unfinished work is kept


def test_quota_and_upload_limit(tmp_path: Path) -> None:
    store = store_in(tmp_path, quota_bytes=100, max_upload_bytes=60)
    store.add_file("me", "user", "a", b"x" * 50)
    with pytest.raises(PayloadTooLarge):
        store.add_file("me", "user", "b", b"x" * 61)
    with pytest.raises(InsufficientStorage):
        store.add_file("me", "user", "c", b"x" * 51)
    store.add_file("me", "user", "d", b"x" * 50)  # exactly full is allowed
    assert store.usage_bytes() == 100


def test_another_owner_sees_nothing(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    stored = store.add_file("me", "user", "a", b"x")
    batch_id = batch(store, owner="me")
    with pytest.raises(NotFound):
        store.get_file(stored.id, "you")
    with pytest.raises(NotFound):
        store.delete_file(stored.id, "you")
    with pytest.raises(NotFound):
        store.get_batch(batch_id, "you")
    assert store.list_files("you") == ([], False) and store.list_batches("you") == ([], False)


def test_lists_page_newest_first(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    ids = [store.add_file("me", "user", f"f{i}", b"x").id for i in range(5)]
    page, more = store.list_files("me", limit=2)
    assert [f.id for f in page] == ids[::-1][:2] and more
    page, more = store.list_files("me", after=page[-1].id, limit=3)
    assert [f.id for f in page] == ids[::-1][2:] and not more
