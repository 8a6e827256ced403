"""A store failure as the activity error Temporal acts on: the error's own type, retried
when trying again can help (a store that is away, or refused credentials another worker may
not have), failed for good when it can't (a blob missing or corrupt, a chain that never
ends)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError
from tether.store import BlobNotFound, ConversationTooLong, StoreCorrupt, StoreError

PERMANENT: dict[type[StoreError], str] = {
    BlobNotFound: "StoreMissing",
    StoreCorrupt: "StoreCorrupt",
    ConversationTooLong: "ConversationTooLong",
}


def store_failure(error: StoreError) -> ApplicationError:
    for kind, name in PERMANENT.items():
        if isinstance(error, kind):
            return ApplicationError(str(error), type=name, non_retryable=True)
    return ApplicationError(str(error), type=type(error).__name__)
