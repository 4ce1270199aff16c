"""A small typed client for what the OpenAI SDK does not cover: usage, routing and the admin API.

For chat, completions, files and batches use the official `openai` SDK against the same base URL.

    from proxy.client import ProxyClient
    admin = ProxyClient("http://127.0.0.1:8006", admin_key="...")
    key = admin.create_key("team-a").key
    print(ProxyClient("http://127.0.0.1:8006", api_key=key).usage().total_cost_usd)

`AsyncProxyClient` has the same methods, as coroutines. Errors mirror the OpenAI SDK's classes.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx
import msgspec

from budgets.guard import BudgetStatus
from budgets.keys import ApiKey
from proxy.wire.usage import RouteReport, UsageReport

T = TypeVar("T")


class APIError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.type = type
        self.code = code
        self.param = param


class APIConnectionError(APIError):
    pass


class APIStatusError(APIError):
    pass


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


# The server's own answer types, so client and server cannot drift apart.
Usage = UsageReport
RouteDecision = RouteReport


class Project(msgspec.Struct, kw_only=True):
    name: str
    budget_usd: float | None
    budget_period: str
    rpm: int | None
    tpm: int | None
    created_at: float
    budget: BudgetStatus
    plan_share: float | None = None


class CreatedKey(msgspec.Struct, kw_only=True):
    key: str
    id: int
    prefix: str
    project: str


class _List(msgspec.Struct, Generic[T]):
    data: list[T]


class _Call(msgspec.Struct):
    method: str
    path: str
    admin: bool
    result: Any
    json: Any = None
    params: dict[str, Any] | None = None
    many: bool = False  # the answer is OpenAI's {"object": "list", "data": [...]}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": response.text or response.reason_phrase}
    kind = _BY_STATUS.get(response.status_code, InternalServerError if response.status_code >= 500 else APIStatusError)
    raise kind(
        error.get("message", ""),
        status_code=response.status_code,
        type=error.get("type"),
        code=error.get("code"),
        param=error.get("param"),
    )


def _decode(call: _Call, response: httpx.Response) -> Any:
    _raise_for(response)
    if call.many:
        # The item type is chosen at run time, which mypy cannot follow.
        return msgspec.json.decode(response.content, type=_List[call.result]).data  # type: ignore[name-defined]  # see above
    return msgspec.json.decode(response.content, type=call.result)


class _Base:
    """Every endpoint once; `_execute` makes it blocking or a coroutine."""

    def __init__(self, base_url: str, *, api_key: str | None = None, admin_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.admin_key = admin_key

    def _headers(self, admin: bool) -> dict[str, str]:
        key = self.admin_key if admin else self.api_key
        if key is None:
            raise AuthenticationError("this call needs " + ("an admin_key" if admin else "an api_key"))
        return {"Authorization": f"Bearer {key}"}

    def _execute(self, call: _Call) -> Any:
        raise NotImplementedError

    # With a project key

    def usage(self, *, start: float | None = None, end: float | None = None) -> Usage:
        params = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        return self._execute(_Call("GET", "/v1/usage", False, Usage, params=params))

    def route(self, messages: list[dict[str, Any]], *, model: str = "auto", **params: Any) -> RouteDecision:
        body = {"model": model, "messages": messages, **params}
        return self._execute(_Call("POST", "/v1/route", False, RouteDecision, json=body))

    # With the admin key

    def list_projects(self) -> list[Project]:
        return self._execute(_Call("GET", "/admin/projects", True, Project, many=True))

    def create_project(
        self,
        name: str,
        *,
        budget_usd: float | None = None,
        budget_period: str = "total",
        rpm: int | None = None,
        tpm: int | None = None,
        plan_share: float | None = None,
    ) -> Project:
        body = {
            "name": name,
            "budget_usd": budget_usd,
            "budget_period": budget_period,
            "rpm": rpm,
            "tpm": tpm,
            "plan_share": plan_share,
        }
        return self._execute(_Call("POST", "/admin/projects", True, Project, json=body))

    def get_project(self, name: str) -> Project:
        return self._execute(_Call("GET", f"/admin/projects/{name}", True, Project))

    def update_project(self, name: str, **changes: Any) -> Project:
        return self._execute(_Call("PATCH", f"/admin/projects/{name}", True, Project, json=changes))

    def create_key(self, project: str) -> CreatedKey:
        return self._execute(_Call("POST", f"/admin/projects/{project}/keys", True, CreatedKey))

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        params = {"project": project} if project else None
        return self._execute(_Call("GET", "/admin/keys", True, ApiKey, params=params, many=True))

    def revoke_key(self, key_id_or_prefix: str | int) -> dict[str, Any]:
        return self._execute(_Call("POST", f"/admin/keys/{key_id_or_prefix}/revoke", True, dict))

    def project_usage(self, name: str, *, start: float | None = None, end: float | None = None) -> Usage:
        params = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        return self._execute(_Call("GET", f"/admin/usage/{name}", True, Usage, params=params))


class ProxyClient(_Base):
    """Blocking client."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8006",
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, api_key=api_key, admin_key=admin_key)
        self._http = httpx.Client(timeout=timeout)

    def _execute(self, call: _Call) -> Any:
        try:
            response = self._http.request(
                call.method,
                self.base_url + call.path,
                headers=self._headers(call.admin),
                json=call.json,
                params=call.params,
            )
        except httpx.HTTPError as exc:
            raise APIConnectionError(f"could not reach {self.base_url}: {exc}") from exc
        return _decode(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncProxyClient(_Base):
    """The same methods, as coroutines."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8006",
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, api_key=api_key, admin_key=admin_key)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def _execute(self, call: _Call) -> Any:
        try:
            response = await self._http.request(
                call.method,
                self.base_url + call.path,
                headers=self._headers(call.admin),
                json=call.json,
                params=call.params,
            )
        except httpx.HTTPError as exc:
            raise APIConnectionError(f"could not reach {self.base_url}: {exc}") from exc
        return _decode(call, response)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncProxyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
