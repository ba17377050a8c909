"""The OCR translation layer, pure: prompts, chat requests, grounding output, answers.

No I/O and no HTTP types: imports nothing from api, service or engines.
"""
