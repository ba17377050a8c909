"""`openai-ocr serve` as a real process, in front of the fake upstream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openai_ocr.cli.serve import choose_engine
from openai_ocr.settings import load_settings
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, free_port, png_bytes, wait_for_process_server, wait_until

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "openai_ocr.cli.main", *args]


@pytest.fixture()
def served_gateway(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
                   tmp_path: Path) -> Iterator[tuple[str, FakeUpstream]]:
    _, upstream_url = fake_upstream
    port = free_port()
    log_path = tmp_path / "serve.log"  # a file, not a pipe: nobody reads while the test runs
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cli("serve", "--upstream-url", upstream_url, "--host", "127.0.0.1", "--port", str(port),
                "--workers", "2", "--model", "deepseek-ai/DeepSeek-OCR"),
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # two worker processes on a busy machine
        wait_for_process_server(url, proc, timeout_s=120, output=log_path.read_text)
        yield url, upstream
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def test_serve_gateway_answers_ocr(served_gateway: tuple[str, FakeUpstream]) -> None:
    url, fake = served_gateway
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "mode": "free_ocr"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Hello\nworld"
    assert fake.requests[-1]["messages"][0]["content"][1]["text"] == "Free OCR."
    assert httpx.get(f"{url}/health").json()["engine"] == "upstream"


def test_unknown_flag_in_gateway_mode_is_rejected() -> None:
    proc = subprocess.run(cli("serve", "--upstream-url", "http://127.0.0.1:9/v1", "--bogus-flag"),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--bogus-flag" in proc.stderr


def test_invalid_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    proc = subprocess.run(cli("serve", "--config", str(bad)), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 2 and "port" in proc.stderr


def test_engine_choice() -> None:
    assert choose_engine(load_settings(overrides={"upstream": {"url": "http://h:1/v1"}}), False).kind == "upstream"
    assert choose_engine(load_settings(overrides={"engine": {"kind": "lite"}}), False).kind == "lite"
    assert choose_engine(load_settings(), model_given=True).kind == "vllm"


def test_api_key_flags_reach_the_settings() -> None:
    from openai_ocr.cli.main import build_parser
    from openai_ocr.cli.serve import overrides_from_args

    args, _ = build_parser().parse_known_args(["serve", "--api-key", "a", "--api-key", "b"])
    settings = load_settings(overrides=overrides_from_args(args))
    assert [k.get_secret_value() for k in settings.auth.api_keys] == ["a", "b"]


def test_serve_flags_map_onto_their_settings() -> None:
    from openai_ocr.cli.main import build_parser
    from openai_ocr.cli.serve import overrides_from_args

    argv = ["serve", "some/model", "--host", "127.0.0.2", "--port", "9001", "--workers", "3",
            "--cors-origin", "http://a", "--cors-origin", "http://b", "--log-level", "debug",
            "--engine", "upstream", "--model", "served-name", "--upstream-url", "http://u:1/v1",
            "--upstream-api-key", "up-key", "--api-key", "k1", "--tensor-parallel-size", "2"]
    args, passthrough = build_parser().parse_known_args(argv)
    assert args.model == "some/model"  # the positional MODEL, not --model NAME
    assert passthrough == ["--tensor-parallel-size", "2"]  # left for vLLM
    assert overrides_from_args(args) == {
        "server": {"host": "127.0.0.2", "port": 9001, "workers": 3, "cors_origins": ["http://a", "http://b"],
                   "log_level": "debug"},
        "engine": {"kind": "upstream", "model": "served-name"},
        "upstream": {"url": "http://u:1/v1", "api_key": "up-key"},
        "auth": {"api_keys": ["k1"]},
    }
    bare, _ = build_parser().parse_known_args(["serve"])
    assert overrides_from_args(bare) == {}


def test_serve_flags_are_not_abbreviated_and_choices_are_checked() -> None:
    from openai_ocr.cli.main import build_parser
    from openai_ocr.cli.serve import overrides_from_args

    args, passthrough = build_parser().parse_known_args(["serve", "--upstream=http://u:1/v1"])
    assert passthrough == ["--upstream=http://u:1/v1"]  # left for vLLM, not taken as --upstream-url
    assert overrides_from_args(args) == {}
    with pytest.raises(SystemExit):
        build_parser().parse_known_args(["serve", "--engine", "gpu"])


def test_sigterm_lets_in_flight_requests_finish(fake_upstream: tuple[FakeUpstream, str],
                                                upstream: FakeUpstream) -> None:
    """SIGTERM while a request waits on the upstream: the server stops accepting connections,
    and the request still gets its answer once the upstream releases it."""
    _, upstream_url = fake_upstream
    upstream.hold.clear()
    port = free_port()
    proc = subprocess.Popen(cli("serve", "--upstream-url", upstream_url, "--host", "127.0.0.1",
                                "--port", str(port)), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, proc, path="/live")
        answers: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30)))
        worker.start()
        wait_until(lambda: len(upstream.requests) == 1, 30, "the request reaching the upstream")
        proc.send_signal(signal.SIGTERM)

        def refusing() -> bool:
            try:
                httpx.get(f"{url}/live", timeout=1)
            except httpx.TransportError:
                return True
            return False

        wait_until(refusing, 30, "the server to stop accepting connections after SIGTERM")
        assert not answers, "the request ended before the upstream answered"
        upstream.hold.set()
        worker.join(timeout=30)
        assert answers and answers[0].status_code == 200, answers
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    finally:
        if proc.poll() is None:
            proc.kill()
