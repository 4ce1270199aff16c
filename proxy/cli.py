"""The `claude-proxy` command."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from proxy.settings import Settings, SettingsError, load_settings

log = logging.getLogger("claude_proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-proxy", description="OpenAI-compatible API on Claude Code")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", default="config.yaml", help="YAML config file (default ./config.yaml)")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    worker = commands.add_parser("worker", help="serve requests from Redis on this host's CLI pool")
    worker.add_argument("--config", default="config.yaml", help="YAML config file (default ./config.yaml)")
    keys = commands.add_parser("keys", help="manage projects and their API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key (and the project if new); prints the key last")
    create.add_argument("--project", required=True)
    _budget_flags(create)
    listing = keys.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--project")
    revoke = keys.add_parser("revoke", help="revoke a key by its id or visible prefix")
    revoke.add_argument("key", help="key id or prefix as shown by `keys list`")
    budget = keys.add_parser("set-budget", help="change a project's budget and limits")
    budget.add_argument("--project", required=True)
    _budget_flags(budget)
    batches = commands.add_parser("batches", help="inspect and cancel batches").add_subparsers(
        dest="batches_command", required=True
    )
    batch_list = batches.add_parser("list", help="batches of every project, newest first")
    batch_list.add_argument("--project")
    batch_list.add_argument("--limit", type=int, default=20)
    show = batches.add_parser("show", help="one batch with its progress")
    show.add_argument("batch_id")
    show.add_argument("--watch", action="store_true", help="redraw until the batch ends")
    cancel = batches.add_parser("cancel", help="cancel a batch (the server stops it on its next look)")
    cancel.add_argument("batch_id")
    accounts = commands.add_parser(
        "accounts", help="the Claude plan's usage windows, from a running server's GET /admin/accounts"
    )
    accounts.add_argument("--url", help="the server's base URL (default: server.host and server.port of the config)")
    for sub in (create, listing, revoke, budget, batch_list, show, cancel, accounts):
        sub.add_argument("--config", default="config.yaml", help="YAML config file (default ./config.yaml)")
    return parser


def _budget_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-usd", type=float)
    parser.add_argument("--budget-period", choices=["total", "daily", "monthly"])
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")


def _keys(args: argparse.Namespace) -> int:
    from budgets.database import open_database
    from budgets.keys import KeyStore, Project, ProjectNameError, valid_project_name

    # Checked before the database is opened, so a refused command changes nothing.
    if args.keys_command in ("create", "set-budget") and not valid_project_name(args.project):
        sys.stderr.write(f"claude-proxy: {ProjectNameError(args.project).message}\n")
        return 2
    settings = load_settings(args.config)
    store = KeyStore(open_database(settings.storage.path))
    out = sys.stdout
    if args.keys_command in ("create", "set-budget"):
        current = store.get_project(args.project)
        if current is None and args.keys_command == "set-budget":
            sys.stderr.write(f"claude-proxy: no project named {args.project!r}\n")
            return 1
        current = current or Project(name=args.project)
        for field in ("budget_usd", "budget_period", "rpm", "tpm"):
            if (value := getattr(args, field)) is not None:
                setattr(current, field, value)
        project = store.upsert_project(current)
        out.write(
            f"project {project.name}: budget_usd={project.budget_usd} period={project.budget_period} "
            f"rpm={project.rpm} tpm={project.tpm}\n"
        )
        if args.keys_command == "create":
            secret, key = store.create_key(project.name)
            out.write(f"key id {key.id} for project {key.project}; it is shown only now:\n{secret}\n")
        return 0
    if args.keys_command == "list":
        for key in store.list_keys(args.project):
            state = "revoked" if key.revoked_at else "active"
            out.write(f"{key.id}\t{key.prefix}…\t{key.project}\t{state}\n")
        return 0
    if args.keys_command == "revoke":
        count = store.revoke(args.key)
        out.write(f"revoked {count} key(s)\n")
        return 0 if count else 1
    return 1


def _accounts(args: argparse.Namespace) -> int:
    """Asks the running server (its state lives in that process) with the config's admin key."""
    import json
    import urllib.error
    import urllib.request

    settings = load_settings(args.config)
    if not settings.auth.admin_key:
        sys.stderr.write("claude-proxy: accounts needs auth.admin_key (or CLAUDE_PROXY_AUTH__ADMIN_KEY)\n")
        return 2
    host = settings.server.host if settings.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    base = (args.url or f"http://{host}:{settings.server.port}").rstrip("/")
    request = urllib.request.Request(
        base + "/admin/accounts", headers={"Authorization": f"Bearer {settings.auth.admin_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = json.loads(answer.read())["data"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"claude-proxy: could not read {base}/admin/accounts: {exc}\n")
        return 1
    out = sys.stdout
    out.write("account\tstatus\twindow\tused\tresets_at (UTC)\twindow status\n")
    if not data:
        out.write("(no plan windows seen yet: none are reported with an API key, or before a first request)\n")
    for account in data:
        windows = account.get("windows") or {"-": {}}
        for name, window in windows.items():
            used = window.get("utilization")
            resets = window.get("resets_at")
            out.write(
                f"{account.get('name')}\t{account.get('status')}\t{name}\t"
                f"{'-' if used is None else f'{used:.0%}'}\t{_utc(resets)}\t{window.get('status') or '-'}\n"
            )
    return 0


def _utc(seconds: Any) -> str:
    from datetime import UTC, datetime

    if not isinstance(seconds, (int, float)):
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from adapters.claude_cli.backend import ClaudeCliBackend
    from adapters.redis_queue.worker import Worker
    from core.redis_conn import connect

    settings = load_settings(args.config)
    _configure_logging(settings)
    if not settings.redis.url or settings.pool.size < 1:
        sys.stderr.write("claude-proxy: a worker needs redis.url and a pool.size of at least 1\n")
        return 2

    async def run() -> None:
        client = connect(settings.redis)
        backend = ClaudeCliBackend(settings.claude, settings.pool, accounts=settings.accounts, plan=settings.plan)
        await backend.start()
        worker = Worker(
            client,
            settings.redis.prefix,
            backend,
            capacity=settings.pool.size,
            claim_idle_ms=settings.workers.claim_idle_ms,
            block_ms=max(int(settings.redis.timeout_s * 500), 50),
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        finally:
            await backend.close()
            await client.aclose()

    asyncio.run(run())
    return 0


def _configure_logging(settings: Settings) -> None:
    from proxy.logs import configure

    configure(settings.server.log_level, settings.server.log_format)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import Drain, create_app
    from proxy.listener import BACKLOG, GuardedHttpToolsProtocol, connection_cap

    settings = load_settings(args.config, overrides={"server.host": args.host, "server.port": args.port})
    _configure_logging(settings)
    if settings.server.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: anyone who can reach this address can spend your Claude quota",
            settings.server.host,
        )
    drain = Drain()
    app = create_app(settings, drain=drain)
    server = settings.server
    protocol = GuardedHttpToolsProtocol.configured(server, connection_cap(server, settings.pool.size))
    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        log_config=None,  # the logging configured above, for uvicorn's loggers too
        access_log=False,  # claude_proxy.access logs each request, with its id and route template
        # httptools with head limits, a head timeout and a connection cap (proxy/listener.py);
        # uvicorn's own limit_concurrency is not used: it answers 503 only once a head is complete.
        http=protocol,
        backlog=BACKLOG,
        # Annotated int, but uvicorn only hands it to loop.call_later, which takes fractions too.
        timeout_keep_alive=server.keep_alive_s,  # type: ignore[arg-type]  # see above
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default, which lets any local peer
        # (or anyone, behind a proxy that does not overwrite the header) choose its own address.
        proxy_headers=bool(server.trusted_proxies),
        forwarded_allow_ips=list(server.trusted_proxies),
        # Annotated int, but uvicorn only hands it to asyncio.wait_for, which takes fractions too.
        timeout_graceful_shutdown=settings.server.shutdown_grace_s,  # type: ignore[arg-type]  # see above
        # Not uvloop: it starts a CLI by forking the whole server (13 ms with the event loop
        # blocked, measured), where asyncio can vfork (2 ms); httptools alone gives the HTTP speed.
        loop="asyncio",
    )

    class DrainingServer(uvicorn.Server):
        # uvicorn notices the signal on its next tick (up to 0.1 s) and keeps serving open
        # connections until then; the drain flag refuses new requests from the signal on.
        def handle_exit(self, sig: int, frame: Any) -> None:
            drain.begin()
            super().handle_exit(sig, frame)

    DrainingServer(config).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "accounts":
            return _accounts(args)
        if args.command == "batches":
            from proxy.batches.console import run_batches_command

            return run_batches_command(args, load_settings(args.config))
    except SettingsError as exc:
        sys.stderr.write(f"claude-proxy: {exc}\n")
        return 2
    return 1
