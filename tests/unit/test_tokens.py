"""Token counting works offline and never fails a request."""

from __future__ import annotations

import socket

import pytest

from core import tokens


@pytest.fixture()
def fresh_encoder():
    tokens._encoder.cache_clear()
    yield
    tokens._encoder.cache_clear()


def test_counts_with_the_bundled_encoding_and_no_network(fresh_encoder, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled for this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert tokens._encoder() is not None
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("") == 0


def test_falls_back_to_a_character_estimate(fresh_encoder, monkeypatch):
    import tiktoken

    def missing(name):
        raise ValueError(f"no encoding {name}")

    monkeypatch.setattr(tiktoken, "get_encoding", missing)
    assert tokens._encoder() is None
    assert tokens.count_tokens("x" * 40) == 10
    assert tokens.count_tokens("hi") == 1
