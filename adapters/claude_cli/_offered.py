"""Which caller tools a process's CLI offers the model, and which tool sets it can switch to.

Measured on CLI 2.1.328: the caller's tools reach the model through the in-process MCP server
`proxy` (see `tool_bridge`). Once a request went upstream with tools, every later request of
that process carries them too, as long as `proxy` is registered: a rewind to an empty
conversation, `notifications/tools/list_changed` and removing and adding the server again all
leave the earlier tools in place, the new ones added after them (the CLI keeps its tool list
stable for the prompt cache). A request made while `proxy` is not registered clears that
memory. So a process whose last upstream request offered tools `T` may serve `T` again, or no
tools once `proxy` is removed (`mcp_set_servers` with no servers); a process whose last
request offered none may take any tool set, `proxy` being added then. In each case the
upstream receives exactly the request body a fresh process sends (`tests/e2e/test_reuse.py`).
"""

from __future__ import annotations

from typing import Any

from adapters.claude_cli.tool_bridge import SERVER

ADD_SERVER: dict[str, Any] = {"subtype": "mcp_set_servers", "servers": {SERVER: {"type": "sdk", "name": SERVER}}}
REMOVE_SERVERS: dict[str, Any] = {"subtype": "mcp_set_servers", "servers": {}}


class OfferedTools:
    """One process's tool state. Tool sets are identified by a key (None: no tools).

    - `registered`: whether `proxy` is registered in the CLI now.
    - `sticky`: the tool set the CLI may still offer from an earlier request (None: none).
    """

    def __init__(self) -> None:
        self.registered = False
        self.sticky: str | None = None

    def can_serve(self, tools: str | None) -> bool:
        """Whether a request offering `tools` gets exactly them (nothing left over)."""
        return tools is None or self.sticky is None or self.sticky == tools

    def rank(self, tools: str | None) -> int | None:
        """How well it fits a request offering `tools`: None, not at all; 0, best (it keeps
        the other processes' choices open); 1, it fits. The same tools fit a process offering
        them best, and no tools one offering some, which they free for any set."""
        if not self.can_serve(tools):
            return None
        return 0 if (self.sticky == tools if tools is not None else self.sticky is not None) else 1

    def change_for(self, tools: str | None) -> dict[str, Any] | None:
        """The control request that makes the CLI offer `tools`, or None when it does already."""
        if tools is None and self.registered:
            return REMOVE_SERVERS
        if tools is not None and not self.registered:
            return ADD_SERVER
        return None

    def set_up(self, tools: str | None) -> None:
        """The CLI was set up to offer `tools` (at `initialize`, or by `change_for`'s request).
        Registering counts as offering: the CLI lists the tools as soon as it connects."""
        self.registered = tools is not None
        if tools is not None:
            self.sticky = tools

    def reached_upstream(self) -> None:
        """A request of the current set-up went upstream: without `proxy`, nothing is left over."""
        if not self.registered:
            self.sticky = None
