"""The store's contract, against every backend: SQLite plus a directory (the default),
PostgreSQL plus a directory, PostgreSQL plus S3 (moto's server). Each test opens two store
instances on the same state where it matters: two processes, or two replicas.

Then what only the shared store has: versioned migrations, batch lines claimed with leases,
one finalizer per batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from openai_ocr.errors import Conflict, InsufficientStorage, NotFound, PayloadTooLarge
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.base import StateStore, database_kind, make_store, sqlite_path
from openai_ocr.storage.blobs import LocalBlobs, S3Blobs, blob_store
from openai_ocr.storage.store import PendingLine, Store
from tests.helpers import wait_until
from tests.shared_state import PostgresCluster, S3Server

BACKENDS = ["sqlite", "postgres", "postgres+s3"]

Opener = Callable[..., StateStore]


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Opener]:
    """`open_store(**settings)`: a new, opened store instance on this test's state (every
    call the same database and bodies, as another process or replica would see them)."""
    opened: list[StateStore] = []
    kind: str = request.param
    url = bucket = ""
    if kind.startswith("postgres"):
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
    if kind.endswith("s3"):
        s3: S3Server = request.getfixturevalue("s3")
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        bucket = s3.new_bucket()

    def opener(**settings: Any) -> StateStore:
        from openai_ocr.storage.postgres import PostgresStore

        config = StorageSettings(dir=str(tmp_path), **settings)
        store: StateStore
        if kind == "sqlite":
            store = Store(config)
        else:
            blobs = blob_store(f"s3://{bucket}/pre/fix" if bucket else "", tmp_path / "files")
            store = PostgresStore(config, url, blobs=blobs, worker=f"w{len(opened)}")
        opened.append(store.open())
        return store

    yield opener
    for store in opened:
        store.close()


def add_batch(store: StateStore, lines: int = 3, owner: str = "me", input_file_id: str | None = None) -> str:
    data: dict[str, Any] = {"id": f"batch_{time.monotonic_ns()}", "status": "in_progress",
                            "created_at": int(time.time())}
    if input_file_id:
        data["input_file_id"] = input_file_id
    store.add_batch(owner, data, [PendingLine(i, f"c{i}", i * 10, 10) for i in range(lines)])
    return str(data["id"])


# -- files ------------------------------------------------------------------------------------

def test_a_file_written_by_one_is_read_listed_and_deleted_by_another(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    body = bytes(range(256)) * 40
    stored = a.add_file("me", "user", "page.png", body)
    assert b.get_file(stored.id, "me") == stored
    assert b.read_file(stored.id, "me") == body
    assert b.read_ranges(stored.id, [(0, 4), (1000, 10), (5000, 0)]) == [body[:4], body[1000:1010], b""]
    assert [f.id for f in b.list_files("me")[0]] == [stored.id]
    assert b.usage_bytes() == len(body)
    b.delete_file(stored.id, "me")
    with pytest.raises(NotFound):
        a.get_file(stored.id, "me")
    with pytest.raises(NotFound):
        a.read_file(stored.id, "me")
    with pytest.raises(FileNotFoundError):  # the body is gone too
        a.read_ranges(stored.id, [(0, 1)])
    assert a.usage_bytes() == 0


def test_another_owner_sees_nothing(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    stored = a.add_file("alice", "batch", "in.jsonl", b"{}\n")
    batch_id = add_batch(a, owner="alice")
    for call in (lambda: b.get_file(stored.id, "bob"), lambda: b.read_file(stored.id, "bob"),
                 lambda: b.delete_file(stored.id, "bob"), lambda: b.get_batch(batch_id, "bob")):
        with pytest.raises(NotFound):
            call()
    assert b.list_files("bob") == ([], False)
    assert b.list_batches("bob") == ([], False)
    assert b.get_file(stored.id, "alice").id == stored.id


def test_lists_page_newest_first(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    ids = [(a if i % 2 else b).add_file("me", "user", f"f{i}", b"x").id for i in range(5)]
    page, more = a.list_files("me", limit=2)
    assert [f.id for f in page] == ids[::-1][:2] and more
    page, more = b.list_files("me", after=page[-1].id, limit=2)
    assert [f.id for f in page] == ids[::-1][2:4] and more
    page, more = a.list_files("me", after=page[-1].id, limit=2)
    assert [f.id for f in page] == ids[:1] and not more
    batches = [add_batch(a if i % 2 else b) for i in range(3)]
    found, more = b.list_batches("me", limit=2)
    assert [x.id for x in found] == batches[::-1][:2] and more


def test_quota_and_upload_limit_hold_across_instances(open_store: Opener) -> None:
    """12 uploads of 100 kB into a 1 MB quota through two instances at once: 10 stored."""
    a, b = open_store(quota_bytes=1_000_000, max_upload_bytes=150_000), open_store(quota_bytes=1_000_000)
    with pytest.raises(PayloadTooLarge):
        a.add_file("me", "user", "big", b"x" * 150_001)

    def upload(i: int) -> bool:
        try:
            (a if i % 2 else b).add_file("me", "user", f"f{i}", b"x" * 100_000)
            return True
        except InsufficientStorage:
            return False

    with ThreadPoolExecutor(12) as pool:
        stored = sum(pool.map(upload, range(12)))
    assert stored == 10
    assert a.usage_bytes() == b.usage_bytes() == 1_000_000
    with pytest.raises(InsufficientStorage):
        b.check_room(1)


def test_a_large_body_from_a_file_is_stored_and_read_by_ranges(open_store: Opener, tmp_path: Path) -> None:
    """A 12 MB body copied in from a file (S3: a multipart upload)."""
    store = open_store()
    source = tmp_path / "big.bin"
    chunk = bytes(range(256)) * 4096
    source.write_bytes(chunk * 12)
    stored = store.add_file_from_path("me", "batch_output", "big.pdf", source)
    assert stored.bytes == 12 * len(chunk) == store.usage_bytes()
    far = 11 * len(chunk) + 7
    assert open_store().read_ranges(stored.id, [(3, 5), (far, 9)]) == [chunk[3:8], chunk[7:16]]
    assert store.read_file(stored.id, "me") == chunk * 12
    with open_store().open_file(stored.id, "me") as body:  # by chunks, as the download route reads it
        parts = list(iter(lambda: body.read(len(chunk) * 5), b""))
    assert [len(p) for p in parts] == [5 * len(chunk), 5 * len(chunk), 2 * len(chunk)]
    assert b"".join(parts) == chunk * 12
    with pytest.raises(NotFound):
        store.open_file(stored.id, "someone else")


# -- batches ----------------------------------------------------------------------------------

def test_a_line_is_counted_once_whoever_records_it(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    batch_id = add_batch(a)
    assert a.finish_line(batch_id, 1, 200, {"custom_id": "c1"})
    assert not b.finish_line(batch_id, 1, 200, {"custom_id": "c1"})
    assert b.finish_line(batch_id, 2, 400, {"custom_id": "c2"})
    again = b.get_batch(batch_id)
    assert (again.total, again.completed, again.failed) == (3, 1, 1)
    assert [line.custom_id for line in a.pending_lines(batch_id)] == ["c0"]
    assert a.pending_total() == 1
    assert [(code, json.loads(text)["custom_id"]) for code, text in b.finished_results(batch_id)] \
        == [(200, "c1"), (400, "c2")]


def test_answers_are_read_back_in_line_order_a_page_at_a_time(open_store: Opener) -> None:
    store = open_store()
    batch_id = add_batch(store, lines=7)
    for idx in (6, 0, 3, 1, 5, 2):  # recorded in any order
        assert store.finish_line(batch_id, idx, 200 if idx % 2 else 400, {"custom_id": f"c{idx}"})
    read = [(code, json.loads(text)["custom_id"]) for code, text in store.finished_results(batch_id, page=2)]
    assert read == [(400, "c0"), (200, "c1"), (400, "c2"), (200, "c3"), (200, "c5"), (400, "c6")]


def test_a_batch_file_is_published_from_a_file_on_disk(open_store: Opener, tmp_path: Path) -> None:
    store = open_store()
    batch_id = add_batch(store, lines=1)
    assert store.finish_line(batch_id, 0, 200, {"text": "answer"})
    body = tmp_path / "out.jsonl"
    body.write_bytes(b"".join(text.encode() + b"\n" for _, text in store.finished_results(batch_id)))
    done = store.publish_batch(batch_id, "completed", [("file-disk", "out.jsonl", body)],
                               output_file_id="file-disk", completed_at=1)
    assert done.data["output_file_id"] == "file-disk"
    assert open_store().read_file("file-disk", "me") == body.read_bytes()
    assert store.get_file("file-disk", "me").bytes == body.stat().st_size


def test_a_batch_output_replaces_its_answers_in_the_quota(open_store: Opener) -> None:
    store = open_store(quota_bytes=1000)
    batch_id = add_batch(store, lines=2)
    for idx in range(2):
        assert store.finish_line(batch_id, idx, 200, {"text": "y" * 400})
    used = store.usage_bytes()
    with pytest.raises(InsufficientStorage):  # a third answer does not fit: not recorded
        store.finish_line(add_batch(store), 0, 200, {"text": "y" * 400})
    body = ("\n".join(text for _, text in store.finished_results(batch_id)) + "\n").encode()
    done = store.publish_batch(batch_id, "completed", [("file-out", "out.jsonl", body)],
                               output_file_id="file-out", completed_at=1)
    assert done.status == "completed" and done.data["output_file_id"] == "file-out"
    assert store.usage_bytes() == used == len(body)
    assert open_store().read_file("file-out", "me") == body
    assert store.active_batches() == [b for b in store.active_batches() if b.id != batch_id]


def test_the_input_of_a_running_batch_is_neither_deleted_nor_swept(open_store: Opener) -> None:
    a, b = open_store(retention_s=1), open_store(retention_s=1)
    stored = a.add_file("me", "batch", "in.jsonl", b"{}\n")
    batch_id = add_batch(a, input_file_id=stored.id)
    with pytest.raises(Conflict):
        b.delete_file(stored.id, "me")
    assert b.sweep(now=time.time() + 10) == (0, 0)
    assert a.read_file(stored.id, "me") == b"{}\n"
    b.update_batch(batch_id, "cancelled", finished=True)
    assert b.sweep(now=time.time() + 10) == (1, 1)  # then both go: the file, the finished batch
    with pytest.raises(NotFound):
        a.get_batch(batch_id)
    with pytest.raises(FileNotFoundError):
        a.read_ranges(stored.id, [(0, 1)])
    assert a.usage_bytes() == 0


def test_an_abandoned_reservation_is_removed_by_the_next_recover(open_store: Opener) -> None:
    """A writer that died between reserving and making its file ready (another machine's:
    its lease decides)."""
    store = open_store(write_lease_s=1)

    class Died(Exception):
        pass

    def dies(*_: Any) -> None:
        raise Died

    store.blobs.put = dies  # type: ignore[attr-defined]  # both stores write bodies through theirs
    store._abandon = lambda ids: None  # type: ignore[attr-defined]  # as if SIGKILLed: no clean-up
    with pytest.raises(Died):
        store.add_file("me", "user", "f", b"x" * 500)
    assert store.usage_bytes() == 500  # the reservation counts until it is found abandoned
    other = open_store()
    assert other.recover(now=time.time() + 5) == 1
    assert other.usage_bytes() == 0


def test_usage_counters_add_up_across_instances(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    row = {"date": "2026-01-02", "key_id": "k1", "route": "/ocr", "model": "m", "requests": 1,
           "pages": 2, "images": 0, "image_tokens": 3, "prompt_tokens": 4, "completion_tokens": 5,
           "engine_seconds": 0.5}
    a.add_usage([row])
    b.add_usage([row, {**row, "key_id": "k2"}])
    found = a.usage("2026-01-01", "2026-01-03", "k1")
    assert [(r["date"], r["requests"], r["pages"], r["engine_seconds"]) for r in found] == [
        ("2026-01-02", 2, 4, 1.0)]
    assert {r["key_id"] for r in b.usage("2026-01-02", "2026-01-02")} == {"k1", "k2"}


# -- configuration ----------------------------------------------------------------------------

def test_urls_choose_the_backend(tmp_path: Path) -> None:
    assert database_kind("") == database_kind("sqlite:///x.db") == "sqlite"
    assert database_kind("postgresql://u@h/db") == database_kind("postgres://h/db") == "postgresql"
    with pytest.raises(ValueError, match="mysql"):
        database_kind("mysql://h/db")
    assert sqlite_path("sqlite:///var/lib/x.db") == sqlite_path("sqlite:////var/lib/x.db") == Path("/var/lib/x.db")
    assert sqlite_path("") is None
    assert isinstance(blob_store("", tmp_path), LocalBlobs)
    assert blob_store(f"file://{tmp_path}/b", tmp_path).where == f"{tmp_path}/b"  # type: ignore[union-attr]
    assert blob_store(str(tmp_path / "c"), tmp_path).where == str(tmp_path / "c")
    s3 = blob_store("s3://bucket/some/prefix/", tmp_path, "http://127.0.0.1:1")
    assert isinstance(s3, S3Blobs) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    with pytest.raises(ValueError):
        blob_store("ftp://x/y", tmp_path)
    assert isinstance(make_store(StorageSettings(dir=str(tmp_path))), Store)


def test_settings_and_environment_choose_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_ocr.settings import load_settings
    from openai_ocr.storage.postgres import PostgresStore

    monkeypatch.setenv("OPENAI_OCR_STORAGE__DATABASE_URL", f"sqlite://{tmp_path}/db/x.sqlite3")
    monkeypatch.setenv("OPENAI_OCR_STORAGE__BLOB_URL", f"file://{tmp_path}/bodies")
    settings = load_settings().storage
    assert "x.sqlite3" not in repr(settings)  # a secret: a password in the URL is never printed
    store = make_store(settings).open()
    try:
        stored = store.add_file("me", "user", "f", b"body")
        assert (tmp_path / "db" / "x.sqlite3").is_file()
        assert (tmp_path / "bodies" / stored.id).read_bytes() == b"body"
    finally:
        store.close()
    monkeypatch.setenv("OPENAI_OCR_STORAGE__DATABASE_URL", "postgresql://u:secret@db.example/ocr")
    monkeypatch.setenv("OPENAI_OCR_STORAGE__BLOB_URL", "s3://bucket/prefix")
    shared = make_store(load_settings().storage)
    assert isinstance(shared, PostgresStore) and isinstance(shared.blobs, S3Blobs)
    assert shared.blobs.bucket == "bucket" and shared.url == "postgresql://u:secret@db.example/ocr"
    monkeypatch.setenv("OPENAI_OCR_STORAGE__DATABASE_URL", "")
    with pytest.raises(ValueError, match="needs storage.database_url postgresql"):
        make_store(load_settings().storage)  # S3 bodies beside a one-machine SQLite: refused
    monkeypatch.setenv("OPENAI_OCR_STORAGE__DATABASE_URL", "mysql://h/db")
    with pytest.raises(ValueError, match="mysql"):
        load_settings()


# -- the shared store alone: migrations, leases, one finalizer ----------------------------------

@pytest.fixture()
def shared(postgres: PostgresCluster, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from openai_ocr.storage.postgres import PostgresStore

    url = postgres.new_database()
    opened: list[PostgresStore] = []

    def opener(worker: str, **settings: Any) -> PostgresStore:
        store = PostgresStore(StorageSettings(dir=str(tmp_path), **settings), url, worker=worker)
        opened.append(store.open())
        return store

    yield opener
    for store in opened:
        store.close()


def test_replicas_starting_together_migrate_once(shared: Callable[..., Any]) -> None:
    from openai_ocr.storage.postgres import migrations

    barrier = threading.Barrier(4)

    def start(i: int) -> Any:
        barrier.wait()
        return shared(f"w{i}")

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(start, range(4)))
    with stores[0]._tx() as cur:
        rows = cur.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [(r["version"], r["name"]) for r in rows] == [(v, n) for v, n, _ in migrations()]
    assert migrations()[0][:2] == (1, "initial")


def test_replicas_claim_disjoint_lines_and_take_over_expired_leases(shared: Callable[..., Any]) -> None:
    a, b = shared("a", lease_s=1), shared("b", lease_s=1)
    batch_id = add_batch(a, lines=10)
    got_a = a.claim_lines(batch_id, 4)
    got_b = b.claim_lines(batch_id, 100)
    assert [x.idx for x in got_a] == [0, 1, 2, 3]
    assert [x.idx for x in got_b] == [4, 5, 6, 7, 8, 9]
    assert a.claim_lines(batch_id, 5) == []  # nothing free
    for line in got_b:
        assert b.finish_line(batch_id, line.idx, 200, {"i": line.idx})
    assert a.unfinished_lines(batch_id) == 4
    # a stops renewing (dies): once its leases run out, b takes its lines; renewing keeps them
    b_renews = b.renew_leases(batch_id)
    assert b_renews == 0  # b holds nothing unfinished
    found: list[PendingLine] = []

    def taken() -> bool:
        found.extend(b.claim_lines(batch_id, 10))
        return len(found) == 4

    wait_until(taken, 10, "a's leases running out")
    assert [x.idx for x in found] == [0, 1, 2, 3]
    assert a.renew_leases(batch_id) == 0  # a's leases are b's now
    assert a.finish_line(batch_id, 0, 200, {"late": True})  # a late answer still counts, once
    assert not b.finish_line(batch_id, 0, 200, {"again": True})
    assert b.release_leases(batch_id) == 3
    assert [x.idx for x in a.claim_lines(batch_id, 10)] == [1, 2, 3]  # released: free at once


def test_no_answer_is_added_once_a_batch_stops_running(shared: Callable[..., Any]) -> None:
    a, b = shared("a"), shared("b")
    batch_id = add_batch(a, lines=3)
    assert a.finish_line(batch_id, 0, 200, {})
    b.update_batch(batch_id, "cancelling", only_from=("in_progress",))
    assert not a.finish_line(batch_id, 1, 200, {})  # its output may be written already
    assert a.get_batch(batch_id).completed == 1


def test_a_cancel_stops_every_replicas_claims_and_live_leases_are_counted(shared: Callable[..., Any]) -> None:
    a, b = shared("a"), shared("b")
    batch_id = add_batch(a, lines=4)
    held = a.claim_lines(batch_id, 2)
    assert len(held) == 2 and b.leased_lines(batch_id) == 2
    b.update_batch(batch_id, "cancelling", only_from=("in_progress",))
    assert b.claim_lines(batch_id, 10) == []  # two lines were free: a cancel leaves them unclaimed
    assert a.release_leases(batch_id) == 2
    assert b.leased_lines(batch_id) == 0 and b.unfinished_lines(batch_id) == 4


def test_one_replica_finalizes_a_batch(shared: Callable[..., Any]) -> None:
    a, b = shared("a"), shared("b")
    batch_id = add_batch(a, lines=1)
    assert a.finish_line(batch_id, 0, 200, {"x": 1})
    with a._tx() as cur:  # a holds the finalization lease (it is writing the files)
        cur.execute("UPDATE batches SET finalizer = 'a', finalize_until = now() + interval '1 hour' "
                    "WHERE id = %s", (batch_id,))
    before = b.publish_batch(batch_id, "completed", [("file-bo", "out.jsonl", b"b\n")], output_file_id="file-bo")
    assert before.status == "in_progress"  # b left it to a
    with pytest.raises(NotFound):
        b.get_file("file-bo", "me")
    with a._tx() as cur:  # a died: its lease runs out, b takes over
        cur.execute("UPDATE batches SET finalize_until = now() - interval '1 second' WHERE id = %s",
                    (batch_id,))
    done = b.publish_batch(batch_id, "completed", [("file-bo", "out.jsonl", b"b\n")], output_file_id="file-bo")
    assert done.status == "completed" and a.read_file("file-bo", "me") == b"b\n"
    assert a.publish_batch(batch_id, "failed", []).status == "completed"  # finished: left as it is
    assert a.usage_bytes() == 2


def test_a_half_written_body_without_a_reservation_is_removed(shared: Callable[..., Any], tmp_path: Path) -> None:
    a = shared("a")
    kept = a.add_file("me", "user", "f", b"x")
    (tmp_path / "files" / "file-dead.part").write_bytes(b"partial")
    (tmp_path / "files" / f"{kept.id}.part").write_bytes(b"an old partial of a ready file")
    assert a.recover() == 2
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [kept.id]
    assert a.read_file(kept.id, "me") == b"x"


def test_s3_bodies_are_objects_under_the_prefix(s3: S3Server, postgres: PostgresCluster, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_ocr.storage.postgres import PostgresStore

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3.new_bucket()
    settings = StorageSettings(dir=str(tmp_path / "unused"), retention_s=1)
    store = PostgresStore(settings, postgres.new_database(), blobs=blob_store(f"s3://{bucket}/ocr", tmp_path))
    store.open()
    try:
        kept = store.add_file("me", "user", "a.png", b"a")
        gone = store.add_file("me", "user", "b.png", b"bb")
        assert s3.keys(bucket) == sorted([f"ocr/{kept.id}", f"ocr/{gone.id}"])
        store.delete_file(gone.id, "me")
        assert s3.keys(bucket) == [f"ocr/{kept.id}"]
        assert store.sweep(now=time.time() + 10) == (1, 0)  # retention
        assert s3.keys(bucket) == []
        assert not (tmp_path / "unused" / "files").exists()  # nothing written locally
    finally:
        store.close()


def test_json_of_a_batch_round_trips(shared: Callable[..., Any]) -> None:
    a = shared("a")
    data = {"id": "batch_x", "status": "in_progress", "created_at": 5, "metadata": {"k": "v"},
            "endpoint": "/ocr"}
    a.add_batch("me", data, [])
    got = a.get_batch("batch_x", "me")
    assert got.data == data and json.dumps(got.data)


def test_a_database_that_goes_away_is_a_503(postgres: PostgresCluster, tmp_path: Path) -> None:
    import psycopg

    from openai_ocr.errors import Unavailable
    from openai_ocr.storage.postgres import PostgresStore

    url = postgres.new_database()
    store = PostgresStore(StorageSettings(dir=str(tmp_path)), url).open()
    try:
        stored = store.add_file("me", "user", "f", b"x")
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")
        with pytest.raises(Unavailable) as failed:
            store.get_file(stored.id, "me")
        assert failed.value.status_code == 503 and failed.value.headers == {"Retry-After": "1"}
    finally:
        store.close()
