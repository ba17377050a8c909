"""Installs `openai_ocr_cpu_fixes.pth` beside the package (metadata lives in pyproject.toml).

The .pth registers an import hook in every Python process of the environment, vLLM's
spawned engine processes included, so the CPU build's torchvision fix is in place before
transformers imports torchvision (see openai_ocr/cpu_fixes.py). Plain `data_files` cannot
put a file at the site-packages root, and a build_py hook alone misses editable installs.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = Path(__file__).resolve().parent / "openai_ocr_cpu_fixes.pth"


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(str(PTH), str(Path(self.build_lib) / PTH.name), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs.append(str(Path(self.build_lib) / PTH.name))
        return outputs


class EditableWheelWithPth(editable_wheel):
    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):  # type: ignore[no-untyped-def]
        result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        self.copy_file(str(PTH), str(Path(unpacked_wheel) / PTH.name), preserve_mode=False)
        return result


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
