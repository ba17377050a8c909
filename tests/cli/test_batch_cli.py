"""`openai-ocr batch`: a folder of documents through a real server's Batch API, resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from openai_ocr.cli.main import main
from openai_ocr.ocr.assembly import PAGE_SPLIT
from openai_ocr.ocr.prompts import MODES
from openai_ocr.ocr.resolution import MODES as RESOLUTIONS
from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, image_size_of, page_of_width, png_bytes, sample_pdf, store_gateway

KEY = "sk-batch-cli-5c2e"


@pytest.fixture()
def server(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
           tmp_path: Path) -> Iterator[str]:
    with store_gateway(fake_upstream[1], tmp_path / "store") as url:
        yield url


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(png_bytes())
    (root / "sub" / "b.pdf").write_bytes(blank_pdf(2))
    (root / "notes.txt").write_text("not a document")
    return root


def batch_cli(*args: str) -> int:
    return main(["batch", *args, "--poll-interval", "0.05"])


def test_a_folder_becomes_one_batch_and_markdown_next_to_each_file(
        server: str, corpus: Path, upstream: FakeUpstream) -> None:
    upstream.reply_fn = lambda body: "page text"
    assert batch_cli(str(corpus), "--server", server) == 0
    assert (corpus / "a.md").read_text() == "page text\n"
    assert (corpus / "sub" / "b.md").read_text().count("page text") == 2
    assert not (corpus / "notes.md").exists()
    assert len(upstream.requests) == 3  # one image, two PDF pages
    sdk = OpenAI(base_url=f"{server}/v1", api_key="none")
    assert len(sdk.batches.list().data) == 1
    assert [f.purpose for f in sdk.files.list()].count("user") == 0  # uploads cleaned up
    assert not list(corpus.glob(".openai-ocr-batch-*"))  # no state left once done

    assert batch_cli(str(corpus), "--server", server) == 0  # everything exists: nothing sent
    assert len(upstream.requests) == 3 and len(sdk.batches.list().data) == 1


def test_a_second_run_collects_the_batch_the_first_submitted(
        server: str, corpus: Path, tmp_path: Path, upstream: FakeUpstream) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert batch_cli(str(corpus), "--server", server, "--output", "json", "--out-dir", str(out),
                     "--dpi", "72", "--no-wait") == 0
    [state] = out.glob(".openai-ocr-batch-*.json")
    recorded = json.loads(state.read_text())["batches"][0]["batch_id"]
    assert not (out / "a.json").exists()
    assert batch_cli(str(corpus), "--server", server, "--output", "json", "--out-dir", str(out)) == 0
    sdk = OpenAI(base_url=f"{server}/v1", api_key="none")
    assert [b.id for b in sdk.batches.list().data] == [recorded]  # resumed, not sent again
    assert len(upstream.requests) == 3
    answer = json.loads((out / "sub" / "b.json").read_text())
    assert answer["file"] == "b.pdf" and answer["page_count"] == 2
    assert [p["index"] for p in answer["pages"]] == [1, 2]
    assert (out / "a.json").is_file()


def test_a_failed_document_makes_the_exit_status_non_zero(server: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not an image")
    (bad / "fine.png").write_bytes(png_bytes())
    assert batch_cli(str(bad), "--server", server) == 1
    assert not (bad / "broken.md").exists()
    assert (bad / "fine.md").read_text() == "Hello\nworld\n"  # the others still ran


@pytest.fixture()
def keyed_server(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
                 tmp_path: Path) -> Iterator[str]:
    with store_gateway(fake_upstream[1], tmp_path / "keyed-store", auth={"api_keys": [KEY]}) as url:
        yield url


@pytest.mark.parametrize(("flag", "ocr_env", "openai_env"), [
    (None, None, KEY),  # $OPENAI_API_KEY, as the OpenAI SDK reads it
    (None, KEY, "sk-wrong"),  # $OPENAI_OCR_API_KEY before $OPENAI_API_KEY
    (KEY, "sk-wrong", "sk-wrong"),  # --api-key before both
], ids=["OPENAI_API_KEY", "OPENAI_OCR_API_KEY-first", "flag-first"])
def test_batch_takes_the_key_from_the_flag_then_the_environment(
        keyed_server: str, tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
        flag: str | None, ocr_env: str | None, openai_env: str | None) -> None:
    for name, value in (("OPENAI_OCR_API_KEY", ocr_env), ("OPENAI_API_KEY", openai_env)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    (tmp_path / "page.png").write_bytes(png_bytes())
    key_flag = ["--api-key", flag] if flag else []
    assert batch_cli(str(tmp_path / "page.png"), "--server", keyed_server, *key_flag) == 0
    assert (tmp_path / "page.md").read_text() == "Hello\nworld\n"
    assert len(OpenAI(base_url=f"{keyed_server}/v1", api_key=KEY).batches.list().data) == 1


def test_batch_without_a_key_stops_at_the_first_401_and_says_how_to_give_one(
        keyed_server: str, tmp_path: Path, upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_OCR_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png_bytes())
    assert batch_cli(str(tmp_path), "--server", keyed_server) == 1
    err = capsys.readouterr().err
    assert "401" in err and "--api-key" in err and "OPENAI_OCR_API_KEY" in err
    assert err.count("401") == 1  # one message for the key, not one per document
    assert upstream.requests == []


def test_batch_mode_resolution_pages_dpi_and_max_tokens_reach_the_server(
        server: str, tmp_path: Path, upstream: FakeUpstream) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "spec.pdf").write_bytes(sample_pdf())
    (docs / "scan.png").write_bytes(png_bytes(64, 48))
    assert batch_cli(str(docs), "--server", server, "--output", "json", "--mode", "free_ocr",
                     "--resolution", "tiny", "--pages", "2-3,7", "--dpi", "72",
                     "--max-tokens", "321") == 0
    assert len(upstream.requests) == 3 + 1  # the pages selected, and the image read whole
    assert {r["messages"][0]["content"][1]["text"] for r in upstream.requests} == {MODES["free_ocr"]}
    tiny = RESOLUTIONS["deepseek-ocr"]["tiny"].mm_processor_kwargs()
    assert [r.get("mm_processor_kwargs") for r in upstream.requests] == [tiny] * 4
    assert {r["max_tokens"] for r in upstream.requests} == {321}
    sizes = [image_size_of(r["messages"][0]["content"][0]["image_url"]["url"]) for r in upstream.requests]
    assert (64, 48) in sizes
    sizes.remove((64, 48))
    assert sorted(page_of_width(w, dpi=72) for w, _ in sizes) == [2, 3, 7]  # the pages, at 72 dpi
    assert {h for _, h in sizes} == {800}  # 800 pt at 72 dpi (1600 px at the default 144)
    answer = json.loads((docs / "spec.json").read_text())
    assert [p["index"] for p in answer["pages"]] == [2, 3, 7] and answer["resolution"] == "tiny"


def test_batch_locate_sends_the_ref(server: str, tmp_path: Path, upstream: FakeUpstream) -> None:
    (tmp_path / "page.png").write_bytes(png_bytes())
    assert batch_cli(str(tmp_path / "page.png"), "--server", server, "--mode", "locate",
                     "--ref", "Total due") == 0
    [request] = upstream.requests
    assert request["messages"][0]["content"][1]["text"] == MODES["locate"].format(ref="Total due")


def timeless(answer: Any) -> Any:
    """An answer without what differs between two runs: ids and times (at every depth)."""
    if isinstance(answer, dict):
        return {k: timeless(v) for k, v in answer.items()
                if k not in {"request_id", "processing_time", "engine_ms"}}
    return [timeless(v) for v in answer] if isinstance(answer, list) else answer


def page_reply(body: dict[str, Any]) -> str:
    """The page of `sample_pdf()` an engine request shows, as its answer."""
    width, _ = image_size_of(body["messages"][0]["content"][0]["image_url"]["url"])
    return f"page {page_of_width(width)}"


def test_a_long_pdf_goes_as_page_ranges_and_comes_back_whole_in_page_order(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """17 pages, 5 a line: four lines, on a server whose requests read at most 6 pages; the
    joined answer is the one the whole document gets as one line (`--pages-per-line 0`)."""
    upstream.reply_fn = page_reply
    (tmp_path / "split").mkdir()
    (tmp_path / "whole").mkdir()
    for folder in ("split", "whole"):
        (tmp_path / folder / "long.pdf").write_bytes(sample_pdf())
    with store_gateway(fake_upstream[1], tmp_path / "store", limits={"max_pages": 6}) as server:
        assert batch_cli(str(tmp_path / "split"), "--server", server, "--output", "json",
                         "--pages-per-line", "5") == 0
        sdk = OpenAI(base_url=f"{server}/v1", api_key="none")
        [batch] = sdk.batches.list().data
        sent = [json.loads(line) for line in sdk.files.content(batch.input_file_id).text.splitlines()]
        assert [line["body"]["pages"] for line in sent] == ["1-5", "6-10", "11-15", "16-17"]
        assert len({line["body"]["file_id"] for line in sent}) == 1  # one upload, four ranges
        assert batch_cli(str(tmp_path / "whole"), "--server", server, "--output", "json",
                         "--pages-per-line", "0") == 0
        assert batch_cli(str(tmp_path / "split"), "--server", server, "--pages-per-line", "5") == 0
    split = json.loads((tmp_path / "split" / "long.json").read_text())
    whole = json.loads((tmp_path / "whole" / "long.json").read_text())
    assert [p["index"] for p in split["pages"]] == list(range(1, 18))
    assert split["text"].split(PAGE_SPLIT) == [f"page {n}" for n in range(1, 18)]
    assert split["page_count"] == 17 and split["usage"]["prompt_tokens"] > 0
    assert timeless(split) == timeless(whole)
    markdown = (tmp_path / "split" / "long.md").read_text()
    assert markdown.rstrip("\n").split(PAGE_SPLIT) == [f"page {n}" for n in range(1, 18)]


def test_a_failed_page_range_fails_its_document_and_writes_nothing(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    upstream.reply_fn = page_reply
    (tmp_path / "long.pdf").write_bytes(sample_pdf())
    (tmp_path / "page.png").write_bytes(png_bytes())
    # page n is (1200 + 20 n) x 1600 px: pages 1-5 need 10.1 M pixels, 6-10 10.9 M, 11-15
    # 11.7 M (over the 11 M a line may decode), 16-17 4.9 M
    budget = 11_000_000
    with store_gateway(fake_upstream[1], tmp_path / "store",
                       budget={"max_request_pixels": budget}, limits={"max_pages": 6},
                       batches={"max_document_pixels": budget}) as server:
        assert batch_cli(str(tmp_path), "--server", server, "--pages-per-line", "5") == 1
    assert not (tmp_path / "long.md").exists()
    assert (tmp_path / "page.md").exists()  # the other document is written
    err = capsys.readouterr().err
    assert "long.pdf (pages 11-15)" in err and "long.pdf (pages 1-5)" not in err
