"""Who is calling: the project API key from the headers every OpenAI client sends."""

from __future__ import annotations

import hmac

from litestar import Request
from msgspec import Struct

from budgets.keys import ApiKey, KeyStore, Project
from proxy.errors import AuthenticationError, PermissionDenied


class Principal(Struct, kw_only=True):
    project: Project
    key: ApiKey


def presented_key(request: Request) -> str | None:
    """`Authorization: Bearer <key>`, else `api-key`, else `x-api-key`."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    for header in ("api-key", "x-api-key"):
        value = request.headers.get(header, "").strip()
        if value:
            return value
    return None


def authenticate(request: Request, keys: KeyStore) -> Principal:
    """The caller's project, or 401 `invalid_api_key` for a missing, unknown or revoked key."""
    secret = presented_key(request)
    if secret is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(create one with `claude-proxy keys create`)."
        )
    key = keys.verify(secret)
    project = keys.get_project(key.project) if key is not None else None
    if key is None or project is None:
        raise AuthenticationError(f"Incorrect API key provided: {secret[:8]}****.")
    return Principal(project=project, key=key)


def require_admin(request: Request, admin_key: str | None, keys: KeyStore) -> None:
    """Admin routes take only `auth.admin_key`; a valid project key gets 403, anything else 401."""
    secret = presented_key(request)
    if secret is None:
        raise AuthenticationError("The admin API needs the admin key as 'Authorization: Bearer <key>'.")
    if admin_key and hmac.compare_digest(secret.encode(), admin_key.encode()):
        return
    if keys.verify(secret) is not None:
        raise PermissionDenied("Project keys cannot use the admin API.")
    if not admin_key:
        raise PermissionDenied("The admin API is disabled: set auth.admin_key to enable it.")
    raise AuthenticationError("Incorrect admin key provided.")
