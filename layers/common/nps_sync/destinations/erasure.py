"""Erasure reaches destinations: before a customer's records are deleted, the objects we
wrote to in each destination are named on the destination queue, and DestinationFunction
clears our NPS fields there (never the contact or customer itself); the write log says
``cleared``. The ids are taken first because the erasure deletes the links that name them."""

import hashlib
import time
from collections.abc import Callable
from typing import Any

from nps_sync.delivery.events import Event, timestamp
from nps_sync.delivery.outbound import DeliveryQueue
from nps_sync.destinations.base import PERSON
from nps_sync.destinations.writer import object_ids
from nps_sync.store.destinations import DestinationsStore

ERASED = "customer.erased"  # an erasure's message: the provider ids whose fields we clear


class DestinationClearing:
    def __init__(
        self, store: DestinationsStore, queue: DeliveryQueue, clock: Callable[[], float] = time.time
    ):
        self.store = store
        self.queue = queue
        self.clock = clock

    def queue_clears(self, items: list[dict[str, Any]]) -> int:
        """``items``: what by_customer lists for the erased customer (and its aliases).
        Returns the number of objects to be cleared."""
        messages = []
        for destination in self.store.all():
            ids = object_ids(destination.kind, items)
            if not ids:
                continue
            digest = hashlib.sha256("\x1f".join([destination.id, *ids]).encode()).hexdigest()
            event = Event(
                id="erase_" + digest[:32],
                type=ERASED,
                created_at=timestamp(self.clock()),
                data={"targets": [{"level": PERSON, "object_id": i} for i in ids]},
            )
            messages.append((event, destination.id))
        if messages:
            self.queue.send(messages)
        return sum(len(e.data["targets"]) for e, _ in messages)
