"""Which tool sets a kept process can switch to (`OfferedTools`), as measured on the CLI."""

from __future__ import annotations

from adapters.claude_cli._offered import ADD_SERVER, REMOVE_SERVERS, OfferedTools


def test_a_process_that_never_offered_tools_takes_any_set_by_adding_the_server():
    offered = OfferedTools()
    assert offered.can_serve("a") and offered.can_serve("b") and offered.can_serve(None)
    assert offered.change_for("a") == ADD_SERVER
    assert offered.change_for(None) is None


def test_tools_once_offered_stay_so_only_the_same_set_or_none_may_follow():
    offered = OfferedTools()
    offered.set_up("a")
    assert offered.can_serve("a") and offered.can_serve(None)
    assert not offered.can_serve("b")
    assert offered.change_for("a") is None
    assert offered.change_for(None) == REMOVE_SERVERS


def test_a_request_upstream_without_the_server_frees_the_process_for_any_set():
    offered = OfferedTools()
    offered.set_up("a")
    offered.set_up(None)  # the server removed
    assert not offered.can_serve("b")  # no request went upstream without it yet
    offered.reached_upstream()
    assert offered.can_serve("b")
    assert offered.change_for("b") == ADD_SERVER


def test_a_request_upstream_with_the_server_keeps_its_tools():
    offered = OfferedTools()
    offered.set_up("a")
    offered.reached_upstream()
    assert not offered.can_serve("b")


def test_the_same_tools_fit_best_and_no_tools_fit_a_process_offering_some_best():
    clean, offering = OfferedTools(), OfferedTools()
    offering.set_up("a")
    assert (offering.rank("a"), clean.rank("a")) == (0, 1)
    assert (offering.rank(None), clean.rank(None)) == (0, 1)
    assert offering.rank("b") is None
