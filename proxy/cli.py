"""The `claude-proxy` command."""

from __future__ import annotations

import argparse
import logging
import sys

from proxy.settings import SettingsError, load_settings

log = logging.getLogger("claude_proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-proxy", description="OpenAI-compatible API on Claude Code")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", default="config.yaml", help="YAML config file (default ./config.yaml)")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app

    settings = load_settings(args.config, overrides={"server.host": args.host, "server.port": args.port})
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if settings.server.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: anyone who can reach this address can spend your Claude quota",
            settings.server.host,
        )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=settings.server.shutdown_grace_s,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
    except SettingsError as exc:
        sys.stderr.write(f"claude-proxy: {exc}\n")
        return 2
    return 1
