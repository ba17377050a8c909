"""The logic behind the routes: OCR requests, PDF chats and streams, over an engine."""
