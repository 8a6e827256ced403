"""The Docker engine connection, shared by everything in one worker process."""

from __future__ import annotations

import functools

import docker
from docker.errors import DockerException


class EngineUnavailable(RuntimeError):
    """No Docker engine answers: the worker can't run tools until one does."""


@functools.cache
def engine() -> docker.DockerClient:
    """A client for `DOCKER_HOST`, or the local socket when it is unset."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as error:
        raise EngineUnavailable(
            f"no Docker engine answers ({error}); run `make setup` or set DOCKER_HOST"
        ) from None
    return client
