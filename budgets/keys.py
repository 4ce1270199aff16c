"""Projects and their API keys in SQLite. Keys are shown once and stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Literal, cast

import sqlite_utils
from msgspec import Struct, structs

from core.errors import InvalidRequest

KEY_PREFIX = "sk-cp-"
_VISIBLE = 12  # characters of a key kept in clear for listing ("sk-cp-AbCdEf")

BudgetPeriod = Literal["total", "daily", "monthly"]

# Project names end up in metric labels, log lines and terminal output, so they are plain tokens:
# the one rule, checked wherever a project is written (the admin API, the command, upsert_project).
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
PROJECT_NAME_RULE = "Project names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."


class ProjectNameError(InvalidRequest):
    """A project name that breaks the rule: a 400 over HTTP, a message from the command."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Invalid project name {name[:80]!r}. {PROJECT_NAME_RULE}", param="name")
        self.name = name


def valid_project_name(name: str) -> bool:
    return _PROJECT_NAME.fullmatch(name) is not None


def check_project_name(name: str) -> str:
    """`name` itself, or ProjectNameError."""
    if not valid_project_name(name):
        raise ProjectNameError(name)
    return name


class Project(Struct, kw_only=True):
    name: str
    budget_usd: float | None = None
    budget_period: BudgetPeriod = "total"
    rpm: int | None = None
    tpm: int | None = None
    created_at: float = 0.0
    # The most of any Claude plan window this project may use, as a fraction (see budgets/plan_share.py).
    plan_share: float | None = None


_PROJECT_FIELDS = [field.name for field in structs.fields(Project)]
_PROJECT_COLUMNS = ", ".join(_PROJECT_FIELDS)


class ApiKey(Struct, kw_only=True):
    id: int
    project: str
    prefix: str
    created_at: float
    revoked_at: float | None = None


class Principal(Struct, kw_only=True):
    """Who is calling: the project a verified key belongs to, and the key."""

    project: Project
    key: ApiKey


def hash_key(secret: str) -> str:
    # Keys are 256-bit random secrets, so a plain sha256 is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Projects and keys under `storage.path`; one instance per process, opened by its owner."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        if "projects" not in self.db.table_names():
            self.db.table("projects").create(
                {
                    "name": str,
                    "budget_usd": float,
                    "budget_period": str,
                    "rpm": int,
                    "tpm": int,
                    "created_at": float,
                    "plan_share": float,
                },
                pk="name",
            )
        if "api_keys" not in self.db.table_names():
            self.db.table("api_keys").create(
                {
                    "id": int,
                    "project": str,
                    "prefix": str,
                    "key_hash": str,
                    "created_at": float,
                    "revoked_at": float,
                },
                pk="id",
                foreign_keys=[("project", "projects", "name")],
            )
            self.db.table("api_keys").create_index(["key_hash"], unique=True)

    def upsert_project(self, project: Project) -> Project:
        check_project_name(project.name)
        existing = self.get_project(project.name)
        created = existing.created_at if existing else time.time()
        saved = structs.replace(project, created_at=created)
        self.db.table("projects").upsert(structs.asdict(saved), pk="name")
        return saved

    def get_project(self, name: str) -> Project | None:
        cursor = self.db.execute(f"select {_PROJECT_COLUMNS} from projects where name = ?", [name])
        row = cursor.fetchone()
        return Project(**dict(zip(_PROJECT_FIELDS, row, strict=True))) if row else None

    def create_key(self, project: str) -> tuple[str, ApiKey]:
        """A new key for an existing project: (the secret, shown once, and its record)."""
        if self.get_project(project) is None:
            raise KeyError(project)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix, created = secret[:_VISIBLE], time.time()
        row = {
            "project": project,
            "prefix": prefix,
            "key_hash": hash_key(secret),
            "created_at": created,
            "revoked_at": None,
        }
        # An insert always sets last_pk: here the integer `id` SQLite assigned.
        key_id = cast(int, self.db.table("api_keys").insert(row).last_pk)
        return secret, ApiKey(id=key_id, project=project, prefix=prefix, created_at=created)

    def verify(self, secret: str) -> ApiKey | None:
        """The live key matching `secret`, or None for unknown and revoked keys."""
        digest = hash_key(secret)
        # Plain SQL: this runs on every request, and sqlite_utils' table objects introspect the schema.
        cursor = self.db.execute(
            "select id, project, prefix, key_hash, created_at, revoked_at from api_keys where key_hash = ?", [digest]
        )
        columns = [column[0] for column in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(columns, values, strict=True))
            # The lookup is by hash; the constant-time compare keeps timing independent of the match.
            if hmac.compare_digest(row["key_hash"], digest) and row["revoked_at"] is None:
                return _key(row)
        return None

    def get_key(self, key_id: int) -> ApiKey | None:
        rows = list(self.db["api_keys"].rows_where("id = ?", [key_id]))
        return _key(rows[0]) if rows else None

    def list_projects(self) -> list[Project]:
        return [Project(**row) for row in self.db["projects"].rows_where(order_by="name")]

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        where, args = ("project = ?", [project]) if project else (None, None)
        return [_key(row) for row in self.db["api_keys"].rows_where(where, args, order_by="id")]

    def revoke(self, prefix_or_id: str) -> int:
        """Revokes keys by id or visible prefix; returns how many were revoked."""
        rows = self.db["api_keys"].rows_where(
            "(prefix = ? or cast(id as text) = ?) and revoked_at is null", [prefix_or_id, prefix_or_id]
        )
        ids = [row["id"] for row in rows]
        now = time.time()
        for key_id in ids:
            self.db.table("api_keys").update(key_id, {"revoked_at": now})
        return len(ids)


def _key(row: dict) -> ApiKey:
    return ApiKey(
        id=row["id"],
        project=row["project"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
