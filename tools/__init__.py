"""Tools users bring: typed Python functions on the worker, offered to runs by name.

    # shop/tools.py, named on the worker by TETHER_TOOLS=shop.tools
    def lookup_order(order_id: str) -> dict:
        \"\"\"Look an order up by its id.\"\"\"
        ...

Plain functions need nothing of tether's; `tether.tool` sets a name, a timeout, retries and
which exceptions are transient, and `tether.tool_context()` gives a call its idempotency key.
"""

from tether.tools.context import ToolContext, tool_context
from tether.tools.decorator import ToolOptions, tool
from tether.tools.registry import FunctionTool, FunctionTools, ToolLoadError

__all__ = ["FunctionTool", "FunctionTools", "ToolContext", "ToolLoadError", "ToolOptions",
           "tool", "tool_context"]
