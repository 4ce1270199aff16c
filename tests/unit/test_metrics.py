"""The `/metrics` renderer: label values are escaped as the text exposition format requires."""

from __future__ import annotations

from proxy.metrics import Metrics, label_value


def test_label_value_escapes_backslash_quote_and_newline():
    assert label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert label_value("team-a.prod_1") == "team-a.prod_1"


def test_a_hostile_project_name_renders_as_one_escaped_line():
    # What the probe injected: end the label value, close the braces, start a metric line.
    hostile = 'x"} 1\nclaude_proxy_spend_usd_total{project="victim'
    metrics = Metrics()
    metrics.observe_completion(
        project=hostile, model="gpt-4o-mini", claude_model="haiku", status=200, prompt=3, completion=4, cost=0.5
    )
    text = metrics.render()
    spend = [line for line in text.splitlines() if line.startswith("claude_proxy_spend_usd_total")]
    assert spend == [
        'claude_proxy_spend_usd_total{project="x\\"} 1\\nclaude_proxy_spend_usd_total{project=\\"victim"} 0.5'
    ]
    tokens = [line for line in text.splitlines() if line.startswith("claude_proxy_tokens_total")]
    assert len(tokens) == 2
    assert all(line.endswith(('kind="completion"} 4', 'kind="prompt"} 3')) for line in tokens)
    # Every sample line is `name{labels} value`: nothing outside a family's own names.
    for line in text.splitlines():
        assert line.startswith(("# ", "claude_proxy_")), line


def test_route_and_model_labels_are_escaped_too():
    metrics = Metrics()
    metrics.observe_response('/v1/"x"', "GET", 200, 0.01)
    text = metrics.render()
    assert 'claude_proxy_http_requests_total{route="/v1/\\"x\\"",method="GET",status="200"} 1' in text
    assert 'claude_proxy_http_request_duration_seconds_count{route="/v1/\\"x\\""} 1' in text
