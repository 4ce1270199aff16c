"""Projects and API keys: hashed storage, verification, revocation, and the `keys` command."""

from __future__ import annotations

import sqlite3

import pytest

from budgets.database import database_path, open_database
from budgets.keys import (
    KEY_PREFIX,
    PROJECT_NAME_RULE,
    KeyStore,
    Project,
    ProjectNameError,
    hash_key,
    valid_project_name,
)
from proxy.cli import main


@pytest.fixture()
def store(tmp_path):
    return KeyStore(open_database(tmp_path))


def test_created_key_verifies_and_only_its_hash_is_stored(store, tmp_path):
    store.upsert_project(Project(name="alpha", budget_usd=3.0))
    secret, key = store.create_key("alpha")
    assert secret.startswith(KEY_PREFIX) and len(secret) > 40
    assert key.prefix == secret[:12]
    assert store.verify(secret).id == key.id
    assert store.verify(secret + "x") is None
    assert store.verify("") is None
    dump = "\n".join(sqlite3.connect(database_path(tmp_path)).iterdump())
    assert secret not in dump
    assert hash_key(secret) in dump


def test_keys_are_unique_and_belong_to_their_project(store):
    store.upsert_project(Project(name="alpha"))
    store.upsert_project(Project(name="beta"))
    first, _ = store.create_key("alpha")
    second, _ = store.create_key("beta")
    assert first != second
    assert store.verify(first).project == "alpha"
    assert store.verify(second).project == "beta"
    assert [k.project for k in store.list_keys("beta")] == ["beta"]


def test_revoked_key_no_longer_verifies(store):
    store.upsert_project(Project(name="alpha"))
    secret, key = store.create_key("alpha")
    other, _ = store.create_key("alpha")
    assert store.revoke(key.prefix) == 1
    assert store.verify(secret) is None
    assert store.verify(other) is not None
    assert store.revoke(key.prefix) == 0  # already revoked
    assert store.list_keys()[0].revoked_at is not None


def test_key_for_unknown_project_is_refused(store):
    with pytest.raises(KeyError):
        store.create_key("nobody")


def test_upsert_keeps_creation_time_and_updates_limits(store):
    first = store.upsert_project(Project(name="alpha", rpm=5))
    second = store.upsert_project(Project(name="alpha", rpm=9, budget_period="daily"))
    assert second.created_at == first.created_at
    assert store.get_project("alpha").rpm == 9
    assert store.get_project("alpha").budget_period == "daily"


def test_keys_command_prints_the_key_alone_on_the_last_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\n")
    args = ["keys", "create", "--config", str(config), "--project", "demo", "--budget-usd", "2.5", "--rpm", "60"]
    assert main(args) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith(KEY_PREFIX) and " " not in secret
    store = KeyStore(open_database(tmp_path / "data"))
    assert store.verify(secret).project == "demo"
    assert store.get_project("demo").budget_usd == 2.5
    assert main(["keys", "set-budget", "--config", str(config), "--project", "demo", "--tpm", "1000"]) == 0
    assert store.get_project("demo").tpm == 1000
    assert store.get_project("demo").rpm == 60
    assert main(["keys", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "demo" in listing and secret not in listing
    assert main(["keys", "revoke", "--config", str(config), secret[:12]]) == 0
    assert store.verify(secret) is None
    assert main(["keys", "set-budget", "--config", str(config), "--project", "ghost"]) == 1


BAD_NAMES = ["", "-lead", "a b", 'x"}', "x\ny", "x\r", "x\0", "a/b", "ü", "a" * 65, 'x"} 1\nevil{project="y']


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_store_refuses_a_bad_project_name(store, name):
    assert not valid_project_name(name)
    with pytest.raises(ProjectNameError):
        store.upsert_project(Project(name=name))
    assert store.list_projects() == []


@pytest.mark.parametrize("name", ["a", "team-a", "Team_1.prod", "9", "a" * 64])
def test_good_project_names_pass(store, name):
    assert valid_project_name(name)
    assert store.upsert_project(Project(name=name)).name == name


@pytest.mark.parametrize("command", ["create", "set-budget"])
def test_keys_command_refuses_a_bad_project_name(tmp_path, capsys, command):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\n")
    hostile = 'x"} 1\nclaude_proxy_spend_usd_total{project="y'
    assert main(["keys", command, "--config", str(config), "--project", hostile]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [message] = captured.err.splitlines()  # the name's newline is shown escaped, not printed
    assert message.startswith("claude-proxy: Invalid project name ")
    assert PROJECT_NAME_RULE in message
    assert not (tmp_path / "data").exists()  # nothing was opened or created


@pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")
def test_admin_api_refuses_a_bad_project_name_with_the_same_rule(tmp_path):
    from litestar.testing import TestClient

    from proxy.app import create_app
    from proxy.settings import load_settings
    from tests.support.fake_backend import FakeBackend

    settings = load_settings(
        None, environ={}, overrides={"storage.path": str(tmp_path), "auth.admin_key": "admin-secret"}
    )
    with TestClient(app=create_app(settings, backend=FakeBackend())) as client:
        headers = {"Authorization": "Bearer admin-secret"}
        refused = client.post("/admin/projects", json={"name": 'x"}\ny'}, headers=headers)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "name")
        assert PROJECT_NAME_RULE in error["message"]
        assert client.post("/admin/projects", json={"name": "team-a"}, headers=headers).status_code == 200
