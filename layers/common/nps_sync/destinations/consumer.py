"""The destination queue's batches: grouped by destination, so that each destination gets
one coalesced write per batch (DestinationWriter), and a destination that fails or asks to
wait keeps only its own messages queued.

Same guarantees as webhook deliveries (delivery.sender): a failed message stays queued,
hidden for the provider's Retry-After or the exponential back-off (with jitter) whichever is
longer, SQS counts its receives, and after MAX_ATTEMPTS (a day of retries) the redrive policy
moves it to the destination dead-letter queue (``make redrive`` moves it back). A destination
deleted meanwhile drops its messages; a message that does not parse is dropped and logged.
"""

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Json, ValidationError

from nps_sync.core.batch import SqsBatch, StaysQueued
from nps_sync.core.errors import NotFound, StorageUnavailable
from nps_sync.core.observability import logger, metrics
from nps_sync.delivery.outbound import DeliveryQueue, PublishFailed
from nps_sync.delivery.sender import MAX_ATTEMPTS, backoff, visibility_allowance
from nps_sync.destinations.base import DestinationError, Retryable, Target
from nps_sync.destinations.erasure import ERASED
from nps_sync.destinations.writer import Change, DestinationWriter
from nps_sync.store.destinations import DestinationsStore, WriteRecord


class DestinationMessage(BaseModel):
    """As DeliveryQueue.send writes it (``subscription_id`` is the destination's id)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    subscription_id: str
    event: dict[str, Any]


class QueuedChange(SqsRecordModel):
    body: Json[DestinationMessage]


class NotWritten(StaysQueued):
    """The message stays queued for its back-off."""


class DestinationBatch(SqsBatch):
    def __init__(self):
        super().__init__(QueuedChange, dropped="undeliverable destination message dropped")


class DestinationConsumer:
    def __init__(
        self,
        store: DestinationsStore,
        writer: DestinationWriter,
        queue: DeliveryQueue,
        clock: Callable[[], float] = time.time,
        delay: Callable[[int], int] = backoff,
    ):
        self.store = store
        self.writer = writer
        self.queue = queue
        self.clock = clock
        self.delay = delay
        self.processor = DestinationBatch()

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        started = self.clock()
        records = list(event.get("Records", []))
        failed = self._run(records, started)

        def outcome(record: QueuedChange) -> None:
            if record.messageId in failed:
                raise NotWritten(failed[record.messageId])

        return process_partial_response(
            event=dict(event), record_handler=outcome, processor=self.processor, context=context
        )

    def _run(self, records: list[dict[str, Any]], started: float) -> dict[str, str]:
        """Message id -> why it stays queued."""
        groups: dict[str, list[tuple[dict[str, Any], DestinationMessage]]] = {}
        for record in records:
            try:
                message = DestinationMessage.model_validate(json.loads(record.get("body", "")))
            except (ValueError, ValidationError):
                continue  # the batch processor drops it, logged
            groups.setdefault(message.subscription_id, []).append((record, message))
        failed: dict[str, str] = {}
        for destination_id, group in groups.items():
            reason = self._write(destination_id, group, started)
            if reason:
                failed.update({record["messageId"]: reason for record, _ in group})
        return failed

    def _write(self, destination_id: str, group: list, started: float) -> str | None:
        try:
            destination = self.store.get(destination_id)
        except NotFound:
            logger.info(
                "destination gone; its changes dropped", extra={"destination_id": destination_id}
            )
            return None
        except StorageUnavailable:
            return "reading the destination failed"
        change = Change()
        for _, message in group:
            data = message.event.get("data", {})
            if message.event.get("type") == ERASED:
                change.clears += [
                    Target(t["level"], "", t["object_id"]) for t in data.get("targets", [])
                ]
            elif data.get("customer_key"):
                change.customers.append(str(data["customer_key"]))
        try:
            log = self.writer.write(destination, change)
        except (Retryable, StorageUnavailable) as error:
            self._later(destination, group, started, getattr(error, "retry_after", None), error)
            return "the destination asked to wait or failed"
        except DestinationError as error:  # credentials refused, say: retried, then the DLQ
            self._later(destination, group, started, None, error)
            return "the destination refused the write"
        self._record(log)
        return None

    def _later(self, destination, group, started: float, retry_after: float | None, error) -> None:
        attempt = max(
            int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)) for r, _ in group
        )
        last = attempt >= MAX_ATTEMPTS
        status = "dead_lettered" if last else "retrying"
        self._record(
            [WriteRecord(destination.id, "batch", None, status, str(error)[:200], attempt)]
        )
        metrics.add_metric(name="DestinationRetries", unit="Count", value=len(group))
        if last:
            return
        wait = max(self.delay(attempt), int(retry_after or 0) + 1)
        for record, _ in group:
            first = record.get("attributes", {}).get("ApproximateFirstReceiveTimestamp")
            allowed = visibility_allowance(
                float(first) / 1000 if first else None, started, self.clock()
            )
            try:
                self.queue.retry_later(record["receiptHandle"], min(wait, allowed))
            except PublishFailed:
                logger.warning("hiding a destination message failed; it comes back sooner")

    def _record(self, log: list[WriteRecord]) -> None:
        try:
            self.store.record(log)
        except StorageUnavailable:
            logger.warning("the destination write log could not be written")
