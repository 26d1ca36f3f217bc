"""Where derived events go: the EventBridge bus, and one delivery-queue message per matching
(event, subscription). At least once: a failure raises PublishFailed naming the events that may
not have left, and the aggregator has their stream records delivered again."""

from collections.abc import Sequence

from .errors import StorageUnavailable
from .events import Event, matches
from .outbound import DeliveryQueue, EventBus, PublishFailed
from .subscriptions import SubscriptionsStore


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
        if self.bus is not None:
            self.bus.put(events)
        if self.queue is None or self.subscriptions is None:
            return
        try:
            routes = self.subscriptions.routing()
        except StorageUnavailable as error:
            raise PublishFailed("reading the subscriptions failed", events) from error
        deliveries = [
            (event, subscription.id)
            for event in events
            for subscription in routes
            if matches(event, subscription.events, subscription.filters)
        ]
        self.queue.send(deliveries)
        self.sent += len(deliveries)
