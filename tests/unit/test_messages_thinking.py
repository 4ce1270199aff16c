"""Thinking on `/v1/messages`: `thinking` and `output_config.effort` set the effort, and the
answer carries thinking blocks (plain, or streamed as thinking and signature deltas) when the
caller turned thinking on."""

from __future__ import annotations

import pytest

from core.types import Completed, RedactedThinking, Started, TextDelta, ThinkingDelta, ThinkingSigned, TokenUsage
from tests.support.fake_backend import FakeBackend
from tests.unit import test_app_routes
from tests.unit.test_messages_routes import create, events, message

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    """test_app_routes' app factory: the real app, a fake backend, a key of project `acme`."""
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        (None, None, None),
        ({"type": "adaptive"}, None, None),
        ({"type": "adaptive"}, {"effort": "max"}, "xhigh"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "someday"}, None),
        ({"type": "disabled"}, None, "none"),
        ({"type": "enabled", "budget_tokens": 1024}, None, "minimal"),
        ({"type": "enabled", "budget_tokens": 10000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 50000}, None, "high"),
    ],
)
def test_thinking_and_output_config_set_the_effort(make_proxy, thinking, output_config, effort):
    proxy = make_proxy()
    extra = {key: value for key, value in (("thinking", thinking), ("output_config", output_config)) if value}
    message(create(proxy, max_tokens=60000, **extra))
    assert proxy.backend.jobs[0].effort == effort


THOUGHT = [
    Started(TokenUsage(input_tokens=4)),
    ThinkingDelta("Let me ", first=True),
    ThinkingDelta("think."),
    ThinkingSigned("sig-1"),
    RedactedThinking("opaque"),
    TextDelta("Answer."),
    Completed(finish_reason="stop", usage=TokenUsage(input_tokens=4, output_tokens=9)),
]


def test_thinking_blocks_come_first_when_thinking_is_on_and_not_otherwise(make_proxy):
    proxy = make_proxy(FakeBackend(THOUGHT))
    shown = message(create(proxy, thinking={"type": "adaptive"}))
    assert [block.type for block in shown.content] == ["thinking", "redacted_thinking", "text"]
    assert (shown.content[0].thinking, shown.content[0].signature) == ("Let me think.", "sig-1")  # type: ignore[union-attr]
    assert shown.content[1].data == "opaque"  # type: ignore[union-attr]
    hidden = message(create(proxy))
    assert [block.type for block in hidden.content] == ["text"]


def test_streamed_thinking_has_thinking_and_signature_deltas(make_proxy):
    proxy = make_proxy(FakeBackend(THOUGHT))
    sent = [e for e in events(create(proxy, stream=True, thinking={"type": "adaptive"})) if not isinstance(e, dict)]
    starts = [(e.index, e.content_block.type) for e in sent if e.type == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "redacted_thinking"), (2, "text")]
    deltas = [(e.index, e.delta.type) for e in sent if e.type == "content_block_delta"]
    assert deltas == [(0, "thinking_delta"), (0, "thinking_delta"), (0, "signature_delta"), (2, "text_delta")]
    assert [e.index for e in sent if e.type == "content_block_stop"] == [0, 1, 2]
    plain = [e for e in events(create(proxy, stream=True)) if not isinstance(e, dict)]
    assert [e.content_block.type for e in plain if e.type == "content_block_start"] == ["text"]
