"""uvicorn worker processes of `openai-ocr serve`: settings in, metrics shared, no orphans.

The app uvicorn is given is a `SettingsApp`, which uvicorn pickles into each worker it
starts: the settings, secrets included, reach a worker through the pipe that starts it,
never through a file or the environment (a file would outlive a SIGKILLed server in /tmp, and
another user's `ps e` can read an environment). A worker exits when its supervisor dies, so a
SIGKILLed server leaves no orphan holding its port.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any

from openai_ocr.metrics import MULTIPROC_ENV
from openai_ocr.server import app_from_settings
from openai_ocr.settings import SealedSettings, Settings

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent dies (Linux)."""
WATCH_S = 1.0


class SettingsApp:
    """An ASGI app for resolved settings, built on its first event in the process serving it."""

    def __init__(self, settings: Settings, supervisor_pid: int | None = None) -> None:
        self._settings = SealedSettings(settings)
        #: the uvicorn supervisor a worker must not outlive; None when it serves in-process
        self._supervisor_pid = supervisor_pid
        self._app: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_app": None}  # a worker builds its own

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            if self._supervisor_pid not in (None, os.getpid()):
                exit_with(self._supervisor_pid)
            self._app = app_from_settings(self._settings.open())
        await self._app(scope, receive, send)


def exit_with(supervisor_pid: int) -> None:
    """SIGTERM to this process (uvicorn's graceful stop) as soon as `supervisor_pid` is gone:
    the kernel's parent-death signal on Linux, else a watchdog thread."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != supervisor_pid:  # it died before the signal was armed
                os.kill(os.getpid(), signal.SIGTERM)
            return
    threading.Thread(target=_watch, args=(supervisor_pid,), daemon=True,
                     name="openai-ocr supervisor watch").start()


def _watch(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        threading.Event().wait(WATCH_S)
    logger.warning("the server's supervisor process is gone; this worker stops")
    os.kill(os.getpid(), signal.SIGTERM)


def share_metrics_between_workers() -> None:
    """A fresh multiprocess folder for the workers' metrics (`openai_ocr.metrics`), unless the
    operator named one; removed when the server exits."""
    if os.environ.get(MULTIPROC_ENV):
        return
    folder = tempfile.mkdtemp(prefix="openai-ocr-metrics-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = folder
