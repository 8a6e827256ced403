"""Function tools: found by the names a worker is given, described to the model from their
signatures and docstrings, and called with arguments checked against those signatures."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from tether.contracts import ToolSpec
from tether.contracts.tools import BUILTIN_TOOLS
from tether.tools.context import ToolContext, done, serving
from tether.tools.decorator import ToolOptions, options_of


class ToolLoadError(ValueError):
    """A `TETHER_TOOLS` entry that can't be made a tool: the worker can't start with it."""


class InvalidArguments(ValueError):
    """The model's arguments don't fit the function's signature."""


@dataclass(frozen=True)
class FunctionTool:
    function: Callable[..., Any]
    options: ToolOptions
    arguments: type[BaseModel]
    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.spec.name

    async def call(self, raw: dict[str, Any], context: ToolContext) -> str:
        """Runs the function; returns its result as JSON. Raises InvalidArguments, or whatever
        the function raises."""
        try:
            checked = self.arguments.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors())
            raise InvalidArguments(f"invalid arguments for {self.name}: {problems}") from None
        kwargs = {name: getattr(checked, name) for name in self.arguments.model_fields}
        token = serving(context)
        try:
            if inspect.iscoroutinefunction(self.function):
                result = await self.function(**kwargs)
            else:
                # A thread, so a blocking function can't stall the worker; the context goes along.
                result = await asyncio.to_thread(self.function, **kwargs)
        finally:
            done(token)
        return pydantic_core.to_json(result, fallback=str).decode()


def function_tool(function: Callable[..., Any]) -> FunctionTool:
    """Describes one function as a tool, or says why it can't be one."""
    options = options_of(function) or ToolOptions()
    where = f"{function.__module__}:{function.__qualname__}"
    description = inspect.getdoc(function)
    if not description:
        raise ToolLoadError(f"{where} has no docstring: the model needs one to know the tool")
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolLoadError(f"{where} takes *{parameter.name}: a tool's parameters must be named")
        if parameter.annotation is inspect.Parameter.empty:
            raise ToolLoadError(f"{where}: parameter {parameter.name!r} has no type hint")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (parameter.annotation, default)
    name = options.name or function.__name__
    if name in BUILTIN_TOOLS:
        raise ToolLoadError(f"{where}: {name!r} is a built-in tool's name; give it another (@tool(name=...))")
    arguments = create_model(  # type: ignore[call-overload]
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = arguments.model_json_schema()
    schema.pop("title", None)
    spec = ToolSpec(name=name, description=description, parameters=schema, kind="function",
                    timeout_seconds=options.timeout_seconds, retries=options.retries)
    return FunctionTool(function=function, options=options, arguments=arguments, spec=spec)


class FunctionTools:
    """The function tools one worker serves, by name."""

    def __init__(self, tools: Iterable[FunctionTool] = ()) -> None:
        self.by_name: dict[str, FunctionTool] = {}
        for tool in tools:
            if tool.name in self.by_name:
                raise ToolLoadError(f"two tools are named {tool.name!r}")
            self.by_name[tool.name] = tool

    @classmethod
    def load(cls, entries: Iterable[str], functions: Iterable[Callable[..., Any]] = ()) -> FunctionTools:
        """From `TETHER_TOOLS` entries: `module:function`, or `module` for the functions
        marked `@tool` in it (all its public functions when none is marked); and from
        `functions` given as themselves (`TetherPlugin(tools=[...])`)."""
        tools: list[FunctionTool] = []
        for entry in entries:
            tools += [function_tool(f) for f in _functions(entry.strip())]
        return cls([*tools, *map(function_tool, functions)])

    def get(self, name: str) -> FunctionTool | None:
        return self.by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self.by_name)


def _functions(entry: str) -> list[Callable[..., Any]]:
    module_name, _, attribute = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a module that fails as it runs is as unusable as a missing one
        raise ToolLoadError(
            f"tool module {module_name!r} can't be imported ({type(error).__name__}: {error}); "
            "start the worker in the directory that holds it, or add that directory to "
            "PYTHONPATH") from None
    if attribute:
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ToolLoadError(f"{module_name} has no function {attribute!r}")
        return [function]
    defined: list[Callable[..., Any]] = [
        f for _, f in inspect.getmembers(module, inspect.isfunction)
        if f.__module__ == module.__name__ and not f.__name__.startswith("_")]
    marked = [f for f in defined if options_of(f) is not None]
    found = marked or defined
    if not found:
        raise ToolLoadError(f"tool module {module_name!r} defines no public function")
    return found
