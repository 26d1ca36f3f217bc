"""Event source mappings with Lambda's semantics, for DynamoDB streams and SQS queues.

Stream: records the mapping's FilterCriteria match (moto's EventBridge pattern matcher), in
batches of BatchSize or what arrived within MaximumBatchingWindowInSeconds, in order per
shard; on an error the whole batch is retried; with
ReportBatchItemFailures the checkpoint moves to the *lowest* reported failure and every record
from there on is delivered again (as Lambda does); after MaximumRetryAttempts the batch is
skipped and, if the mapping has an on-failure destination, described there. With
TumblingWindowInSeconds each event also names its shard, its window and the state the last
answer returned (an answer without ``state`` is a failed invocation, as for Lambda), and a
window's end is a last invocation with ``isFinalInvokeForWindow`` and no records.
SQS: a message reported as failed (or in a batch that raised) is not deleted, so it comes back
after its visibility timeout, and the queue's redrive policy moves it to the dead-letter queue.
"""

import json
import logging
import threading
import time
from typing import Any

from moto.events.models import EventPattern

from .lambdas import LocalFunction
from .template import EventSource

log = logging.getLogger("local.runtime")
DEFAULT_STREAM_RETRIES = 10  # Lambda's default is "until the record expires" (24 h)


class Poller(threading.Thread):
    def __init__(
        self,
        function: LocalFunction,
        mapping: EventSource,
        arn: str,
        emulator,
        stop: threading.Event,
        idle_seconds: float = 0.2,
    ):
        super().__init__(name=f"poller-{function.name}", daemon=True)
        self.function = function
        self.mapping = mapping
        self.arn = arn
        self.emulator = emulator
        self.stop_event = stop
        self.idle_seconds = idle_seconds
        self.invocations = 0
        self.states: dict[str, dict[str, Any]] = {}  # shard -> its tumbling window's state

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if not self.poll_once(batching=True):
                    self.stop_event.wait(self.idle_seconds)
            except Exception:  # the poller must outlive any one failure, as Lambda's does
                log.exception("poller for %s failed; retrying", self.function.name)
                self.stop_event.wait(1)

    def invoke(self, event: dict[str, Any]) -> tuple[bool, set[str]]:
        """(succeeded, identifiers of failed items)."""
        self.invocations += 1
        try:
            result = self.function.invoke(event)
        except Exception:
            log.exception("%s raised; the batch will be retried", self.function.name)
            return False, set()
        if "window" in event:
            if not isinstance(result, dict) or not isinstance(result.get("state"), dict):
                log.error("%s answered a window without its state", self.function.name)
                return False, set()
            self.states[event["shardId"]] = result["state"]
        if self.mapping.report_failures and isinstance(result, dict):
            failed = {str(f.get("itemIdentifier")) for f in result.get("batchItemFailures") or []}
            return True, failed
        return True, set()


class StreamPoller(Poller):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.client = self.emulator.client("dynamodbstreams")
        self.iterators: dict[str, str] = {}
        self.last_read: dict[str, str] = {}
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.waiting_since: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.windows: dict[str, tuple[float, float]] = {}  # shard -> its tumbling window
        self.patterns = [EventPattern.load(pattern) for pattern in self.mapping.filters]

    def _wanted(self, record: dict[str, Any]) -> bool:
        """FilterCriteria as Lambda applies them: a record no pattern matches is dropped."""
        if not self.patterns:
            return True
        event = json.loads(json.dumps(record, default=str))  # as Lambda sees it: JSON
        return any(pattern.matches_event(event) for pattern in self.patterns)

    def _waits(self, shard_id: str, pending: list[dict[str, Any]]) -> bool:
        """MaximumBatchingWindowInSeconds: a batch short of BatchSize waits that long for more."""
        if len(pending) >= self.mapping.batch_size or not self.mapping.window_seconds:
            return False
        since = self.waiting_since.setdefault(shard_id, time.monotonic())
        return time.monotonic() - since < self.mapping.window_seconds

    def poll_once(self, batching: bool = False) -> bool:
        """One round over the shards; True if it invoked the function. ``batching``: keep a
        short batch back for the batching window (the runtime's loop does; tests that step
        the poller themselves get what is there)."""
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        worked = False
        for shard in shards:
            worked |= self._shard(shard["ShardId"], batching)
        return worked

    def _shard(self, shard_id: str, batching: bool = False) -> bool:
        pending = self.pending.setdefault(shard_id, [])
        if len(pending) < self.mapping.batch_size:
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            pending.extend(r for r in self._read(shard_id) if self._wanted(r))
        if not pending or (batching and self._waits(shard_id, pending)):
            return False
        self.waiting_since.pop(shard_id, None)
        batch = pending[: self.mapping.batch_size]
        records = [{**record, "eventSourceARN": self.arn} for record in batch]
        event: dict[str, Any] = {"Records": records}
        if self.mapping.tumbling_seconds:
            if not self._close_window(shard_id):
                return True  # the final invocation failed: nothing after it until it succeeds
            event.update(self._window(shard_id))
        ok, failed = self.invoke(event)
        if ok and not failed:
            del pending[: len(batch)]
            self.attempts.pop(shard_id, None)
            return True
        if failed:  # checkpoint at the lowest failure: everything after it comes again
            sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
            first = (
                min(sequence.index(f) for f in failed if f in sequence)
                if failed & set(sequence)
                else 0
            )
            del pending[:first]
        attempts = self.attempts[shard_id] = self.attempts.get(shard_id, 0) + 1
        limit = self.mapping.max_retries
        limit = DEFAULT_STREAM_RETRIES if limit is None or limit < 0 else limit
        if attempts > limit:
            dropped = pending[: self.mapping.batch_size]
            del pending[: len(dropped)]
            self.attempts.pop(shard_id, None)
            log.error(
                "%s: %d stream records skipped after %d retries",
                self.function.name,
                len(dropped),
                limit,
            )
            self._on_failure(shard_id, dropped)
        else:
            self.stop_event.wait(min(0.05 * 2**attempts, 2.0))
        return True

    def _window(self, shard_id: str, final: bool = False) -> dict[str, Any]:
        """What a tumbling window adds to an event of this shard: the window the current time
        falls in (Lambda's windows start at multiples of the window's length)."""
        start, end = self.windows.setdefault(shard_id, self._current())
        return {
            "shardId": shard_id,
            "eventSourceARN": self.arn,
            "window": {"start": _iso(start), "end": _iso(end)},
            "state": self.states.get(shard_id, {}),
            "isFinalInvokeForWindow": final,
            "isWindowTerminatedEarly": False,
        }

    def _current(self) -> tuple[float, float]:
        length = self.mapping.tumbling_seconds
        start = time.time() // length * length
        return start, start + length

    def _close_window(self, shard_id: str) -> bool:
        """The last invocation of a shard's window once it has ended; True when there was none
        to make or it succeeded (then the next batch opens a new window, with a new state)."""
        window = self.windows.get(shard_id)
        if window is None or time.time() < window[1]:
            return True
        ok, _ = self.invoke({"Records": [], **self._window(shard_id, final=True)})
        if ok:
            self.windows.pop(shard_id, None)
            self.states.pop(shard_id, None)
        return ok

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        page = self.client.get_records(ShardIterator=self.iterators[shard_id], Limit=1000)
        self.iterators[shard_id] = page.get("NextShardIterator") or self.iterators[shard_id]
        if not page["Records"] and shard_id in self.last_read:
            # An idle iterator is renewed from the last record read: real iterators expire
            # after 15 minutes, and moto's are lost when a failed transaction rolls the table
            # back to a copy of itself.
            self.iterators[shard_id] = self.client.get_shard_iterator(
                StreamArn=self.arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self.last_read[shard_id],
            )["ShardIterator"]
            page = self.client.get_records(ShardIterator=self.iterators[shard_id], Limit=1000)
            self.iterators[shard_id] = page.get("NextShardIterator") or self.iterators[shard_id]
        if page["Records"]:
            self.last_read[shard_id] = page["Records"][-1]["dynamodb"]["SequenceNumber"]
        return page["Records"]

    def _on_failure(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        destination = self.mapping.on_failure
        if not destination or not records:
            return
        sqs = self.emulator.client("sqs")
        url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(
                {
                    "requestContext": {
                        "condition": "RetryAttemptsExhausted",
                        "functionArn": self.function.name,
                    },
                    "DDBStreamBatchInfo": {
                        "shardId": shard_id,
                        "streamArn": self.arn,
                        "batchSize": len(records),
                        "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                        "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                    },
                },
                default=str,
            ),
        )


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class SqsPoller(Poller):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.client = self.emulator.client("sqs")
        self.url = self.client.get_queue_url(QueueName=self.arn.rsplit(":", 1)[-1])["QueueUrl"]

    def poll_once(self, batching: bool = False) -> bool:
        messages = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        records = [self._record(m) for m in messages]
        ok, failed = self.invoke({"Records": records})
        if not ok:
            return True  # nothing deleted: every message comes back after its visibility timeout
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        return True

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": "us-east-1",
        }


def poller_for(
    function: LocalFunction, mapping: EventSource, arn: str, emulator, stop: threading.Event
) -> Poller:
    if ":dynamodb:" in arn:
        return StreamPoller(function, mapping, arn, emulator, stop)
    if ":sqs:" in arn:
        return SqsPoller(function, mapping, arn, emulator, stop)
    raise ValueError(f"no local poller for event source {arn}")
