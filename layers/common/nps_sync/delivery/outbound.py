"""AWS adapters for outgoing events: the EventBridge bus and the delivery queue (SQS).

The only modules of the fan-out that talk to boto3; errors become PublishFailed, so the
aggregator reports the records whose events did not leave (and they are derived again).
"""

import json
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import NpsSyncError
from nps_sync.delivery.events import SOURCE, Event

ATTEMPTS = 3


class PublishFailed(NpsSyncError):
    """Some events could not be put on the bus or the delivery queue."""

    code = "publish_failed"

    def __init__(self, message: str, events: Sequence[Event] = ()):
        super().__init__(message)
        self.events = list(events)


class EventBus:
    """PutEvents: ``source`` nps-sync, ``detail-type`` the event type, ``detail`` the body."""

    def __init__(self, bus_name: str, client: Any = None):
        self.bus_name = bus_name
        self.client = client or boto3.client("events")

    def put(self, events: Sequence[Event]) -> None:
        pending = list(events)
        for start in range(0, len(pending), 10):
            self._put_batch(pending[start : start + 10])

    def _put_batch(self, batch: list[Event]) -> None:
        for _ in range(ATTEMPTS):
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": event.type,
                    "Detail": event.to_json(),
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
                for event in batch
            ]
            try:
                answer = self.client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise PublishFailed("EventBridge put_events failed", batch) from error
            if not answer.get("FailedEntryCount"):
                return
            results = answer.get("Entries", [])
            batch = [e for e, r in zip(batch, results, strict=False) if r.get("ErrorCode")]
            if not batch:
                return
        raise PublishFailed("EventBridge refused some entries", batch)


class DeliveryQueue:
    """The queue DeliveryFunction reads: one message per (event, subscription)."""

    def __init__(self, queue_url: str, client: Any = None):
        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

    def send(self, deliveries: Sequence[tuple[Event, str]]) -> None:
        for start in range(0, len(deliveries), 10):
            chunk = list(deliveries[start : start + 10])
            for _ in range(ATTEMPTS):
                entries = {
                    str(i): {
                        "Id": str(i),
                        "MessageBody": json.dumps(
                            {"subscription_id": subscription, "event": event.body()},
                            separators=(",", ":"),
                            ensure_ascii=False,
                        ),
                    }
                    for i, (event, subscription) in enumerate(chunk)
                }
                try:
                    answer = self.client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=list(entries.values())
                    )
                except (ClientError, BotoCoreError) as error:
                    raise PublishFailed(
                        "SQS send_message_batch failed", [e for e, _ in chunk]
                    ) from error
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
