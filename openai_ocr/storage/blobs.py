"""Where file bodies live: a local directory (the default) or an S3-compatible object store.

`[storage] blob_url` chooses: empty, a directory path or a `file://` URL is a directory;
`s3://bucket/prefix` an object store (endpoint from `[storage] s3_endpoint_url`, else the
standard AWS environment: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, credentials and region
as boto3 finds them). The metadata store reserves a body's room before it is written and
makes its row ready after: a blob store only writes, reads and deletes bodies.

Both stream: a body from a file is copied by chunks (S3: a multipart upload), a range read
fetches that range only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from openai_ocr.errors import InsufficientStorage
from openai_ocr.storage.urls import local_blob_dir

COPY_CHUNK = 1024 * 1024
"""Bytes copied at a time when a body comes from a file."""
MAX_SPAN = 16 * 1024 * 1024
"""Ranges of one object within this span are fetched with one ranged GET (S3)."""


class BlobStore(Protocol):
    """File bodies by key (a file id); FileNotFoundError for a key that is not there."""

    #: a description for logs (never credentials)
    where: str

    def open(self) -> None:
        """Check the store can be reached (a folder is created)."""

    def put(self, key: str, data: bytes) -> None: ...

    def put_path(self, key: str, path: str | Path) -> None: ...

    def get(self, key: str) -> bytes: ...

    def reader(self, key: str) -> IO[bytes]:
        """The body as a stream to read by chunks (the caller closes it)."""

    def get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]: ...

    def delete(self, key: str) -> None:
        """Remove a body, and what a write of it left half-done; no error when absent."""

    def partials(self) -> list[str]:
        """Keys with a half-written body lying around (a directory's `.part` files)."""

    def discard_partial(self, key: str) -> None:
        """Remove a half-written body (not the body of the same key, if there is one)."""


def put_body(blobs: BlobStore, key: str, body: bytes | Path) -> None:
    """A body given as bytes, or as the path of a file holding it (copied in by chunks)."""
    if isinstance(body, Path):
        blobs.put_path(key, body)
    else:
        blobs.put(key, body)


def _disk_full(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage(f"the disk of the file store is full ({exc.strerror})") from exc


class LocalBlobs:
    """Bodies as files of one directory: written to `KEY.part`, fsynced, renamed into place."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.where = str(directory)

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / key

    def part(self, key: str) -> Path:
        return self.dir / f"{key}.part"

    def _write(self, key: str, fill: Any) -> None:
        tmp = self.part(key)
        try:
            with open(tmp, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            _disk_full(exc)
            raise
        os.replace(tmp, self.path(key))

    def put(self, key: str, data: bytes) -> None:
        self._write(key, lambda out: out.write(data))

    def put_path(self, key: str, path: str | Path) -> None:
        with open(path, "rb") as src:
            self._write(key, lambda out: shutil.copyfileobj(src, out, COPY_CHUNK))

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def reader(self, key: str) -> IO[bytes]:
        return self.path(key).open("rb")

    def get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        out = []
        with open(self.path(key), "rb") as src:
            for offset, length in ranges:
                src.seek(offset)
                out.append(src.read(length))
        return out

    def delete(self, key: str) -> None:
        self.part(key).unlink(missing_ok=True)
        self.path(key).unlink(missing_ok=True)

    def partials(self) -> list[str]:
        return [p.name[:-len(".part")] for p in self.dir.glob("*.part")]

    def discard_partial(self, key: str) -> None:
        self.part(key).unlink(missing_ok=True)


class S3Blobs:
    """Bodies as objects under `s3://bucket/prefix/`: an upload is atomic (a single PUT, or a
    multipart upload completed at its end), so nothing half-written is ever visible."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.where = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32))

    def open(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)  # fails the start where the bucket is unreachable

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_path(self, key: str, path: str | Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))  # multipart past 8 MB

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from exc
            raise

    def get(self, key: str) -> bytes:
        with self.reader(key) as body:
            return body.read()

    def reader(self, key: str) -> IO[bytes]:
        with self._reading(key):
            body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return body

    def _range(self, key: str, start: int, end: int) -> bytes:
        with self._reading(key):
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                             Range=f"bytes={start}-{end - 1}")
            return bytes(answer["Body"].read())

    def get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Ranges close together in one GET of their span, the others one GET each."""
        wanted = [(offset, length) for offset, length in ranges if length > 0]
        if not wanted:
            return [b"" for _ in ranges]
        start = min(offset for offset, _ in wanted)
        end = max(offset + length for offset, length in wanted)
        if end - start <= MAX_SPAN:
            span = self._range(key, start, end)
            return [span[offset - start:offset - start + length] if length > 0 else b""
                    for offset, length in ranges]
        return [self._range(key, offset, offset + length) if length > 0 else b""
                for offset, length in ranges]

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def partials(self) -> list[str]:
        return []  # an upload is atomic: nothing half-written is ever stored

    def discard_partial(self, key: str) -> None:
        pass


def blob_store(blob_url: str, default_dir: Path, endpoint_url: str = "") -> BlobStore:
    """The blob store `blob_url` names (empty: `default_dir`)."""
    if not blob_url:
        return LocalBlobs(default_dir)
    parsed = urlparse(blob_url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"storage.blob_url {blob_url!r}: name the bucket, s3://BUCKET/PREFIX")
        endpoint = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                    or os.environ.get("AWS_ENDPOINT_URL") or None)
        return S3Blobs(parsed.netloc, parsed.path, endpoint)
    directory = local_blob_dir(blob_url)
    if directory is None:
        raise ValueError(f"storage.blob_url {blob_url!r}: use a directory, file://PATH or "
                         "s3://BUCKET/PREFIX")
    return LocalBlobs(directory)
