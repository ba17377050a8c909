"""Schemas of the OpenAI routes served in the gateway and lite modes (vLLM has its own)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ChatCompletionBody(BaseModel):
    """An OpenAI chat-completion request. Unlisted fields (vLLM's extras too) pass through."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, json_schema_extra={"examples": [{
        "model": "deepseek-ai/DeepSeek-OCR",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo..."}},
            {"type": "text", "text": "Free OCR."}]}]}]})

    model: str | None = Field(None, description="Defaults to the served model.")
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class ModelList(BaseModel):
    object: str = "list"
    data: list[dict[str, Any]]
