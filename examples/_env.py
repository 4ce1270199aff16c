"""Where the examples find the proxy: CLAUDE_PROXY_BASE_URL and CLAUDE_PROXY_API_KEY."""

import os

BASE_URL = os.environ.get("CLAUDE_PROXY_BASE_URL", "http://127.0.0.1:8006/v1")
API_KEY = os.environ.get("CLAUDE_PROXY_API_KEY", "sk-cp-replace-me")
