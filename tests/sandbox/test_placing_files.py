"""Placing a run's files (`place_files`): the store's bytes are checked against their digest
as they stream into the sandbox, and the sandbox's own digest of what it wrote against the
same reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from tether.activities.artifacts import place_files
from tether.store import LocalContentStore

from tests.helpers import sandboxes
from tests.sandbox.direct import call


async def test_files_are_placed_with_the_digest_the_store_names_them_by(sandbox: str, tmp_path: Path):
    store = LocalContentStore(tmp_path)
    digest = store.put(b"name,value\n")
    await place_files(store, sandboxes(), sandbox, {"in/data.csv": f"sha256:{digest}"})
    found = await call(sandbox, "sha256sum in/data.csv")
    assert found.stdout.split() == [digest, "in/data.csv"]


async def test_a_blob_altered_in_the_store_is_refused_as_it_is_placed(sandbox: str, tmp_path: Path):
    store = LocalContentStore(tmp_path)
    digest = store.put(b"the real bytes")
    (tmp_path / digest[:2] / digest[2:]).write_bytes(b"other bytes!!!")
    with pytest.raises(ApplicationError, match=f"blob {digest[:12]} .* does not hold") as refused:
        await place_files(store, sandboxes(), sandbox, {"data.txt": f"sha256:{digest}"})
    assert refused.value.type == "StoreCorrupt" and refused.value.non_retryable
    assert (await call(sandbox, "ls -A")).stdout == ""
