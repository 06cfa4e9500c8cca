"""moto's SQS with deletes as atomic as SQS's own.

moto's `Queue.delete_message` rebuilds the queue's message list and puts it back, outside the lock that
its sends take. A delete running beside another delete or a send therefore puts back the list it read:
a message deleted meanwhile comes back (counted in flight, then delivered again after its visibility
timeout) and a message sent meanwhile is lost. SQS itself does neither. The worker deletes from two
threads while the API sends, so both the tests (moto in the process) and the local stack (moto's server,
a thread per request) take each delete under the queue's own lock.
"""

from __future__ import annotations

import functools
from typing import Any

_PATCHED = "_tensorgate_atomic"


def atomic_deletes() -> None:
    """Make moto's queue deletes hold the queue's message lock; calling it again changes nothing."""
    from moto.sqs.models import Queue

    original = Queue.delete_message
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:  # the lock `add_message` takes; reentrant
            original(self, receipt_handle)

    setattr(delete_message, _PATCHED, True)
    Queue.delete_message = delete_message  # type: ignore[method-assign]
