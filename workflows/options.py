"""Every activity's timeouts and retry policy, as one typed object.

Workflow code may not read configuration at run time (a replay must make the same choices),
so these are fixed per version of the workflow code; change them here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.common import RetryPolicy


@dataclass(frozen=True)
class ActivityOptions:
    model_timeout: timedelta = timedelta(minutes=10)
    model_heartbeat: timedelta = timedelta(seconds=20)
    """The model activity heartbeats every two seconds: a dead worker's call is retried after this."""
    model_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30), maximum_attempts=5,
        non_retryable_error_types=["ModelPermanentError", "StoreMissing", "StoreCorrupt",
                                   "ConversationTooLong"]))
    start_timeout: timedelta = timedelta(seconds=30)
    start_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(maximum_attempts=5))
    tool_grace: timedelta = timedelta(seconds=60)
    """How long a tool activity may run past the tool's own timeout (reattach, cleanup)."""
    tool_heartbeat: timedelta = timedelta(seconds=5)
    """The tool activity heartbeats every second: a dead worker's call is retried after this."""
    tool_here_hand_off: timedelta = timedelta(milliseconds=500)
    """How long a call runs as a local activity on the workflow's worker before it is handed to
    its host queue. The workflow task stays open meanwhile: queries and updates wait, and a
    worker killed in it leaves the run to the workflow task timeout (10 s), where a host
    queue's call is reclaimed at once by the worker's successor. Short calls, most of an
    agent's, run here; a longer one pays a dispatch (about 40 ms) once."""
    tool_here_timeout: timedelta = timedelta(seconds=30)
    """The local attempt's limit, far past the hand-off: reached only when the store hangs."""
    tool_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10),
        maximum_attempts=8, non_retryable_error_types=["SandboxGone", "SandboxBroken"]))
    """Eight attempts span about 35 s of backoff: long enough for a Docker engine that
    restarts under a run to come back before a call gives up."""
    sandbox_timeout: timedelta = timedelta(minutes=2)
    release_timeout: timedelta = timedelta(minutes=1)
    sandbox_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
        maximum_attempts=8, non_retryable_error_types=["SandboxBroken"]))
    """An engine that is briefly away (restarting) is worth waiting for, about 45 s; settings
    it refuses or a missing image (SandboxBroken) are not."""
    host_worker_wait: timedelta = timedelta(seconds=60)
    """How long a call may wait for the worker that holds the sandbox before the run
    concludes that worker is gone and continues in a new sandbox, when the sandbox's handle
    doesn't say (`host_wait`)."""
    reap_timeout: timedelta = timedelta(minutes=5)
    mcp_list_timeout: timedelta = timedelta(minutes=2)
    """Starting a run's MCP servers (in its sandbox, or over HTTP) and listing their tools."""
    mcp_list_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        maximum_attempts=3, non_retryable_error_types=["McpUnavailable"]))
    collect_timeout: timedelta = timedelta(minutes=5)
    """Collecting a run's artifacts: up to 1,000 files, 256 MiB, read through the executor."""
    collect_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        maximum_attempts=3, non_retryable_error_types=["SandboxGone", "ArtifactsUnavailable"]))
    function_timeout: timedelta = timedelta(seconds=60)
    """A function tool's attempt, when the tool names no timeout of its own."""
    account_timeout: timedelta = timedelta(seconds=30)
    """One update to a budget account, from a run's activity."""
    account_wait: timedelta = timedelta(minutes=35)
    """How long a call may wait for an account whose rest is held by calls in flight: past
    the time a reservation of a crashed run takes to expire (30 minutes)."""
    account_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=5), non_retryable_error_types=["InvalidInput"]))
    """Unlimited attempts within `account_wait`: a busy account is waited for."""

    def host_wait(self, seconds: float | None) -> timedelta:
        """The wait for a sandbox's worker: what its host stamped on the handle (its
        TETHER_HOST_WAIT_SECONDS, recorded in history with the handle), else the default."""
        return timedelta(seconds=seconds) if seconds else self.host_worker_wait


DEFAULT_OPTIONS = ActivityOptions()
