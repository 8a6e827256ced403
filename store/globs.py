"""Which of a run's artifacts a download asks for: globs as the run's `artifacts` take them
(`*` and `?` within one part of a name, a `**` part across any number of parts), with one
difference, as in a shell: a wildcard does not match a part that starts with a dot.

Such a part (`.git/config`, `.bashrc`, `.github/workflows/x.yml`) is configuration that the
tools later run in the directory obey: a run's tools could plant one. It is written only
where a glob names it with a dot of its own (`.git/*`, `out/.env`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def hidden(path: str) -> bool:
    """Whether a part of `path` starts with a dot."""
    return any(part.startswith(".") for part in path.split("/"))


def named(globs: Sequence[str], path: str, *, dotted: bool = False) -> bool:
    """Whether a glob matches `path`; with `dotted`, wildcards match dot parts too."""
    parts = path.split("/")
    return any(_match(glob.split("/"), parts, dotted=dotted) for glob in globs)


def _match(globs: list[str], parts: list[str], *, dotted: bool) -> bool:
    if not globs:
        return not parts
    first, rest = globs[0], globs[1:]
    if first == "**":
        # A last `**` takes one part or more (`out/**` is what is under out/); any other, none or more.
        for taken in range(0 if rest else 1, len(parts) + 1):
            if taken and not dotted and parts[taken - 1].startswith("."):
                return False
            if _match(rest, parts[taken:], dotted=dotted):
                return True
        return False
    if not parts or (not dotted and parts[0].startswith(".") and not first.startswith(".")):
        return False
    return _part(first).fullmatch(parts[0]) is not None and _match(rest, parts[1:], dotted=dotted)


def _part(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob),
                      re.DOTALL)
