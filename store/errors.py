"""What can go wrong with the store, one type each, so a caller (an activity, the CLI) can
say what happened and whether trying again can help.

Permanent: a blob the store does not hold (`BlobNotFound`), a blob whose bytes are not the
content its name says (`StoreCorrupt`), a conversation whose parent links never end
(`ConversationTooLong`). Transient, worth retrying: a store that doesn't answer
(`StoreUnavailable`) and one that refuses tether's credentials (`StoreDenied`): the operator
fixes the credentials, or another worker with good ones takes the retry.

None is an `OSError`: a caller that writes files must not take a store that is away for a
directory it can't write.
"""

from __future__ import annotations


class StoreError(Exception):
    """Any failure of the content store."""


class BlobNotFound(StoreError, LookupError):
    """A digest the store does not hold: the store was wiped or is not shared between hosts."""


class StoreCorrupt(StoreError):
    """A blob whose bytes don't hash to its name, or a conversation whose links can't be
    right: the store was altered or damaged; retrying reads the same bytes."""


class ConversationTooLong(StoreError):
    """A walk down a conversation's parent links that passed the longest a run can make."""


class StoreUnavailable(StoreError):
    """The store could not be reached or answered with an error: retrying may succeed."""


class StoreDenied(StoreError):
    """The store refused tether's credentials or permissions for a read or a write."""
