"""`openai-ocr ocr FILE...` as a real process, against the gateway and against the upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, gateway_settings, png_bytes, sample_pdf, serve

KEY = "sk-ocr-cli-81d4"

ROOT = Path(__file__).resolve().parents[2]
REPLY = ("<|ref|>title<|/ref|><|det|>[[0, 0, 999, 99]]<|/det|>\n# Heading\n\n"
         "<|ref|>text<|/ref|><|det|>[[0, 100, 999, 199]]<|/det|>\nSome text.")


def ocr(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openai_ocr.cli.main", "ocr", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_pdf_to_markdown_and_json_through_the_server(tmp_path: Path, gateway: str,
                                                     upstream: FakeUpstream) -> None:
    upstream.default_reply = REPLY
    pdf = tmp_path / "spec.pdf"
    pdf.write_bytes(sample_pdf())
    done = ocr(str(pdf), "--server", gateway, "--pages", "2-4")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "spec.md").read_text() == "\n\n<--- Page Split --->\n\n".join(
        ["# Heading\n\nSome text."] * 3) + "\n"
    assert len(upstream.requests) == 3
    done = ocr(str(pdf), "--server", gateway, "--pages", "5", "--output", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads((tmp_path / "spec.json").read_text())
    (page,) = body["pages"]
    assert (page["index"], page["width"], page["height"]) == (5, 1300, 1600)  # 650 x 800 pt at 144 dpi
    assert page["blocks"][1]["boxes_px"] == [[0.0, 100 / 999 * 1600, 1300.0, 199 / 999 * 1600]]
    assert body["usage"]["prompt_tokens"] == 278


def test_without_server_uses_the_config_upstream(tmp_path: Path, fake_upstream: tuple[FakeUpstream, str],
                                                 upstream: FakeUpstream) -> None:
    _, url = fake_upstream
    upstream.default_reply = REPLY
    config = tmp_path / "c.toml"
    config.write_text(f'[upstream]\nurl = "{url}"\nmax_retries = 0\n')
    image = tmp_path / "page.png"
    image.write_bytes(png_bytes())
    done = ocr(str(image), "--config", str(config), "--mode", "free_ocr")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "page.md").read_text() == "# Heading\n\nSome text.\n"
    assert upstream.requests[0]["messages"][0]["content"][1]["text"] == "Free OCR."


def test_failures_exit_non_zero_with_a_clear_message(tmp_path: Path, gateway: str,
                                                     upstream: FakeUpstream) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes())
    done = ocr(str(bad), str(good), "--server", gateway)
    assert done.returncode == 1
    assert "bad.png: 400" in done.stderr and "1 of 2 file(s) failed" in done.stderr
    assert (tmp_path / "good.md").exists() and not (tmp_path / "bad.md").exists()
    done = ocr(str(good), "--server", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "cannot connect" in done.stderr
    done = ocr(str(tmp_path / "absent.pdf"), "--server", gateway)
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.fixture()
def keyed_gateway(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> Iterator[str]:
    with serve(gateway_settings(fake_upstream[1], auth={"api_keys": [KEY]})) as (url, _):
        yield url


def environment(ocr_key: str | None, openai_key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_OCR_API_KEY", "OPENAI_API_KEY")}
    env.update({name: value for name, value in (("OPENAI_OCR_API_KEY", ocr_key),
                                                ("OPENAI_API_KEY", openai_key)) if value is not None})
    return env


@pytest.mark.parametrize(("flag", "ocr_env", "openai_env"), [
    (None, None, KEY),  # $OPENAI_API_KEY, as the OpenAI SDK reads it
    (None, KEY, "sk-wrong"),  # $OPENAI_OCR_API_KEY before $OPENAI_API_KEY
    (KEY, "sk-wrong", "sk-wrong"),  # --api-key before both
], ids=["OPENAI_API_KEY", "OPENAI_OCR_API_KEY-first", "flag-first"])
def test_ocr_takes_the_key_from_the_flag_then_the_environment(
        keyed_gateway: str, tmp_path: Path, upstream: FakeUpstream,
        flag: str | None, ocr_env: str | None, openai_env: str | None) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(png_bytes())
    key_flag = ["--api-key", flag] if flag else []
    done = ocr(str(page), "--server", keyed_gateway, *key_flag, env=environment(ocr_env, openai_env))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "page.md").read_text() == "Hello\nworld\n"
    assert len(upstream.requests) == 1


def test_ocr_without_a_key_says_so_once_and_how_to_give_one(keyed_gateway: str, tmp_path: Path,
                                                            upstream: FakeUpstream) -> None:
    pages = [tmp_path / "a.png", tmp_path / "b.png"]
    for page in pages:
        page.write_bytes(png_bytes())
    done = ocr(*map(str, pages), "--server", keyed_gateway, env=environment(None, None))
    assert done.returncode == 1
    # the server answers 401 from the headers and closes without reading the upload: the
    # client must still say 401 (not a connection error), once, with the way to give a key
    assert "a.png: 401" in done.stderr and "OPENAI_OCR_API_KEY" in done.stderr, done.stderr
    assert "b.png" not in done.stderr and "2 of 2 file(s) failed" in done.stderr
    assert upstream.requests == [] and not list(tmp_path.glob("*.md"))
