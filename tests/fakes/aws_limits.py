"""What AWS refuses and moto lets through: a PutEvents request over 10 entries or 256 KB, a
SendMessageBatch over 10 messages or 256 KiB (docs/events.md "Size"), answered with the
errors AWS answers. Counted here on their own, not with nps_sync.delivery.outbound's
functions, so a mistake there cannot hide in both.

``Limits().install(client)`` puts the check in front of a boto3 client (moto's or any);
``Events`` and ``Sqs`` are client stand-ins for tests without moto.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

MAX_ENTRIES = 10
EVENTS_BYTES = 256_000  # "less than 256KB": the stricter reading of KB
SQS_BYTES = 262_144  # 256 KiB: what a queue takes unless its MaximumMessageSize says more


def put_events_refusal(entries: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(error code, message) EventBridge answers a PutEvents request with, or None."""
    if len(entries) > MAX_ENTRIES:
        return (
            "ValidationException",
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_ENTRIES}",
        )
    total = 0
    for entry in entries:  # EventBridge's documented count
        total += 14 if entry.get("Time") is not None else 0
        for name in ("Source", "DetailType", "Detail"):
            total += len((entry.get(name) or "").encode("utf-8"))
        total += sum(len(r.encode("utf-8")) for r in entry.get("Resources") or [])
    if total >= EVENTS_BYTES:
        return "ValidationException", "Total size of the entries in the request is over the limit."
    return None


def send_batch_refusal(entries: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(error code, message) SQS answers a SendMessageBatch with, or None (no attributes)."""
    if len(entries) > MAX_ENTRIES:
        return (
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_ENTRIES}. "
            f"You have sent {len(entries)}.",
        )
    total = sum(len(entry["MessageBody"].encode("utf-8")) for entry in entries)
    if total > SQS_BYTES:
        return (
            "AWS.SimpleQueueService.BatchRequestTooLong",
            f"Batch requests cannot be longer than {SQS_BYTES} bytes. You have sent {total} bytes.",
        )
    return None


class RawBody:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def error_response(url: str, service: str, code: str, message: str) -> AWSResponse:
    """An HTTP 400 as the service's JSON protocol sends it (SQS's names the query-API code)."""
    if service == "sqs":
        short = code.rsplit(".", 1)[-1]
        body = {"__type": f"com.amazonaws.sqs#{short}", "message": message}
        headers = {
            "content-type": "application/x-amz-json-1.0",
            "x-amzn-query-error": f"{code};Sender",
        }
    else:
        body = {"__type": code, "message": message}
        headers = {"content-type": "application/x-amz-json-1.1"}
    return AWSResponse(url, 400, headers, raw=RawBody(json.dumps(body).encode()))


@dataclass
class Limits:
    """A botocore hook refusing what AWS refuses; ``refused`` lists (operation, code)."""

    refused: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)  # (operation, entries) sent on

    def install(self, client: Any) -> Any:
        events = client.meta.events
        events.register_first("before-send.events.PutEvents", self._put_events)
        events.register_first("before-send.sqs.SendMessageBatch", self._send_message_batch)
        return client

    def _put_events(self, request, **kwargs):
        return self._check(request, "events", "PutEvents", put_events_refusal)

    def _send_message_batch(self, request, **kwargs):
        return self._check(request, "sqs", "SendMessageBatch", send_batch_refusal)

    def _check(self, request, service, operation, refusal):
        entries = json.loads(request.body)["Entries"]
        found = refusal(entries)
        if found is None:
            self.requests.append((operation, len(entries)))
            return None  # on to moto
        self.refused.append((operation, found[0]))
        return error_response(request.url, service, *found)


def _refuse(operation: str, found: tuple[str, str] | None) -> None:
    if found is not None:
        raise ClientError({"Error": {"Code": found[0], "Message": found[1]}}, operation)


@dataclass
class Events:
    """An EventBridge client that keeps each accepted request's entries; ``fail_requests``:
    the numbers (1, 2, ...) of the calls it answers with a 500 instead."""

    fail_requests: set[int] = field(default_factory=set)
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    calls: int = 0

    def put_events(self, Entries):  # noqa: N803 - boto3's parameter name
        self.calls += 1
        _refuse("PutEvents", put_events_refusal(Entries))
        if self.calls in self.fail_requests:
            raise ClientError({"Error": {"Code": "InternalException"}}, "PutEvents")
        self.requests.append(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}

    @property
    def details(self) -> list[dict]:
        return [json.loads(entry["Detail"]) for request in self.requests for entry in request]


@dataclass
class Sqs:
    """An SQS client that keeps each accepted batch's entries."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's parameter names
        _refuse("SendMessageBatch", send_batch_refusal(Entries))
        self.batches.append(Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(entry["MessageBody"]) for batch in self.batches for entry in batch]
