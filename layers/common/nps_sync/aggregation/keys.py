"""A batch's writes to its keys, together: the NPS counters and the outcome counters alike.

Each key's conditional update depends on no other key's (each item has its own marks,
docs/aggregation.md), so they go out at once (``dynamo.each``); a key that stays unavailable
is reported from its first record, as the batch's protocol says, and the others still land.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

from nps_sync.core.aggregates import Pending
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger
from nps_sync.store import dynamo


class Failures(Protocol):
    writes: int

    def fail(self, index: int) -> None: ...


def write_keys(
    keys: Sequence[Pending], write: Callable[[Pending], int], result: Failures, what: str
) -> None:
    """``write`` each key (it answers the write calls it made) into ``result``; ``what`` names
    the writes in the log line of a failed one."""
    for key, outcome in zip(keys, dynamo.each(write, keys), strict=True):
        if isinstance(outcome, StorageUnavailable):
            logger.warning(f"{what} write failed", extra={"index": key.first_index})
            result.fail(key.first_index)
        elif isinstance(outcome, Exception):
            raise outcome
        else:
            result.writes += outcome
