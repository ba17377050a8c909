# Run: OPENAI_OCR_URL=http://localhost:8000 .venv/bin/python examples/llamaindex_example.py page.png
"""LlamaIndex's OpenAI-compatible LLM with an image block: chat and stream_chat."""

import os
import sys

from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.llms.openai_like import OpenAILike

llm = OpenAILike(
    api_base=os.environ.get("OPENAI_OCR_URL", "http://localhost:8000") + "/v1",
    api_key=os.environ.get("OPENAI_OCR_API_KEY", "unused"),
    model=os.environ.get("OPENAI_OCR_MODEL", "deepseek-ai/DeepSeek-OCR"),
    is_chat_model=True,
    context_window=8192,
    temperature=0.0,
)


def page_message(path: str) -> ChatMessage:
    return ChatMessage(role="user", blocks=[
        ImageBlock(path=path, image_mimetype="image/png"),
        TextBlock(text="Free OCR."),
    ])


if __name__ == "__main__":
    message = page_message(sys.argv[1])
    print("== chat ==\n" + (llm.chat([message]).message.content or ""))
    print("== stream_chat ==")
    for chunk in llm.stream_chat([message]):
        print(chunk.delta or "", end="", flush=True)
    print()
