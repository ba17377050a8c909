"""Chat backends: where a chat-completion request is answered (upstream, lite, vllm)."""

from openai_ocr.backends.base import BackendStatus, ChatBackend

__all__ = ["BackendStatus", "ChatBackend"]
