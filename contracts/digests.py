"""The digest that names exactly what a waiting tool call will run, and the model's text.

One definition for everyone who computes it: the model activity (from the arguments it
stores), the workflow (for arguments history holds whole), the client (from the arguments it
reads back from the store) and a person checking by hand. Canonical JSON: keys sorted, no
spaces, non-ASCII as `\\u` escapes, so the same arguments give the same digest in any language.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def arguments_digest(arguments: dict[str, Any]) -> str:
    """`sha256:<hex>` of the arguments' canonical JSON."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def text_digest(text: str) -> str:
    """`sha256:<hex>` of the text's UTF-8 bytes (lone surrogates escaped)."""
    return PREFIX + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def given_digest(value: str) -> str:
    """A digest as a person typed it, with or without its `sha256:` prefix; ValueError when
    it is not one."""
    digest = value.strip().lower()
    if not digest.startswith(PREFIX):
        digest = PREFIX + digest
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"{value[:80]!r} is not a digest: give sha256: and 64 hex digits, "
                         "as `tether status` prints it")
    return digest
