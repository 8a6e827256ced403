"""What a newcomer copies from the README works as written: its Python is a module that runs
(no top-level `await`), the application snippet runs a run to its end against a real server
and worker, and the input page's table lists every field of the run input."""

from __future__ import annotations

import os
import re
import sys

from tether.contracts import AgentRunInput

from tests.helpers import ROOT, run_command

README = ROOT / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_every_python_snippet_of_the_readme_compiles_as_a_module():
    assert SNIPPETS, "README.md has no Python snippet"
    for snippet in SNIPPETS:
        compile(snippet, "README.md", "exec")  # a top-level await is a SyntaxError here


async def test_the_readmes_application_snippet_runs_a_run_to_its_end_as_written(
    temporal_address: str, worker: str, tmp_path
):
    application = README.read_text().partition("## Start a run from an application")[2]
    [snippet] = re.findall(r"```python\n(.*?)```", application, flags=re.DOTALL)[:1]
    script = tmp_path / "app.py"
    script.write_text(snippet)
    code, out, err = await run_command(
        f"{sys.executable} {script}",
        env={**os.environ, "TEMPORAL_ADDRESS": temporal_address, "TETHER_TASK_QUEUE": worker})
    assert code == 0, err
    assert "completed" in out, out


def test_the_input_page_lists_every_field_of_the_run_input():
    page = (ROOT / "docs" / "input.md").read_text()
    missing = [name for name in AgentRunInput.model_fields if f"| `{name}` |" not in page]
    assert not missing, f"docs/input.md's table lacks {missing}"
