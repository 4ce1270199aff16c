"""adapters.claude_cli.session_file: synthetic sessions for --resume."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from adapters.claude_cli.session_file import config_dir, project_dir, remove_session, write_session
from core.types import TextBlock, Turn

CWD = Path("/tmp/exp/cwd")

HISTORY = [
    Turn(role="user", content=[TextBlock("What is 2+2?")]),
    Turn(role="assistant", content=[TextBlock("4")]),
    Turn(role="user", content=[TextBlock("And 3+3?"), TextBlock("Be brief.")]),
    Turn(role="assistant", content=[TextBlock("6"), TextBlock(" (six)")]),
]


def read_lines(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode().splitlines()]


def test_project_dir_matches_the_cli_layout(tmp_path):
    # The CLI itself reported this memory path for cwd /tmp/exp/cwd: <config>/projects/-tmp-exp-cwd/
    assert project_dir(tmp_path, CWD) == tmp_path / "projects" / "-tmp-exp-cwd"


def test_project_dir_replaces_every_non_alphanumeric_character(tmp_path):
    cwd = Path("/home/me/my_proj.v2/a b+c@d")
    folder = project_dir(tmp_path, cwd)
    assert folder.parent == tmp_path / "projects"
    assert folder.name == "-home-me-my-proj-v2-a-b-c-d"
    assert re.fullmatch(r"[A-Za-z0-9\-]+", folder.name)


def test_config_dir(tmp_path):
    assert config_dir({"CLAUDE_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert config_dir({"HOME": "/home/me"}) == Path("/home/me/.claude")
    assert config_dir({"CLAUDE_CONFIG_DIR": "", "HOME": "/home/me"}) == Path("/home/me/.claude")


def test_write_session_one_line_per_turn(tmp_path):
    session_id, path = write_session(tmp_path, CWD, HISTORY)
    assert path == project_dir(tmp_path, CWD) / f"{session_id}.jsonl"
    assert path.is_file()
    lines = read_lines(path)
    assert len(lines) == len(HISTORY)
    assert [line["type"] for line in lines] == ["user", "assistant", "user", "assistant"]
    assert all(line["sessionId"] == session_id for line in lines)
    assert all(line["cwd"] == str(CWD) for line in lines)
    assert all(line["isSidechain"] is False for line in lines)


def test_parent_uuid_chain(tmp_path):
    _, path = write_session(tmp_path, CWD, HISTORY)
    lines = read_lines(path)
    assert lines[0]["parentUuid"] is None
    for previous, line in itertools.pairwise(lines):
        assert line["parentUuid"] == previous["uuid"]
    uuids = [line["uuid"] for line in lines]
    assert len(set(uuids)) == len(uuids)


def test_user_lines_carry_user_messages(tmp_path):
    _, path = write_session(tmp_path, CWD, HISTORY)
    lines = read_lines(path)
    assert lines[0]["message"] == {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}
    assert lines[2]["message"]["content"] == [
        {"type": "text", "text": "And 3+3?"},
        {"type": "text", "text": "Be brief."},
    ]


def test_assistant_lines_are_anthropic_messages(tmp_path):
    _, path = write_session(tmp_path, CWD, HISTORY)
    lines = read_lines(path)
    for index, texts in ((1, ["4"]), (3, ["6", " (six)"])):
        message = lines[index]["message"]
        assert message["type"] == "message"
        assert message["role"] == "assistant"
        assert message["id"].startswith("msg_")
        assert message["content"] == [{"type": "text", "text": text} for text in texts]
        assert message["stop_reason"] == "end_turn"
        assert "usage" in message
    assert lines[1]["message"]["id"] != lines[3]["message"]["id"]


def test_each_session_gets_a_new_id_and_file(tmp_path):
    first_id, first = write_session(tmp_path, CWD, HISTORY[:1])
    second_id, second = write_session(tmp_path, CWD, HISTORY[:1])
    assert first_id != second_id
    assert first != second
    assert first.parent == second.parent
    assert read_lines(first)[0]["sessionId"] == first_id
    assert read_lines(second)[0]["sessionId"] == second_id


def test_session_file_is_private(tmp_path):
    _, path = write_session(tmp_path, CWD, HISTORY)
    assert path.stat().st_mode & 0o777 == 0o600


def test_remove_session_removes_file_and_empty_folder(tmp_path):
    _, path = write_session(tmp_path, CWD, HISTORY)
    folder = path.parent
    remove_session(path)
    assert not path.exists()
    assert not folder.exists()
    assert (tmp_path / "projects").is_dir()


def test_remove_session_keeps_folder_with_other_files(tmp_path):
    _, first = write_session(tmp_path, CWD, HISTORY)
    _, second = write_session(tmp_path, CWD, HISTORY)
    remove_session(first)
    assert not first.exists()
    assert second.exists()
    assert second.parent.is_dir()


def test_remove_session_tolerates_missing_file(tmp_path):
    missing = tmp_path / "projects" / "-nowhere" / "gone.jsonl"
    remove_session(missing)  # neither file nor folder exists
    _, path = write_session(tmp_path, CWD, HISTORY)
    remove_session(path)
    remove_session(path)  # second removal is a no-op
    assert not path.exists()


@pytest.mark.parametrize("count", [1, 2, 7])
def test_line_count_matches_history_length(tmp_path, count):
    history = [Turn(role="user" if i % 2 == 0 else "assistant", content=[TextBlock(f"turn {i}")]) for i in range(count)]
    _, path = write_session(tmp_path, CWD, history)
    lines = read_lines(path)
    assert [line["message"]["content"][0]["text"] for line in lines] == [f"turn {i}" for i in range(count)]
