"""Run inputs for fuzzing: a valid base, one field of it replaced by a hostile value, and
valid inputs made of odd text. Shared by the contract-level and the workflow-level tests."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.strategies import ANY_JSON, deep_values, huge_text, odd_text
from tests.scripts import scripted_run, turn

FIELDS: tuple[tuple[str, ...], ...] = (
    ("task",), ("model",), ("model", "provider"), ("model", "script"), ("fallback_models",),
    ("tools",), ("budget",), ("budget", "max_steps"), ("budget", "max_tokens"),
    ("budget", "max_cost_usd"), ("budget", "max_seconds"), ("budget", "on_exhausted"),
    ("sandbox",), ("sandbox", "cpus"), ("sandbox", "memory_mb"), ("sandbox", "pids"),
    ("sandbox", "disk_mb"), ("sandbox", "network"),
    ("sandbox", "tool_timeout_seconds"), ("sandbox", "output_limit_bytes"),
    ("approval", "tools"), ("approval", "timeout_seconds"), ("mcp_servers",),
    ("continue_as_new_after_steps",), ("system_prompt",), ("no_such_field",),
)
"""Where a hostile value goes: every field of the input, and one it doesn't have."""

HOSTILE: st.SearchStrategy[Any] = st.one_of(
    ANY_JSON, deep_values(max_depth=120), huge_text(max_chars=50_000),
    st.sampled_from([-1, 0, 2**63, 10**30, 1e308, -1e308, "", [], {}, None, True]),
)


def base_input(answer: str = "done") -> dict[str, Any]:
    """A valid input whose run ends at its first model turn, without a sandbox."""
    return scripted_run("fuzz", turn(answer), tools=["shell"], budget={"max_steps": 3},
                        sandbox={"tool_timeout_seconds": 10}, approval={"tools": []})


def with_value(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = base_input()
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return raw


@st.composite
def mutated_inputs(draw: st.DrawFn) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A base input with one field replaced: (the field's path, the input)."""
    path = draw(st.sampled_from(FIELDS))
    return path, with_value(path, draw(HOSTILE))


@st.composite
def valid_inputs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid input of odd or long text and odd but legal limits: (its answer, the input)."""
    answer = draw(st.one_of(odd_text(), huge_text(max_chars=60_000)))
    raw = base_input(answer)
    raw["task"] = draw(st.one_of(odd_text(min_size=1), huge_text(max_chars=60_000)))
    raw["system_prompt"] = draw(odd_text())
    raw["budget"] = {
        "max_steps": draw(st.one_of(st.none(), st.integers(1, 2**62))),
        "max_tokens": draw(st.one_of(st.none(), st.integers(10**6, 2**62))),  # a turn fits
        "max_seconds": draw(st.one_of(st.none(), st.floats(30, 3e7))),
    }
    return answer, raw
