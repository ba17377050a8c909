"""The command-line client as the README shows it, on a first run (issue 12, items 1 and 6)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, png_bytes

ROOT = Path(__file__).resolve().parents[2]


def ocr(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openai_ocr.cli.main", "ocr", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def test_the_readme_command_with_pages_reads_single_images_whole(tmp_path: Path, gateway: str,
                                                                 upstream: FakeUpstream) -> None:
    (tmp_path / "report.pdf").write_bytes(blank_pdf(5))
    (tmp_path / "scan.png").write_bytes(png_bytes())
    done = ocr(str(tmp_path / "report.pdf"), str(tmp_path / "scan.png"), "--pages", "1-3",
               "--output", "md", "--server", gateway)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.md").exists() and (tmp_path / "scan.md").exists()
    assert len(upstream.requests) == 3 + 1


def test_pages_help_says_single_images_are_read_whole() -> None:
    done = subprocess.run([sys.executable, "-m", "openai_ocr.cli.main", "ocr", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "single images are always read whole" in " ".join(done.stdout.split())
    assert "--ref" in done.stdout


def test_locate_mode_takes_ref(tmp_path: Path, gateway: str, upstream: FakeUpstream) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(png_bytes())
    done = ocr(str(page), "--mode", "locate", "--ref", "Total due", "--server", gateway)
    assert done.returncode == 0, done.stderr
    prompt = upstream.requests[0]["messages"][0]["content"][1]["text"]
    assert prompt == "Locate <|ref|>Total due<|/ref|> in the image."
    missing = ocr(str(page), "--mode", "locate", "--server", gateway)
    assert missing.returncode == 2 and "--ref" in missing.stderr


def test_out_dir_is_created(tmp_path: Path, gateway: str, upstream: FakeUpstream) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(png_bytes())
    out = tmp_path / "results" / "today"
    done = ocr(str(page), "--out-dir", str(out), "--server", gateway)
    assert done.returncode == 0, done.stderr
    assert (out / "page.md").read_text()


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path: Path, gateway: str,
                                                     upstream: FakeUpstream) -> None:
    (tmp_path / "doc.pdf").write_bytes(blank_pdf(2))
    done = ocr(str(tmp_path / "doc.pdf"), "--server", gateway)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert done.stderr.splitlines() == ["doc.pdf: page 1 done (1/2)", "doc.pdf: page 2 done (2/2)"]


def test_the_page_bar_has_a_total_on_a_terminal(tmp_path: Path, gateway: str,
                                                upstream: FakeUpstream) -> None:
    (tmp_path / "doc.pdf").write_bytes(blank_pdf(3))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real size
    try:
        proc = subprocess.Popen([sys.executable, "-m", "openai_ocr.cli.main", "ocr",
                                 str(tmp_path / "doc.pdf"), "--server", gateway], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(leader)
    text = output.decode(errors="replace")
    assert "0/3" in text and "1/3" in text, text  # the last refresh is throttled and cleared
