"""Hypothesis strategies for hostile values: wrong types, huge and odd-unicode strings,
deep nesting. Shared by every fuzz layer so each meets the same kinds of trouble."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ODD_CHARACTERS = (
    "\x00",          # NUL: ends C strings, legal in JSON
    "\u202e",        # right-to-left override
    "\u200b\ufeff",  # zero-width space, byte order mark
    "e\u0301",       # a combining accent
    "\U0001f600",    # outside the basic plane (a surrogate pair in UTF-16)
    "\r\n\t\x1b[31m",  # control characters and an ANSI escape
    "'\"\\{}[]",     # JSON's and Python's quoting
)


def odd_text(*, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Any unicode text (no lone surrogates: they are not text and no JSON encoder writes
    them), weighted towards the characters that break naive code."""
    return st.one_of(
        st.text(min_size=min_size, max_size=max_size),
        st.lists(st.sampled_from(ODD_CHARACTERS), min_size=max(min_size, 1), max_size=8).map("".join),
    )


def huge_text(*, min_chars: int = 40_000, max_chars: int = 400_000) -> st.SearchStrategy[str]:
    """Long text built cheaply: a short odd piece repeated."""
    return st.builds(lambda piece, size: (piece * (size // max(len(piece), 1) + 1))[:size],
                     odd_text(min_size=1, max_size=8), st.integers(min_chars, max_chars))


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value nested `depth` levels deep, lists and objects alternating."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def deep_values(*, min_depth: int = 30, max_depth: int = 400) -> st.SearchStrategy[Any]:
    return st.integers(min_depth, max_depth).map(nested)


JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    odd_text())
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                          st.dictionaries(odd_text(max_size=8), inner, max_size=4)),
    max_leaves=12)
"""Any JSON value of modest size."""


def wrong_type_for(kind: type) -> st.SearchStrategy[Any]:
    """A JSON value that is not of the given kind (str, bool, dict, list, int/float)."""
    def wrong(value: Any) -> bool:
        if kind is bool:
            return not isinstance(value, bool)
        if kind in (int, float):
            return isinstance(value, bool) or not isinstance(value, int | float)
        return not isinstance(value, kind)
    return st.one_of(ANY_JSON, deep_values(max_depth=60)).filter(wrong)
