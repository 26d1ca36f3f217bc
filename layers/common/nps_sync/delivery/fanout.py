"""Where derived events go: the EventBridge bus, and one delivery-queue message per matching
(event, subscription).

At least once to both: events go out in record order, a chunk at a time, each chunk put on the
bus and then queued for its subscribers before the next one starts. A failure raises
PublishFailed naming every event from the failing chunk on - all that is not yet both on the
bus and in the queue - and the aggregator has their stream records delivered again (events
before that chunk, lower record indexes, are done with and may be checkpointed).
"""

from collections.abc import Sequence

from nps_sync.core.errors import StorageUnavailable
from nps_sync.delivery.events import Event, matches
from nps_sync.delivery.outbound import DeliveryQueue, EventBus, PublishFailed
from nps_sync.store.subscriptions import Subscription, SubscriptionsStore

CHUNK = 10  # events per step: one PutEvents call (its limit), then their delivery messages


class Fanout:
    def __init__(
        self,
        bus: EventBus | None,
        queue: DeliveryQueue | None = None,
        subscriptions: SubscriptionsStore | None = None,
    ):
        self.bus = bus
        self.queue = queue
        self.subscriptions = subscriptions
        self.sent = 0  # delivery messages enqueued, for metrics and tests

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        ordered = sorted(events, key=lambda e: e.index)
        routes = self._routes(ordered)
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            try:
                if self.bus is not None:
                    self.bus.put(chunk)
                if self.queue is not None and routes:
                    deliveries = [
                        (event, subscription.id)
                        for event in chunk
                        for subscription in routes
                        if matches(event, subscription.events, subscription.filters)
                    ]
                    self.queue.send(deliveries)
                    self.sent += len(deliveries)
            except PublishFailed as failure:
                raise PublishFailed(failure.message, ordered[start:]) from failure

    def _routes(self, events: list[Event]) -> list[Subscription]:
        """Read before anything is sent, so that a failure here has sent nothing."""
        if self.queue is None or self.subscriptions is None:
            return []
        try:
            return self.subscriptions.routing()
        except StorageUnavailable as error:
            raise PublishFailed("reading the subscriptions failed", events) from error
