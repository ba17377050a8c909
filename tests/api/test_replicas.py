"""Three gateway replicas (real `openai-ocr serve --upstream-url` processes) on one PostgreSQL
database and one S3 bucket (moto's server), in front of the tests' fake upstream: any replica
serves any request, and every replica works on every batch.

- Files: uploaded through A; retrieved, listed, downloaded and deleted through B and C;
  another key gets 404 everywhere; the quota holds across replicas.
- Batches: a 300-line batch created on A is run by all three; C is SIGKILLed mid-batch, its
  leased lines are taken over once their leases run out; every `custom_id` appears exactly
  once in the output; a cancel through one replica is seen by all.
- Workers: the two workers of one `serve --workers 2` share a batch the same way.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.fake_upstream import FakeUpstream
from tests.helpers import chat_line, jsonl, output_lines, wait_until, wait_until_done
from tests.shared_state import PostgresCluster, S3Server, ServerProcess, replica

LINES = 300
KEYS = "k1,k2"
QUOTA = 4_000_000
LEASE_S = 2.0


@pytest.fixture(scope="module")
def cluster(fake_upstream: tuple[FakeUpstream, str], postgres: PostgresCluster, s3: S3Server,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[ServerProcess], str, str]]:
    """Three replicas on a new database and bucket, for the tests of this module in order (the
    last one kills C); yields (replicas, database URL, bucket)."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    database, bucket = postgres.new_database(), s3.new_bucket()
    env = {**s3.env, "OPENAI_OCR_API_KEYS": KEYS, "OPENAI_OCR_STORAGE__QUOTA_BYTES": str(QUOTA),
           "OPENAI_OCR_STORAGE__LEASE_S": str(LEASE_S), "OPENAI_OCR_LIMITS__MAX_IN_FLIGHT": "4"}
    replicas = [replica(fake_upstream[1], database, f"s3://{bucket}/state", tmp_path / name, env)
                for name in "abc"]
    for server in replicas:
        server.start()
    try:
        for server in replicas:
            server.wait_ready()
        yield replicas, database, bucket
    finally:
        for server in replicas:
            server.stop()
    for server in replicas:  # nothing went through a replica's own folder
        assert [p.name for p in server.log_path.parent.iterdir()] == ["server.log"]


def client(server: ServerProcess, key: str = "k1") -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=2)


def test_any_replica_serves_any_file_and_the_quota_is_one(
        cluster: tuple[list[ServerProcess], str, str], s3: S3Server) -> None:
    (a, b, c), _, bucket = cluster
    body = jsonl([chat_line("x", "hello")])
    up = client(a).files.create(file=("in.jsonl", io.BytesIO(body)), purpose="batch")
    assert client(b).files.retrieve(up.id).bytes == len(body)
    assert [f.id for f in client(c).files.list()] == [up.id]
    assert client(c).files.content(up.id).content == body
    assert s3.keys(bucket) == [f"state/{up.id}"]
    for server in (a, b, c):  # another key's file does not exist for k2
        with pytest.raises(openai.NotFoundError):
            client(server, "k2").files.retrieve(up.id)
        assert list(client(server, "k2").files.list()) == []
    # the quota counts what every replica stored
    big = b"{}\n" * (QUOTA // 3 // 3)
    client(b).files.create(file=("1.jsonl", io.BytesIO(big)), purpose="batch")
    client(c).files.create(file=("2.jsonl", io.BytesIO(big)), purpose="batch")
    with pytest.raises(openai.APIStatusError) as refused:
        client(a, "k2").files.create(file=("3.jsonl", io.BytesIO(big)), purpose="batch")
    assert refused.value.status_code == 507
    for listed in client(a).files.list():  # room again for the batches of the next tests
        if listed.id != up.id:
            client(b).files.delete(listed.id)
    client(a, "k2").files.create(file=("3.jsonl", io.BytesIO(big)), purpose="batch")
    assert client(c).files.delete(up.id).deleted
    for server in (a, b):
        with pytest.raises(openai.NotFoundError):
            client(server).files.retrieve(up.id)
    assert f"state/{up.id}" not in s3.keys(bucket)


def marker(request: dict) -> int:
    return int(request["messages"][0]["content"][-1]["text"][1:])


def test_a_cancel_through_one_replica_stops_them_all(
        cluster: tuple[list[ServerProcess], str, str], upstream: FakeUpstream) -> None:
    (a, b, c), database, _ = cluster
    release = threading.Event()
    upstream.answer_order = lambda body: release.is_set() or marker(body) < 20
    lines = [chat_line(f"r{i}", f"n{i}") for i in range(100)]
    up = client(a).files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client(a).batches.create(input_file_id=up.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
    wait_until(lambda: len(workers_holding(database, batch.id)) == 3, 60, "every replica holding lines")
    client(c).batches.cancel(batch.id)
    release.set()
    done = wait_until_done(client(b), batch.id, timeout_s=60)
    assert done.status == "cancelled"
    out = output_lines(client(a), done.output_file_id)
    assert len(out) == done.request_counts.completed < 100  # the counts and the output agree
    sent = len(upstream.requests)
    for server in (a, b, c):  # the batch is over for every replica: no line starts any more
        assert client(server).batches.retrieve(batch.id).status == "cancelled"
    assert len(upstream.requests) == sent


def test_a_batch_shared_by_replicas_expires_once(
        cluster: tuple[list[ServerProcess], str, str], upstream: FakeUpstream) -> None:
    """The window closes while the replicas run its lines: the batch ends `expired`, each
    custom_id either answered or listed `batch_expired` (never both, never twice), and its
    counts agree with its output whichever replica is asked."""
    (a, b, c), _, _ = cluster
    upstream.delay_s = 0.2
    lines = [chat_line(f"r{i}", f"n{i}") for i in range(200)]
    up = client(a).files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client(b).batches.create(input_file_id=up.id, endpoint="/v1/chat/completions",
                                     completion_window="0.05m")  # 3 s: well under 200 x 0.2 s / 6 slots
    done = wait_until_done(client(c), batch.id, timeout_s=60)
    assert done.status == "expired" and done.expired_at
    ran = [line["custom_id"] for line in output_lines(client(a), done.output_file_id)]
    expired = output_lines(client(b), done.error_file_id)
    assert {e["error"]["code"] for e in expired} == {"batch_expired"}
    assert 0 < len(ran) == len(set(ran)) == done.request_counts.completed < 200
    assert sorted(ran + [e["custom_id"] for e in expired]) == sorted(f"r{i}" for i in range(200))
    for server in (a, b, c):
        assert client(server).batches.retrieve(batch.id).status == "expired"


def test_replicas_share_a_batch_and_a_killed_one_loses_nothing(
        cluster: tuple[list[ServerProcess], str, str], upstream: FakeUpstream) -> None:
    """Lines n0-n59 are answered at once; the others wait until C is killed, so C dies holding
    leased lines; A and B take them over after their leases run out."""
    (a, b, c), database, _ = cluster
    killed = threading.Event()
    upstream.answer_order = lambda body: killed.is_set() or marker(body) < 60
    lines = [chat_line(f"r{i}", f"n{i}") for i in range(LINES)]
    up = client(a).files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client(a).batches.create(input_file_id=up.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
    wait_until(lambda: client(b).batches.retrieve(batch.id).request_counts.completed >= 60, 60,
               "the first 60 lines answered")
    wait_until(lambda: len(workers_holding(database, batch.id)) == 3, 30, "every replica holding lines")
    assert c.proc is not None
    c.kill()  # SIGKILL: its leases stay until they run out
    orphaned = lines_held_by(database, batch.id, c.proc.pid)
    assert orphaned
    killed.set()
    done = wait_until_done(client(b), batch.id, timeout_s=120)
    assert done.status == "completed", a.log()[-3000:]
    assert (done.request_counts.total, done.request_counts.completed) == (LINES, LINES)
    ids = [line["custom_id"] for line in output_lines(client(a), done.output_file_id)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(LINES))  # each exactly once
    answered = answered_by(database, batch.id)
    assert len(answered) >= 2 and sum(answered.values()) == LINES, answered  # spread over replicas
    taken_over = answered_by(database, batch.id, orphaned)
    assert str(c.proc.pid) not in taken_over and sum(taken_over.values()) == len(orphaned), taken_over


def test_the_workers_of_one_server_share_its_batches_on_postgresql(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, postgres: PostgresCluster,
        tmp_path: Path) -> None:
    """`serve --workers 2` on PostgreSQL and a blob folder: each worker is one more replica of
    the store, so both hold lines of one batch at once, and each line is answered once."""
    database = postgres.new_database()
    both_holding = threading.Event()
    upstream.answer_order = lambda body: both_holding.is_set()
    env = {"OPENAI_OCR_API_KEYS": "k1", "OPENAI_OCR_LIMITS__MAX_IN_FLIGHT": "4"}
    with replica(fake_upstream[1], database, str(tmp_path / "blobs"), tmp_path / "server", env,
                 "--workers", "2") as server:
        lines = [chat_line(f"w{i}", f"n{i}") for i in range(40)]
        up = client(server).files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = client(server).batches.create(input_file_id=up.id, endpoint="/v1/chat/completions",
                                              completion_window="24h")
        wait_until(lambda: len(workers_holding(database, batch.id)) == 2, 30, "both workers holding lines")
        both_holding.set()
        done = wait_until_done(client(server), batch.id, timeout_s=120)
        assert (done.status, done.request_counts.completed) == ("completed", 40), server.log()[-3000:]
        ids = [line["custom_id"] for line in output_lines(client(server), done.output_file_id)]
        assert sorted(ids) == sorted(f"w{i}" for i in range(40))
        answered = answered_by(database, batch.id)
        assert len(answered) == 2 and sum(answered.values()) == 40, answered


def workers_holding(database: str, batch_id: str) -> set[str]:
    """The replicas (pid) holding leases on unfinished lines of the batch."""
    import psycopg

    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT DISTINCT leased_by FROM lines WHERE batch_id = %s AND "
                            "status_code IS NULL AND lease_until > now()", (batch_id,)).fetchall()
    return {str(row[0]).split(" ")[1] for row in rows if row[0]}


def lines_held_by(database: str, batch_id: str, pid: int) -> list[int]:
    """The unfinished lines of the batch a replica (pid) holds leases on."""
    import psycopg

    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT idx, leased_by FROM lines WHERE batch_id = %s AND status_code IS NULL "
                            "AND leased_by IS NOT NULL", (batch_id,)).fetchall()
    return [int(row[0]) for row in rows if str(row[1]).split(" ")[1] == str(pid)]


def answered_by(database: str, batch_id: str, only: list[int] | None = None) -> dict[str, int]:
    """How many of the batch's lines (or of `only` these) each replica (pid) answered."""
    import psycopg

    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT answered_by, COUNT(*) FROM lines WHERE batch_id = %s AND "
                            "status_code IS NOT NULL AND (%s::int[] IS NULL OR idx = ANY(%s::int[])) "
                            "GROUP BY answered_by", (batch_id, only, only)).fetchall()
    return {str(row[0]).split(" ")[1]: int(row[1]) for row in rows}
