"""Schemas of `GET /v1/usage`: what API keys used, by UTC day, route and model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class UsageTotals(BaseModel):
    requests: int = Field(0, description="Requests answered (a Batch API line is one, under `/v1/batches`).")
    pages: int = Field(0, description="Pages read (a chat request without a file: its images).")
    images: int = Field(0, description="Page images sent to the engine (tries after a loop included).")
    image_tokens: int = Field(0, description="Vision tokens of those images (part of `prompt_tokens`; "
                              "0 for chat requests, whose usage does not tell them apart).")
    prompt_tokens: int = 0
    completion_tokens: int = Field(0, description="Tokens the engine generated (a streamed chat "
                                   "request: only where the client asked for the usage chunk).")
    engine_seconds: float = Field(0.0, description="Seconds the engine calls took.")


class UsageBucket(UsageTotals):
    date: str = Field(description="The UTC day, YYYY-MM-DD.")
    key_id: str = Field(description="The API key's id: a short hash of the key (never the key), "
                        "`anonymous` on a server without keys.")
    key_name: str | None = Field(None, description="The key's name in the keys file (`auth.keys_file`), "
                                 "a label only; null for a key without one.")
    route: str = Field(description="The route answered, e.g. `/ocr/file`, `/v1/chat/completions`.")
    model: str


class UsageReport(BaseModel):
    object: Literal["usage"] = "usage"
    start: str = Field(description="The first day, YYYY-MM-DD (UTC).")
    end: str = Field(description="The last day, included.")
    key_id: str | None = Field(description="The key whose usage this is; null: every key (an admin "
                               "key without `key_id`).")
    key_name: str | None = Field(None, description="That key's name in the keys file, if it has one.")
    data: list[UsageBucket] = Field(description="One bucket per day, key, route and model, in that order.")
    totals: UsageTotals
