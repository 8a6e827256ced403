"""The bottom layer: pydantic models only, importing nothing else of tether's.

What crosses Temporal's data converter lives here: a run's input, result and status, the
conversation's messages and tool calls, and every activity's input and output.
"""

from tether.contracts.activities import (
    AcquireInput,
    ModelCallInput,
    ModelCallOutput,
    NewMessage,
    ReapInput,
    ReapReport,
    ReleaseInput,
    SandboxHandle,
    StartConversationInput,
    StartConversationOutput,
    ToolCallInput,
    ToolCallOutput,
)
from tether.contracts.messages import Message, ModelTurn, ToolCall, ToolResult, Usage
from tether.contracts.run import (
    ALL_TOOLS,
    AgentRunInput,
    AgentRunResult,
    ApprovalPolicy,
    Budget,
    BudgetView,
    FinalStatus,
    ModelPrice,
    ModelSpec,
    PendingApproval,
    RunPhase,
    RunStatus,
    SandboxSpec,
    Script,
    ScriptTurn,
    StepRecord,
    ToolName,
)

__all__ = [
    "ALL_TOOLS", "AcquireInput", "AgentRunInput", "AgentRunResult", "ApprovalPolicy", "Budget",
    "BudgetView", "FinalStatus", "Message", "ModelCallInput", "ModelCallOutput", "ModelPrice",
    "ModelSpec", "ModelTurn", "NewMessage", "PendingApproval", "ReapInput", "ReapReport",
    "ReleaseInput", "RunPhase", "RunStatus", "SandboxHandle", "SandboxSpec", "Script",
    "ScriptTurn", "StartConversationInput", "StartConversationOutput", "StepRecord", "ToolCall",
    "ToolCallInput", "ToolCallOutput", "ToolName", "ToolResult", "Usage",
]
