"""The package's own client for usage, routing and the admin API, against the live server."""

from __future__ import annotations

import asyncio

import openai
import pytest

from proxy.client import (
    AsyncProxyClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProxyClient,
)
from tests.support.server import ADMIN_KEY

pytestmark = pytest.mark.e2e


def test_admin_and_project_calls(server, upstream):
    with ProxyClient(server.url, admin_key=ADMIN_KEY) as admin:
        project = admin.create_project("client-made", budget_usd=7.5, rpm=100)
        assert (project.name, project.budget_usd, project.budget.remaining_usd) == ("client-made", 7.5, 7.5)
        with pytest.raises(ConflictError) as conflict:
            admin.create_project("client-made")
        assert conflict.value.status_code == 409
        created = admin.create_key("client-made")
        assert created.key.startswith("sk-cp-")
        assert [k.prefix for k in admin.list_keys("client-made")] == [created.prefix]
        assert "client-made" in [p.name for p in admin.list_projects()]
        assert admin.update_project("client-made", tpm=50_000).tpm == 50_000
        with pytest.raises(NotFoundError):
            admin.get_project("no-such-project")

        sdk = openai.OpenAI(base_url=server.base_url, api_key=created.key, max_retries=0)
        reply = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "via client key"}])
        with ProxyClient(server.base_url, api_key=created.key) as mine:
            usage = mine.usage()
            assert usage.requests == 1 and usage.prompt_tokens == reply.usage.prompt_tokens
            decision = mine.route([{"role": "user", "content": "Prove that 2 is prime."}])
            assert decision.claude_model == "opus" and decision.reasons == ["math or a proof"]
            with pytest.raises(PermissionDeniedError):
                ProxyClient(server.url, admin_key=created.key).list_projects()
        assert admin.project_usage("client-made").requests == 1
        assert admin.revoke_key(created.prefix)["revoked"] == 1
        with pytest.raises(AuthenticationError) as denied:
            ProxyClient(server.url, api_key=created.key).usage()
        assert denied.value.code == "invalid_api_key"


def test_async_client(server):
    async def run():
        async with AsyncProxyClient(server.url, api_key=server.api_key) as client:
            usage, decision = await asyncio.gather(
                client.usage(start=0), client.route([{"role": "user", "content": "hi"}])
            )
            return usage, decision

    usage, decision = asyncio.run(run())
    assert usage.project == "test-project"
    assert decision.claude_model == "haiku"
