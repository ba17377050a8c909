"""`openai-ocr batch`: a folder of documents through a real server's Batch API, resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from openai_ocr.cli.main import main
from tests.api.test_files_batches import serve
from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, png_bytes


@pytest.fixture()
def server(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
           tmp_path: Path) -> Iterator[str]:
    with serve(fake_upstream[1], tmp_path / "store") as url:
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
                     "--resolution", "72", "--no-wait") == 0
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
