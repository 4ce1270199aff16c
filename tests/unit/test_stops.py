"""proxy.pipeline.stops.StopCutter: stop sequences applied to streamed text."""

from __future__ import annotations

import itertools

import pytest

from proxy.pipeline.stops import StopCutter


def run(stops: list[str], chunks: list[str]) -> tuple[str, bool]:
    """Feed chunks as the streaming path does: stop feeding after a match, flush at the end."""
    cutter = StopCutter(stops)
    out = []
    matched = False
    for chunk in chunks:
        text, matched = cutter.feed(chunk)
        out.append(text)
        if matched:
            break
    if not matched:
        out.append(cutter.flush())
    assert cutter.matched is matched
    return "".join(out), matched


def splits(text: str, parts: int):
    """Every way to cut `text` into `parts` pieces (empty pieces allowed)."""
    for cuts in itertools.combinations_with_replacement(range(len(text) + 1), parts - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_no_stops_is_passthrough():
    cutter = StopCutter([])
    assert cutter.feed("Hello") == ("Hello", False)
    assert cutter.feed(" world\nObservation:") == (" world\nObservation:", False)
    assert cutter.flush() == ""
    assert cutter.matched is False


def test_empty_stop_strings_are_ignored():
    cutter = StopCutter(["", ""])
    assert cutter.stops == []
    assert cutter.feed("abc") == ("abc", False)
    assert cutter.flush() == ""


def test_empty_stop_ignored_next_to_real_stop():
    cutter = StopCutter(["", "END"])
    assert cutter.stops == ["END"]
    assert cutter.feed("one END two") == ("one ", True)


def test_stop_inside_one_chunk():
    cutter = StopCutter(["\nObservation:"])
    assert cutter.feed("Thought: x\nObservation: y") == ("Thought: x", True)
    assert cutter.matched is True


def test_stop_at_start_of_chunk_emits_nothing():
    cutter = StopCutter(["STOP"])
    assert cutter.feed("STOP and more") == ("", True)


def test_stop_split_across_two_chunks():
    cutter = StopCutter(["Observation:"])
    assert cutter.feed("Hello\nObs") == ("Hello\n", False)
    assert cutter.feed("ervation: tail") == ("", True)
    assert cutter.matched is True


def test_stop_split_across_three_chunks():
    cutter = StopCutter(["\nObservation:"])
    first, m1 = cutter.feed("Hel")
    second, m2 = cutter.feed("lo\nObs")
    third, m3 = cutter.feed("ervation:")
    assert (m1, m2, m3) == (False, False, True)
    assert first + second + third == "Hello"
    assert second == "lo"  # "\nObs" is held back
    assert third == ""


def test_text_after_stop_is_never_emitted():
    text, matched = run(["STOP"], ["abc ST", "OP secret", " more secret"])
    assert matched is True
    assert text == "abc "
    assert "secret" not in text


def test_held_text_that_is_not_a_stop_is_emitted_later():
    cutter = StopCutter(["Observation:"])
    assert cutter.feed("Hello Obs") == ("Hello ", False)
    # "Obse" is still a possible prefix; "Obsc" is not.
    assert cutter.feed("cure") == ("Obscure", False)
    assert cutter.flush() == ""


def test_flush_returns_held_partial_at_end_of_stream():
    cutter = StopCutter(["Observation:"])
    assert cutter.feed("the end Observ") == ("the end ", False)
    assert cutter.flush() == "Observ"
    assert cutter.flush() == ""
    assert cutter.matched is False


def test_earliest_of_several_stops_wins():
    cutter = StopCutter(["zzz", "bar", "foo"])
    assert cutter.feed("xx foo yy bar zzz") == ("xx ", True)


def test_earliest_stop_wins_across_chunks():
    text, matched = run(["Final", "\n\n"], ["Answer\n", "\nFinal answer"])
    assert (text, matched) == ("Answer", True)


def test_longest_partial_suffix_is_held():
    # "aab" could still become "aabc"; the shorter partial "b" of "bx" must not release "aa".
    cutter = StopCutter(["aabc", "bx"])
    assert cutter.feed("zaab") == ("z", False)
    assert cutter.feed("c") == ("", True)


def test_repeated_prefix_characters():
    text, matched = run(["abab"], ["aba", "bab"])
    assert (text, matched) == ("", True)
    text, matched = run(["abab"], ["xab", "aab", "ab"])
    assert (text, matched) == ("xaba", True)


SAMPLE = "Hello\nObservation: 42 END"


@pytest.mark.parametrize(
    "stops",
    [
        [],
        ["NOPE"],
        ["\nObservation:X"],  # a prefix matches, the whole never does
        ["Hello\nObz", "ENDS", "42 EN!"],
        ["o\nOx", "42 ENDE", "", "Observation; "],
    ],
)
def test_no_match_emits_everything_for_every_chunking(stops):
    for parts in (2, 3):
        for chunks in splits(SAMPLE, parts):
            text, matched = run(stops, chunks)
            assert matched is False, chunks
            assert text == SAMPLE, chunks


@pytest.mark.parametrize(
    ("stops", "expected"),
    [
        (["\nObservation:"], "Hello"),
        (["Observation:"], "Hello\n"),
        (["END", "42"], "Hello\nObservation: "),
        (["42 END", "tion"], "Hello\nObserva"),
        (["Hello"], ""),
        ([" END"], "Hello\nObservation: 42"),
        (["NOPE", "D"], "Hello\nObservation: 42 EN"),
    ],
)
def test_match_is_the_same_for_every_chunking(stops, expected):
    for parts in (1, 2, 3):
        for chunks in splits(SAMPLE, parts):
            text, matched = run(stops, chunks)
            assert matched is True, chunks
            assert text == expected, chunks


def test_character_by_character_feed():
    text, matched = run(["\nObservation:"], list(SAMPLE))
    assert (text, matched) == ("Hello", True)
    text, matched = run(["XYZ"], list(SAMPLE))
    assert (text, matched) == (SAMPLE, False)


def test_emitted_text_never_contains_a_stop():
    stops = ["ab", "ba"]
    sample = "xxaxbxab"
    for chunks in splits(sample, 3):
        text, matched = run(stops, chunks)
        assert matched is True
        assert text == "xxaxbx"
        assert not any(stop in text for stop in stops)


@pytest.mark.parametrize("chunks", [["abcd"], ["abc", "d"], ["a", "b", "c", "d"]])
def test_the_stop_completed_first_wins_whatever_the_chunking(chunks):
    # "c" is complete as soon as the model writes it, before "abcd" could be.
    cutter = StopCutter(["abcd", "c"])
    out = ""
    for chunk in chunks:
        text, matched = cutter.feed(chunk)
        out += text
        if matched:
            break
    assert out == "ab"
    assert cutter.matched
