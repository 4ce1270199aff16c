#!/bin/sh
# A chat completion and a streamed one with curl.
set -eu
BASE_URL="${CLAUDE_PROXY_BASE_URL:-http://127.0.0.1:8006/v1}"
API_KEY="${CLAUDE_PROXY_API_KEY:-sk-cp-replace-me}"

curl -sS "$BASE_URL/chat/completions" \
  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \
  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello from curl"}]}'
echo
curl -sS -N "$BASE_URL/chat/completions" \
  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \
  -d '{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Stream from curl"}]}'
