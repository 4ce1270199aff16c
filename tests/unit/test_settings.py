"""proxy.settings.load_settings: file, then environment, then overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.claude_cli.settings import DEFAULT_ENV_PASSTHROUGH
from proxy.settings import DEFAULT_MODEL_ALIASES, Settings, SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    settings = load_settings(None, environ={})
    assert isinstance(settings, Settings)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8006
    assert settings.server.max_body_bytes == 20 * 1024 * 1024
    assert settings.server.request_timeout_s == 300.0
    assert settings.claude.bare == "auto"
    assert settings.claude.max_retries == 0
    assert settings.claude.env_passthrough == list(DEFAULT_ENV_PASSTHROUGH)
    assert settings.storage.path == "./data"
    assert settings.redis.url is None
    assert settings.auth.admin_key is None
    assert settings.pool.size == 4
    assert settings.pool.spares == 1
    assert settings.models == DEFAULT_MODEL_ALIASES


def test_defaults_are_not_shared_between_loads():
    first = load_settings(None, environ={})
    first.models["mine"] = "opus"
    first.claude.env_passthrough.append("SECRET")
    second = load_settings(None, environ={})
    assert "mine" not in second.models
    assert "mine" not in DEFAULT_MODEL_ALIASES
    assert "SECRET" not in second.claude.env_passthrough


def test_environment_is_ignored_without_prefix_or_separator():
    settings = load_settings(None, environ={"PORT": "1", "CLAUDE_PROXY_PORT": "2", "SERVER__PORT": "3"})
    assert settings.server.port == 8006


def test_yaml_file_overrides_nested_keys(tmp_path):
    path = write(
        tmp_path,
        "server:\n  port: 9100\n  host: 0.0.0.0\npool:\n  size: 8\nclaude:\n  bare: true\n  env:\n    FOO: bar\n",
    )
    settings = load_settings(path, environ={})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.server.log_level == "info"  # untouched sibling keeps its default
    assert settings.pool.size == 8
    assert settings.pool.spares == 1
    assert settings.claude.bare is True
    assert settings.claude.env == {"FOO": "bar"}


def test_empty_file_gives_defaults(tmp_path):
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.server.port == 8006


def test_top_level_not_a_mapping(tmp_path):
    with pytest.raises(SettingsError):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})


def test_env_overrides_file(tmp_path):
    path = write(tmp_path, "server:\n  port: 9100\npool:\n  size: 8\n")
    env = {"CLAUDE_PROXY_SERVER__PORT": "9001", "CLAUDE_PROXY_POOL__SIZE": "2"}
    settings = load_settings(path, environ=env)
    assert settings.server.port == 9001
    assert settings.pool.size == 2


def test_env_values_are_parsed_as_yaml():
    env = {
        "CLAUDE_PROXY_CLAUDE__BARE": "false",
        "CLAUDE_PROXY_SERVER__REQUEST_TIMEOUT_S": "12.5",
        "CLAUDE_PROXY_REDIS__URL": "redis://localhost:6379/0",
    }
    settings = load_settings(None, environ=env)
    assert settings.claude.bare is False
    assert settings.server.request_timeout_s == 12.5
    assert settings.redis.url == "redis://localhost:6379/0"


def test_empty_env_value_means_null(tmp_path):
    path = write(tmp_path, "auth:\n  admin_key: file-key\n")
    settings = load_settings(path, environ={"CLAUDE_PROXY_AUTH__ADMIN_KEY": ""})
    assert settings.auth.admin_key is None


def test_overrides_beat_env(tmp_path):
    path = write(tmp_path, "server:\n  port: 9100\n")
    settings = load_settings(path, environ={"CLAUDE_PROXY_SERVER__PORT": "9001"}, overrides={"server.port": 7000})
    assert settings.server.port == 7000


def test_none_override_is_skipped():
    settings = load_settings(None, environ={"CLAUDE_PROXY_SERVER__PORT": "9001"}, overrides={"server.port": None})
    assert settings.server.port == 9001


def test_models_in_file_extend_defaults_and_null_removes(tmp_path):
    path = write(tmp_path, "models:\n  my-fast: haiku\n  gpt-4o: opus\n  gpt-5: null\n")
    settings = load_settings(path, environ={})
    assert settings.models["my-fast"] == "haiku"
    assert settings.models["gpt-4o"] == "opus"
    assert "gpt-5" not in settings.models
    for alias, target in DEFAULT_MODEL_ALIASES.items():
        if alias not in ("gpt-4o", "gpt-5"):
            assert settings.models[alias] == target
    assert DEFAULT_MODEL_ALIASES["gpt-4o"] == "sonnet"  # the module default is not mutated
    assert "gpt-5" in DEFAULT_MODEL_ALIASES


def test_null_for_an_alias_that_is_not_a_default_is_harmless(tmp_path):
    settings = load_settings(write(tmp_path, "models:\n  never-existed: null\n"), environ={})
    assert settings.models == DEFAULT_MODEL_ALIASES


@pytest.mark.parametrize(
    "text",
    [
        "surprise: 1\n",
        "server:\n  prot: 9000\n",
        "pool:\n  sise: 2\n",
        "claude:\n  binary_path: /bin/claude\n",
    ],
)
def test_unknown_keys(tmp_path, text):
    with pytest.raises(SettingsError):
        load_settings(write(tmp_path, text), environ={})


def test_unknown_key_from_env():
    with pytest.raises(SettingsError):
        load_settings(None, environ={"CLAUDE_PROXY_SERVER__PROT": "9000"})


def test_unknown_key_from_overrides():
    with pytest.raises(SettingsError):
        load_settings(None, environ={}, overrides={"pool.sise": 2})


@pytest.mark.parametrize(
    "text",
    [
        "pool:\n  size: 0\n",
        "pool:\n  size: -1\n",
        "pool:\n  spares: -1\n",
        "pool:\n  max_queue: -1\n",
        "server:\n  port: 0\n",
        "server:\n  port: 65536\n",
        "server:\n  max_body_bytes: 100\n",
        "server:\n  port: eighty\n",
        "claude:\n  bare: sometimes\n",
    ],
)
def test_invalid_values(tmp_path, text):
    with pytest.raises(SettingsError):
        load_settings(write(tmp_path, text), environ={})


def test_pool_size_zero_from_env():
    with pytest.raises(SettingsError, match=r"pool\.size"):
        load_settings(None, environ={"CLAUDE_PROXY_POOL__SIZE": "0"})


def test_named_config_file_missing(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_default_config_path_may_be_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings("config.yaml", environ={}).server.port == 8006


def test_settings_error_is_value_error():
    assert issubclass(SettingsError, ValueError)


def test_models_not_a_mapping(tmp_path):
    with pytest.raises(SettingsError):
        load_settings(write(tmp_path, "models:\n  - gpt-4o\n"), environ={})
