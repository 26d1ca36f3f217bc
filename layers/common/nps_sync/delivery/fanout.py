"""Where derived events go: the EventBridge bus (those a rule there could match, rules.py),
and one delivery-queue message per matching (event, subscription).

At least once to both: events go out in record order, a chunk at a time (what one PutEvents
request takes: 10 events and 256 KB), each chunk put on the bus and then queued for its
subscribers before the next one starts. A failure raises PublishFailed naming every event
from the failing chunk on - all that is not yet both on the bus and in the queue - and the
aggregator has their stream records delivered again (events before that chunk, lower record
indexes, are done with and may be checkpointed).

An event that no request could ever take (over the bus's or the queue's size limit on its
own) would fail every retry of its batch and stall the shard; it is left out instead, for
the bus and for the subscribers, counted (metric EventsTooLarge, alarm EventsTooLargeAlarm)
and logged by id and type (docs/operations.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.observability import logger, metrics
from nps_sync.delivery.events import Event, matches
from nps_sync.delivery.outbound import DeliveryQueue, EventBus, PublishFailed
from nps_sync.store.destinations import DestinationsStore
from nps_sync.store.subscriptions import Subscription, SubscriptionsStore

CHUNK = 10  # events per step without a bus (with one: what a PutEvents request takes)
TOO_LARGE_METRIC = "EventsTooLarge"

Delivery = tuple[Event, str]  # an event and the id of a subscription it goes to


@dataclass(frozen=True)
class Destinations:
    """CRM/billing destinations (nps_sync.destinations): where they are stored, and the queue
    their DestinationFunction reads."""

    store: DestinationsStore
    queue: DeliveryQueue


class Fanout:
    def __init__(
        self,
        bus: EventBus | None,
        queue: DeliveryQueue | None = None,
        subscriptions: SubscriptionsStore | None = None,
        destinations: Destinations | None = None,
    ):
        self.bus = bus
        self.queue = queue
        self.subscriptions = subscriptions
        self.destinations = destinations
        self.sent = 0  # delivery messages enqueued, for metrics and tests
        self.too_large = 0  # events left out because no request could take them
        # What wants() read, kept for the next publish(), which then does not read it again.
        self._read: tuple[list[Subscription] | None, list[Any] | None] = (None, None)

    def wants(self, event_type: str) -> bool:
        """Whether an event of this type would go anywhere: a rule on the bus could match it,
        or a subscription or destination takes the type. The aggregator may skip deriving a
        type no one wants (aggregate.updated). Reads the subscriptions and destinations only
        when the bus does not want the type, for the next publish() too; when they cannot be
        read the answer is yes (publish() reads them again, and fails as it always did)."""
        if self.bus is not None and self.bus.wants(event_type):
            return True
        try:
            routes = self._routes([])
            targets = self._destinations([])
        except PublishFailed:
            return True
        self._read = (routes, targets)
        return any(event_type in route.events for route in (*routes, *targets))

    def publish(self, events: Sequence[Event]) -> None:
        (routes, targets), self._read = self._read, (None, None)
        if not events:
            return
        ordered = sorted(events, key=lambda e: e.index)
        if routes is None or targets is None:
            routes, targets = self._routes(ordered), self._destinations(ordered)
        outgoing = [(event, self._deliveries(event, routes)) for event in ordered]
        outgoing = [
            (event, deliveries) for event, deliveries in outgoing if self._fits(event, deliveries)
        ]
        changes = {event.id: self._deliveries(event, targets) for event, _ in outgoing}
        start = 0
        for chunk in self._chunks([event for event, _ in outgoing]):
            try:
                if self.bus is not None:
                    self.bus.put(chunk)
                deliveries = [d for _, ds in outgoing[start : start + len(chunk)] for d in ds]
                if self.queue is not None and deliveries:
                    self.queue.send(deliveries)
                    self.sent += len(deliveries)
                written = [d for event in chunk for d in changes[event.id]]
                if written and self.destinations is not None:
                    self.destinations.queue.send(written)
            except PublishFailed as failure:
                raise PublishFailed(failure.message, [e for e, _ in outgoing[start:]]) from failure
            start += len(chunk)

    def _destinations(self, events: list[Event]) -> list[Any]:
        """CRM and billing destinations take what subscriptions take, on their own queue."""
        if self.destinations is None:
            return []
        try:
            return self.destinations.store.all()
        except StorageUnavailable as error:
            raise PublishFailed("reading the destinations failed", events) from error

    def _deliveries(self, event: Event, routes: list[Any]) -> list[Delivery]:
        return [
            (event, subscription.id)
            for subscription in routes
            if matches(event, subscription.events, subscription.filters)
        ]

    def _fits(self, event: Event, deliveries: list[Delivery]) -> bool:
        if (self.bus is None or self.bus.fits(event)) and (
            self.queue is None or all(self.queue.fits(delivery) for delivery in deliveries)
        ):
            return True
        sizes = [self.bus.size(event)] if self.bus is not None else []
        if self.queue is not None:
            sizes.extend(self.queue.size(delivery) for delivery in deliveries)
        self.too_large += 1
        metrics.add_metric(name=TOO_LARGE_METRIC, unit="Count", value=1)
        logger.error(
            "event too large to publish, left out",
            extra={"event_id": event.id, "event_type": event.type, "bytes": max(sizes)},
        )
        return False

    def _chunks(self, events: list[Event]) -> list[list[Event]]:
        if self.bus is not None:
            return self.bus.requests(events)
        return [events[start : start + CHUNK] for start in range(0, len(events), CHUNK)]

    def _routes(self, events: list[Event]) -> list[Subscription]:
        """Read before anything is sent, so that a failure here has sent nothing."""
        if self.queue is None or self.subscriptions is None:
            return []
        try:
            return self.subscriptions.routing()
        except StorageUnavailable as error:
            raise PublishFailed("reading the subscriptions failed", events) from error
