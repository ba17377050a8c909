"""openai-ocr: DeepSeek-OCR behind an OpenAI-compatible API, plus the legacy /ocr routes."""

__version__ = "0.1.0"
