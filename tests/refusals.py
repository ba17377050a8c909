"""What vLLM 0.32 serving DeepSeek-OCR refuses, as one table: tests/fake_upstream.py
re-implements these refusals, and the same table runs against it (tests/api) and against the
real vLLM server (tests/vllm_plugin), so the fake cannot drift from what it stands in for.

Each case is one change to a valid chat request; the answer is its status, the `type` of
vLLM's error body (None for the 401, whose body is `{"error": "Unauthorized"}`) and a piece
of the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.helpers import ENGINE_API_KEY, SERVED_NAME, image_messages, png_bytes

NGRAM = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}


@dataclass(frozen=True)
class Refusal:
    name: str
    status: int
    error_type: str | None
    needle: str
    body: dict[str, Any] = field(default_factory=dict)
    """Fields replacing those of the valid request."""
    key: str | None = ENGINE_API_KEY
    """The bearer key sent (None: no Authorization header)."""
    images: int = 1

    def request(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(JSON body, headers) of the request."""
        messages = image_messages(png_bytes(64, 48))
        messages[0]["content"][:1] *= self.images
        body = {"model": SERVED_NAME, "messages": messages, "max_tokens": 1, "temperature": 0,
                "vllm_xargs": NGRAM, **self.body}
        return body, ({"Authorization": f"Bearer {self.key}"} if self.key else {})


REFUSALS = [
    Refusal("no key", 401, None, "Unauthorized", key=None),
    Refusal("wrong key", 401, None, "Unauthorized", key="sk-wrong"),
    Refusal("unknown model", 404, "NotFoundError", "The model `nope/ocr` does not exist", {"model": "nope/ocr"}),
    Refusal("two images", 400, "BadRequestError", "At most 1 image(s) may be provided in one prompt", images=2),
    Refusal("ngram_size a string", 400, "BadRequestError", "`ngram_size` has to be a strictly positive integer",
            {"vllm_xargs": {**NGRAM, "ngram_size": "30"}}),
    Refusal("ngram_size a float", 400, "BadRequestError", "`ngram_size` has to be a strictly positive integer",
            {"vllm_xargs": {**NGRAM, "ngram_size": 30.5}}),
    Refusal("ngram_size zero", 400, "BadRequestError", "`ngram_size` has to be a strictly positive integer",
            {"vllm_xargs": {**NGRAM, "ngram_size": 0}}),
    Refusal("window_size negative", 400, "BadRequestError", "`window_size` has to be a strictly positive integer",
            {"vllm_xargs": {**NGRAM, "window_size": -1}}),
    Refusal("whitelist an integer", 400, "BadRequestError", "`whitelist_token_ids` has to be a sequence",
            {"vllm_xargs": {**NGRAM, "whitelist_token_ids": 128821}}),
    Refusal("xargs value an object", 400, "Bad Request", "body.vllm_xargs.extra",  # the schema's refusal
            {"vllm_xargs": {**NGRAM, "extra": {"nested": 1}}}),
]


def check(answer: Any, case: Refusal) -> None:
    """`answer` (an httpx.Response) is the refusal the table names."""
    assert answer.status_code == case.status, (case.name, answer.status_code, answer.text[:500])
    assert case.needle in answer.text, (case.name, answer.text[:500])
    error = answer.json()["error"]
    if case.error_type is None:
        assert error == "Unauthorized", (case.name, answer.text)
    else:
        assert error["type"] == case.error_type and error["code"] == case.status, (case.name, answer.text[:500])
