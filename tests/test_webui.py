"""The Web UI as a person sees it, checked in headless Chromium by scripts/webui_check.py:
for a completed run, one waiting for approval, one out of budget, one failed and one whose
sub-agent waits for approval, the run's page shows its steps' summaries, its summary and its
current details (and the last, its children)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.test_end_to_end import ROOT


async def test_each_runs_page_shows_its_steps_summary_and_details(tmp_path):
    # The script brings its own dev server (with the UI) and worker: the suite's has no UI.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "scripts/webui_check.py", "--out", str(tmp_path), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=600)
    code, out, err = process.returncode, stdout.decode(), stderr.decode()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if code == 3:
        pytest.skip(f"no headless Chromium: {lines[0]['skipped']}")
    assert code in (0, 1), err[-3000:]
    pages = {page["run"]: page for page in lines}
    assert set(pages) == {"completed", "awaiting_approval", "budget_exhausted", "failed", "sub_agents"}
    for page in pages.values():
        assert page["missing"] == [], page
        assert not page["no_summary"], page
        assert (tmp_path / f"webui-{page['run']}.png").stat().st_size > 10_000
    assert code == 0
