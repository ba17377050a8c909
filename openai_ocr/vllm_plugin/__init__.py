"""The vLLM side: endpoint plugin, launcher with DeepSeek-OCR defaults, CPU-build fixes."""
