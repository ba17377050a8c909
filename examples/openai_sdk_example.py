# Run: OPENAI_OCR_URL=http://localhost:8000 .venv/bin/python examples/openai_sdk_example.py page.png [document.pdf]
"""The official openai SDK against openai-ocr: sync, async, streaming, image and PDF input."""

import asyncio
import base64
import os
import sys

import openai

BASE_URL = os.environ.get("OPENAI_OCR_URL", "http://localhost:8000") + "/v1"
API_KEY = os.environ.get("OPENAI_OCR_API_KEY", "unused")
MODEL = os.environ.get("OPENAI_OCR_MODEL", "deepseek-ai/DeepSeek-OCR")


def data_url(path: str, mime: str) -> str:
    with open(path, "rb") as handle:
        return f"data:{mime};base64,{base64.b64encode(handle.read()).decode()}"


def image_message(path: str, prompt: str = "Free OCR.") -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(path, "image/png")}},
        {"type": "text", "text": prompt}]}]


def ocr_sync(path: str) -> str:
    client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY)
    reply = client.chat.completions.create(model=MODEL, messages=image_message(path))
    return reply.choices[0].message.content or ""


async def ocr_async(path: str) -> str:
    async with openai.AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY) as client:
        reply = await client.chat.completions.create(model=MODEL, messages=image_message(path))
        return reply.choices[0].message.content or ""


def ocr_streaming(path: str) -> str:
    client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY)
    pieces = []
    for chunk in client.chat.completions.create(model=MODEL, messages=image_message(path),
                                                stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return "".join(pieces)


def ocr_pdf(path: str, pages: str = "1-2") -> str:
    """A PDF as an OpenAI `file` part: one answer, pages joined by the page separator."""
    client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY)
    reply = client.chat.completions.create(model=MODEL, extra_body={"pages": pages}, messages=[
        {"role": "user", "content": [
            {"type": "file", "file": {"filename": os.path.basename(path),
                                      "file_data": data_url(path, "application/pdf")}},
            {"type": "text", "text": "<|grounding|>Convert the document to markdown."}]}])
    return reply.choices[0].message.content or ""


if __name__ == "__main__":
    image = sys.argv[1]
    print("== sync ==\n" + ocr_sync(image))
    print("== async ==\n" + asyncio.run(ocr_async(image)))
    print("== streaming ==")
    ocr_streaming(image)
    if len(sys.argv) > 2:
        print("== pdf ==\n" + ocr_pdf(sys.argv[2]))
