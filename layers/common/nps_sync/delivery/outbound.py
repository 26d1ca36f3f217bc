"""AWS adapters for outgoing events: the EventBridge bus and the delivery queue (SQS).

The only modules of the fan-out that talk to boto3; errors become PublishFailed, so the
aggregator reports the records whose events did not leave (and they are derived again).
"""

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import NpsSyncError
from nps_sync.delivery.events import SOURCE, Event
from nps_sync.delivery.rules import BusRules
from nps_sync.store import aws

# Requests per batch: a failed call (throttle, 5xx, lost answer) and the entries a partial
# failure names are sent again, RETRY_SECONDS then twice that apart, before PublishFailed
# sends the stream records back. A batch sends a request per 10 events: relying on the
# stream's redelivery alone, one of them failing would cost the whole batch every time.
ATTEMPTS = 3
RETRY_SECONDS = 0.05

# What one request may carry (docs/events.md "Size", with the sources). 256 KB for both even
# where AWS now takes 1 MB: it holds for every bus and queue, in every region and emulator.
PUT_EVENTS_ENTRIES = 10
PUT_EVENTS_BYTES = 256_000  # "less than 256KB": the smaller reading of KB
# Per entry on top of EventBridge's own count: the ~200 bytes of JSON keys and values
# (version, id, account, time, region, ...) it wraps every event in, which the newer API
# reference counts too.
ENTRY_ENVELOPE = 256
SEND_BATCH_ENTRIES = 10
SEND_BATCH_BYTES = 262_144  # 256 KiB, per message and for the batch's sum

T = TypeVar("T")


def packed(
    items: Sequence[T], size: Callable[[T], int], count: int, budget: int
) -> Iterator[list[T]]:
    """``items`` in order, in runs of at most ``count`` items and ``budget`` bytes, each run
    filled as far as the next item allows. An item over ``budget`` on its own is a run by
    itself, which AWS will refuse: callers leave out what does not ``fit``."""
    run: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if run and (len(run) == count or used + cost > budget):
            yield run
            run, used = [], 0
        run.append(item)
        used += cost
    if run:
        yield run


def _pause(attempt: int) -> None:
    time.sleep(RETRY_SECONDS * 2**attempt)


def _utf8(text: str | None) -> int:
    return len(text.encode()) if text else 0


def entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's own count of a PutEvents entry: Time 14 bytes (if given), the UTF-8 bytes
    of Source, DetailType, Detail and of each of Resources."""
    size = 14 if entry.get("Time") is not None else 0
    size += _utf8(entry.get("Source")) + _utf8(entry.get("DetailType")) + _utf8(entry.get("Detail"))
    return size + sum(_utf8(resource) for resource in entry.get("Resources") or ())


class PublishFailed(NpsSyncError):
    """Some events could not be put on the bus or the delivery queue."""

    code = "publish_failed"

    def __init__(self, message: str, events: Sequence[Event] = ()):
        super().__init__(message)
        self.events = list(events)


class EventBus:
    """PutEvents: ``source`` nps-sync, ``detail-type`` the event type, ``detail`` the body;
    only the events some rule on the bus could match (delivery/rules.py).

    ``rules`` None: a bus on a client of its own (what the aggregator builds) reads its rules;
    one handed a client puts every event unless handed ``rules`` too (client stand-ins have
    no ListRules)."""

    def __init__(self, bus_name: str, client: Any = None, rules: BusRules | None = None):
        self.bus_name = bus_name
        self.client = client or aws.client("events")
        if rules is None and client is None:
            rules = BusRules(self.client, bus_name)
        self.rules = rules

    def wants(self, event_type: str) -> bool:
        """Whether an event of this type goes on the bus: a rule there could match it."""
        return self.rules is None or self.rules.wants(SOURCE, event_type)

    def entry(self, event: Event) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": event.type,
            "Detail": event.to_json(),
            "EventBusName": self.bus_name,
            "Resources": [],
        }

    def size(self, event: Event) -> int:
        """What the event takes of a request's PUT_EVENTS_BYTES."""
        return entry_size(self.entry(event)) + ENTRY_ENVELOPE

    def fits(self, event: Event) -> bool:
        return self.size(event) <= PUT_EVENTS_BYTES

    def requests(self, events: Sequence[Event]) -> list[list[Event]]:
        """The events as put() sends them: one PutEvents request per run."""
        return list(packed(events, self.size, PUT_EVENTS_ENTRIES, PUT_EVENTS_BYTES))

    def put(self, events: Sequence[Event]) -> None:
        """The events no rule could match are left off: EventBridge bills every event put."""
        for batch in self.requests([event for event in events if self.wants(event.type)]):
            self._put_batch(batch)

    def _put_batch(self, batch: list[Event]) -> None:
        for attempt in range(ATTEMPTS):
            entries = [self.entry(event) for event in batch]
            try:
                answer = self.client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                if attempt == ATTEMPTS - 1:
                    raise PublishFailed("EventBridge put_events failed", batch) from error
                _pause(attempt)  # again, all of them: a lost answer's events go out twice
                continue
            if not answer.get("FailedEntryCount"):
                return
            results = answer.get("Entries", [])
            batch = [e for e, r in zip(batch, results, strict=False) if r.get("ErrorCode")]
            if not batch:
                return
        raise PublishFailed("EventBridge refused some entries", batch)


class DeliveryQueue:
    """The queue DeliveryFunction reads: one message per (event, subscription).

    Without a ``client`` its own is made on first use: the delivery and destination consumers
    call it only for a failed message (retry_later), the API only for an erasure, so a cold
    start that needs none makes no SQS client (~5 ms)."""

    def __init__(self, queue_url: str, client: Any = None):
        self.queue_url = queue_url
        self._client = client
        self._made = threading.Lock()  # DeliveryBatch's threads may all fail at once

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._made:
                if self._client is None:
                    self._client = aws.client("sqs")
        return self._client

    @staticmethod
    def message(event: Event, subscription: str) -> str:
        return json.dumps(
            {"subscription_id": subscription, "event": event.body()},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def size(self, delivery: tuple[Event, str]) -> int:
        """What the message takes of a batch's SEND_BATCH_BYTES (it has no attributes)."""
        return _utf8(self.message(*delivery))

    def fits(self, delivery: tuple[Event, str]) -> bool:
        return self.size(delivery) <= SEND_BATCH_BYTES

    def send(self, deliveries: Sequence[tuple[Event, str]]) -> None:
        for chunk in packed(deliveries, self.size, SEND_BATCH_ENTRIES, SEND_BATCH_BYTES):
            for attempt in range(ATTEMPTS):
                entries = {
                    str(i): {"Id": str(i), "MessageBody": self.message(event, subscription)}
                    for i, (event, subscription) in enumerate(chunk)
                }
                try:
                    answer = self.client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=list(entries.values())
                    )
                except (ClientError, BotoCoreError) as error:
                    if attempt == ATTEMPTS - 1:
                        raise PublishFailed(
                            "SQS send_message_batch failed", [e for e, _ in chunk]
                        ) from error
                    _pause(attempt)  # the whole chunk again (a lost answer: delivered twice)
                    continue
                failed = {f["Id"] for f in answer.get("Failed", [])}
                chunk = [chunk[int(i)] for i in sorted(failed, key=int)]
                if not chunk:
                    break
            if chunk:
                raise PublishFailed("SQS refused some messages", [e for e, _ in chunk])

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Hide a failed message for its back-off (ChangeMessageVisibility, at most 12 h)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(int(seconds), 43200)),
            )
        except (ClientError, BotoCoreError) as error:
            raise PublishFailed("SQS change_message_visibility failed") from error
