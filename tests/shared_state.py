"""The real parts of a shared store, started by the tests: Debian's PostgreSQL (a cluster of
its own in a temporary folder, on a free port, run by an unprivileged user) and moto's S3
server (an S3-compatible endpoint on loopback).

`make test` installs PostgreSQL (the `postgresql` target) and moto (the `dev` extra); where
one is missing the tests that need it skip, and under CI=true fail (`require`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import (
    ROOT,
    ServerProcess,
    free_port,
    make_env,
    require,
    require_file,
    serve_command,
    wait_until,
)


def _newest_pg_bin() -> Path:
    """Debian's newest installed PostgreSQL (`/usr/lib/postgresql/VERSION/bin`), or 15's path."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = Path(os.environ.get("OPENAI_OCR_TEST_PG_BIN") or _newest_pg_bin())
PG_USER = "postgres"
"""The unprivileged user the cluster runs as when the tests run as root (PostgreSQL refuses
root); the Debian package creates it."""


def pg_program(name: str) -> Path:
    """A program of Debian's PostgreSQL (`make test` installs the package)."""
    return require_file(PG_BIN / name, "postgresql")


class PostgresCluster:
    """A throw-away PostgreSQL cluster: `initdb` into a temporary folder, `pg_ctl start` on a
    free loopback port, trust authentication, stopped and removed at `stop`."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = pg_program("initdb"), pg_program("pg_ctl")
        require("psycopg", "the PostgreSQL store's driver (a dependency of the package)")
        self.dir = Path(tempfile.mkdtemp(prefix="openai-ocr-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = PG_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *cmd: str | Path) -> None:
        argv = [str(c) for c in cmd]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120, cwd=self.dir)

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER)
        self._run(self.initdb, "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(self.pg_ctl, "-D", self.data, "-l", self.dir / "server.log", "-o", options, "-w",
                  "-t", "60", "start")
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """The URL of a new, empty database (each test its own)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class S3Server:
    """moto's S3 server on a free loopback port; `new_bucket` makes a bucket per test."""

    def __init__(self) -> None:
        server = require("moto.server", "moto[server], the S3-compatible server of the tests (the dev extra)")
        self.port = free_port()
        self.server: Any = server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"
        #: what a client (and a server process) needs to reach it
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": self.url}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        found = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in found.get("Contents", []))


@contextmanager
def s3_server() -> Iterator[S3Server]:
    s3 = S3Server()
    s3.server.start()
    try:
        wait_until(lambda: _answers(s3.url), 30, "moto's S3 server answering")
        yield s3
    finally:
        s3.server.stop()


def _answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def replica(upstream_url: str, database_url: str, blob_url: str, folder: Path,
            env: dict[str, str] | None = None, *flags: str) -> ServerProcess:
    """`openai-ocr serve --upstream-url` as a process of its own (a gateway replica) on a free
    port, its files and batches on the shared database and blob store; its own local folder
    (which must stay unused: nothing is shared through it). `flags` go to `serve` too."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    environment = {**make_env(), "PYTHONPATH": str(ROOT), "OPENAI_OCR_STORAGE__DIR": str(folder),
                   "OPENAI_OCR_STORAGE__DATABASE_URL": database_url,
                   "OPENAI_OCR_STORAGE__BLOB_URL": blob_url,
                   "OPENAI_OCR_BATCHES__POLL_INTERVAL_S": "0.05", **(env or {})}
    cmd = serve_command("--upstream-url", upstream_url, "--host", "127.0.0.1", "--port", str(port),
                        *flags)
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", folder / "server.log", env=environment)
