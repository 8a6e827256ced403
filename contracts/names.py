"""The names a run answers to, each defined once: its workflow type, queries, updates and
search attributes. The workflow declares itself with them, the client and the CLI call it
by them, and programs in other languages (`tether schema`, docs/cli.md) use the same strings:
renaming one here is a change to the contract that every such program sees.
"""

from __future__ import annotations

from typing import Final, Literal

AGENT_RUN: Final = "AgentRun"
SANDBOX_REAPER: Final = "SandboxReaper"
BUDGET_ACCOUNT: Final = "BudgetAccount"

# Queries: answered by a worker, never recorded in the run's history.
QUERY_STATUS: Final = "status"
QUERY_PROGRESS: Final = "progress"
QUERY_TRANSCRIPT: Final = "transcript"
QUERY_ARTIFACTS: Final = "artifacts"
QUERY_SHOW_ACCOUNT: Final = "show"
"""A `BudgetAccount`'s limits, usage and reservations."""
NEVER_STARTED: Final = "the run's input is invalid: it never started"
"""What a run whose input was refused answers every query and update: it has no state."""

# Updates: each one accepted is an event in the run's history, under this name.
UPDATE_APPROVE: Final = "approve"
UPDATE_CANCEL: Final = "cancel"
UPDATE_SEND_MESSAGE: Final = "send_message"
UPDATE_EXTEND_BUDGET: Final = "extend_budget"

# Signals: what a sub-agent tells its parent (its calls waiting for a person).
SIGNAL_CHILD_WAITING: Final = "child_waiting"
# A `BudgetAccount`'s updates: what runs and `tether account set` send it.
UPDATE_RESERVE: Final = "reserve"
UPDATE_COMMIT: Final = "commit"
UPDATE_RELEASE: Final = "release"
UPDATE_SET_LIMITS: Final = "set_limits"

# Search attributes: what `tether list --status` and Temporal's visibility filter runs by.
SEARCH_STATUS: Final = "TetherStatus"
SEARCH_STEPS: Final = "TetherSteps"
SEARCH_COST_USD: Final = "TetherCostUsd"
SEARCH_MODEL: Final = "TetherModel"
SEARCH_FORK_OF: Final = "TetherForkOf"
"""A fork's origin, the workflow id it was forked from; unset on any other run."""
SEARCH_ATTRIBUTE_TYPES: Final[dict[str, Literal["Keyword", "Int", "Double"]]] = {
    SEARCH_STATUS: "Keyword",
    SEARCH_STEPS: "Int",
    SEARCH_COST_USD: "Double",
    SEARCH_MODEL: "Keyword",
    SEARCH_FORK_OF: "Keyword",
}
"""Each attribute's type, as the server registers it (`temporal server start-dev
--search-attribute NAME=TYPE`, or the operator service)."""
