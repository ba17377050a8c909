"""`openai-ocr ocr` and `openai-ocr batch` with `--output pdf|hocr|alto` as real processes:
NAME.ocr.pdf, NAME.hocr and NAME.alto.xml, read back with poppler, the hOCR checker and the
ALTO schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.archival import alto_errors, alto_words, hocr_report, hocr_words, pdf_info, pdf_text
from tests.fake_upstream import FakeUpstream
from tests.helpers import png_bytes, require, sample_pdf

require("pikepdf", "the pdf extra")

ROOT = Path(__file__).resolve().parents[2]
REPLY = ("<|ref|>title<|/ref|><|det|>[[100, 50, 600, 120]]<|/det|>\n# Harvest\n\n"
         "<|ref|>text<|/ref|><|det|>[[100, 200, 900, 300]]<|/det|>\nPlums and pears.")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openai_ocr.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def inputs(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scan.png").write_bytes(png_bytes(800, 600))
    (folder / "report.pdf").write_bytes(sample_pdf())
    return folder / "scan.png", folder / "report.pdf"


def test_ocr_writes_each_archival_file(tmp_path: Path, gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = REPLY
    scan, report = inputs(tmp_path / "in")
    out = tmp_path / "out"
    for output in ("pdf", "hocr", "alto"):
        done = cli("ocr", str(scan), str(report), "--pages", "2-3", "--output", output, "--server", gateway,
                   "--out-dir", str(out))
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.alto.xml", "report.hocr", "report.ocr.pdf",
                                                     "scan.alto.xml", "scan.hocr", "scan.ocr.pdf"]
    pdf = (out / "report.ocr.pdf").read_bytes()
    assert pdf_info(pdf)["Pages"] == "2" and "Sample document, page 2 of 17" in pdf_text(pdf)
    assert pdf_text(pdf).count("Plums and pears.") == 2
    assert "Harvest" in pdf_text((out / "scan.ocr.pdf").read_bytes())
    hocr = (out / "report.hocr").read_text()
    assert hocr_report(hocr).is_valid()
    assert [w.text for w in hocr_words(hocr)][:4] == ["Harvest", "Plums", "and", "pears."]
    alto = (out / "scan.alto.xml").read_text()
    assert alto_errors(alto) == [] and [w.text for w in alto_words(alto)] == ["Harvest", "Plums", "and", "pears."]
    assert not list(out.glob("*.part"))


def test_ocr_without_a_server_writes_the_file_itself(tmp_path: Path, fake_upstream: tuple[FakeUpstream, str],
                                                     upstream: FakeUpstream) -> None:
    upstream.default_reply = REPLY
    config = tmp_path / "c.toml"
    config.write_text(f'[upstream]\nurl = "{fake_upstream[1]}"\nmax_retries = 0\n')
    scan, _ = inputs(tmp_path)
    done = cli("ocr", str(scan), "--output", "alto", "--config", str(config))
    assert done.returncode == 0, done.stderr
    alto = (tmp_path / "scan.alto.xml").read_text()
    assert alto_errors(alto) == [] and [w.text for w in alto_words(alto)] == ["Harvest", "Plums", "and", "pears."]


def test_ocr_reports_a_refused_file_and_writes_nothing(tmp_path: Path, gateway: str) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    done = cli("ocr", str(bad), "--output", "pdf", "--server", gateway)
    assert done.returncode == 1 and "bad.png: 400" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_batch_downloads_each_file_and_leaves_none_on_the_server(tmp_path: Path, batch_gateway: str,
                                                                 upstream: FakeUpstream) -> None:
    upstream.default_reply = REPLY
    folder = tmp_path / "corpus"
    inputs(folder)
    out = tmp_path / "out"
    done = cli("batch", str(folder), "--output", "pdf", "--pages", "1", "--server", batch_gateway,
               "--out-dir", str(out), "--poll-interval", "0.1")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["report.ocr.pdf", "scan.ocr.pdf"]
    report = (out / "report.ocr.pdf").read_bytes()
    assert pdf_info(report)["Pages"] == "1" and "Plums and pears." in pdf_text(report)
    left = httpx.get(f"{batch_gateway}/v1/files", params={"purpose": "batch_output"}).json()["data"]
    assert not [f for f in left if f["filename"].endswith(".ocr.pdf")]  # downloaded, then deleted there
