"""The Claude Code CLI backend: command lines, stream-json events, processes and their pool."""
