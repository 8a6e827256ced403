"""Connecting to the Docker engine that holds this worker's sandboxes."""

from __future__ import annotations

import docker
from docker.errors import DockerException

API_TIMEOUT_S = 60


class EngineUnavailable(RuntimeError):
    """No Docker engine answers: the worker can't run tools until one does."""


def connect_engine() -> docker.DockerClient:
    """A client for `DOCKER_HOST`, or the local socket when it is unset; fails fast, saying
    what to do, when no engine answers."""
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S)
        client.ping()
    except DockerException as error:
        raise EngineUnavailable(
            f"no Docker engine answers ({error}); run `make setup` or set DOCKER_HOST"
        ) from None
    return client
