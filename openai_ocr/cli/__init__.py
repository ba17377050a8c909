"""The openai-ocr command line: serve, and the OCR client."""
