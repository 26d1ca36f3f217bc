"""A storage call tried again within the invocation before its failure is reported.

A stream batch reports a failure from the first record whose work failed, and that work is
done again on redelivery: a batch makes some thirty calls per record, so at a steady rate of
failed calls (throttles, 500s, lost answers that outlast the SDK's own retries) one that only
relied on redelivery would fail every time, from its first records, until Lambda skips it
(docs/security.md "Under injected faults"). Only for calls safe to repeat: reads, and writes
whose condition or mark makes a repeat after a lost answer a no-op.
"""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from nps_sync.core.errors import StorageUnavailable

ATTEMPTS = 3
PAUSE_SECONDS = 0.05  # before the second attempt; twice that before the third

T = TypeVar("T")


def retried(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``; on StorageUnavailable, again, up to ATTEMPTS in all (the
    last failure is raised)."""
    for attempt in range(ATTEMPTS - 1):
        try:
            return call(*args, **kwargs)
        except StorageUnavailable:
            time.sleep(PAUSE_SECONDS * 2**attempt)
    return call(*args, **kwargs)
