"""TetherPlugin on an application's own Client and Worker: a run completes whether the plugin
is given to the client or to the worker, and with workflows and activities on separate
workers (a workflow-only worker and a sandbox host)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import tether
from temporalio.client import Client
from temporalio.worker import Worker

from tests.helpers import sandboxes, suite_settings
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, tool_calls

RUN = scripted_run("plugin", turn(shell="echo from-the-sandbox"), turn("{{last_output}}"))


def settings_for(worker_id: str) -> tether.TetherSettings:
    """The suite's settings (its store, its server) under a worker id of the test's own."""
    return suite_settings().model_copy(update={"worker_id": worker_id})


@asynccontextmanager
async def running(workers: Sequence[Worker]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.sleep(0.5)
        for task in tasks:
            if task.done():
                task.result()
        yield
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*tasks)


def assert_nothing_left(worker_id: str) -> None:
    left = sandboxes().managed(**{"tether.worker": worker_id})
    for container in left:
        sandboxes().remove(container.id)
    assert left == []


async def test_a_plugin_on_the_client_gives_every_worker_made_from_it_all_of_tether(
    temporal_address: str, docker_engine
):
    worker_id, queue = f"plugin-{uuid.uuid4().hex[:8]}", f"plugin-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(temporal_address, plugins=[tether.TetherPlugin(settings_for(worker_id))])
    worker = Worker(client, task_queue=queue)
    registered = worker.config(active_config=True)["workflows"]
    assert {"AgentRun", "SandboxReaper"} <= {w.__name__ for w in registered}
    async with running([worker]):
        handle = await tether.start_run(client, RUN, task_queue=queue)
        assert (await handle.result()).output == "from-the-sandbox"
    assert_nothing_left(worker_id)


async def test_workflows_and_sandboxes_can_run_on_separate_workers(
    temporal_client: Client, docker_engine
):
    worker_id, queue = f"split-{uuid.uuid4().hex[:8]}", f"split-{uuid.uuid4().hex[:8]}"
    settings = settings_for(worker_id)
    workflows_only = Worker(temporal_client, task_queue=queue,
                            plugins=[tether.TetherPlugin(settings, activities=False)])
    sandbox_host = Worker(temporal_client, task_queue=queue,
                          plugins=[tether.TetherPlugin(settings, workflows=False)])
    only_workflows = workflows_only.config(active_config=True)
    # Its activities are the workflow's local ones (the last, with no engine here, sends
    # every tool call on to its sandbox's host); it polls no activity tasks.
    assert only_workflows["no_remote_activities"]
    assert [a.__name__ for a in only_workflows["activities"]] == [
        "start_conversation", "delegate_arguments", "store_tool_message", "no_sandbox_here",
        "reserve", "commit", "release"]
    assert not sandbox_host.config(active_config=True).get("workflows")
    async with running([workflows_only, sandbox_host]):
        handle = await tether.start_run(temporal_client, RUN, task_queue=queue)
        result = await handle.result()
    assert result.status == "completed" and result.output == "from-the-sandbox"
    assert [r.type for r in tool_calls(await activities(temporal_client, handle))] == ["tool_call"]
    assert_nothing_left(worker_id)
