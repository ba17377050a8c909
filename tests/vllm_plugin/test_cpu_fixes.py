"""The CPU build's import fix, as the installed `.pth` hook applies it in every process."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import require

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")


def test_torchvision_and_vllm_config_import_in_a_fresh_process() -> None:
    """Without the fix, vLLM's CPU build fails here: 'operator torchvision::nms does not exist'."""
    code = ("import torchvision.transforms, vllm.config\n"
            "from openai_ocr.vllm_plugin import cpu_fixes\n"
            "print(cpu_fixes.applied(), ','.join(cpu_fixes.hidden_packages()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    applied, hidden = done.stdout.strip().splitlines()[-1].split(" ")
    if applied == "True":  # the CPU build beside CUDA wheels: the optional siblings are hidden
        assert set(filter(None, hidden.split(","))) <= {"torchaudio", "torchcodec"}


def test_the_fix_can_be_switched_off() -> None:
    """OPENAI_OCR_NO_CPU_FIXES=1 leaves the process untouched (and the import fails on CPU)."""
    code = "from openai_ocr.vllm_plugin import cpu_fixes; import torchvision; print(cpu_fixes.applied())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OPENAI_OCR_NO_CPU_FIXES": "1"})
    if done.returncode == 0:  # a GPU install: torchvision loads on its own
        assert done.stdout.strip().endswith("False")
    else:
        assert "torchvision::nms" in done.stderr
