"""TLS interception for the hosts a run has secrets for, and for no other.

A run whose `sandbox.network.secrets` names hosts gets a CA of its own, made here in the
proxy process: its key stays in this process's memory (never on disk, never in the
sandbox), its certificate goes back to the worker, which puts it in the sandbox's trust
bundle. A tunnel to one of the run's secret hosts is terminated with a certificate that CA
signs, the upstream is verified against the system's CAs and TETHER_EGRESS_CA_FILE, and the
proxy adds the secret's header to each request; every other tunnel passes through untouched.

Imports nothing of tether's (it runs beside mitmproxy, in the proxy's own environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mitmproxy import certs, ctx, tls
from mitmproxy.net.tls import starts_like_tls_record
from mitmproxy.proxy import layer, layers

CA_KEY_BITS = 2048


@dataclass(frozen=True)
class Secret:
    header: str
    value: str
    """`prefix + value`, as the header carries it."""


class RunCA:
    """One run's CA and the certificates it signs, made on first need and kept in memory."""

    def __init__(self, run: str, dhparams: Any) -> None:
        key, cert = certs.create_ca(organization="tether egress",
                                    cn=f"tether egress CA for {run[:40]}", key_size=CA_KEY_BITS)
        self.store = certs.CertStore(key, certs.Cert(cert), None, dhparams)

    @property
    def pem(self) -> str:
        return self.store.default_ca.to_pem().decode()


class Interception:
    """The hooks that must run before mitmproxy's own (it is added ahead of them): which
    connections are terminated, and with which run's CA. `lookup(client)` gives the tunnel's
    secret host's run CA, or None for a tunnel that passes through."""

    def __init__(self, lookup: Any) -> None:
        self.lookup = lookup

    def next_layer(self, next_layer: layer.NextLayer) -> None:
        if next_layer.layer is not None:
            return
        context = next_layer.context
        data = next_layer.data_client()
        if context.server.address is None:
            if data and starts_like_tls_record(data):
                # TLS to the proxy itself (a "secure web proxy"): nothing a tool needs, and
                # mitmproxy would answer it with its own CA. It goes nowhere.
                next_layer.layer = layers.TCPLayer(context, ignore=True)
            return  # the proxy connection: mitmproxy reads CONNECT or a plain request
        if context.client.tls_established:
            return  # what a terminated tunnel carries: mitmproxy's own choice, HTTP
        if self.lookup(context.client) is None or (data and not starts_like_tls_record(data)):
            # Not a secret host, or not TLS to it: the bytes pass as they are, as every
            # tunnel did before secrets (and the proxy adds nothing to them).
            next_layer.layer = layers.TCPLayer(context, ignore=True)

    def tls_start_client(self, data: tls.TlsData) -> None:
        """mitmproxy's TLS setup, with the run's CA in place of the proxy's: swapped and put
        back with no await between, so no other connection sees it."""
        ca = self.lookup(data.context.client)
        if ca is None or data.ssl_conn is not None:
            return
        config = ctx.master.addons.get("tlsconfig")
        shared, config.certstore = config.certstore, ca.store
        try:
            config.tls_start_client(data)
        finally:
            config.certstore = shared
