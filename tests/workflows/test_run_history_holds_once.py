"""History holds each thing once: a big tool argument is capped in history, yet the tool
gets all of it from the conversation store."""

from __future__ import annotations

from temporalio.client import Client
from tether import client as tether

from tests.helpers import history_text
from tests.scripts import scripted_run, turn


async def test_a_long_write_file_argument_is_capped_in_history_but_written_whole(
    temporal_client: Client, worker: str
):
    content = "".join(f"line {n:05d}\n" for n in range(5000))  # 55,000 characters
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(write_file={"path": "big.txt", "content": content}),
                     turn(shell="wc -c < big.txt; tail -n 1 big.txt"), turn("{{last_output}}")),
        task_queue=worker)
    result = await handle.result()
    assert result.output == f"{len(content)}\nline 04999"
    history = await history_text(handle)
    # The run's input holds the script once; nothing else may repeat the whole content.
    assert history.count("line 02500") == 1
