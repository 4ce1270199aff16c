"""adapters.claude_cli.command: argv, environment and --bare decision for CLI processes."""

from __future__ import annotations

import pytest

from adapters.claude_cli.command import FORCED_ENV, LaunchSpec, build_argv, build_env, decide_bare, safe_arg


def spec(*, bare: bool = False) -> LaunchSpec:
    return LaunchSpec(binary="/opt/claude/bin/claude", bare=bare, max_retries=0, env={})


def follows(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, flag
    return argv[argv.index(flag) + 1]


def test_argv_starts_with_binary_and_print_mode():
    argv = build_argv(spec(), model="sonnet")
    assert argv[0] == "/opt/claude/bin/claude"
    assert "-p" in argv


@pytest.mark.parametrize("bare", [False, True])
def test_argv_always_disables_host_features(bare):
    argv = build_argv(spec(bare=bare), model="sonnet")
    assert follows(argv, "--tools") == ""
    assert "--strict-mcp-config" in argv
    assert follows(argv, "--setting-sources") == ""
    assert "--no-session-persistence" in argv
    assert "--disable-slash-commands" in argv
    assert follows(argv, "--input-format") == "stream-json"
    assert follows(argv, "--output-format") == "stream-json"
    assert follows(argv, "--model") == "sonnet"


def test_bare_only_when_spec_says_so():
    assert "--bare" not in build_argv(spec(bare=False), model="sonnet")
    assert build_argv(spec(bare=True), model="sonnet").count("--bare") == 1


def test_resume_only_when_given():
    assert "--resume" not in build_argv(spec(), model="haiku")
    session = "0f8fad5b-d9cb-469f-a165-70867728950e"
    argv = build_argv(spec(), model="haiku", resume_session=session)
    assert follows(argv, "--resume") == session


def test_full_model_id_on_argv():
    argv = build_argv(spec(), model="claude-sonnet-4-5-20250929")
    assert follows(argv, "--model") == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize("model", ["son net", "--dangerously-skip-permissions", "x;rm", ""])
def test_build_argv_refuses_unsafe_model(model):
    with pytest.raises(ValueError):
        build_argv(spec(), model=model)


def test_build_argv_refuses_unsafe_resume_id():
    with pytest.raises(ValueError):
        build_argv(spec(), model="sonnet", resume_session="../../etc/passwd")


@pytest.mark.parametrize(
    "value",
    ["sonnet", "claude-opus-4-1", "0f8fad5b-d9cb-469f-a165-70867728950e", "a", "claude-3.5-haiku"],
)
def test_safe_arg_accepts_plain_values(value):
    assert safe_arg(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "two words",
        " sonnet",
        'so"nnet',
        "so'nnet",
        "-p",
        "--model",
        ".hidden",
        "a\nb",
        "\nsonnet",
        "a/b",
        "a;b",
        "$(id)",
        "`id`",
        "a\tb",
        "a" * 102,
    ],
)
def test_safe_arg_rejects(value):
    with pytest.raises(ValueError):
        safe_arg(value)


def test_safe_arg_rejects_trailing_newline():
    with pytest.raises(ValueError):
        safe_arg("sonnet\n")


def test_build_env_passes_only_named_variables():
    environ = {"PATH": "/usr/bin", "HOME": "/home/u", "AWS_SECRET_ACCESS_KEY": "s3cret", "DATABASE_URL": "pg://"}
    env = build_env(environ, passthrough=["PATH", "HOME", "MISSING"], extra={}, max_retries=3)
    assert env == {"PATH": "/usr/bin", "HOME": "/home/u", **FORCED_ENV, "CLAUDE_CODE_MAX_RETRIES": "3"}
    assert "MISSING" not in env


def test_build_env_extra_and_forced_values():
    environ = {"PATH": "/bin", "DISABLE_TELEMETRY": "0"}
    env = build_env(
        environ,
        passthrough=["PATH", "DISABLE_TELEMETRY"],
        extra={"ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "DISABLE_AUTOUPDATER": "0", "CLAUDE_CODE_MAX_RETRIES": "9"},
        max_retries=0,
    )
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1"
    # Forced quiet settings win over both the server environment and `extra`.
    assert env["DISABLE_TELEMETRY"] == "1"
    assert env["DISABLE_AUTOUPDATER"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    for key, value in FORCED_ENV.items():
        assert env[key] == value


def test_build_env_with_empty_passthrough():
    env = build_env({"PATH": "/bin", "HOME": "/root"}, passthrough=[], extra={}, max_retries=1)
    assert set(env) == set(FORCED_ENV) | {"CLAUDE_CODE_MAX_RETRIES"}
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1"


def test_forced_env_contents():
    assert FORCED_ENV == {
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"ANTHROPIC_API_KEY": "sk-ant-x"}, True),
        ({"ANTHROPIC_API_KEY": ""}, False),
        ({"CLAUDE_CODE_OAUTH_TOKEN": "oauth"}, False),
        ({"ANTHROPIC_API_KEY": "sk-ant-x", "CLAUDE_CODE_OAUTH_TOKEN": "oauth"}, False),
        ({"ANTHROPIC_API_KEY": "sk-ant-x", "CLAUDE_CODE_OAUTH_TOKEN": ""}, True),
    ],
)
def test_decide_bare_auto(environ, expected):
    assert decide_bare("auto", environ) is expected


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"ANTHROPIC_API_KEY": "k"},
        {"CLAUDE_CODE_OAUTH_TOKEN": "t"},
        {"ANTHROPIC_API_KEY": "k", "CLAUDE_CODE_OAUTH_TOKEN": "t"},
    ],
)
def test_decide_bare_explicit(environ):
    assert decide_bare(True, environ) is True
    assert decide_bare(False, environ) is False
