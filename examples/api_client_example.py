# Run: OPENAI_OCR_URL=http://localhost:8000 .venv/bin/python examples/api_client_example.py page.png [more.png ...]
"""The legacy REST client (`DeepSeekOCRClient`, aiohttp), as old code calls the /ocr routes."""

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


class DeepSeekOCRClient:
    """Async client for the legacy /ocr routes; results are dicts with `result['text']`."""

    def __init__(self, base_url: str = "http://localhost:8000", api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "DeepSeekOCRClient":
        self.session = aiohttp.ClientSession(headers=self.headers)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.session:
            await self.session.close()

    async def health(self) -> dict:
        async with self.session.get(f"{self.base_url}/health") as response:
            return await response.json()

    health_check = health  # the seed's name

    async def ocr_from_base64(self, image_base64: str, prompt: str | None = None,
                              temperature: float = 0.0, max_tokens: int = 8192) -> dict:
        payload = {"image_base64": image_base64, "prompt": prompt,
                   "temperature": temperature, "max_tokens": max_tokens}
        async with self.session.post(f"{self.base_url}/ocr", json=payload) as response:
            response.raise_for_status()
            return await response.json()

    def _form(self, image_path: str, **fields: Any) -> aiohttp.FormData:
        form = aiohttp.FormData()
        with open(image_path, "rb") as handle:
            form.add_field("file", handle.read(), filename=os.path.basename(image_path))
        for name, value in fields.items():
            if value is not None:
                form.add_field(name, str(value))
        return form

    async def ocr_from_file(self, image_path: str, prompt: str | None = None,
                            temperature: float = 0.0, max_tokens: int = 8192) -> dict:
        form = self._form(image_path, prompt=prompt, temperature=temperature, max_tokens=max_tokens)
        async with self.session.post(f"{self.base_url}/ocr/file", data=form) as response:
            response.raise_for_status()
            return await response.json()

    async def ocr_stream(self, image_path: str, prompt: str | None = None) -> AsyncIterator[str]:
        """Yields the text as it is generated (each SSE event is JSON: {"text": "..."})."""
        form = self._form(image_path, prompt=prompt)
        async with self.session.post(f"{self.base_url}/ocr/stream", data=form) as response:
            response.raise_for_status()
            async for line in response.content:
                decoded = line.decode("utf-8").strip()
                if not decoded.startswith("data:"):
                    continue
                data = decoded[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if event.get("type") == "error":
                    raise RuntimeError(event["error"]["message"])
                if event.get("text"):
                    yield event["text"]

    async def ocr_batch(self, image_paths: list, prompt: str | None = None) -> dict:
        requests = []
        for path in image_paths:
            with open(path, "rb") as handle:
                requests.append({"image_base64": base64.b64encode(handle.read()).decode(),
                                 "prompt": prompt})
        async with self.session.post(f"{self.base_url}/ocr/batch",
                                     json={"requests": requests}) as response:
            response.raise_for_status()
            return await response.json()


async def main(paths: list) -> None:
    url = os.environ.get("OPENAI_OCR_URL", "http://localhost:8000")
    async with DeepSeekOCRClient(url, os.environ.get("OPENAI_OCR_API_KEY")) as client:
        print("health:", (await client.health())["status"])
        result = await client.ocr_from_file(paths[0], prompt="<image>\nFree OCR.")
        print("== ocr_from_file ==\n" + result["text"])
        with open(paths[0], "rb") as handle:
            encoded = base64.b64encode(handle.read()).decode()
        result = await client.ocr_from_base64(encoded, prompt="<image>\nFree OCR.")
        print("== ocr_from_base64 ==\n" + result["text"])
        print("== ocr_stream ==")
        async for piece in client.ocr_stream(paths[0], prompt="<image>\nFree OCR."):
            print(piece, end="", flush=True)
        print()
        batch = await client.ocr_batch(paths, prompt="<image>\nFree OCR.")
        for item in batch["results"]:
            print(f"== batch item {item['index']}: {item['status']} ==\n" + item["text"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
