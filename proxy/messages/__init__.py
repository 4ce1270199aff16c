"""Anthropic's Messages API as a surface of the one pipeline: translate, render, errors."""
