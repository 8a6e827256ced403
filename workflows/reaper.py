"""SandboxReaper: the scheduled sweep that removes sandboxes whose run has closed.

A run releases its sandbox in a `finally`; the reaper covers what that cannot: a worker
killed mid-release, an engine restarted under a run, a run terminated from outside.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tether.contracts import ReapInput, ReapReport
    from tether.contracts.activities import REAP_SANDBOXES
    from tether.contracts.names import SANDBOX_REAPER
    from tether.workflows.options import DEFAULT_OPTIONS

REAPER_WORKFLOW_ID = "tether-sandbox-reaper"
REAPER_EVERY = timedelta(minutes=5)


@workflow.defn(name=SANDBOX_REAPER)
class SandboxReaper:
    @workflow.run
    async def run(self, input: ReapInput) -> ReapReport:
        return await workflow.execute_activity(
            REAP_SANDBOXES, input, result_type=ReapReport,
            start_to_close_timeout=DEFAULT_OPTIONS.reap_timeout,
            summary="remove sandboxes of closed runs",
        )
