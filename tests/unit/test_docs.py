"""The configuration reference documents every settings key, and config.yaml uses only real ones."""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from proxy.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def _dotted_keys() -> list[str]:
    keys = []
    for field in msgspec.structs.fields(Settings):
        default = field.default_factory() if field.default_factory is not msgspec.NODEFAULT else field.default
        if isinstance(default, msgspec.Struct):
            keys += [f"{field.name}.{sub.name}" for sub in msgspec.structs.fields(type(default))]
        else:
            keys.append(field.name)
    return keys


def test_every_settings_key_is_in_the_configuration_reference():
    reference = (REPO / "docs" / "configuration.md").read_text()
    keys = _dotted_keys()
    assert len(keys) > 15
    missing = [key for key in keys if f"`{key}`" not in reference]
    assert missing == []


def test_shipped_config_file_loads_and_names_the_documented_sections():
    settings = load_settings(REPO / "config.yaml", environ={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8006
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    assert set(raw) == {"server", "claude", "storage", "redis", "auth", "pool", "models"}
