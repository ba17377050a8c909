"""The lite engine's line reader: a pool of page workers.

Lines are found by the PP-OCRv6 detector shipped in rapidocr's wheel, which copes with
scans, uneven light and tilt. Each line is then read by Tesseract 5's LSTM (fast on
print: about a quarter of the PP-OCR recogniser's cost), and a line Tesseract cannot read
or reads with low confidence is read again by the PP-OCRv6 recogniser (`worker`). What
runs here is planned by `reader_plan`.
"""

from __future__ import annotations

import os
import queue

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.engines.lite import layout
from openai_ocr.engines.lite.reader_plan import LAYOUT_MODEL, ReaderPlan
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.settings import LiteSettings


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LineReader:
    """A pool of workers, one per thread, returning recognised `TextLine`s."""

    def __init__(self, config: LiteSettings, plan: ReaderPlan, workers: int,
                 metrics: Metrics | None = None) -> None:
        self.plan = plan
        self.metrics = metrics or default_metrics()
        self.threads = config.threads_per_worker or max(1, _cpu_count() // workers)
        try:
            from openai_ocr.engines.lite.worker import PageWorker
        except ImportError as exc:
            raise RuntimeError(f"the lite engine needs the lite extra ({exc}); "
                               f"install it with: pip install 'openai-ocr[lite]'") from exc

        self._workers = [PageWorker(config, self.plan, self.threads, self.metrics) for _ in range(workers)]
        self._idle: queue.SimpleQueue[PageWorker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)

    def describe(self) -> str:
        reader = ("Tesseract 5 LSTM, PP-OCRv6 re-reads unsure lines"
                  if self.plan.recognizer == "tesseract" else "PP-OCRv6 recogniser")
        regions = "layout model " + LAYOUT_MODEL if self.plan.layout == "model" else "layout rules only"
        return (f"PP-OCRv6 detector on {self.plan.runtime}, lines read by {reader} ({self.plan.reason}); "
                f"regions: {regions}")

    def warm_up(self) -> None:
        """Run every worker once, both readers: models load lazily, so a bad file fails here."""
        sample = Image.new("RGB", (320, 64), "white")
        ImageDraw.Draw(sample).text((8, 12), "Lite 123", fill="black",
                                    font=ImageFont.load_default(size=32))
        for worker in self._workers:  # before any request: no other thread uses them yet
            worker.read_page(sample)
            worker.ocr(np.asarray(sample)[:, :, ::-1].copy(), use_det=False, use_cls=False, use_rec=True)

    def read(self, image: Image.Image) -> list[layout.TextLine]:
        """Recognised lines with axis-aligned pixel boxes, in the detector's order."""
        worker = self._idle.get()
        try:
            return worker.read(image)
        finally:
            self._idle.put(worker)

    def read_page(self, image: Image.Image) -> tuple[list[layout.TextLine], list[layout.Region]]:
        """Recognised lines and the layout model's labelled regions (empty without the model)."""
        worker = self._idle.get()
        try:
            return worker.read_page(image)
        finally:
            self._idle.put(worker)
