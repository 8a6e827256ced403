"""A live sandbox against the CIS Docker Benchmark's container-runtime section."""

from __future__ import annotations

import asyncio
import uuid

from tether.contracts import SandboxSpec
from tether.sandbox import cis

from tests.helpers import sandboxes, wait_for
from tests.sandbox.attacks import require
from tests.sandbox.direct import direct_labels

SECTION_5 = ["5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7", "5.8", "5.9", "5.10", "5.11",
             "5.12", "5.13", "5.14", "5.15", "5.16", "5.17", "5.18", "5.19", "5.20", "5.21",
             "5.22", "5.23", "5.24", "5.25", "5.26", "5.28", "5.29", "5.30", "5.31"]


def health(container_id: str) -> str | None:
    state = sandboxes().engine.api.inspect_container(container_id)["State"]
    return (state.get("Health") or {}).get("Status")


async def test_a_live_sandbox_passes_section_5_with_apparmor_the_only_exception(sandbox: str):
    await wait_for(lambda: health(sandbox) == "healthy", timeout=40, every=0.5,
                   what="the sandbox's health check to pass")
    findings = await asyncio.to_thread(cis.audit, sandbox)
    assert [f.id for f in findings] == SECTION_5
    assert [f for f in findings if f.status == "warn"] == []
    engine_options = " ".join(sandboxes().engine.info().get("SecurityOptions") or [])
    allowed = {
        "5.1": "exception" if "apparmor" not in engine_options else "pass",
        "5.2": "not applicable" if "selinux" not in engine_options else "pass",
    }
    for finding in findings:
        assert finding.status == allowed.get(finding.id, "pass"), finding
    assert await asyncio.to_thread(cis.main, [sandbox]) == 0  # `python -m sandbox.cis` agrees


async def test_a_gvisor_sandbox_passes_with_the_executors_capabilities_the_other_exception(docker_engine):
    spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require("runsc"))
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        await wait_for(lambda: health(container.id) == "healthy", timeout=40, every=0.5,
                       what="the sandbox's health check to pass")
        findings = {f.id: f for f in await asyncio.to_thread(cis.audit, container.id)}
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)
    assert findings["5.3"].status == "exception", findings["5.3"]
    assert "tools run as uid 10001 with none" in findings["5.3"].detail
    assert [f for f in findings.values() if f.status == "warn"] == []


async def test_the_audit_warns_about_a_container_without_the_hardening(docker_engine):
    plain = sandboxes().engine.containers.run(
        SandboxSpec().image, detach=True, network_mode="none",
        labels=direct_labels(), name=f"tether-test-plain-{uuid.uuid4().hex[:8]}")
    try:
        findings = await asyncio.to_thread(cis.audit, plain.id)
        assert await asyncio.to_thread(cis.main, [plain.id]) == 1
    finally:
        plain.remove(force=True)
    warned = {f.id for f in findings if f.status == "warn"}
    # No dropped capabilities, memory limit, CPU shares, read-only root, restart policy,
    # ulimits, no-new-privileges or pids limit; and not yet healthy.
    assert warned == {"5.3", "5.10", "5.11", "5.12", "5.14", "5.18", "5.25", "5.26", "5.28"}
