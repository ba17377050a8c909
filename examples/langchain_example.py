# Run: OPENAI_OCR_URL=http://localhost:8000 .venv/bin/python examples/langchain_example.py page.png
"""LangChain's ChatOpenAI with an image content block: invoke and stream."""

import base64
import os
import sys

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(
    base_url=os.environ.get("OPENAI_OCR_URL", "http://localhost:8000") + "/v1",
    api_key=os.environ.get("OPENAI_OCR_API_KEY", "unused"),
    model=os.environ.get("OPENAI_OCR_MODEL", "deepseek-ai/DeepSeek-OCR"),
    temperature=0,
)


def page_message(path: str) -> HumanMessage:
    with open(path, "rb") as handle:
        encoded = base64.b64encode(handle.read()).decode()
    return HumanMessage(content=[
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
        {"type": "text", "text": "Free OCR."},
    ])


if __name__ == "__main__":
    message = page_message(sys.argv[1])
    print("== invoke ==\n" + llm.invoke([message]).content)
    print("== stream ==")
    for chunk in llm.stream([message]):
        print(chunk.content, end="", flush=True)
    print()
