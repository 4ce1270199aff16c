"""claude-proxy: an OpenAI-compatible API served by Claude through the Claude Code CLI."""

__version__ = "0.1.0"
