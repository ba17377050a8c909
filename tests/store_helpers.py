"""Helpers of the store tests (tests/storage, tests/api): a writer that dies mid-upload, the
bodies on disk, a damaged database page."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

WRITER = """
import os, signal, sys
from openai_ocr.settings import StorageSettings
from openai_ocr.storage.store import Store

store = Store(StorageSettings(dir=sys.argv[1], quota_bytes=int(sys.argv[3]))).open()

def stop_here(fd):
    if sys.argv[4] == "die":  # SIGKILL in the middle of the write: no clean-up code runs
        os.kill(os.getpid(), signal.SIGKILL)
    print("writing", flush=True)  # hold the write open until the test closes stdin
    sys.stdin.read()

os.fsync = stop_here
store.add_file("anonymous", "user", "big.bin", b"x" * int(sys.argv[2]))
"""
"""A process that writes one upload into a store and stops in the middle of it."""


def writer(store_dir: Path, size: int, quota: int, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), str(size), str(quota), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def bodies_on_disk(store_dir: Path) -> int:
    return sum(p.stat().st_size for p in (store_dir / "files").iterdir())


def damaged_page(db_path: Path) -> None:
    """Overwrite the root page of the files table (the WAL checkpointed first)."""
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root, = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'files'").fetchone()
        page, = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(db_path, "r+b") as out:
        out.seek((root - 1) * page)
        out.write(b"\xa5" * page)
