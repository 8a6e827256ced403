"""A function tool with a credential, for the secret canary (tests/test_secret_canary.py).

Like a team's tool that calls its own service, it reads its token from the worker's
environment at call time and uses it (here to sign the request) without ever returning it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

TOKEN_ENV = "CANARY_SERVICE_TOKEN"


def signature(token: str, order_id: str) -> str:
    return hmac.new(token.encode(), order_id.encode(), hashlib.sha256).hexdigest()


def signed_order_lookup(order_id: str) -> dict:
    """Look an order up in the order service, with the worker's service token."""
    token = os.environ[TOKEN_ENV]
    return {"order_id": order_id, "status": "shipped", "signature": signature(token, order_id)}
