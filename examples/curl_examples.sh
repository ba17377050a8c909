#!/usr/bin/env bash
# Run: OPENAI_OCR_URL=http://localhost:8000 bash examples/curl_examples.sh page.png [document.pdf]
# Every route with curl; add -H "X-API-Key: $KEY" when the server has API keys.
# JSON bodies go through stdin (--data-binary @-): base64 pages are too long for an argument.
set -euo pipefail
URL=${OPENAI_OCR_URL:-http://localhost:8000}
IMAGE=$1
PDF=${2:-}

# json BEFORE FILE AFTER: prints BEFORE, the file as base64, then AFTER
json() { printf '%s' "$1"; base64 -w0 "$2"; printf '%s' "$3"; }
post_json() { curl -sS "$@" -H 'Content-Type: application/json' --data-binary @-; echo; }

echo "== GET /health"
curl -sS "$URL/health"; echo

echo "== POST /ocr (JSON, base64)"
json '{"mode": "free_ocr", "image_base64": "' "$IMAGE" '"}' | post_json "$URL/ocr"

echo "== POST /ocr/file (multipart)"
curl -sS "$URL/ocr/file" -F "file=@$IMAGE" -F mode=free_ocr -F max_tokens=4096; echo

echo "== POST /ocr/stream (Server-Sent Events)"
curl -sS --no-buffer "$URL/ocr/stream" -F "file=@$IMAGE" -F mode=free_ocr; echo

echo "== POST /ocr/file (output=pdf: the searchable PDF itself; output=hocr: hOCR)"
curl -fsS "$URL/ocr/file" -F "file=@$IMAGE" -F output=pdf -o page.ocr.pdf
curl -fsS "$URL/ocr/file" -F "file=@$IMAGE" -F output=hocr -o page.hocr
ls page.ocr.pdf page.hocr

echo "== POST /ocr/batch"
{ json '{"requests": [{"image_base64": "' "$IMAGE" '"}, '
  json '{"mode": "free_ocr", "image_base64": "' "$IMAGE" '"}]}'; } | post_json "$URL/ocr/batch"

echo "== GET /v1/models"
curl -sS "$URL/v1/models"; echo

CHAT_BEFORE='{"model": "deepseek-ai/DeepSeek-OCR", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,'
CHAT_AFTER='"}}, {"type": "text", "text": "Free OCR."}]}]'

echo "== POST /v1/chat/completions"
json "$CHAT_BEFORE" "$IMAGE" "$CHAT_AFTER}" | post_json "$URL/v1/chat/completions"

echo "== POST /v1/chat/completions (stream)"
json "$CHAT_BEFORE" "$IMAGE" "$CHAT_AFTER, \"stream\": true}" | post_json --no-buffer "$URL/v1/chat/completions"

if [ -n "$PDF" ]; then
  echo "== POST /ocr/file (PDF, pages 1-2, markdown)"
  curl -sS "$URL/ocr/file" -F "file=@$PDF" -F pages=1-2 -F output=markdown; echo

  echo "== POST /ocr/file (PDF, pages 1-2, output=alto: ALTO XML)"
  curl -fsS "$URL/ocr/file" -F "file=@$PDF" -F pages=1-2 -F output=alto -o document.alto.xml
  ls document.alto.xml

  echo "== POST /v1/ocr (Mistral OCR shape, first page)"
  json '{"model": "deepseek-ai/DeepSeek-OCR", "pages": [0], "document": {"type": "document_url", "document_url": "data:application/pdf;base64,' "$PDF" '"}}' \
    | post_json "$URL/v1/ocr"
fi
