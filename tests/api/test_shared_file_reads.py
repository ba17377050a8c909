"""Every route that reads an uploaded file by id (`/ocr`, Mistral's `/v1/ocr`, a chat `file`
part), interactive or a batch line, shares one copy of it with the requests reading it at the
same time: page ranges of one long PDF read together hold it once."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import httpx

from openai_ocr.service.usage import ANONYMOUS
from tests.fake_upstream import FakeUpstream
from tests.helpers import gateway_settings, openai_client, sample_pdf, serve, wait_until


def test_the_routes_reading_one_uploaded_file_at_once_share_one_copy(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.hold.clear()  # each request waits at the engine with its page read
    with serve(gateway_settings(fake_upstream[1], storage={"dir": str(tmp_path / "store")})) as (url, app):
        pdf = openai_client(url).files.create(file=("doc.pdf", io.BytesIO(sample_pdf())), purpose="user")
        requests: list[tuple[str, dict[str, Any]]] = [
            ("/ocr", {"file_id": pdf.id, "pages": "1"}),
            ("/v1/ocr", {"document": {"type": "file", "file_id": pdf.id}, "pages": [1]}),
            ("/v1/chat/completions", {"pages": "3", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": pdf.id}}, {"type": "text", "text": "Free OCR."}]}]}),
        ]
        answers: dict[str, int] = {}

        def send(path: str, body: dict[str, Any]) -> None:
            answers[path] = httpx.post(f"{url}{path}", json=body, timeout=60).status_code

        threads = [threading.Thread(target=send, args=request) for request in requests]
        for thread in threads:
            thread.start()
        shared = app.state.openai_ocr.service.inputs.shared
        try:
            wait_until(lambda: len(upstream.requests) == 3, 30, "each request at the engine")
            assert shared.readers((ANONYMOUS, pdf.id)) == 3
        finally:
            upstream.hold.set()
            for thread in threads:
                thread.join(timeout=60)
        assert answers == {path: 200 for path, _ in requests}
        assert shared.readers((ANONYMOUS, pdf.id)) == 0  # the last one dropped it
