"""Engines: what answers a chat-completion request (upstream, lite, vllm in-process)."""
