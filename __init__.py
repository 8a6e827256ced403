"""tether: the runtime layer for production AI agents, on Temporal.

    import tether

    client = await tether.connect()
    handle = await tether.start_run(client, tether.AgentRunInput(task="..."))
    result = await handle.result()          # a tether.AgentRunResult

and every other way to talk to a run, one call each (`tether.client`): get_status, watch,
approve, deny, cancel, send_message, extend, fork_run, get_artifacts, download_artifacts, list_runs;
and budget accounts shared by runs: set_account, account_status.

The names below load on first use: `import tether.contracts` (what workflow code imports)
stays light, and nothing here pulls in Docker or the model SDKs until asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.client import (
        account_status,
        approve,
        cancel,
        connect,
        deny,
        download_artifacts,
        extend,
        fork_run,
        get_artifacts,
        get_run,
        get_status,
        get_transcript,
        get_waiting_calls,
        list_runs,
        send_message,
        set_account,
        start_run,
        watch,
    )
    from tether.contracts import AgentRunInput, AgentRunResult, RunStatus, StepRecord
    from tether.plugin import TetherPlugin
    from tether.settings import TetherSettings
    from tether.tools import ToolContext, tool, tool_context
    from tether.workflows.agent import AgentRun

_PUBLIC = {
    "AgentRun": "tether.workflows.agent",
    "AgentRunInput": "tether.contracts",
    "AgentRunResult": "tether.contracts",
    "RunStatus": "tether.contracts",
    "StepRecord": "tether.contracts",
    "TetherPlugin": "tether.plugin",
    "TetherSettings": "tether.settings",
    "ToolContext": "tether.tools",
    "tool": "tether.tools",
    "tool_context": "tether.tools",
    "account_status": "tether.client",
    "approve": "tether.client",
    "cancel": "tether.client",
    "connect": "tether.client",
    "deny": "tether.client",
    "download_artifacts": "tether.client",
    "extend": "tether.client",
    "fork_run": "tether.client",
    "get_artifacts": "tether.client",
    "get_run": "tether.client",
    "get_status": "tether.client",
    "get_transcript": "tether.client",
    "get_waiting_calls": "tether.client",
    "list_runs": "tether.client",
    "send_message": "tether.client",
    "set_account": "tether.client",
    "start_run": "tether.client",
    "watch": "tether.client",
}

__all__ = [
    "AgentRun", "AgentRunInput", "AgentRunResult", "RunStatus", "StepRecord", "TetherPlugin",
    "TetherSettings", "ToolContext", "account_status", "approve", "cancel", "connect", "deny",
    "download_artifacts", "extend", "fork_run", "get_artifacts", "get_run", "get_status",
    "get_transcript", "get_waiting_calls", "list_runs", "send_message", "set_account",
    "start_run", "tool", "tool_context", "watch",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
