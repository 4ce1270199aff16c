"""Properties of the pure pieces, checked by hypothesis over many generated inputs."""

from __future__ import annotations

import contextlib
import itertools
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.claude_cli.command import safe_arg
from adapters.claude_cli.events import ProtocolError, UnknownLine, parse_line
from adapters.models import ModelAliases
from budgets.database import open_database
from budgets.guard import BudgetBook
from budgets.keys import Project
from budgets.ledger import UsageLedger
from core.errors import InsufficientQuota, ModelNotFound
from proxy.pipeline.stops import StopCutter
from proxy.settings import DEFAULT_MODEL_ALIASES
from proxy.sse import sse_event

TEXT = st.text(alphabet="ab\nc:O ", max_size=40)


def _reference_cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """Where a model writing `text` left to right would be stopped: the stop completed first."""
    found = [(i + len(stop), i) for stop in stops if stop and (i := text.find(stop)) >= 0]
    if not found:
        return text, False
    return text[: min(found)[1]], True


@given(
    text=TEXT,
    stops=st.lists(st.text(alphabet="ab\nc:O", min_size=1, max_size=4), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
)
@settings(max_examples=400, deadline=None)
def test_stop_cutter_matches_the_reference_for_any_chunking(text, stops, cuts):
    bounds = sorted({0, len(text), *[c for c in cuts if c <= len(text)]})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    cutter = StopCutter(stops)
    out, matched = "", False
    for chunk in chunks:
        emitted, matched = cutter.feed(chunk)
        out += emitted
        if matched:
            break
    if not matched:
        out += cutter.flush()
    assert (out, matched) == _reference_cut(text, stops)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_parse_line_never_fails_with_anything_but_protocol_error(raw):
    with contextlib.suppress(ProtocolError):
        parse_line(raw)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(st.none() | st.integers() | st.text(max_size=8), lambda c: st.lists(c, max_size=3), max_leaves=5),
        max_size=5,
    ),
    st.text(max_size=12),
)
@settings(max_examples=300, deadline=None)
def test_lines_of_unknown_types_are_tolerated(fields, kind):
    fields["type"] = "zz-" + kind  # never one of the CLI's known line types
    assert isinstance(parse_line(json.dumps(fields).encode()), UnknownLine)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
@settings(max_examples=300, deadline=None)
def test_sse_events_are_one_data_line_that_round_trips(payload):
    event = sse_event(payload)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    body = event[len(b"data: ") : -2]
    assert b"\n" not in body and b"\r" not in body  # one line, whatever the text holds
    assert msgspec.json.decode(body) == payload


ROUTER = ModelAliases(DEFAULT_MODEL_ALIASES)


@given(st.text(max_size=40))
@settings(max_examples=500, deadline=None)
def test_any_model_name_resolves_to_an_argv_safe_model_or_is_404(name):
    try:
        route = ROUTER.resolve(name)
    except ModelNotFound as exc:
        assert exc.status == 404 and exc.param == "model"
        return
    assert safe_arg(route.claude_model) == route.claude_model


@given(
    budget=st.floats(min_value=0.0, max_value=100.0),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=30.0), st.floats(min_value=0.0, max_value=1.0)), max_size=40
    ),
)
@settings(max_examples=200, deadline=None)
def test_settled_spend_never_passes_the_budget(tmp_path_factory, budget, steps):
    ledger = UsageLedger(open_database(tmp_path_factory.mktemp("ledger")))
    guard = BudgetBook(ledger)
    project = Project(name="p", budget_usd=budget)
    spent = 0.0
    for worst, share in steps:
        try:
            reservation = guard.reserve(project, worst)
        except InsufficientQuota:
            continue
        real = worst * share  # the real cost never exceeds the worst case reserved for it
        guard.settle(reservation, real)
        spent += real
    assert spent <= budget + 1e-6
    assert guard.status(project).reserved_usd == pytest.approx(0.0, abs=1e-9)
