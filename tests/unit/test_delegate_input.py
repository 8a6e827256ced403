"""A sub-agent's input, built from its parent's and the `delegate` call's arguments
(workflows/delegation.py): it may narrow what the parent may do, never widen it."""

from __future__ import annotations

from typing import Any

import pytest
from tether.contracts import AgentRunInput, ModelSpec
from tether.contracts.agents import AgentsPolicy, DelegateArguments
from tether.workflows.delegation import child_input

POLICY = AgentsPolicy(max_depth=2, max_children=4)
PARENT = AgentRunInput.model_validate({
    "task": "plan", "model": "openai:gpt-4o", "fallback_models": ["anthropic:claude-x"],
    "tools": ["python", "shell"], "approval": {"tools": ["shell"]},
    "budget": {"account": "team-a"},
    "sandbox": {"network": {"allow": ["pypi.evil.example"]}, "memory_mb": 1024},
    "agents": {"max_depth": 2, "max_children": 4},
})


def child(**arguments: Any) -> AgentRunInput:
    models = [PARENT.model, *PARENT.fallback_models]
    return child_input(PARENT, models, DelegateArguments(task="sub", **arguments), POLICY)


def test_what_the_call_leaves_out_is_the_parents():
    made = child()
    assert (made.model, made.fallback_models) == (PARENT.model, PARENT.fallback_models)
    assert made.tools == PARENT.tools
    assert (made.sandbox, made.system_prompt) == (PARENT.sandbox, PARENT.system_prompt)
    assert made.agents == AgentsPolicy(max_depth=2, max_children=4, depth=1)


def test_a_model_of_its_own_comes_without_the_parents_fallbacks():
    made = child(model="anthropic:claude-y")
    assert (made.model, made.fallback_models) == (ModelSpec(provider="anthropic", name="claude-y"), [])


def test_a_tool_the_parent_lacks_is_refused():
    with pytest.raises(ValueError, match=r"only this run's tools \(python, shell\), not read_file"):
        child(tools=["python", "read_file"])


@pytest.mark.parametrize("sandbox", [
    {"memory_mb": 2048}, {"image": "other:latest"}, {"network": {"allow": ["*.evil.example"]}},
])
def test_a_sandbox_wider_than_the_parents_is_refused(sandbox: dict[str, Any]):
    with pytest.raises(ValueError, match="would widen it"):
        child(sandbox=sandbox)


def test_a_narrower_sandbox_is_the_childs():
    made = child(sandbox={"memory_mb": 256, "network": "none"})
    assert (made.sandbox.memory_mb, made.sandbox.network) == (256, "none")


def test_the_parents_approvals_bind_the_child_whatever_the_call_asks():
    assert child(approval={"tools": []}).approval.tools == ["shell"]
    assert child(approval={"tools": ["python"]}).approval.tools == ["shell", "python"]


def test_the_child_is_charged_to_the_parents_account_whatever_the_call_names():
    assert child(budget={"account": "team-b", "max_steps": 3}).budget.account == "team-a"


def test_invalid_arguments_are_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"invalid delegate arguments: cpus: Input should be greater than 0"):
        child(sandbox={"cpus": -1})
