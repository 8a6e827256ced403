"""Where a tether process connects, read as every Temporal tool reads it.

`temporalio.envconfig` loads a profile from Temporal's client config file
(`TEMPORAL_CONFIG_FILE`, else the platform's default path; profile `TEMPORAL_PROFILE` or
`tether --profile`, else `default`) and applies the `TEMPORAL_*` variables over it:
`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY` (which turns TLS on),
`TEMPORAL_TLS_*`. An address or namespace given to tether itself (`TetherSettings`, a
command's option) overrides both. With nothing configured anywhere, it is the embedded dev
server's address and the `default` namespace.

The API key goes to the client and nowhere else: it is never in a message, a log or a repr.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.envconfig import ClientConfig, ClientConnectConfig
from tether.settings import TetherSettings

__all__ = ["ConnectionConfigError", "connect_config", "resolved"]


class ConnectionConfigError(Exception):
    """The profile or config file can't be read; the message says which and why."""


def connect_config(settings: TetherSettings) -> ClientConnectConfig:
    """`Client.connect`'s connection arguments for `settings`."""
    try:
        config = ClientConfig.load_client_connect_config(profile=settings.temporal_profile)
    except Exception as error:  # the SDK's ConfigError, raised from its Rust core
        raise ConnectionConfigError(_explain(settings.temporal_profile, error)) from None
    given = settings.model_fields_set
    if "temporal_address" in given or not config.get("target_host"):
        config["target_host"] = settings.temporal_address
    if "namespace" in given or not config.get("namespace"):
        config["namespace"] = settings.namespace
    return config


def resolved(settings: TetherSettings) -> TetherSettings:
    """`settings` with the address and namespace the connection will use, so that messages,
    Web UI links and the embedded server's start all see the profile's. An address a profile
    names counts as configured: tether then never starts a dev server in its place."""
    config = connect_config(settings)
    changed = {field: value for field, value in (("temporal_address", config["target_host"]),
                                                 ("namespace", config["namespace"]))
               if value != getattr(settings, field)}
    return settings.model_copy(update=changed) if changed else settings


def _explain(profile: str | None, error: Exception) -> str:
    import os

    file = os.environ.get("TEMPORAL_CONFIG_FILE")
    where = f"the config file {file}" if file else "Temporal's default config file"
    if file and not Path(file).is_file():
        where += " (which does not exist)"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    named = f"profile '{profile}'" if profile else "the default profile"
    return (f"cannot load {named} from {where}: {first} — name a profile the file has "
            "(`tether --profile NAME`, TEMPORAL_PROFILE) or set TEMPORAL_CONFIG_FILE")
