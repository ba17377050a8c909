"""The README's archival examples are lines of examples/curl_examples.sh, and running that
script (by its `# Run:` line) leaves the files they name, readable by independent tools."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.archival import alto_errors, alto_words, hocr_report, pdf_text
from tests.fake_upstream import FakeUpstream
from tests.helpers import ROOT, RUN_LINE, png_bytes, require, require_program, sample_pdf

require("pikepdf", "the pdf extra")

REPLY = "<|ref|>text<|/ref|><|det|>[[100, 100, 900, 200]]<|/det|>\nOrchard ledger"


def archival_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Archival files")
    return text[start:text.index("\n### ", start + 1)]


def test_the_readme_shows_lines_of_the_tested_script() -> None:
    script = (ROOT / "examples" / "curl_examples.sh").read_text()
    shown = re.findall(r"`(curl [^`]+)`", archival_section())
    assert len(shown) == 3 and {"output=pdf", "output=hocr", "output=alto"} == {
        m for line in shown for m in re.findall(r"output=\w+", line)}
    for line in shown:
        assert line in script, line


def test_the_curl_examples_leave_readable_files(tmp_path: Path, gateway: str, upstream: FakeUpstream) -> None:
    require_program("curl")
    upstream.default_reply = REPLY
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "page.png").write_bytes(png_bytes(600, 400))
    (tmp_path / "document.pdf").write_bytes(sample_pdf())
    line = RUN_LINE.search((ROOT / "examples" / "curl_examples.sh").read_text()).group(1)  # type: ignore[union-attr]
    line = re.sub(r"\[(\S+)\]", r"\1", line.replace("http://localhost:8000", gateway))
    done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert pdf_text((tmp_path / "page.ocr.pdf").read_bytes()).split() == ["Orchard", "ledger"]
    assert hocr_report((tmp_path / "page.hocr").read_text()).is_valid()
    alto = (tmp_path / "document.alto.xml").read_text()
    assert alto_errors(alto) == [] and alto.count("<Page ") == 2
    assert [w.text for w in alto_words(alto)] == ["Orchard", "ledger"] * 2
