"""Backends that turn a neutral completion job into Claude output (today: the Claude Code CLI)."""
