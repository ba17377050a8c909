"""Route modules (the legacy /ocr routes are openai_ocr.compat_routes)."""
